/* gguf.c — (in progress) */
