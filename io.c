// SPDX-License-Identifier: GPL-2.0
/*
 * dm-pmemcache: the I/O paths: reads served from the cache or the
 * origin, writes copied into the cache (or around it), discards.
 */

#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/crc32c.h>
#include <linux/highmem.h>
#include <linux/kernel.h>
#include <linux/ktime.h>
#include <linux/log2.h>
#include <linux/mm.h>
#include <linux/percpu.h>
#include <linux/random.h>
#include <linux/rbtree.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>
#include <linux/vmalloc.h>
#include <linux/wait.h>
#include <linux/wait_bit.h>
#include <linux/workqueue.h>

#include "engine.h"

/* Copy @len bytes from @bio at @iter into pmem at @dst; advances @iter. */
static void pmc_copy_from_bio(enum pmc_flush_mode mode, struct bio *bio,
			      struct bvec_iter *iter, void *dst,
			      unsigned int len)
{
	while (len) {
		struct bio_vec bv = bio_iter_iovec(bio, *iter);
		unsigned int n = min(len, bv.bv_len);
		void *src = bvec_kmap_local(&bv);

		pmc_copy_to_pmem(mode, dst, src, n);
		kunmap_local(src);
		bio_advance_iter_single(bio, iter, n);
		dst += n;
		len -= n;
	}
}

/*
 * Copy @len bytes from pmem at @src into @bio at @iter, machine-check
 * safe.  Returns false on a media error.
 */
static bool pmc_copy_to_bio(struct bio *bio, struct bvec_iter *iter,
			    void *src, unsigned int len)
{
	bool ok = true;

	while (len) {
		struct bio_vec bv = bio_iter_iovec(bio, *iter);
		unsigned int n = min(len, bv.bv_len);
		void *dst = bvec_kmap_local(&bv);

		if (copy_mc_to_kernel(dst, src, n))
			ok = false;
		kunmap_local(dst);
		bio_advance_iter_single(bio, iter, n);
		src += n;
		len -= n;
	}
	return ok;
}

/**
 * pmc_remap() - send a bio to the origin
 * @pc: the cache
 * @bio: the bio
 */
void pmc_remap(struct pmemcache *pc, struct bio *bio)
{
	bio_set_dev(bio, pc->origin->bdev);
}

/**
 * pmc_writes_around() - may writes go around the cache to the origin?
 * @pc: the cache
 *
 * In cleaner and metadata_only modes, or once some did because the cache
 * was full while writeback failed.  Then every flush goes on to the
 * origin as well: tracking which writes went around, and which flush
 * covered them, is not worth its races.
 *
 * Return: true if they may.
 */
bool pmc_writes_around(struct pmemcache *pc)
{
	return READ_ONCE(pc->cleaner) || READ_ONCE(pc->went_around) ||
		pmc_given(&pc->opts, PMC_OPT_METADATA_ONLY);
}

/*
 * A block just taken from the free list holds another origin block's data
 * until its writer has copied the new data in.  The writer marks it
 * (filling = 1, under pc->lock) and clears the mark when done; a reader
 * that finds the mark set turns it to 2 and sleeps until it is cleared.
 * The writer fences its copies first (non-temporal stores are not
 * ordered by plain barriers), then clears the mark with cmpxchg(), a full
 * barrier; readers load the mark with acquire semantics.
 */
static void pmc_fill_done(struct pmc_block *b)
{
	u8 old = READ_ONCE(b->filling), prev;

	/* A failed write's poison (s mode) stays. */
	while (old != PMC_FILL_BAD) {
		prev = cmpxchg(&b->filling, old, 0);
		if (prev == old)
			break;
		old = prev;
	}
	if (old == 2)
		wake_up_var(&b->filling);
}

/*
 * Called with a user count on @b, without pc->lock.  Returns once the
 * data is in, or its write failed (filling PMC_FILL_BAD, s mode).
 */
