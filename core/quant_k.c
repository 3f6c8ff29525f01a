/* quant_k.c — (in progress) */
