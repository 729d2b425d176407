/* SPDX-License-Identifier: GPL-2.0 */
/*
 * dm-pmemcache: the cache medium, where the cache's bytes live and how
 * they become durable.  The table's mode chooses it:
 *
 *   p - persistent memory, mapped linearly (pmem_map.c).  Metadata and
 *       data are stored by the CPU through flush.c, durable at a fence.
 *   s - any block device (bdev_medium.c).  The metadata region (the
 *       superblock, both commit slots, the entries) lives in a RAM image
 *       read at activation; a store changes the image and marks its
 *       chunk dirty; a barrier writes the dirty chunks with dm-io and
 *       flushes the device.  Data goes to the device as bios (io.c) and
 *       back to the origin with dm-kcopyd (writeback.c).
 *
 * The engine stores metadata and waits for durability only through the
 * calls below, so flush.c's persistence rules read the same for both
 * media with "fence" meaning pmc_meta_barrier().  Where the data path
 * differs (io.c's map and end_io, writeback's copy) the engine asks
 * pmc_on_bdev() once, at the dispatch.
 *
 * On a block device every write of a 512-byte sector is taken to be
 * atomic (old or new, never a mix), as file systems and dm-writecache
 * take it; an entry (32 bytes, aligned) and a commit slot (16 bytes) lie
 * within one sector, so neither can tear.
 */
#ifndef PMC_MEDIUM_H
#define PMC_MEDIUM_H

/* s mode: the metadata image is tracked and written in chunks of this. */
#define PMC_BDEV_CHUNK		4096
/* s mode: the most bytes of the image one metadata write carries. */
#define PMC_BDEV_BOUNCE		BIT(20)

/* Is the cache on a block device (s mode)? */
static inline bool pmc_on_bdev(const struct pmemcache *pc)
{
	return !pc->pmem_mode;
}

/* bdev_medium.c */
int pmc_bdev_open(struct pmemcache *pc, sector_t start);
int pmc_bdev_io(struct pmemcache *pc, blk_opf_t opf, void *buf, size_t off,
		size_t len);
int pmc_bdev_read_image(struct pmemcache *pc, u64 bytes);
int pmc_bdev_reread_image(struct pmemcache *pc);
void pmc_bdev_close(struct pmemcache *pc);
void pmc_bdev_mark(struct pmemcache *pc, const void *p, size_t len);
void pmc_bdev_fail(struct pmemcache *pc);
int pmc_bdev_barrier(struct pmemcache *pc);
sector_t pmc_bdev_data_sector(struct pmemcache *pc, u64 idx);

/**
 * pmc_meta_record() - store a metadata record (an entry, a commit record)
 * @pc: the cache
 * @dst: where, inside pc->sb .. the end of the entries
 * @src: the record
 * @len: its bytes, a constant multiple of 16
 *
 * Durable after the next pmc_meta_barrier() of any task in s mode, of
 * this task in p mode (flush.c).
 */
static __always_inline void pmc_meta_record(struct pmemcache *pc, void *dst,
					    const void *src, size_t len)
{
	if (unlikely(pmc_on_bdev(pc))) {
		memcpy(dst, src, len);
		pmc_bdev_mark(pc, dst, len);
		return;
	}
	pmc_copy_record(pc->flush.meta, dst, src, len);
}

/**
 * pmc_meta_u64() - store one aligned 8-byte metadata field
 * @pc: the cache
 * @p: the field
 * @val: its new value
 *
 * One store, which cannot tear; durable as pmc_meta_record().
 */
static __always_inline void pmc_meta_u64(struct pmemcache *pc, __le64 *p,
					 __le64 val)
{
	if (unlikely(pmc_on_bdev(pc))) {
		WRITE_ONCE(*p, val);
		pmc_bdev_mark(pc, p, sizeof(*p));
		return;
	}
	pmc_write_u64(pc->flush.meta, p, val);
}

/**
 * pmc_meta_copy() - store a range of metadata (format)
 * @pc: the cache
 * @dst: where
 * @src: the bytes
 * @len: how many
 */
static inline void pmc_meta_copy(struct pmemcache *pc, void *dst,
				 const void *src, size_t len)
{
	if (pmc_on_bdev(pc)) {
		memcpy(dst, src, len);
		pmc_bdev_mark(pc, dst, len);
		return;
	}
	pmc_copy_to_pmem(pc->flush.meta, dst, src, len);
}

/**
 * pmc_meta_barrier() - make the metadata stored so far durable
 * @pc: the cache
 *
 * p mode: a fence (pmc_fence()), for this task's stores, data included.
 * s mode: the dirty chunks of the image written, then the device flushed,
 * which also makes durable every data write that completed before the
 * call.  Sleeps in s mode, and must not be called from a map function
 * there: the writes would wait behind the bio being mapped.
 *
 * Return: 0, or -EIO when the cache device failed (s mode; from then on
 * every barrier fails).
 */
static inline int pmc_meta_barrier(struct pmemcache *pc)
{
	if (unlikely(pmc_on_bdev(pc)))
		return pmc_bdev_barrier(pc);
	pmc_fence();
	return 0;
}

/* Has the cache device failed (s mode; see struct pmc_bdev_medium)? */
static inline bool pmc_medium_failed(const struct pmemcache *pc)
{
	return pmc_on_bdev(pc) && READ_ONCE(pc->bdev.failed);
}

/* The first byte of the metadata region: the superblock. */
static inline void *pmc_meta_base(struct pmemcache *pc)
{
	return pmc_on_bdev(pc) ? pc->bdev.image : pc->pmem.addr;
}

#endif /* PMC_MEDIUM_H */