static void pmc_wait_filled(struct pmc_block *b)
{
	u8 v;

	/* Acquire: the data copied in before the mark was cleared. */
	if (likely(!smp_load_acquire(&b->filling)) || !cmpxchg(&b->filling, 1, 2))
		return;
	/* Acquire, as above. */
	wait_var_event(&b->filling, (v = smp_load_acquire(&b->filling)) == 0 ||
		       v == PMC_FILL_BAD);
}

/**
 * pmc_map_read() - map a read
 * @pc: the cache
 * @bio: the read
 *
 * Serves the first run of blocks that are all cached (from pmem), or all
 * not (remapped to the origin); dm sends the rest of the bio again.
 *
 * Return: a DM_MAPIO_ value.
 */
int pmc_map_read(struct pmemcache *pc, struct bio *bio)
{
	u64 first = bio->bi_iter.bi_sector >> (pc->block_shift - SECTOR_SHIFT);
	unsigned int nr = bio_sectors(bio) >> (pc->block_shift - SECTOR_SHIFT);
	struct pmc_block *run[PMC_READ_RUN];
	struct bvec_iter iter;
	unsigned int i, n;
	bool cached, ok = true;

	n = pmc_read_pin(pc, first, nr, PMC_READ_RUN, run, &cached);
	this_cpu_add(pc->stats->reads, n);
	if (n < nr)
		dm_accept_partial_bio(bio, n << (pc->block_shift - SECTOR_SHIFT));
	if (!cached) {
		pmc_remap(pc, bio);
		return DM_MAPIO_REMAPPED;
	}

	this_cpu_add(pc->stats->read_hits, n);
	iter = bio->bi_iter;
	for (i = 0; i < n; i++) {
		pmc_wait_filled(run[i]);
		if (!pmc_copy_to_bio(bio, &iter, pmc_data(pc, run[i]),
				     pc->block_size))
			ok = false;
	}
	for (i = 0; i < n; i++)
		pmc_put_user(pc, run[i]);
	if (!ok) {
		atomic64_inc(&pc->media_errors);
		DMERR_LIMIT("%pg: media error reading the cache for origin block %llu",
			    pc->cache_dev->bdev, first);
		bio->bi_status = BLK_STS_IOERR;
	}
	bio_endio(bio);
	return DM_MAPIO_SUBMITTED;
}

/* Blocks of a write taken under one hold of pc->lock. */
#define PMC_WRITE_RUN	16

/*
 * Take the blocks for up to @n blocks of a write from @origin on into
 * @run, counted as in-flight writers of the epoch *@seq they all belong
 * to.  A block being written needs no user count: it holds uncommitted
 * data, so it is freed only by a commit, and a commit waits for the
 * writers of its epoch (pmc_map_discard() leaves such blocks alone).
 * A block of the open epoch is written in place; any other is replaced
 * by a new block, so that the committed version survives until the new
 * one is committed.  Stops early before a block
 * that is to go around the cache (not cached and !@promote: cleaner mode,
 * or metadata_only and not REQ_META), and when no block is free and some
 * were taken.  Returns how many blocks were taken (0: the first block
 * goes around, or with *@err set, fails).  Bit j of *@fresh is set when
 * run[j] came from the free list: the caller clears its filling mark once
 * the data is in.  With @adjacent (s mode: one bio for the run), it also
 * stops before a block that does not follow the one before it on the
 * cache device.
 */
