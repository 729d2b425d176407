// SPDX-License-Identifier: GPL-2.0
/*
 * dm-pmemcache: taking over a cache that the in-kernel dm-writecache
 * wrote.
 *
 * lvm2 builds the same "writecache" table for either module, so a cache
 * device in dm-writecache's format, with dirty blocks in it, can be
 * activated under dm-pmemcache.  It is converted at construction, before
 * anything else is stored into it:
 *
 *   1. its superblock and entries are read and checked; the committed
 *      entries are those whose sequence number is below the superblock's,
 *      and of several for one origin sector the highest wins;
 *   2. each winner's data is written to the origin where the entry says,
 *      then the origin is flushed: the dirty data is now where
 *      dm-writecache would have written it back;
 *   3. the superblock's sequence number is set to 0 (one aligned 8-byte
 *      store, made durable): no entry is committed any more, for
 *      dm-writecache and for us alike;
 *   4. the rest of the first 4 KiB is zeroed, made durable, and the cache
 *      is formatted as ours (format.c), whose first store replaces the
 *      magic.
 *
 * A power cut before 3 leaves dm-writecache's cache as it was (what
 * reached the origin is the same data again) and the next activation
 * starts over; after 3, "dm-writecache's magic and sequence 0" is an
 * empty cache whatever else the first 4 KiB holds, and the next
 * activation goes on at 4.  No data block of the cache is read after 2
 * or written before the format, so they need no care.
 *
 * The format, as the kernel's drivers/md/dm-writecache.c (version 1)
 * defines it, from the first byte after start_sector:
 *
 *   0        magic (le32 0x23489321), version (le32 1), block size
 *            (le32), pad, number of blocks (le64), sequence (le64),
 *            padded to 64 bytes
 *   64       n entries of 16 bytes: origin sector (le64), sequence
 *            (le64); both all ones when the block is free
 *   data     rounded up from 64 + 16 * n to the block size: n blocks
 *
 * It is the same on persistent memory and on a block device.
 */

#include <linux/blkdev.h>
#include <linux/dm-io.h>
#include <linux/sort.h>
#include <linux/uaccess.h>

#include "engine.h"
#include "medium.h"

#define PMC_WC_MAGIC		0x23489321
#define PMC_WC_VERSION		1
#define PMC_WC_SB_SIZE		64
/* Origin writes of one conversion in flight at once, at most. */
#define PMC_WC_CHUNK		BIT(20)

/* The table's mode: fmode_t before Linux 6.5, blk_mode_t since. */
#ifdef BLK_OPEN_WRITE
#define PMC_MODE_WRITE		BLK_OPEN_WRITE
#else
#define PMC_MODE_WRITE		FMODE_WRITE
#endif

/**
 * struct pmc_wc_sb - dm-writecache's superblock (the first 64 bytes)
 * @magic: PMC_WC_MAGIC
 * @version: PMC_WC_VERSION
 * @block_size: bytes per block
 * @pad: unused
 * @n_blocks: data blocks
 * @seq: entries with a lower sequence number are committed
 * @padding: to 64 bytes
 */
struct pmc_wc_sb {
	__le32 magic;
	__le32 version;
	__le32 block_size;
	__le32 pad;
	__le64 n_blocks;
	__le64 seq;
	__le64 padding[4];
};

/**
 * struct pmc_wc_entry - dm-writecache's entry of one block
 * @sector: origin sector the block caches
 * @seq: sequence number of the write
 */
struct pmc_wc_entry {
	__le64 sector;
	__le64 seq;
};

/**
 * struct pmc_wc - one conversion
 * @pc: the cache
 * @bs: dm-writecache's block size
 * @n: its blocks
 * @seq: its superblock's sequence number
 * @data_off: byte offset of its data block 0
 * @meta: its metadata (superblock and entries), read into RAM
 * @entries: the entry array in @meta
 * @order: indices of the committed entries, sorted by sector
 * @nr: entries in @order
 * @dirty: of those, the newest of their sector (the others are U32_MAX)
 * @buf: PMC_WC_CHUNK bytes: data on its way to the origin
 * @io: dm-io client
 * @pending: origin writes in flight, plus one while submitting
 * @err: the first of their errors
 * @done: @pending reached zero
 */
