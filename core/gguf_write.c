/* gguf_write.c — (in progress) */