static unsigned int pmc_write_blocks(struct pmemcache *pc, u64 origin,
				     unsigned int n, bool promote,
				     bool adjacent, struct pmc_block **run,
				     u64 *seq, u32 *fresh, int *err)
{
	struct pmc_block *hint = NULL;
	struct pmc_slot slot;
	unsigned int j, k = 0;
	bool committed = false;

	BUILD_BUG_ON(PMC_WRITE_RUN > 32);
	*fresh = 0;

	spin_lock(&pc->lock);
	while (k < n) {
		struct pmc_block *b, *nb;

		/*
		 * s mode: no block is taken once the cache device failed (the
		 * ones taken already fail with it: no commit counts them).
		 */
		if (unlikely(pmc_medium_failed(pc))) {
			if (!k)
				*err = -EIO;
			break;
		}

		b = pmc_find(pc, origin + k, hint, &slot);
		if (b && b->state == PMC_DIRTY && b->seq == pc->seq_open) {
			if (adjacent && k && b != run[k - 1] + 1)
				break;
			this_cpu_inc(pc->stats->write_hits_uncommitted);
			nb = b;
			goto got;
		}
		if (!b && !promote)
			break;
		if (adjacent && k && (list_empty(&pc->free) ||
				      list_first_entry(&pc->free, struct pmc_block,
						       list) != run[k - 1] + 1))
			break;
		if (list_empty(&pc->free)) {
			bool epoch = pc->epoch_writes;

			if (k)
				break;
			/*
			 * Full while writeback fails: no block may come free.
			 * One not cached goes around the cache (the origin
			 * takes it or fails it); a cached one cannot.
			 */
			if (READ_ONCE(pc->wb_failing)) {
				/* A commit may free superseded blocks: first that. */
				if (!committed && (epoch || !list_empty(&pc->superseded))) {
					committed = true;
					spin_unlock(&pc->lock);
					pmc_commit_in_map(pc);
					spin_lock(&pc->lock);
					hint = NULL;
					continue;
				}
				if (b)
					*err = -EIO;
				break;
			}
			this_cpu_inc(pc->stats->writes_blocked);
			spin_unlock(&pc->lock);
			if (epoch)
				queue_work(pc->wq, &pc->commit_work);
			pmc_kick_writeback(pc);
			wait_event(pc->free_wait, READ_ONCE(pc->nr_free) ||
				   READ_ONCE(pc->wb_failing) ||
				   pmc_medium_failed(pc));
			spin_lock(&pc->lock);
			hint = NULL;	/* the index may have changed */
			continue;
		}
		nb = list_first_entry(&pc->free, struct pmc_block, list);
		list_del(&nb->list);
		pc->nr_free--;
		nb->origin = origin + k;
		nb->seq = pc->seq_open;
		nb->state = PMC_DIRTY;
		nb->filling = 1;
		*fresh |= BIT(k);
		nb->age = (u32)jiffies;
		if (b) {
			if (b->seq <= pc->committed)
				this_cpu_inc(pc->stats->write_hits_committed);
			pmc_index_replace(pc, b, nb);
			pmc_retire(pc, b, nb->seq);
		} else {
			pmc_index_link(pc, nb, &slot);
		}
		pc->epoch_writes++;
		this_cpu_inc(pc->stats->writes_allocated);
got:
		run[k++] = nb;
		hint = nb;
	}
	*seq = pc->seq_open;
	if (k)
		atomic_add(k, &pc->inflight[*seq & 1]);
	spin_unlock(&pc->lock);
	if (!*fresh)
		return k;
	/*
	 * The entries of the new blocks, before their data (rule 1), out of
	 * the lock: nothing else writes them before this epoch's commit,
	 * which waits for this writer.  From what was decided under the
	 * lock, not from the blocks: once a commit opened the next epoch, a
	 * write of it may supersede a block and change its seq.
	 */
	pmc_test_point(PMC_TP_WRITE_ENTRY);
	for (j = 0; j < k; j++)
		if (*fresh & BIT(j))
			pmc_write_entry(pc, pmc_idx(pc, run[j]), origin + j, *seq);
	return k;
}

static void pmc_write_done(struct pmemcache *pc, unsigned int k, u64 seq)
{
	/* The commit of seq fences its own stores, not ours. */
	if (!pmc_on_bdev(pc))
		pmc_publish_stores(&pc->flush);
	if (atomic_sub_and_test(k, &pc->inflight[seq & 1]) &&
	    wq_has_sleeper(&pc->inflight_wait))
		wake_up_all(&pc->inflight_wait);
}

/*
 * A write not cached and not to be promoted, or the cache is full while
 * writeback fails: around the cache, up to the next cached block.
 */
