// SPDX-License-Identifier: GPL-2.0
/*
 * bench-flush: time the persistence strategies of flush.c on this CPU.
 *
 * Each strategy is the same instruction sequence as in the kernel:
 *   movnt      - non-temporal 8-byte stores (movnti), as x86's
 *                __memcpy_flushcache() does for aligned data;
 *   clwb       - an ordinary copy, then clwb on every cache line;
 *   clflushopt - an ordinary copy, then clflushopt on every cache line;
 *   clflush    - an ordinary copy, then clflush on every cache line;
 * each followed by sfence (pmem_wmb() on x86).  Two workloads: 4 KiB
 * data blocks copied into a buffer much larger than the last-level cache,
 * with one fence per block; and 16- and 64-byte metadata records written
 * at scattered places, with one fence per record.  This runs on DRAM:
 * it measures the CPU side of each strategy, not persistent memory.
 */
#define _GNU_SOURCE
#include <cpuid.h>
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BUF_SIZE	(1UL << 30)	/* 1 GiB: far beyond any LLC */
#define BLOCK		4096
#define LINE		64
#define ROUNDS		7

enum { MOVNT, CLWB, CLFLUSHOPT, CLFLUSH, NR_STRATS };
static const char *const names[NR_STRATS] = {
	"movnt", "clwb", "clflushopt", "clflush"
};

static int have(int s)
{
	unsigned int a, b, c, d;

	if (s == CLWB || s == CLFLUSHOPT) {
		if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
			return 0;
		return s == CLWB ? !!(b & (1U << 24)) : !!(b & (1U << 23));
	}
	return 1;	/* sse2 (movnti) and clflush: every x86-64 CPU */
}

__attribute__((target("clwb,clflushopt")))
static void persist(int s, char *dst, const char *src, size_t len)
{
	size_t i;

	if (s == MOVNT) {
		for (i = 0; i < len; i += 8)
			_mm_stream_si64((long long *)(dst + i),
					*(const long long *)(src + i));
	} else {
		memcpy(dst, src, len);
		for (i = 0; i < len; i += LINE) {
			if (s == CLWB)
				_mm_clwb(dst + i);
			else if (s == CLFLUSHOPT)
				_mm_clflushopt(dst + i);
			else
				_mm_clflush(dst + i);
		}
	}
	_mm_sfence();
}

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* ns per operation, ROUNDS times: median, min, max */
static void report(const char *what, int s, double *ns)
{
	qsort(ns, ROUNDS, sizeof(*ns), cmp);
	if (!strcmp(what, "4KiB"))
		printf("| %-10s | %-6s | %8.1f | %8.1f–%-8.1f | %6.2f |\n",
		       names[s], what, ns[ROUNDS / 2], ns[0], ns[ROUNDS - 1],
		       BLOCK / ns[ROUNDS / 2]);
	else
		printf("| %-10s | %-6s | %8.1f | %8.1f–%-8.1f |        |\n",
		       names[s], what, ns[ROUNDS / 2], ns[0], ns[ROUNDS - 1]);
}

int main(void)
{
	static char src[BLOCK] __attribute__((aligned(LINE)));
	double blk_ns[NR_STRATS][ROUNDS], rec_ns[NR_STRATS][2][ROUNDS];
	const size_t recs[2] = { 16, 64 };
	size_t nblocks = BUF_SIZE / BLOCK, i;
	int s, r, k, best_data = MOVNT, best_meta = MOVNT;
	char *buf;

	if (posix_memalign((void **)&buf, BLOCK, BUF_SIZE))
		return 1;
	memset(buf, 1, BUF_SIZE);
	for (i = 0; i < BLOCK; i++)
		src[i] = (char)i;

	printf("| strategy   | size   | ns/op    | min–max           | GB/s   |\n");
	printf("|------------|--------|----------|-------------------|--------|\n");
	for (s = 0; s < NR_STRATS; s++) {
		if (!have(s)) {
			printf("| %-10s | (not on this CPU)                              |\n",
			       names[s]);
			continue;
		}
		for (r = 0; r < ROUNDS; r++) {
			double t = now();

			for (i = 0; i < nblocks; i++)
				persist(s, buf + i * BLOCK, src, BLOCK);
			blk_ns[s][r] = (now() - t) * 1e9 / nblocks;
		}
		report("4KiB", s, blk_ns[s]);
		for (k = 0; k < 2; k++) {
			for (r = 0; r < ROUNDS; r++) {
				size_t n = 1 << 20, stride = 4096 + 64;
				double t = now();

				for (i = 0; i < n; i++)
					persist(s, buf + (i * stride) % (BUF_SIZE - BLOCK),
						src, recs[k]);
				rec_ns[s][k][r] = (now() - t) * 1e9 / n;
			}
			report(k ? "64B" : "16B", s, rec_ns[s][k]);
		}
	}
	for (s = 0; s < NR_STRATS; s++) {
		if (!have(s))
			continue;
		if (blk_ns[s][ROUNDS / 2] < blk_ns[best_data][ROUNDS / 2])
			best_data = s;
		if (rec_ns[s][1][ROUNDS / 2] < rec_ns[best_meta][1][ROUNDS / 2])
			best_meta = s;
	}
	printf("\nfastest here: data blocks %s, metadata records %s\n",
	       names[best_data], names[best_meta]);
	printf("flush_mode auto picks: movnt for data blocks, movnt for metadata (x86)%s\n",
	       best_data == MOVNT && best_meta == MOVNT ? "" :
	       "; this CPU would do better with an explicit flush_mode");
	free(buf);
	return 0;
}
