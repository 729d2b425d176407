// SPDX-License-Identifier: GPL-2.0
/*
 * Claiming the DAX cache device and mapping it as one linear range.
 *
 * dax_direct_access() hands out a persistent memory device one physically
 * contiguous part at a time.  A single fsdax namespace is usually one
 * part, and the pmem driver's own kernel mapping (with large pages) can be
 * used as it is.  A dm-linear or dm-striped volume over several namespaces
 * is several parts: we then collect the pages of every part and map them,
 * in device order, into one virtually contiguous range with vm_map_ram().
 */

#include <linux/bitmap.h>
#include <linux/dax.h>
#include <linux/ktime.h>
#include <linux/blkdev.h>
#include <linux/mm.h>
#include <linux/pfn_t.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>

#include "dm-pmemcache.h"

#define PMC_PAGE_SECTORS	(PAGE_SIZE >> SECTOR_SHIFT)

/*
 * Writeback sends cache blocks to the origin straight from pmem, in bios
 * that need struct pages.  fsdax namespaces always have them.
 */
#define PMC_NO_PAGES_ERROR \
	"Cache device memory has no struct pages (not an fsdax namespace?); not supported"

/*
 * dax_direct_access() refuses (-EIO on 6.1, -EHWPOISON later) a range that
 * holds a known media error; in DAX_RECOVERY_WRITE mode it still gives the
 * address of a bad page, so that bad pages can be mapped (never read) like
 * the others.
 *
 * Find what lies at @pgoff: the number of good pages from there (at most
 * @nr_pages, fewer where a part or a bad page ends them), 0 if the page at
 * @pgoff is bad, or a negative errno; *@kaddr and *@pfn describe @pgoff.
 */
static long pmc_dax_probe(struct dax_device *dax_dev, pgoff_t pgoff,
			  long nr_pages, void **kaddr, pfn_t *pfn)
{
	long n, good, bad;

	n = dax_direct_access(dax_dev, pgoff, nr_pages, DAX_ACCESS, kaddr, pfn);
	if (n > 0 || (n != -EIO && n != -EHWPOISON))
		return n ? n : -EIO;

	n = dax_direct_access(dax_dev, pgoff, 1, DAX_ACCESS, kaddr, pfn);
	if (n == -EIO || n == -EHWPOISON) {
		n = dax_direct_access(dax_dev, pgoff, 1, DAX_RECOVERY_WRITE,
				      kaddr, pfn);
		return n > 0 ? 0 : (n ? n : -EIO);
	}
	if (n <= 0)
		return n ? n : -EIO;

	/* Good at @pgoff, bad within @nr_pages: bisect for the first bad. */
	good = 1;
	bad = nr_pages;
	while (bad - good > 1) {
		long mid = good + (bad - good) / 2;

		n = dax_direct_access(dax_dev, pgoff, mid, DAX_ACCESS, NULL,
				      NULL);
		if (n > 0 && n < mid)
			return n;	/* the part ends before @mid */
		if (n > 0)
			good = mid;
		else if (n == -EIO || n == -EHWPOISON)
			bad = mid;
		else
			return n ? n : -EIO;
	}
	return good;
}

/*
 * Walk @nr_pages pages from @pgoff on, note the bad ones, and map them all
 * linearly: the pmem driver's own mapping when the parts turn out to lie
 * back to back in it, vm_map_ram() of their pages otherwise.  Not vmap():
 * it refuses more pages than the machine has RAM, and persistent memory
 * is not RAM (a 160 GiB cache on a machine with 64 GiB is fine).  Called
 * under dax_read_lock().
 */
