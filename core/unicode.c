/* unicode.c — (in progress) */
