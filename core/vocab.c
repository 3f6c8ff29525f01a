/* vocab.c — (in progress) */