static int pmc_write_around(struct pmemcache *pc, struct bio *bio,
			    bool promote)
{
	u64 first = bio->bi_iter.bi_sector >> (pc->block_shift - SECTOR_SHIFT);
	unsigned int nr = bio_sectors(bio) >> (pc->block_shift - SECTOR_SHIFT);
	struct pmc_block *b;
	unsigned int n;

	if (promote && !READ_ONCE(pc->went_around))
		WRITE_ONCE(pc->went_around, true);
	spin_lock(&pc->lock);
	b = pmc_lookup_ge(pc, first + 1);
	n = b ? min_t(u64, nr, b->origin - first) : nr;
	spin_unlock(&pc->lock);
	this_cpu_add(pc->stats->writes, n);
	this_cpu_add(pc->stats->writes_around, n);
	if (n < nr)
		dm_accept_partial_bio(bio, n << (pc->block_shift - SECTOR_SHIFT));
	pmc_remap(pc, bio);
	return DM_MAPIO_REMAPPED;
}

/*
 * After a write: commit when autocommit_blocks is reached (@inline_commit:
 * here, else in the worker), or arm the autocommit_time timer.
 */
static void pmc_autocommit_due(struct pmemcache *pc, bool inline_commit)
{
	u64 written = READ_ONCE(pc->epoch_writes);

	if (written >= pc->opts.val[PMC_OPT_AUTOCOMMIT_BLOCKS]) {
		if (inline_commit)
			pmc_autocommit(pc);
		else
			queue_work(pc->wq, &pc->commit_work);
	} else if (written && !delayed_work_pending(&pc->autocommit_work)) {
		queue_delayed_work(pc->wq, &pc->autocommit_work,
				   msecs_to_jiffies(pc->opts.val[PMC_OPT_AUTOCOMMIT_TIME]));
	}
}

/* After a write: start writeback above high_watermark. */
static void pmc_kick_if_high(struct pmemcache *pc)
{
	if (pmc_used_percent(pc) >= pc->opts.val[PMC_OPT_HIGH_WATERMARK] &&
	    !delayed_work_pending(&pc->writeback_work))
		pmc_kick_writeback(pc);
}

/*
 * No block of a write was taken: it fails with @err (a full cache while
 * writeback fails, or a failed cache device), or goes around the cache.
 */
static int pmc_write_none(struct pmemcache *pc, struct bio *bio, int err,
			  bool promote)
{
	if (!err)
		return pmc_write_around(pc, bio, promote);
	DMERR_LIMIT("%pg: cache full, writeback failing: write of cached block %llu failed",
		    pc->cache_dev->bdev,
		    bio->bi_iter.bi_sector >> (pc->block_shift - SECTOR_SHIFT));
	bio->bi_status = errno_to_blk_status(err);
	bio_endio(bio);
	return DM_MAPIO_SUBMITTED;
}

/**
 * pmc_map_write() - map a write
 * @pc: the cache
 * @bio: the write
 * @promote: cache it (false: metadata_only mode and not metadata)
 *
 * Copies the blocks into the cache (new blocks, or those of the open
 * epoch in place), or sends the write around the cache; a FUA write is
 * committed before it completes.
 *
 * Return: a DM_MAPIO_ value.
 */
int pmc_map_write(struct pmemcache *pc, struct bio *bio, bool promote)
{
	u64 first = bio->bi_iter.bi_sector >> (pc->block_shift - SECTOR_SHIFT);
	unsigned int nr = bio_sectors(bio) >> (pc->block_shift - SECTOR_SHIFT);
	struct bvec_iter iter = bio->bi_iter;
	unsigned int i;
	int err = 0;

	for (i = 0; i < nr; ) {
		struct pmc_block *run[PMC_WRITE_RUN];
		unsigned int j, k;
		u32 fresh;
		u64 seq;

		k = pmc_write_blocks(pc, first + i,
				     min_t(unsigned int, nr - i, PMC_WRITE_RUN),
				     promote, false, run, &seq, &fresh, &err);
		if (!k)
			break;
		pmc_test_point(PMC_TP_WRITE_COPY);
		for (j = 0; j < k; j++)
			pmc_copy_from_bio(pc->flush.data, bio, &iter,
					  pmc_data(pc, run[j]), pc->block_size);
		if (fresh) {
			/* Visible before a reader may copy it out. */
			pmc_fence();
			for (j = 0; j < k; j++)
				if (fresh & BIT(j))
					pmc_fill_done(run[j]);
		}
		pmc_write_done(pc, k, seq);
		i += k;
	}
	this_cpu_add(pc->stats->writes, i);

	if (!i)
		return pmc_write_none(pc, bio, err, promote);
	if (i < nr)
		dm_accept_partial_bio(bio, i << (pc->block_shift - SECTOR_SHIFT));

	/*
	 * Commit here rather than in a work item: on a busy CPU the switch
	 * to the worker costs more than the commit.
	 */
	if (bio->bi_opf & REQ_FUA)
		pmc_commit(pc);
	else
		pmc_autocommit_due(pc, true);
	pmc_kick_if_high(pc);
	bio_endio(bio);
	return DM_MAPIO_SUBMITTED;
}