static int pmc_map_walk(struct pmc_pmem_map *map, struct dm_target *ti,
			struct dax_device *dax_dev, pgoff_t pgoff,
			unsigned long nr_pages)
{
	struct page **pages;
	void *base = NULL;
	bool contiguous = true;
	unsigned long i = 0;
	int r = 0;

	if (!pmc_pmem_pages_mappable(nr_pages)) {
		ti->error = "Cache device too large to map in parts (16 TiB or more)";
		return -EOVERFLOW;
	}
	pages = pmc_alloc_array(nr_pages, sizeof(*pages));
	if (!pages) {
		ti->error = "Cannot allocate the page array to map the cache device";
		return -ENOMEM;
	}

	map->nr_parts = 0;
	while (i < nr_pages) {
		void *kaddr;
		pfn_t pfn;
		long n;

		n = pmc_dax_probe(dax_dev, pgoff + i, nr_pages - i, &kaddr,
				  &pfn);
		if (n < 0) {
			DMERR("%pg: dax_direct_access() failed at page %lu: %ld",
			      map->dev->bdev, i, n);
			ti->error = "Cannot access the cache device (dax_direct_access failed)";
			r = (int)n;
			goto out;
		}
		if (!pfn_t_has_page(pfn)) {
			ti->error = PMC_NO_PAGES_ERROR;
			r = -EOPNOTSUPP;
			goto out;
		}
		if (!n) {
			/* A bad page: mapped, but never handed out. */
			if (!map->bad_pages) {
				map->bad_pages = pmc_alloc_array(BITS_TO_LONGS(nr_pages),
								 sizeof(long));
				if (!map->bad_pages) {
					ti->error = "Cannot allocate the bad page bitmap";
					r = -ENOMEM;
					goto out;
				}
			}
			__set_bit(i, map->bad_pages);
			map->nr_bad_pages++;
			n = 1;
		}
		if (!i)
			base = kaddr;
		else if (kaddr != base + (i << PAGE_SHIFT))
			contiguous = false;
		map->nr_parts++;
		for (; n > 0 && i < nr_pages; n--, i++) {
			pages[i] = pfn_t_to_page(pfn);
			pfn.val++;
			if (!(i & 4095))
				cond_resched();
		}
	}

	if (contiguous) {
		/* One namespace cut only by bad pages: keep its mapping. */
		map->addr = base;
		map->nr_parts = 1;
		goto out;
	}
	map->addr = vm_map_ram(pages, nr_pages, NUMA_NO_NODE);
	if (!map->addr) {
		ti->error = "Cannot map the cache device (out of vmalloc space?)";
		r = -ENOMEM;
		goto out;
	}
	map->vmapped = true;
out:
	kvfree(pages);
	return r;
}

/**
 * pmc_pmem_pages_mappable() - can vm_map_ram() assemble @nr_pages pages?
 * @nr_pages: pages of the cache device after start_sector
 *
 * vm_map_ram() takes an unsigned int count: a cache of discontiguous
 * parts (or one with media errors) is at most 2^32 - 1 pages, 16 TiB
 * less a page.  A contiguous one is mapped as the pmem driver maps it,
 * whatever its size.
 *
 * Return: true if it can.
 */
bool pmc_pmem_pages_mappable(u64 nr_pages)
{
	return nr_pages <= UINT_MAX;
}

/**
 * pmc_pmem_map_claim() - map a DAX cache device linearly into the kernel
 * @map: filled in on success, untouched state on failure
 * @ti: the target being constructed; ti->error is set on failure
 * @dev: the cache device, already obtained with dm_get_device()
 * @start_sector: sectors at the start of @dev that are not to be used
 *
 * Takes the pmem driver's own mapping when one dax_direct_access() call
 * covers the whole range, or assembles the parts with vm_map_ram() otherwise.
 * Memory without struct pages is refused.
 * The device must stay claimed (dm_get_device) until
 * pmc_pmem_map_release() has run.
 *
 * Return: 0 or a negative errno, with ti->error set.
 */
int pmc_pmem_map_claim(struct pmc_pmem_map *map, struct dm_target *ti,
		       struct dm_dev *dev, sector_t start_sector)
{
	struct dax_device *dax_dev = dev->dax_dev;
	sector_t part_start, dev_sectors;
	unsigned long nr_pages;
	pgoff_t pgoff;
	void *kaddr;
	ktime_t t0 = ktime_get();
	pfn_t pfn;
	long n;
	int id, r = 0;

	memset(map, 0, sizeof(*map));
	map->dev = dev;
	map->start_sector = start_sector;

	if (!dax_dev) {
		DMERR("%pg: no DAX support; use fsdax namespaces or a dm volume over them",
		      dev->bdev);
		ti->error =
			"Cache device does not support DAX (p mode needs fsdax pmem)";
		return -EOPNOTSUPP;
	}
	if (!dax_synchronous(dax_dev)) {
		ti->error =
			"Asynchronous DAX (virtio-pmem) is not durable by CPU flushes";
		return -EOPNOTSUPP;
	}

