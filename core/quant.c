/* quant.c — (in progress) */