struct pmc_wc {
	struct pmemcache *pc;
	unsigned int bs;
	u64 n;
	u64 seq;
	u64 data_off;
	void *meta;
	struct pmc_wc_entry *entries;
	u32 *order;
	u64 nr;
	u64 dirty;
	void *buf;
	struct dm_io_client *io;
	atomic_t pending;
	int err;
	struct completion done;
};

/* Byte size of its metadata: superblock and entries, up to the data. */
static u64 pmc_wc_meta_size(u64 n, unsigned int bs)
{
	return round_up(PMC_WC_SB_SIZE + n * sizeof(struct pmc_wc_entry), bs);
}

/* Read @len bytes at @off of the cache device (after start_sector). */
static int pmc_wc_read(struct pmc_wc *wc, void *buf, u64 off, size_t len)
{
	struct pmemcache *pc = wc->pc;
	size_t done, n;

	if (pmc_on_bdev(pc))
		return pmc_bdev_io(pc, REQ_OP_READ, buf, off, len);
	/* copy_mc_to_kernel() takes an unsigned int length. */
	for (done = 0; done < len; done += n) {
		n = min_t(size_t, len - done, PMC_WC_CHUNK);
		if (pmc_pmem_range_bad(&pc->pmem, off + done, n) ||
		    copy_mc_to_kernel(buf + done, pc->pmem.addr + off + done, n))
			return -EIO;
		cond_resched();
	}
	return 0;
}

static int pmc_wc_cmp(const void *a, const void *b, const void *priv)
{
	const struct pmc_wc *wc = priv;
	const struct pmc_wc_entry *x = &wc->entries[*(const u32 *)a];
	const struct pmc_wc_entry *y = &wc->entries[*(const u32 *)b];
	u64 xs = le64_to_cpu(x->sector), ys = le64_to_cpu(y->sector);
	u64 xq = le64_to_cpu(x->seq), yq = le64_to_cpu(y->seq);

	/* By sector, then the newest first. */
	if (xs != ys)
		return xs < ys ? -1 : 1;
	if (xq != yq)
		return xq > yq ? -1 : 1;
	return 0;
}

/* Entries sorted at once; longer arrays are merged from such runs. */
#define PMC_WC_RUN		65536

/*
 * Sorts wc->order (pmc_wc_cmp()) with a bounded time between two
 * cond_resched(): runs of PMC_WC_RUN sorted, then merged pass by pass
 * (a cache of 128 Mi blocks would hold the CPU for minutes otherwise).
 * Return: 0 or -ENOMEM.
 */
static int pmc_wc_sort(struct pmc_wc *wc)
{
	u32 *a = wc->order, *b, *t;
	u64 n = wc->nr, w, lo, i, j, k, mid, hi;

	for (lo = 0; lo < n; lo += PMC_WC_RUN) {
		sort_r(a + lo, min_t(u64, PMC_WC_RUN, n - lo), sizeof(u32),
		       pmc_wc_cmp, NULL, wc);
		cond_resched();
	}
	if (n <= PMC_WC_RUN)
		return 0;
	b = vmalloc(array_size(n, sizeof(u32)));
	if (!b)
		return -ENOMEM;
	for (w = PMC_WC_RUN; w < n; w *= 2) {
		for (lo = 0; lo < n; lo += 2 * w) {
			mid = min(lo + w, n);
			hi = min(lo + 2 * w, n);
			for (i = lo, j = mid, k = lo; k < hi; k++) {
				if (j >= hi || (i < mid &&
						pmc_wc_cmp(&a[i], &a[j], wc) <= 0))
					b[k] = a[i++];
				else
					b[k] = a[j++];
				if (!(k & (PMC_WC_RUN - 1)))
					cond_resched();
			}
		}
		t = a;
		a = b;
		b = t;
	}
	wc->order = a;
	vfree(b);
	return 0;
}

/*
 * Checks the superblock against the cache device; reads the entries and
 * sorts the committed ones.  Return: 0 or a negative errno, ti->error set.
 */
