// SPDX-License-Identifier: GPL-2.0
/*
 * The sizing arithmetic of the cache, checked from 64 KiB to 64 TiB
 * without that much memory: the layout (how many blocks fit, where the
 * data starts) and whether the parts of a cache can be assembled into
 * one mapping.  Compiled only into test builds (make PMC_TEST_HOOKS=y,
 * which make check uses).
 *
 * Module parameter test_sizing (/sys/module/dm_pmemcache/parameters/):
 * write anything to run the checks; read it for "CASES cases, FAILED
 * failed" of the last run.  Each failure is logged with its numbers.
 *
 * The oracles are independent of the code under test: for every size up
 * to 4 MiB in 512-byte steps, a count of blocks grown one block at a time
 * while the layout fits; above that, at chosen edges and at sizes drawn
 * at random, "n blocks fit and n + 1 do not", computed here.
 */

#include <linux/math64.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/overflow.h>
#include <linux/sched.h>

#include "dm-pmemcache.h"

#define KIB	1024ULL
#define MIB	(KIB << 10)
#define GIB	(MIB << 10)
#define TIB	(GIB << 10)
#define PG	((u64)PAGE_SIZE)

static unsigned int sz_cases, sz_failed;

/* Does a layout of @n blocks of @bs bytes fit in @size?  Here, not there. */
static bool sz_fits(u64 size, unsigned int bs, u64 n)
{
	u64 entries = n * 32, meta;

	meta = (PMC_SB_SIZE + entries + PG - 1) / PG * PG;
	return meta <= size && n * bs <= size - meta;
}

static void sz_fail(u64 size, unsigned int bs, const char *what, u64 got,
		    u64 want)
{
	if (sz_failed++ < 20)
		pr_err("dm-pmemcache: test_sizing: %llu bytes, block %u: %s: %llu, expected %llu\n",
		       size, bs, what, got, want);
}

/* Every check that holds for any cache size. */
static void sz_check(u64 size, unsigned int bs)
{
	u64 n = pmc_fit_blocks(size, bs), off;
	bool mappable;

	sz_cases++;
	if (n && !sz_fits(size, bs, n))
		sz_fail(size, bs, "blocks that do not fit", n, 0);
	if (sz_fits(size, bs, n + 1))
		sz_fail(size, bs, "one more block would fit", n, n + 1);
	off = pmc_data_offset(n);
	if (off % PG || off < PMC_SB_SIZE + n * 32)
		sz_fail(size, bs, "data offset", off, PMC_SB_SIZE + n * 32);
	if (n && off + n * bs > size)
		sz_fail(size, bs, "data end past the device", off + n * bs,
			size);
	/* A device pmem_map.c accepts holds the blocks the engine needs. */
	if (size >= PMC_MIN_CACHE_PAGES * PG && n < PMC_MIN_BLOCKS)
		sz_fail(size, bs, "fewer blocks than the minimum", n,
			PMC_MIN_BLOCKS);
	/* Assembled from parts: up to 2^32 - 1 pages (vm_map_ram()). */
	mappable = pmc_pmem_pages_mappable(size / PG);
	if (mappable != (size / PG < (1ULL << 32)))
		sz_fail(size, bs, "can be assembled", mappable, !mappable);
}

/* xorshift64, a fixed seed: the same sizes every run. */
static u64 sz_rand(u64 *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

static int sz_run(const char *val, const struct kernel_param *kp)
{
	static const u64 edges[] = {
		(PMC_MIN_CACHE_PAGES * PG), MIB, GIB + 3 * PG + 512,
		128 * GIB - PG, 128 * GIB, 160 * GIB, TIB - PG, TIB, TIB + PG,
		4 * TIB + 1234567 * PG, 16 * TIB - PG, 16 * TIB, 16 * TIB + PG,
		64 * TIB,
	};
	unsigned int bs, i;
	u64 size, x = 0x9e3779b97f4a7c15ULL;

	sz_cases = 0;
	sz_failed = 0;
	for (bs = SECTOR_SIZE; bs <= PAGE_SIZE; bs <<= 1) {
		u64 n = 0;

		/* Small sizes: the count grown block by block is the truth. */
		for (size = 0; size <= 4 * MIB; size += 512) {
			while (sz_fits(size, bs, n + 1))
				n++;
			if (pmc_fit_blocks(size, bs) != n)
				sz_fail(size, bs, "blocks", pmc_fit_blocks(size, bs), n);
			sz_check(size, bs);
		}
		for (i = 0; i < ARRAY_SIZE(edges); i++) {
			sz_check(edges[i], bs);
			sz_check(edges[i] + 511, bs);
		}
		for (i = 0; i < 20000; i++) {
			size = sz_rand(&x) % (64 * TIB - 64 * KIB) + 64 * KIB;
			sz_check(size & ~511ULL, bs);
		}
		cond_resched();
	}
	size = 16 * TIB - PG;
	pr_info("dm-pmemcache: test_sizing: %u cases, %u failed; a cache of 16 TiB less a page holds %llu blocks of %lu bytes, whose index takes %llu MiB of RAM\n",
		sz_cases, sz_failed, pmc_fit_blocks(size, PAGE_SIZE), PAGE_SIZE,
		pmc_fit_blocks(size, PAGE_SIZE) * pmc_block_state_size() >> 20);
	return sz_failed ? -EINVAL : 0;
}

static int sz_get(char *buf, const struct kernel_param *kp)
{
	return sysfs_emit(buf, "%u cases, %u failed\n", sz_cases, sz_failed);
}

static const struct kernel_param_ops sz_ops = {
	.set = sz_run,
	.get = sz_get,
};

module_param_cb(test_sizing, &sz_ops, NULL, 0644);
MODULE_PARM_DESC(test_sizing, "Test builds: write to check the sizing arithmetic up to 64 TiB; read the result");
