// SPDX-License-Identifier: GPL-2.0
/*
 * dm-pmemcache: the s-mode medium, a cache on any block device (an SSD
 * in front of a disk, say).
 *
 * The metadata region of the device (superblock, commit slots, entries:
 * the layout of dm-pmemcache.h, from start_sector on) is read into a RAM
 * image at activation.  The engine stores into the image as it would
 * into pmem (medium.h), and each store marks its PMC_BDEV_CHUNK-byte
 * chunk dirty.  A barrier copies the dirty chunks to a bounce buffer
 * (the image may change under a write, and some devices check data as
 * they take it), writes them with dm-io, waits for them, then flushes
 * the device's write cache; so the engine's "fence"
 * of flush.c becomes "everything stored so far, and every data write
 * completed so far, is durable".  Barriers are serialised: one that finds
 * a chunk clean must not return while another barrier's write of that
 * chunk is still on its way.
 *
 * A failed metadata write or flush latches pc->bdev.failed: no barrier
 * writes anything after it, so that the media keeps a state recovery
 * accepts; the target then refuses writes (status field 1).
 *
 * The constructor reads the image (to check or format the device), but
 * the table it builds may resume only after an older table over the same
 * device has run on and been suspended: resume reads the image again
 * (pmc_bdev_reread_image()) before recovery reads the entries.
 */

#include <linux/bitmap.h>
#include <linux/blkdev.h>
#include <linux/dm-io.h>
#include <linux/dm-kcopyd.h>
#include <linux/ioprio.h>
#include <linux/vmalloc.h>

#include "engine.h"

/**
 * pmc_bdev_open() - set up the s-mode medium
 * @pc: the cache; pc->cache_dev opened
 * @start: sectors of the device to skip (start_sector)
 *
 * Return: 0 or a negative errno, with ti->error set.
 */
int pmc_bdev_open(struct pmemcache *pc, sector_t start)
{
	struct pmc_bdev_medium *m = &pc->bdev;
	sector_t sectors = bdev_nr_sectors(pc->cache_dev->bdev);

	mutex_init(&m->sync_lock);
	if (start & ((pc->block_size >> SECTOR_SHIFT) - 1)) {
		pc->ti->error = "start_sector must be a multiple of the block size (in sectors)";
		return -EINVAL;
	}
	if (start >= sectors) {
		pc->ti->error = "start_sector lies beyond the end of the cache device";
		return -EINVAL;
	}
	m->start = start;
	m->size = (u64)(sectors - start) << SECTOR_SHIFT;
	m->bounce = vmalloc(PMC_BDEV_BOUNCE);
	if (!m->bounce) {
		pc->ti->error = "Cannot allocate the metadata write buffer";
		return -ENOMEM;
	}
	m->io = dm_io_client_create();
	if (IS_ERR(m->io)) {
		m->io = NULL;
		pc->ti->error = "Cannot create the dm-io client";
		return -ENOMEM;
	}
	m->kcopyd = dm_kcopyd_client_create(NULL);
	if (IS_ERR(m->kcopyd)) {
		m->kcopyd = NULL;
		pc->ti->error = "Cannot create the dm-kcopyd client";
		return -ENOMEM;
	}
	return 0;
}

/**
 * pmc_bdev_io() - read or write the cache device synchronously
 * @pc: the cache, pmc_bdev_open() done
 * @opf: REQ_OP_READ or REQ_OP_WRITE (and flags)
 * @buf: vmalloc()ed memory
 * @off: byte offset from start_sector, a multiple of 512
 * @len: bytes, a multiple of 512
 *
 * Return: 0 or a negative errno.
 */