static int pmc_wc_read_meta(struct pmc_wc *wc, const struct pmc_wc_sb *sb)
{
	struct pmemcache *pc = wc->pc;
	struct dm_target *ti = pc->ti;
	u64 size = pmc_on_bdev(pc) ? pc->bdev.size : pc->pmem.size;
	u64 origin_sectors = bdev_nr_sectors(pc->origin->bdev);
	u64 i, meta, last = U64_MAX;
	unsigned int spb;

	/* Version 1: pmc_wc_take_over() refused the others. */
	wc->bs = le32_to_cpu(sb->block_size);
	wc->n = le64_to_cpu(sb->n_blocks);
	wc->seq = le64_to_cpu(sb->seq);
	if (wc->bs < SECTOR_SIZE || wc->bs > PAGE_SIZE || !is_power_of_2(wc->bs) ||
	    !wc->n || wc->n > U32_MAX ||
	    pmc_wc_meta_size(wc->n, wc->bs) > size ||
	    wc->n > div_u64(size - pmc_wc_meta_size(wc->n, wc->bs), wc->bs)) {
		DMERR("%pg: dm-writecache superblock: block size %u, %llu blocks, in %llu bytes",
		      pc->cache_dev->bdev, wc->bs, wc->n, size);
		ti->error =
			"dm-writecache superblock does not fit the cache device (start_sector?)";
		return -EINVAL;
	}
	if (wc->bs < bdev_logical_block_size(pc->origin->bdev) ||
	    wc->bs < bdev_logical_block_size(pc->cache_dev->bdev)) {
		DMERR("%pg: dm-writecache block size %u", pc->cache_dev->bdev, wc->bs);
		ti->error =
			"dm-writecache block size is below a device's logical block size";
		return -EINVAL;
	}
	spb = wc->bs >> SECTOR_SHIFT;
	meta = pmc_wc_meta_size(wc->n, wc->bs);
	wc->data_off = meta;
	wc->meta = vmalloc(meta);
	if (!wc->meta) {
		ti->error = "Cannot allocate RAM for the dm-writecache entries";
		return -ENOMEM;
	}
	if (pmc_wc_read(wc, wc->meta, 0, meta)) {
		ti->error = "Cannot read the dm-writecache metadata from the cache device";
		return -EIO;
	}
	wc->entries = wc->meta + PMC_WC_SB_SIZE;

	wc->order = vmalloc(array_size(wc->n, sizeof(u32)));
	if (!wc->order) {
		ti->error = "Cannot allocate RAM for the dm-writecache entries";
		return -ENOMEM;
	}
	for (i = 0; i < wc->n; i++) {
		const struct pmc_wc_entry *e = &wc->entries[i];
		u64 sector = le64_to_cpu(e->sector);

		if (!(i & (PMC_WC_RUN - 1)))
			cond_resched();

		if (le64_to_cpu(e->seq) >= wc->seq)
			continue;	/* free, or not committed */
		if (sector & (spb - 1) || sector >= origin_sectors ||
		    origin_sectors - sector < spb) {
			DMERR("%pg: dm-writecache entry %llu: origin sector %llu; %pg has %llu",
			      pc->cache_dev->bdev, i, sector,
			      pc->origin->bdev, origin_sectors);
			ti->error =
				"A dm-writecache entry lies outside the origin (wrong origin?)";
			return -EINVAL;
		}
		wc->order[wc->nr++] = i;
	}
	if (pmc_wc_sort(wc)) {
		ti->error = "Cannot allocate RAM for the dm-writecache entries";
		return -ENOMEM;
	}
	/* Keep the newest of each sector. */
	for (i = 0; i < wc->nr; i++) {
		u64 sector = le64_to_cpu(wc->entries[wc->order[i]].sector);

		if (!(i & (PMC_WC_RUN - 1)))
			cond_resched();

		if (sector == last)
			wc->order[i] = U32_MAX;
		else
			wc->dirty++;
		last = sector;
	}
	return 0;
}

static void pmc_wc_put(struct pmc_wc *wc, int err)
{
	if (err)
		cmpxchg(&wc->err, 0, err);
	if (atomic_dec_and_test(&wc->pending))
		complete(&wc->done);
}