/**
 * pmc_map_discard() - map a discard
 * @pc: the cache
 * @bio: the discard
 *
 * Drops the cached blocks in range and goes on to the origin, when it
 * takes discards.  Uncommitted writes are committed first, since a block
 * of the open epoch may have writers copying into it; one written
 * meanwhile by a racing write is left cached, as if that write had come
 * after the discard.  A block under writeback stays cached (freed when
 * its writeback ends): out of the index, a later write of its origin
 * block could go around the cache and reach the origin before the
 * writeback's older data.  While any superseded block is under writeback
 * no block is dropped: its newer version must outlive its entry.
 *
 * Return: a DM_MAPIO_ value.
 */
int pmc_map_discard(struct pmemcache *pc, struct bio *bio)
{
	unsigned int shift = pc->block_shift - SECTOR_SHIFT;
	/* Only blocks the discard covers whole are dropped. */
	u64 first = (bio->bi_iter.bi_sector + (1U << shift) - 1) >> shift;
	u64 end = bio_end_sector(bio) >> shift;
	struct pmc_block *b, *next;
	u64 pos = first;
	LIST_HEAD(dead);
	int r = 0;

	if (end > first)
		this_cpu_add(pc->stats->discards, end - first);
	/* s mode: nothing more is written to a failed cache device. */
	if (pmc_medium_failed(pc)) {
		bio_io_error(bio);
		return DM_MAPIO_SUBMITTED;
	}
	if (READ_ONCE(pc->epoch_writes) ||
	    READ_ONCE(pc->committed) + 1 < READ_ONCE(pc->seq_open))
		pmc_commit(pc);
	/*
	 * PMC_LOCK_BATCH blocks per hold of the lock: each is zeroed on
	 * media, fenced and freed before the lock is let go, so that no
	 * newer version of its origin block can be written, and freed in
	 * turn, while its entry is still valid.
	 */
	while (pos < end) {
		unsigned int visited = 0;
		bool freed = false;

		spin_lock(&pc->lock);
		if (pc->nr_wb_superseded) {
			/* Nothing may be dropped now (see above). */
			spin_unlock(&pc->lock);
			break;
		}
		for (b = pmc_lookup_ge(pc, pos);
		     b && b->origin < end && visited < PMC_LOCK_BATCH; b = next) {
			struct rb_node *n = rb_next(&b->node);

			next = n ? rb_entry(n, struct pmc_block, node) : NULL;
			visited++;
			if (b->seq > pc->committed || b->state != PMC_DIRTY)
				continue;
			pmc_index_erase(pc, b);
			list_add_tail(&b->list, &dead);
			pmc_clear_entry(pc, pmc_idx(pc, b));
		}
		pos = b && b->origin < end ? b->origin : end;
		if (!list_empty(&dead)) {
			if (pmc_on_bdev(pc)) {
				/*
				 * s mode: the barrier sleeps.  Every barrier
				 * writes every dirty chunk, so whatever frees
				 * a newer version of these blocks meanwhile
				 * makes these zeroes durable first; the
				 * blocks themselves are on no list until
				 * this one completes.
				 */
				spin_unlock(&pc->lock);
				r = pmc_meta_barrier(pc);
				spin_lock(&pc->lock);
			} else {
				pmc_fence();
			}
			list_for_each_entry_safe(b, next, &dead, list) {
				list_del(&b->list);
				/*
				 * The cache device failed (s mode): their
				 * zeroes may not be on media, so they are
				 * never reused (nor written to again).
				 */
				if (!r)
					pmc_release(pc, b);
			}
			freed = true;
		}
		spin_unlock(&pc->lock);
		if (freed)
			wake_up_all(&pc->free_wait);
		if (r) {
			bio_io_error(bio);
			return DM_MAPIO_SUBMITTED;
		}
		cond_resched();
	}
	if (!bdev_max_discard_sectors(pc->origin->bdev)) {
		bio_endio(bio);
		return DM_MAPIO_SUBMITTED;
	}
	pmc_remap(pc, bio);
	return DM_MAPIO_REMAPPED;
}