int pmc_bdev_io(struct pmemcache *pc, blk_opf_t opf, void *buf, size_t off,
		size_t len)
{
	struct pmc_bdev_medium *m = &pc->bdev;
	struct dm_io_region where = {
		.bdev = pc->cache_dev->bdev,
		.sector = m->start + (off >> SECTOR_SHIFT),
		.count = len >> SECTOR_SHIFT,
	};
	struct dm_io_request req = {
		.bi_opf = opf,
		.mem.type = DM_IO_VMA,
		.mem.ptr.vma = buf,
		.client = m->io,
	};

	return dm_io(&req, 1, &where, NULL, IOPRIO_DEFAULT);
}

/**
 * pmc_bdev_read_image() - read the metadata region into RAM
 * @pc: the cache, pmc_bdev_open() done
 * @bytes: the size of the region (a multiple of PMC_BDEV_CHUNK)
 *
 * Return: 0 or a negative errno, with ti->error set.
 */
int pmc_bdev_read_image(struct pmemcache *pc, u64 bytes)
{
	struct pmc_bdev_medium *m = &pc->bdev;
	int r;

	if (WARN_ON(bytes % PMC_BDEV_CHUNK) || bytes > m->size) {
		pc->ti->error = "Cache device too small for its metadata";
		return -EINVAL;
	}
	if (bytes > SIZE_MAX || bytes / PMC_BDEV_CHUNK > UINT_MAX) {
		pc->ti->error = "Cache device too large: its metadata cannot be held in RAM";
		return -EINVAL;
	}
	m->image = __vmalloc(bytes, GFP_KERNEL | __GFP_ZERO | __GFP_NOWARN);
	m->nr_chunks = bytes / PMC_BDEV_CHUNK;
	if (m->image)
		m->dirty = kvcalloc(BITS_TO_LONGS(m->nr_chunks), sizeof(long),
				    GFP_KERNEL);
	if (!m->image || !m->dirty) {
		pc->ti->error = "Cannot allocate RAM for the cache metadata (32 bytes per block)";
		return -ENOMEM;
	}
	m->image_size = bytes;
	r = pmc_bdev_io(pc, REQ_OP_READ, m->image, 0, bytes);
	if (r) {
		DMERR("%pg: reading the metadata (%llu bytes) failed: %d",
		      pc->cache_dev->bdev, bytes, r);
		pc->ti->error = "Cannot read the cache metadata from the cache device";
		return r;
	}
	return 0;
}

/**
 * pmc_bdev_reread_image() - read the metadata again, at resume
 * @pc: the cache, constructed and never resumed
 *
 * An older table over the same device may have written it since the
 * constructor read it.  Nothing is dirty: the constructor's barriers
 * wrote what it stored.
 *
 * Return: 0, or a negative errno when the device cannot be read or no
 * longer holds the superblock the constructor saw.
 */
int pmc_bdev_reread_image(struct pmemcache *pc)
{
	struct pmc_bdev_medium *m = &pc->bdev;
	int r;

	mutex_lock(&m->sync_lock);
	r = pmc_bdev_io(pc, REQ_OP_READ, m->image, 0, m->image_size);
	bitmap_zero(m->dirty, m->nr_chunks);
	mutex_unlock(&m->sync_lock);
	if (r) {
		DMERR("%pg: reading the metadata again at resume failed: %d",
		      pc->cache_dev->bdev, r);
		return r;
	}
	if (memcmp(&m->sb_seen, m->image, sizeof(m->sb_seen))) {
		DMERR("%pg: the cache superblock changed between table load and resume",
		      pc->cache_dev->bdev);
		return -EINVAL;
	}
	return 0;
}

/**
 * pmc_bdev_close() - free what pmc_bdev_open() and pmc_bdev_read_image() took
 * @pc: the cache (any state: a failed constructor calls it too)
 */
void pmc_bdev_close(struct pmemcache *pc)
{
	struct pmc_bdev_medium *m = &pc->bdev;

	if (m->kcopyd)
		dm_kcopyd_client_destroy(m->kcopyd);
	if (m->io)
		dm_io_client_destroy(m->io);
	kvfree(m->dirty);
	vfree(m->image);
	vfree(m->bounce);
	memset(m, 0, sizeof(*m));
}