static void pmc_wc_endio(unsigned long error, void *context)
{
	pmc_wc_put(context, error ? -EIO : 0);
}

/*
 * Writes @nr winners, order[from..], whose data sits in wc->buf one block
 * each, to the origin; waits for them.
 */
static int pmc_wc_write_origin(struct pmc_wc *wc, u64 from, unsigned int nr)
{
	unsigned int k, j = 0;

	atomic_set(&wc->pending, 1);
	init_completion(&wc->done);
	wc->err = 0;
	for (k = 0; k < nr; k++) {
		u32 i = wc->order[from + k];
		struct dm_io_region where;
		struct dm_io_request req = {
			.bi_opf = REQ_OP_WRITE,
			.mem.type = DM_IO_VMA,
			.notify.fn = pmc_wc_endio,
			.notify.context = wc,
			.client = wc->io,
		};

		if (i == U32_MAX)
			continue;
		/* Test builds: after a simulated power cut, nothing more. */
		if (pmc_pcheck_cut()) {
			cmpxchg(&wc->err, 0, -EIO);
			break;
		}
		where.bdev = wc->pc->origin->bdev;
		where.sector = le64_to_cpu(wc->entries[i].sector);
		where.count = wc->bs >> SECTOR_SHIFT;
		req.mem.ptr.vma = wc->buf + (size_t)j++ * wc->bs;
		atomic_inc(&wc->pending);
		dm_io(&req, 1, &where, NULL, IOPRIO_DEFAULT);
	}
	pmc_wc_put(wc, 0);
	wait_for_completion_io(&wc->done);
	return wc->err;
}

/*
 * Step 2: every winner's data to the origin, PMC_WC_CHUNK bytes at a
 * time, then an origin flush.  Return: 0 or a negative errno, ti->error
 * set.
 */
static int pmc_wc_drain(struct pmc_wc *wc, u64 *written)
{
	struct pmemcache *pc = wc->pc;
	unsigned int per = PMC_WC_CHUNK / wc->bs, nr;
	u64 from = 0, k;
	int r;

	*written = 0;
	while (from < wc->nr) {
		/* Read up to @per blocks, in origin order. */
		for (k = from, nr = 0; k < wc->nr && nr < per; k++) {
			u32 i = wc->order[k];

			if (i == U32_MAX)
				continue;
			if (pmc_wc_read(wc, wc->buf + (size_t)nr * wc->bs,
					wc->data_off + (u64)i * wc->bs, wc->bs)) {
				DMERR("%pg: dm-writecache block %u (origin %llu): read error",
				      pc->cache_dev->bdev, i,
				      le64_to_cpu(wc->entries[i].sector));
				pc->ti->error =
					"Cannot read a dirty dm-writecache block; cache unchanged";
				return -EIO;
			}
			nr++;
		}
		r = pmc_wc_write_origin(wc, from, k - from);
		if (r) {
			pc->ti->error =
				"Cannot write the dm-writecache dirty data to the origin";
			return r;
		}
		*written += nr;
		from = k;
		cond_resched();
	}
	r = pmc_pcheck_cut() ? -EIO : blkdev_issue_flush(pc->origin->bdev);
	if (r) {
		pc->ti->error =
			"Cannot flush the origin after writing the dm-writecache dirty data";
		return r;
	}
	return 0;
}

/*
 * Does another device-mapper device hold @dev too?  Every dm device
 * claims the devices of its tables with one holder, so a second one is
 * let in; the claim counts one hold on a partition, two on a whole disk
 * (as itself and as the whole of itself).  This device's tables share
 * one open.
 */
static bool pmc_wc_held_by_others(struct dm_dev *dev)
{
	return READ_ONCE(dev->bdev->bd_holders) >
	       (bdev_is_partition(dev->bdev) ? 1 : 2);
}

/* Another device may run dm-writecache on the cache: refuse. */
static bool pmc_wc_in_use(struct pmemcache *pc)
{
	if (!pmc_wc_held_by_others(pc->cache_dev) &&
	    !pmc_wc_held_by_others(pc->origin))
		return false;
	pc->ti->error =
		"dm-writecache cache in use: deactivate the device, then activate";
	return true;
}