/*
 * s mode: the cache on a block device.  A map call serves one block of a
 * read, or of a write the blocks that are adjacent on the cache device
 * (PMC_WRITE_RUN at most; dm sends the rest again): a read hit or a
 * cached write goes to the cache device through a clone of ours (struct
 * pmc_bdev_io), whose completion lets go of the read's block (a dying
 * block's last reader leaves the freeing to pc->bdev_put_work), or ends
 * the writer's part in its epoch; the rest goes to the origin as in p
 * mode.  Whatever must wait for writes to the cache device - a flush, a
 * discard, the commit that completes a FUA write - runs in
 * pc->defer_work: a map function that waited for I/O it submitted itself
 * would wait forever, as that I/O is only issued once the map function
 * returns.
 */

/**
 * struct pmc_bdev_io - a read of one block, or a write of adjacent blocks,
 *                      on the cache device
 * @pc: the cache
 * @orig: the bio dm gave us, completed with the clone
 * @b: the (first) block
 * @seq: write: the epoch it belongs to
 * @nr: write: blocks from @b on (pc->blocks order, adjacent on the device)
 * @fresh: write: bit j set: block j came from the free list (readers wait
 *         for its data)
 * @write: a write (else a read, which holds a user count on @b)
 * @fua: write: commit before @orig completes
 * @put: read: on pc->bdev_puts while its dying block waits to be freed
 * @clone: the bio sent to the cache device
 */
struct pmc_bdev_io {
	struct pmemcache *pc;
	struct bio *orig;
	struct pmc_block *b;
	u64 seq;
	unsigned int nr;
	u32 fresh;
	bool write;
	bool fua;
	struct llist_node put;
	struct bio clone;
};

/**
 * pmc_bdev_bioset_init() - the bio set of s mode's clones
 * @pc: the cache
 *
 * Return: 0 or a negative errno.
 */
int pmc_bdev_bioset_init(struct pmemcache *pc)
{
	return bioset_init(&pc->bdev_bios, 256,
			   offsetof(struct pmc_bdev_io, clone), 0);
}

/**
 * pmc_defer() - hand a bio to the worker (s mode)
 * @pc: the cache
 * @bio: a flush, a discard, or a FUA write whose data is on the cache
 *       device; pmc_defer_work() completes it
 */
void pmc_defer(struct pmemcache *pc, struct bio *bio)
{
	unsigned long flags;

	spin_lock_irqsave(&pc->defer_lock, flags);
	bio_list_add(&pc->deferred, bio);
	spin_unlock_irqrestore(&pc->defer_lock, flags);
	queue_work(pc->wq, &pc->defer_work);
}

