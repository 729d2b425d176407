/* SPDX-License-Identifier: GPL-2.0 */
/*
 * dm-pmemcache: a persistent-memory write-back cache for device-mapper.
 *
 * Declarations shared by the target and its engine (engine.h lists their
 * files), pmem_map.c (claiming and mapping the DAX cache device) and
 * flush.c (persistence primitives).
 *
 * The on-media format is defined in pmemcache_format.h, shared with the
 * userspace tool (tools/pmemcache.c).
 */
#ifndef DM_PMEMCACHE_H
#define DM_PMEMCACHE_H

#include <linux/types.h>
#include <linux/device-mapper.h>
#include <linux/kernel.h>
#include <linux/string.h>
#include <linux/build_bug.h>
#include <linux/overflow.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>

#include "pmemcache_format.h"

#define DM_MSG_PREFIX "pmemcache"

/* Smallest cache the target accepts, in pages of the cache device. */
#define PMC_MIN_CACHE_PAGES	16

/* Fewest data blocks a cache may have. */
#define PMC_MIN_BLOCKS		8

/**
 * struct pmc_pmem_map - the cache device, claimed and mapped linearly
 * @dev: the cache device, as obtained with dm_get_device()
 * @addr: kernel address of the first byte after @start_sector
 * @size: bytes mapped from @addr on
 * @start_sector: sectors skipped at the start of the device
 * @nr_parts: number of contiguous ranges dax_direct_access() returned
 * @vmapped: @addr lies in a vm_map_ram() mapping that we own
 * @bad_pages: bitmap of the pages that held media errors at claim time
 *             (NULL when there were none)
 * @nr_bad_pages: bits set in @bad_pages
 *
 * Filled in by pmc_pmem_map_claim() and emptied by pmc_pmem_map_release();
 * constant in between, so it needs no lock.
 */
struct pmc_pmem_map {
	struct dm_dev *dev;
	void *addr;
	size_t size;
	sector_t start_sector;
	unsigned int nr_parts;
	bool vmapped;
	unsigned long *bad_pages;
	unsigned long nr_bad_pages;
};

int pmc_pmem_map_claim(struct pmc_pmem_map *map, struct dm_target *ti,
		       struct dm_dev *dev, sector_t start_sector);
void pmc_pmem_map_release(struct pmc_pmem_map *map);
bool pmc_pmem_range_bad(const struct pmc_pmem_map *map, size_t offset,
			size_t len);
bool pmc_pmem_pages_mappable(u64 nr_pages);

/* The cache's layout (format.c). */
u64 pmc_data_offset(u64 nr_blocks);
u64 pmc_fit_blocks(u64 size, unsigned int block_size);
size_t pmc_block_state_size(void);

/**
 * pmc_alloc_array() - a zeroed array, as large as the format allows
 * @n: elements
 * @size: bytes per element
 *
 * kvcalloc() refuses more than INT_MAX bytes (with a warning): the
 * per-block state of a cache above 128 GiB, the page array of one above
 * 1 TiB.  Larger arrays come from vcalloc().  Free with kvfree().
 *
 * Return: the array, or NULL.
 */
static inline void *pmc_alloc_array(size_t n, size_t size)
{
	size_t bytes;

	if (check_mul_overflow(n, size, &bytes))
		return NULL;
	if (bytes <= INT_MAX)
		return kvcalloc(n, size, GFP_KERNEL);
	return vcalloc(n, size);
}

/* Persistence strategies (flush.c); the table option flush_mode. */
enum pmc_flush_mode {
	PMC_FLUSH_AUTO,
	PMC_FLUSH_MOVNT,
	PMC_FLUSH_CLWB,
	PMC_FLUSH_CLFLUSHOPT,
	PMC_FLUSH_CLFLUSH,
	PMC_FLUSH_GENERIC,
	PMC_NR_FLUSH_MODES
};

/**
 * struct pmc_flush - the strategies in use
 * @data: for data blocks
 * @meta: for entries and commit records
 * @publish_fence: pmc_publish_stores() must fence (see there)
 */
struct pmc_flush {
	u8 data;
	u8 meta;
	bool publish_fence;
};

const char *pmc_flush_mode_name(enum pmc_flush_mode mode);
int pmc_flush_mode_parse(const char *name);
int pmc_flush_choose(enum pmc_flush_mode asked, struct pmc_flush *f);
void pmc_copy_to_pmem(enum pmc_flush_mode mode, void *dst, const void *src,
		      size_t len);
void pmc_flush_range(enum pmc_flush_mode mode, void *addr, size_t len);
void pmc_fence(void);

void pmc_publish_stores(const struct pmc_flush *f);

#ifdef PMC_PERSIST_CHECK
/*
 * Test builds: the persistence checker (persist_check.c) sees every store
 * into pmem, so the records go through the out-of-line copy in flush.c.
 */
void pmc_write_u64(enum pmc_flush_mode mode, __le64 *p, __le64 val);