/**
 * pmc_wc_take_over() - convert a cache in dm-writecache's format
 * @pc: the cache, its device mapped (p) or its metadata image read (s),
 *      pmc_layout() done
 * @head: the first 4 KiB of the cache device, for which
 *        pmc_wc_holds_cache() is true
 *
 * Writes the cache's dirty data to the origin and leaves the first 4 KiB
 * of the cache device zero (an empty one: zero but for the first 64
 * bytes), for the caller to format.  A power cut at any
 * point loses nothing (see the top of this file).
 *
 * Return: 0 or a negative errno, with ti->error set; on an error the
 * cache device is left as it was, or already empty of dirty data.
 */
int pmc_wc_take_over(struct pmemcache *pc, const u8 *head)
{
	const struct pmc_wc_sb *sb = (const void *)head;
	struct mapped_device *md = dm_table_get_md(pc->ti->table);
	struct pmc_wc wc = { .pc = pc };
	void *zero = page_address(ZERO_PAGE(0));
	ktime_t t0 = ktime_get();
	u64 written = 0;
	int r = 0;

	if (pmc_wc_in_use(pc))
		return -EBUSY;
	if (!sb->magic) {
		/*
		 * Empty (pmc_wc_empty()): its entries in the first 4 KiB
		 * zeroed, fenced, then our format, whose first store (our
		 * magic, version 0) makes what is left of dm-writecache's
		 * superblock part of a format under way (rule 6).  No
		 * dm-writecache can be running on it: it would have stored
		 * its magic.
		 */
		pmc_meta_copy(pc, (void *)pc->sb + PMC_WC_SB_SIZE, zero,
			      PMC_SB_SIZE - PMC_WC_SB_SIZE);
		if (pmc_meta_barrier(pc))
			goto bad_write;
		DMINFO("%pg: an empty dm-writecache cache: formatting over it",
		       pc->cache_dev->bdev);
		return 0;
	}
	/* A live table of this device may still run dm-writecache on it. */
	if (get_capacity(dm_disk(md))) {
		pc->ti->error =
			"dm-writecache cache in use: deactivate the device, then activate";
		return -EBUSY;
	}
	if (!(dm_table_get_mode(pc->ti->table) & PMC_MODE_WRITE)) {
		pc->ti->error =
			"dm-writecache cache: converting it needs a read-write table";
		return -EROFS;
	}
	/*
	 * Version 0 with the magic: only step 4 leaves it, sequence 0 too.
	 * Any other version is a layout we do not know, sequence 0 or not.
	 */
	if (le32_to_cpu(sb->version) > PMC_WC_VERSION ||
	    (!sb->version && sb->seq)) {
		DMERR("%pg: dm-writecache format version %u; this module knows version %u",
		      pc->cache_dev->bdev, le32_to_cpu(sb->version), PMC_WC_VERSION);
		pc->ti->error =
			"Cache device holds a dm-writecache cache of an unknown format version";
		return -EINVAL;
	}
	if (le64_to_cpu(sb->seq)) {
		wc.io = dm_io_client_create();
		if (IS_ERR(wc.io)) {
			pc->ti->error = "Cannot create the dm-io client";
			return PTR_ERR(wc.io);
		}
		r = pmc_wc_read_meta(&wc, sb);
		if (!r) {
			DMINFO("%pg: dm-writecache cache, %llu blocks of %u bytes, %llu dirty",
			       pc->cache_dev->bdev, wc.n, wc.bs, wc.dirty);
			wc.buf = vmalloc(PMC_WC_CHUNK);
			if (!wc.buf) {
				pc->ti->error =
					"Cannot allocate the dm-writecache conversion buffer";
				r = -ENOMEM;
			}
		}
		if (!r)
			r = pmc_wc_drain(&wc, &written);
		vfree(wc.meta);
		vfree(wc.order);
		vfree(wc.buf);
		dm_io_client_destroy(wc.io);
		/*
		 * Checked again: the drain may have taken minutes, and a
		 * device that took the cache meanwhile would still use it.
		 */
		if (!r && pmc_wc_in_use(pc))
			r = -EBUSY;
		if (r)
			return r;
		/* Step 3: nothing committed any more. */
		pmc_meta_u64(pc, (void *)pc->sb + offsetof(struct pmc_wc_sb, seq), 0);
		if (pmc_meta_barrier(pc))
			goto bad_write;
	}
	/* Step 4: the first 4 KiB zero but for the magic. */
	pmc_meta_copy(pc, (void *)pc->sb + 4, zero, PMC_SB_SIZE - 4);
	if (pmc_meta_barrier(pc))
		goto bad_write;
	DMINFO("%pg: dm-writecache cache converted: %llu dirty blocks written to %pg in %lld ms",
	       pc->cache_dev->bdev, written, pc->origin->bdev,
	       ktime_ms_delta(ktime_get(), t0));
	return 0;
bad_write:
	pc->ti->error = "Cannot write the cache device to convert the dm-writecache cache";
	return -EIO;
}

