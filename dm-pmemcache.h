/* SPDX-License-Identifier: GPL-2.0 */
/*
 * dm-pmemcache: a persistent-memory write-back cache for device-mapper.
 *
 * Declarations shared by dm-pmemcache.c (target), pmem_map.c (claiming
 * and mapping the DAX cache device) and flush.c (persistence primitives).
 *
 * Status of the implementation: the target parses and validates its full
 * table line, claims and maps the cache device, and passes all I/O
 * through to the origin.  The on-media format and the cache engine are
 * not written yet; nothing is stored in the cache device so far.
 */
#ifndef DM_PMEMCACHE_H
#define DM_PMEMCACHE_H

#include <linux/types.h>
#include <linux/device-mapper.h>

#define DM_MSG_PREFIX "pmemcache"

/* Smallest cache the target accepts, in pages of the cache device. */
#define PMC_MIN_CACHE_PAGES	16

/**
 * struct pmc_pmem_map - the cache device, claimed and mapped linearly
 * @dev: the cache device, as obtained with dm_get_device()
 * @addr: kernel address of the first byte after @start_sector
 * @size: bytes mapped from @addr on
 * @start_sector: sectors skipped at the start of the device
 * @nr_parts: number of contiguous ranges dax_direct_access() returned
 * @vmapped: @addr lies in a vmap() / vmap_pfn() mapping that we own
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
};

int pmc_pmem_map_claim(struct pmc_pmem_map *map, struct dm_target *ti,
		       struct dm_dev *dev, sector_t start_sector);
void pmc_pmem_map_release(struct pmc_pmem_map *map);

void pmc_copy_to_pmem(void *dst, const void *src, size_t len);
void pmc_flush_range(void *addr, size_t len);
void pmc_fence(void);

#endif /* DM_PMEMCACHE_H */
