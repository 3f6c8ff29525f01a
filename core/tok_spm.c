/* tok_spm.c — (in progress) */