/*
 * An empty cache of dm-writecache's, which holds nothing to keep:
 *  - a format of its that a cut stopped short: it stores its magic last,
 *    after the rest of the superblock and every entry (all ones) are
 *    durable, so its version there with the magic zero means that no
 *    write ever reached that cache.  Recognised by a superblock that is
 *    exactly what dm-writecache writes for a device of this size;
 *  - one whose superblock was zeroed (lvm2 zeroes the first sector of a
 *    cache volume it attaches again): dm-writecache formats over it too.
 * Either way the entries in the first 4 KiB are free: their sequence
 * number all ones (dm-writecache frees an entry by writing that alone),
 * or zero (the conversion zeroes them first; a zero sequence number is
 * taken as free here only because no superblock commits it).
 */
static bool pmc_wc_empty(struct pmemcache *pc, const u8 *head)
{
	const struct pmc_wc_sb *sb = (const void *)head;
	u64 size = pmc_on_bdev(pc) ? pc->bdev.size : pc->pmem.size;
	unsigned int bs = le32_to_cpu(sb->block_size);
	u64 n = le64_to_cpu(sb->n_blocks);
	const struct pmc_wc_entry *e = (const void *)(head + PMC_WC_SB_SIZE);
	bool freed = false;
	size_t i;

	for (i = 0; i < (PMC_SB_SIZE - PMC_WC_SB_SIZE) / sizeof(*e); i++) {
		if (e[i].seq == cpu_to_le64(U64_MAX))
			freed = true;
		else if (e[i].seq)
			return false;
	}
	if (!memchr_inv(head, 0, PMC_WC_SB_SIZE))
		return freed;
	if (sb->magic || le32_to_cpu(sb->version) != PMC_WC_VERSION ||
	    sb->pad || sb->seq || memchr_inv(sb->padding, 0, sizeof(sb->padding)))
		return false;
	if (bs < SECTOR_SIZE || bs > PAGE_SIZE || !is_power_of_2(bs) ||
	    !n || n > U32_MAX)
		return false;
	/* The most blocks that fit, as dm-writecache computes them. */
	return pmc_wc_meta_size(n, bs) + n * bs <= size &&
	       pmc_wc_meta_size(n + 1, bs) + (n + 1) * bs > size;
}

/**
 * pmc_wc_holds_cache() - does @head begin a dm-writecache cache?
 * @pc: the cache, its device mapped (p) or its metadata image read (s)
 * @head: the first 4 KiB of the cache device
 *
 * Return: true if it holds dm-writecache's magic, or an empty cache of
 * dm-writecache's (pmc_wc_take_over() takes either).
 */
bool pmc_wc_holds_cache(struct pmemcache *pc, const u8 *head)
{
	const struct pmc_wc_sb *sb = (const void *)head;

	BUILD_BUG_ON(sizeof(struct pmc_wc_sb) != PMC_WC_SB_SIZE);
	BUILD_BUG_ON(offsetof(struct pmc_wc_sb, seq) != 24);
	BUILD_BUG_ON(sizeof(struct pmc_wc_entry) != 16);
	return le32_to_cpu(sb->magic) == PMC_WC_MAGIC || pmc_wc_empty(pc, head);
}