static inline void pmc_copy_record(enum pmc_flush_mode mode, void *dst,
				   const void *src, size_t len)
{
	pmc_copy_to_pmem(mode, dst, src, len);
}
#else
/**
 * pmc_copy_record() - pmc_copy_to_pmem() for a metadata record
 * @mode: the strategy
 * @dst: destination, 16-byte aligned, inside the mapped cache
 * @src: source
 * @len: bytes, a constant multiple of 16
 *
 * Inline, so that in movnt mode a record is a few movnti instructions
 * rather than a call into the general copy loop.
 */
static __always_inline void pmc_copy_record(enum pmc_flush_mode mode,
					    void *dst, const void *src,
					    size_t len)
{
#ifdef CONFIG_X86
	BUILD_BUG_ON(!__builtin_constant_p(len) || len % 16);
	if (mode == PMC_FLUSH_MOVNT) {
		size_t i;

		for (i = 0; i < len; i += 16)
			memcpy_flushcache(dst + i, src + i, 16);
		return;
	}
#endif
	pmc_copy_to_pmem(mode, dst, src, len);
}

/**
 * pmc_write_u64() - write one aligned 8-byte field in pmem
 * @mode: the strategy
 * @p: the field, inside the mapped cache
 * @val: its new value
 *
 * A single store, which cannot tear; durable after the next pmc_fence().
 */
static __always_inline void pmc_write_u64(enum pmc_flush_mode mode,
					  __le64 *p, __le64 val)
{
#ifdef CONFIG_X86
	if (mode == PMC_FLUSH_MOVNT) {
		memcpy_flushcache(p, &val, sizeof(*p));
		return;
	}
#endif
	WRITE_ONCE(*p, val);
	pmc_flush_range(mode, p, sizeof(*p));
}
#endif

/* pmc_write_u64() of zero: frees an entry (rule 3 in flush.c). */
static __always_inline void pmc_zero_u64(enum pmc_flush_mode mode, __le64 *p)
{
	pmc_write_u64(mode, p, 0);
}

/**
 * struct pmc_pcheck_op - a store that the persistence checker watches
 * @watched: the store goes into the modelled cache: recorded at its end
 * @dst: where the store goes
 * @len: its bytes
 * @caller: the engine's code making it
 * @wb_from: start of the part written back so far
 * @wb_to: its end (NULL: nothing written back yet)
 * @gen: the model it was counted in (a reload may end that model before
 *       the store does)
 * @nt: made with non-temporal stores, which wait in the CPU's
 *      write-combining buffers unseen by other CPUs until a fence
 */
struct pmc_pcheck_op {
	bool watched;
	bool nt;
	unsigned long gen;
	void *dst;
	size_t len;
	unsigned long caller;
	void *wb_from;
	void *wb_to;
};

#ifdef PMC_PERSIST_CHECK
void pmc_pcheck_attach(const void *owner, void *base, size_t size);
void pmc_pcheck_detach(const void *owner);
bool pmc_pcheck_cut(void);
bool pmc_pcheck_store_begin(struct pmc_pcheck_op *op, void *dst, size_t len,
			    unsigned long caller);
void pmc_pcheck_written_back(struct pmc_pcheck_op *op, void *addr, size_t len);
void pmc_pcheck_store_end(struct pmc_pcheck_op *op);
bool pmc_pcheck_fence(unsigned long caller);
#else
static inline void pmc_pcheck_attach(const void *owner, void *base,
				     size_t size) { }
static inline void pmc_pcheck_detach(const void *owner) { }
static inline bool pmc_pcheck_cut(void) { return false; }
static inline bool pmc_pcheck_store_begin(struct pmc_pcheck_op *op, void *dst,
					  size_t len, unsigned long caller)
{
	return true;
}

static inline void pmc_pcheck_written_back(struct pmc_pcheck_op *op,
					   void *addr, size_t len) { }
static inline void pmc_pcheck_store_end(struct pmc_pcheck_op *op) { }
static inline bool pmc_pcheck_fence(unsigned long caller) { return true; }
#endif

/* Points where a test build lets a test pause a thread or cut the power. */
enum pmc_test_point {
	PMC_TP_NONE,
	PMC_TP_WRITE_COPY,	/* a writer holds its blocks, before copying */
	PMC_TP_WB_SUBMIT,	/* writeback took a batch, before submitting */
	PMC_TP_WB_FINISH,	/* writeback bios ended, before freeing */
	PMC_TP_FORMAT_MID,	/* format: commit 0 durable, superblock not */
	PMC_TP_LOADED,		/* a first resume read the cache, not yet run */
	PMC_TP_READ_FOUND,	/* a read hit found its block, no count yet */
	PMC_TP_READ_HELD,	/* a read hit counted its blocks, not checked */
	PMC_TP_WRITE_ENTRY,	/* a writer took new blocks, entries not written */
	PMC_NR_TEST_POINTS
};

#ifdef PMC_TEST_HOOKS
void pmc_test_point(enum pmc_test_point p);
#else
static inline void pmc_test_point(enum pmc_test_point p) { }
#endif

#endif /* DM_PMEMCACHE_H */
