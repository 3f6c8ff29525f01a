/* tok_bpe.c — (in progress) */