static void pmc_deferred(struct pmemcache *pc, struct bio *bio)
{
	/*
	 * After a hand-over (pmc_commit_last()): a FUA write's data was
	 * in the last commit, which waited for it; nothing else is done.
	 */
	if (READ_ONCE(pc->committed_last)) {
		if (bio_op(bio) == REQ_OP_WRITE && bio_has_data(bio) &&
		    !pmc_medium_failed(pc))
			bio_endio(bio);
		else
			bio_io_error(bio);
		return;
	}
	if (bio_op(bio) == REQ_OP_DISCARD) {
		if (pmc_map_discard(pc, bio) == DM_MAPIO_REMAPPED)
			submit_bio_noacct(bio);
		return;
	}
	/* A flush, or a FUA write whose data is written: commit. */
	if (pmc_commit(pc)) {
		/* Refused after a hand-over: see above. */
		if (READ_ONCE(pc->committed_last) && bio_has_data(bio) &&
		    !pmc_medium_failed(pc))
			bio_endio(bio);
		else
			bio_io_error(bio);
		return;
	}
	if ((bio->bi_opf & REQ_PREFLUSH) && !bio_has_data(bio) &&
	    pmc_writes_around(pc)) {
		/* Writes may have gone around the cache: flush the origin. */
		pmc_remap(pc, bio);
		submit_bio_noacct(bio);
		return;
	}
	bio_endio(bio);
}

/**
 * pmc_defer_work() - flushes, discards and FUA commits of s mode
 * @w: pc->defer_work
 */
void pmc_defer_work(struct work_struct *w)
{
	struct pmemcache *pc = container_of(w, struct pmemcache, defer_work);
	struct bio_list bios;
	struct bio *bio;

	for (;;) {
		spin_lock_irq(&pc->defer_lock);
		bios = pc->deferred;
		bio_list_init(&pc->deferred);
		spin_unlock_irq(&pc->defer_lock);
		if (bio_list_empty(&bios))
			break;
		while ((bio = bio_list_pop(&bios)))
			pmc_deferred(pc, bio);
		cond_resched();
	}
}

/**
 * pmc_bdev_put_work() - free the dying blocks whose last reader ended
 * @w: pc->bdev_put_work
 *
 * A read's completion lets go of its block's user count itself, but may
 * run where pc->lock cannot be taken: if the block was dying and this was
 * its last user, it queues the block here to be freed.
 */
void pmc_bdev_put_work(struct work_struct *w)
{
	struct pmemcache *pc = container_of(to_delayed_work(w), struct pmemcache,
					    bdev_put_work);
	struct llist_node *list = llist_del_all(&pc->bdev_puts);
	struct pmc_bdev_io *io, *next;

	if (!list)
		return;
	spin_lock(&pc->lock);
	llist_for_each_entry(io, list, put)
		pmc_free_dying(pc, io->b);
	spin_unlock(&pc->lock);
	wake_up_all(&pc->free_wait);
	llist_for_each_entry_safe(io, next, list, put)
		bio_put(&io->clone);
}

static void pmc_bdev_endio(struct bio *clone)
{
	struct pmc_bdev_io *io = container_of(clone, struct pmc_bdev_io, clone);
	struct pmemcache *pc = io->pc;
	struct bio *orig = io->orig;
	unsigned int j;
	bool fua;

	orig->bi_status = clone->bi_status;
	if (!io->write) {
		if (clone->bi_status) {
			atomic64_inc(&pc->media_errors);
			DMERR_LIMIT("%pg: error reading the cache for origin block %llu",
				    pc->cache_dev->bdev, io->b->origin);
		}
		if (pmc_put_user_last(io->b)) {
			if (llist_add(&io->put, &pc->bdev_puts))
				queue_delayed_work(pc->wq, &pc->bdev_put_work, 0);
		} else {
			bio_put(clone);
		}
		bio_endio(orig);
		return;
	}
	if (clone->bi_status) {
		/*
		 * The entries name data that is not there: no commit may
		 * make them valid (the latch is seen by the commit that
		 * waits for this writer), and no read may return what the
		 * blocks held before.  Like a failed metadata write, this
		 * stops the cache taking writes.
		 */
		pmc_bdev_fail(pc);
		DMERR_LIMIT("%pg: writing the cache failed; the cache refuses writes from now on",
			    pc->cache_dev->bdev);
		for (j = 0; j < io->nr; j++)
			if (xchg(&io->b[j].filling, PMC_FILL_BAD) == 2)
				wake_up_var(&io->b[j].filling);
	} else {
		for (j = 0; j < io->nr; j++)
			if (io->fresh & BIT(j))
				pmc_fill_done(&io->b[j]);
	}
	pmc_write_done(pc, io->nr, io->seq);
	fua = io->fua;
	bio_put(clone);
	if (fua && !orig->bi_status)
		pmc_defer(pc, orig);
	else
		bio_endio(orig);
}

