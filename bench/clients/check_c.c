/*
 * check_c - the C figure for bench/clients/run.sh: bk_check and bk_check_live
 * per call against a real breakerd's segment, timed in batches of 1000 calls
 * (one clock read per batch), p50/p99 over the batches. Java (BenchCheck)
 * and Rust (bench_check.rs) measure the same way. usage: check_c INSTANCE STRATEGY
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "breaker_client.h"

#define BATCH   1000
#define SAMPLES 20000

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double v[SAMPLES];
static volatile unsigned sink;

static void report(const char *what)
{
	qsort(v, SAMPLES, sizeof(v[0]), cmp);
	printf("c %s %.2f %.2f\n", what, v[SAMPLES / 2], v[SAMPLES * 99 / 100]);
}

int main(int argc, char **argv)
{
	struct bk_client c;
	int slot, rv;

	if (argc < 3 || (rv = bk_client_attach(&c, argv[1])) < 0 ||
	    (slot = bk_client_resolve(&c, argv[2])) < 0) {
		fprintf(stderr, "check_c: cannot attach to %s or resolve %s\n",
		        argc > 1 ? argv[1] : "?", argc > 2 ? argv[2] : "?");
		return 1;
	}
	for (int pass = 0; pass < 2; pass++) {
		for (int i = 0; i < SAMPLES / 10; i++) /* warm-up, not counted */
			for (int k = 0; k < BATCH; k++)
				sink += bk_check(&c, slot);
		for (int i = 0; i < SAMPLES; i++) {
			uint64_t t0 = bk_now_mono_ns(), acc = 0;

			for (int k = 0; k < BATCH; k++)
				acc += pass ? bk_check_live(&c, slot, t0, 0)
				            : bk_check(&c, slot);
			v[i] = (double)(bk_now_mono_ns() - t0) / BATCH;
			sink += (unsigned)acc;
		}
		report(pass ? "check_live" : "check");
	}
	bk_client_detach(&c);
	return 0;
}