	part_start = get_start_sect(dev->bdev);
	if (part_start & (PMC_PAGE_SECTORS - 1)) {
		DMERR("%pg: partition starts at sector %llu, not on a page boundary",
		      dev->bdev, (unsigned long long)part_start);
		ti->error = "Cache device partition does not start on a page boundary";
		return -EINVAL;
	}
	if (start_sector & (PMC_PAGE_SECTORS - 1)) {
		ti->error = "start_sector must be a multiple of the page size in sectors";
		return -EINVAL;
	}
	dev_sectors = bdev_nr_sectors(dev->bdev);
	if (start_sector >= dev_sectors) {
		ti->error = "start_sector is beyond the end of the cache device";
		return -EINVAL;
	}
	nr_pages = (dev_sectors - start_sector) / PMC_PAGE_SECTORS;
	if (nr_pages < PMC_MIN_CACHE_PAGES) {
		DMERR("%pg: %lu pages after start_sector, at least %u needed",
		      dev->bdev, nr_pages, PMC_MIN_CACHE_PAGES);
		ti->error = "Cache device too small: it needs at least 16 pages after start_sector";
		return -EINVAL;
	}
	pgoff = (part_start + start_sector) / PMC_PAGE_SECTORS;

	id = dax_read_lock();
	n = dax_direct_access(dax_dev, pgoff, nr_pages, DAX_ACCESS, &kaddr,
			      &pfn);
	if (n >= (long)nr_pages && !pfn_t_has_page(pfn)) {
		ti->error = PMC_NO_PAGES_ERROR;
		r = -EOPNOTSUPP;
	} else if (n >= (long)nr_pages) {
		map->addr = kaddr;
		map->nr_parts = 1;
	} else {
		/* Several parts, or media errors: walk it. */
		r = pmc_map_walk(map, ti, dax_dev, pgoff, nr_pages);
	}
	dax_read_unlock(id);
	if (r) {
		kvfree(map->bad_pages);
		map->bad_pages = NULL;
		return r;
	}

	map->size = (size_t)nr_pages << PAGE_SHIFT;
	DMINFO("%pg: cache mapped %s: %u part%s, %zu bytes, %lld us",
	       dev->bdev, map->vmapped ? "assembled" : "directly",
	       map->nr_parts, map->nr_parts == 1 ? "" : "s", map->size,
	       ktime_us_delta(ktime_get(), t0));
	if (map->nr_bad_pages)
		DMWARN("%pg: %lu page(s) with media errors (badblocks); no data placed there",
		       dev->bdev, map->nr_bad_pages);
	pmc_pcheck_attach(map, map->addr, map->size);
	return 0;
}

/**
 * pmc_pmem_range_bad() - does a range of the mapped cache hold media errors?
 * @map: a claimed map
 * @offset: first byte of the range, from the start of the mapping
 * @len: length of the range in bytes, not 0
 *
 * Only the errors known when the map was claimed are seen.
 *
 * Return: true if a page of the range was bad at claim time.
 */
bool pmc_pmem_range_bad(const struct pmc_pmem_map *map, size_t offset,
			size_t len)
{
	unsigned long first = offset >> PAGE_SHIFT;
	unsigned long end = (offset + len - 1) / PAGE_SIZE + 1;

	if (!map->bad_pages)
		return false;
	return find_next_bit(map->bad_pages, end, first) < end;
}

/**
 * pmc_pmem_map_release() - undo pmc_pmem_map_claim()
 * @map: a map filled in by a successful pmc_pmem_map_claim(), or zeroed
 *
 * Must run before the cache device is released with dm_put_device().
 */
void pmc_pmem_map_release(struct pmc_pmem_map *map)
{
	pmc_pcheck_detach(map);
	if (map->vmapped)
		vm_unmap_ram(map->addr, map->size >> PAGE_SHIFT);
	kvfree(map->bad_pages);
	map->bad_pages = NULL;
	map->nr_bad_pages = 0;
	map->addr = NULL;
	map->vmapped = false;
}