static void pmc_bdev_submit(struct pmemcache *pc, struct bio *bio,
			    struct pmc_block *b, struct pmc_bdev_io **iop)
{
	struct bio *clone = bio_alloc_clone(pc->cache_dev->bdev, bio, GFP_NOIO,
					    &pc->bdev_bios);
	struct pmc_bdev_io *io = container_of(clone, struct pmc_bdev_io, clone);

	io->pc = pc;
	io->orig = bio;
	io->b = b;
	io->write = false;
	io->nr = 1;
	io->fresh = 0;
	io->fua = false;
	clone->bi_iter.bi_sector = pmc_bdev_data_sector(pc, pmc_idx(pc, b));
	clone->bi_opf &= ~(REQ_FUA | REQ_PREFLUSH);
	clone->bi_end_io = pmc_bdev_endio;
	*iop = io;
}

/**
 * pmc_bdev_map() - map a read, write or discard in s mode
 * @pc: the cache
 * @bio: the bio, its sector relative to the target
 * @promote: for a write: cache it (as pmc_map_write())
 *
 * Return: a DM_MAPIO_ value.
 */
int pmc_bdev_map(struct pmemcache *pc, struct bio *bio, bool promote)
{
	unsigned int shift = pc->block_shift - SECTOR_SHIFT;
	u64 first = bio->bi_iter.bi_sector >> shift;
	unsigned int nr = bio_sectors(bio) >> shift;
	struct pmc_block *b, *run[PMC_WRITE_RUN];
	struct pmc_bdev_io *io;
	unsigned int k;
	bool cached, fua;
	int err = 0;
	u32 fresh;
	u64 seq;

	switch (bio_op(bio)) {
	case REQ_OP_READ:
		break;
	case REQ_OP_WRITE:
		goto write;
	case REQ_OP_DISCARD:
		pmc_defer(pc, bio);
		return DM_MAPIO_SUBMITTED;
	default:
		pmc_remap(pc, bio);
		return DM_MAPIO_REMAPPED;
	}

	k = pmc_read_pin(pc, first, nr, 1, &b, &cached);
	if (cached) {
		this_cpu_inc(pc->stats->reads);
		this_cpu_inc(pc->stats->read_hits);
		if (nr > 1)
			dm_accept_partial_bio(bio, 1U << shift);
		pmc_wait_filled(b);
		if (READ_ONCE(b->filling) == PMC_FILL_BAD) {
			/* Its data never reached the cache device. */
			pmc_put_user(pc, b);
			return DM_MAPIO_KILL;
		}
		pmc_bdev_submit(pc, bio, b, &io);
		submit_bio_noacct(&io->clone);
		return DM_MAPIO_SUBMITTED;
	}
	/* Up to the first cached block. */
	this_cpu_add(pc->stats->reads, k);
	if (k < nr)
		dm_accept_partial_bio(bio, k << shift);
	pmc_remap(pc, bio);
	return DM_MAPIO_REMAPPED;

write:
	if (pmc_medium_failed(pc))
		return DM_MAPIO_KILL;
	k = pmc_write_blocks(pc, first, min_t(unsigned int, nr, PMC_WRITE_RUN),
			     promote, true, run, &seq, &fresh, &err);
	if (!k)
		return pmc_write_none(pc, bio, err, promote);
	this_cpu_add(pc->stats->writes, k);
	if (k < nr)
		dm_accept_partial_bio(bio, k << shift);
	pmc_bdev_submit(pc, bio, run[0], &io);
	io->write = true;
	io->seq = seq;
	io->nr = k;
	io->fresh = fresh;
	fua = bio->bi_opf & REQ_FUA;
	io->fua = fua;
	/* io may be gone once submitted. */
	submit_bio_noacct(&io->clone);
	if (!fua)
		pmc_autocommit_due(pc, false);
	pmc_kick_if_high(pc);
	return DM_MAPIO_SUBMITTED;
}
