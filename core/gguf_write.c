/* gguf_write.c — (in progress) */
typedef int gguf_write_placeholder;