/**
 * pmc_bdev_mark() - a range of the image was stored to
 * @pc: the cache
 * @p: the first byte stored, inside the image
 * @len: bytes stored
 *
 * Called after the store: a barrier that clears the mark reads the image
 * after that, so it writes the store.
 */
void pmc_bdev_mark(struct pmemcache *pc, const void *p, size_t len)
{
	struct pmc_bdev_medium *m = &pc->bdev;
	size_t off = p - m->image;
	unsigned long i, last = (off + len - 1) / PMC_BDEV_CHUNK;

	/*
	 * The store above, before the mark is read: a barrier that cleared
	 * it before would otherwise be missed (test_bit() is a plain load).
	 */
	smp_mb();
	for (i = off / PMC_BDEV_CHUNK; i <= last; i++)
		if (!test_bit(i, m->dirty))
			set_bit(i, m->dirty);
}

/**
 * pmc_bdev_fail() - the cache device failed: latch it
 * @pc: the cache
 *
 * Writers waiting for a free block wake up to fail: none will come free.
 * Any context.
 */
void pmc_bdev_fail(struct pmemcache *pc)
{
	WRITE_ONCE(pc->bdev.failed, true);
	wake_up_all(&pc->free_wait);
}

/**
 * pmc_bdev_barrier() - make the image's stores durable
 * @pc: the cache
 *
 * Writes every dirty chunk (runs of them, PMC_BDEV_BOUNCE bytes at most
 * per request, copied first), then flushes the device: stores marked
 * before the call, and data writes completed before it, are durable when
 * it returns 0.  Sleeps.
 *
 * Return: 0, or -EIO once the cache device has failed.
 */
int pmc_bdev_barrier(struct pmemcache *pc)
{
	struct pmc_bdev_medium *m = &pc->bdev;
	unsigned long first, end, i;
	int r = 0;

	mutex_lock(&m->sync_lock);
	if (READ_ONCE(m->failed)) {
		r = -EIO;
		goto out;
	}
	for (first = find_first_bit(m->dirty, m->nr_chunks);
	     first < m->nr_chunks;
	     first = find_next_bit(m->dirty, m->nr_chunks, end)) {
		end = find_next_zero_bit(m->dirty, m->nr_chunks, first);
		end = min(end, first + PMC_BDEV_BOUNCE / PMC_BDEV_CHUNK);
		for (i = first; i < end; i++)
			clear_bit(i, m->dirty);
		/* The marks cleared before the image is read. */
		smp_mb__after_atomic();
		memcpy(m->bounce, m->image + first * PMC_BDEV_CHUNK,
		       (end - first) * PMC_BDEV_CHUNK);
		r = pmc_bdev_io(pc, REQ_OP_WRITE | REQ_SYNC, m->bounce,
				first * PMC_BDEV_CHUNK,
				(end - first) * PMC_BDEV_CHUNK);
		if (r) {
			DMERR("%pg: metadata write failed: %d; no more writes taken",
			      pc->cache_dev->bdev, r);
			goto fail;
		}
	}
	r = blkdev_issue_flush(pc->cache_dev->bdev);
	if (r) {
		DMERR("%pg: cache device flush failed: %d; no more writes taken",
		      pc->cache_dev->bdev, r);
		goto fail;
	}
	goto out;
fail:
	pmc_bdev_fail(pc);
	r = -EIO;
out:
	mutex_unlock(&m->sync_lock);
	return r;
}

/**
 * pmc_bdev_data_sector() - where a data block lies on the cache device
 * @pc: the cache
 * @idx: the data block
 *
 * Return: its first sector.
 */
sector_t pmc_bdev_data_sector(struct pmemcache *pc, u64 idx)
{
	return pc->bdev.start +
		((pmc_data_offset(pc->nr_blocks) + (idx << pc->block_shift)) >>
		 SECTOR_SHIFT);
}
