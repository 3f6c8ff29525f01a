/* model.c — (in progress) */
