/* sampler.c — (in progress) */
