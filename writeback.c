// SPDX-License-Identifier: GPL-2.0
/*
 * dm-pmemcache: writeback of committed blocks to the origin: when it
 * runs (watermarks, max_age, the flush message), batches in origin
 * order, and what a finished batch frees.
 */

#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/dm-kcopyd.h>
#include <linux/crc32c.h>
#include <linux/highmem.h>
#include <linux/kernel.h>
#include <linux/ktime.h>
#include <linux/list_sort.h>
#include <linux/log2.h>
#include <linux/mm.h>
#include <linux/percpu.h>
#include <linux/random.h>
#include <linux/rbtree.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/vmalloc.h>
#include <linux/wait.h>
#include <linux/wait_bit.h>
#include <linux/workqueue.h>

#include "engine.h"

/**
 * struct pmc_wb_io - one writeback bio and the blocks it carries
 * @blocks: the blocks, in origin order
 * @batch: the batch it belongs to
 * @sector: where the bio starts on the origin
 * @bio: the bio (allocated from pmemcache.wb_bios with this as front pad)
 */
struct pmc_wb_io {
	struct list_head blocks;
	struct pmc_wb_batch *batch;
	sector_t sector;
	struct bio bio;
};

/**
 * struct pmc_wb_batch - writeback bios in flight together
 * @pending: bios not completed, plus one while submitting
 * @done: completed when @pending drops to zero
 * @lock: protects @good and @bad (taken in bio completion)
 * @good: blocks whose bio succeeded
 * @bad: blocks whose bio failed
 *
 * Each bio goes back to the bio set as soon as it completes: a batch may
 * need more bios than the set keeps in reserve, and when allocations
 * fail (memory pressure) the next one waits for a completed bio.
 */
struct pmc_wb_batch {
	atomic_t pending;
	struct completion done;
	spinlock_t lock;	/* see above */
	struct list_head good;
	struct list_head bad;
};

/**
 * pmc_wb_bioset_init() - the bio set that writeback takes its bios from
 * @pc: the cache
 *
 * Each bio is front-padded with its struct pmc_wb_io.  Free with
 * bioset_exit().
 *
 * Return: 0 or a negative errno.
 */
int pmc_wb_bioset_init(struct pmemcache *pc)
{
	return bioset_init(&pc->wb_bios, 64, offsetof(struct pmc_wb_io, bio),
			   BIOSET_NEED_BVECS);
}

static void pmc_wb_endio(struct bio *bio)
{
	struct pmc_wb_io *io = container_of(bio, struct pmc_wb_io, bio);
	struct pmc_wb_batch *batch = io->batch;
	unsigned long flags;

	if (bio->bi_status)
		DMERR_LIMIT("writeback to %pg failed at sector %llu: %d",
			    bio->bi_bdev, (unsigned long long)io->sector,
			    blk_status_to_errno(bio->bi_status));
	spin_lock_irqsave(&batch->lock, flags);
	list_splice_tail(&io->blocks, bio->bi_status ? &batch->bad : &batch->good);
	spin_unlock_irqrestore(&batch->lock, flags);
	bio_put(bio);
	if (atomic_dec_and_test(&batch->pending))
		complete(&batch->done);
}

static struct page *pmc_pmem_page(void *addr)
{
	if (is_vmalloc_addr(addr))
		return vmalloc_to_page(addr);
	return virt_to_page(addr);
}

/*
 * Should writeback run now?  Above high_watermark it starts, and goes on
 * (pc->wb_active) until low_watermark.  Under pc->lock.
 */
static bool pmc_wb_wanted(struct pmemcache *pc, bool *active)
{
	u64 used = pmc_used_percent(pc);

	/* s mode: blocks written back could not be freed (see pmc_wb_finish()). */
	if (pmc_medium_failed(pc))
		return false;
	if (atomic_read(&pc->wb_all) || READ_ONCE(pc->cleaner))
		return true;
	if (used >= pc->opts.val[PMC_OPT_HIGH_WATERMARK])
		*active = true;
	else if (used <= pc->opts.val[PMC_OPT_LOW_WATERMARK])
		*active = false;
	return *active;
}

static int pmc_wb_cmp_origin(void *priv, const struct list_head *a,
			     const struct list_head *b)
{
	u64 x = list_entry(a, struct pmc_block, list)->origin;
	u64 y = list_entry(b, struct pmc_block, list)->origin;

	/* list_sort() calls this with a == b where it may reschedule. */
	if (a == b)
		cond_resched();
	return x < y ? -1 : x > y;
}

/*
 * Blocks to write back to go down to low_watermark; at least one when no
 * block is free, as writers may wait for one (low_watermark 100 would
 * otherwise write back nothing, ever).
 */
static u64 pmc_above_low(struct pmemcache *pc)
{
	u64 used = pmc_usable(pc) - pc->nr_free;
	u64 low = div64_u64(pmc_usable(pc) * pc->opts.val[PMC_OPT_LOW_WATERMARK], 100);

	lockdep_assert_held(&pc->lock);
	if (used > low)
		return used - low;
	return pc->nr_free ? 0 : 1;
}

/*
 * Take up to @max committed dirty blocks, in origin order, that are older
 * than @min_age jiffies (0: any); while a flush message runs, only those
 * it waits for.  Called with pc->lock held, which it lets go of every
 * PMC_LOCK_BATCH blocks looked at (the blocks taken are safe meanwhile:
 * they are PMC_WRITEBACK).
 */
static unsigned int pmc_wb_pick(struct pmemcache *pc, struct list_head *batch,
				unsigned int max, unsigned long min_age)
{
	u32 now = (u32)jiffies;
	unsigned int n = 0, visited = 0;
	struct rb_node *node = rb_first(&pc->index);

	while (node && n < max) {
		struct pmc_block *b = rb_entry(node, struct pmc_block, node);
		u64 upto = atomic_read(&pc->wb_all) ? pc->wb_upto : pc->committed;
		u64 here = b->origin;	/* read before the lock may go */

		if (pmc_lock_break(pc, &visited)) {
			b = pmc_lookup_ge(pc, here);
			if (!b)
				break;
			node = &b->node;
		}
		node = rb_next(node);
		if (b->state != PMC_DIRTY || b->seq > upto)
			continue;
		if (min_age && (u32)(now - b->age) < min_age)
			continue;
		b->state = PMC_WRITEBACK;
		list_add_tail(&b->list, batch);
		pc->nr_writeback++;
		n++;
	}
	return n;
}

static void pmc_wb_submit(struct pmemcache *pc, struct pmc_wb_batch *batch,
			  struct pmc_wb_io *io)
{
	atomic_inc(&batch->pending);
	/* Test builds: after a simulated power cut the origin gets nothing. */
	if (pmc_pcheck_cut()) {
		bio_io_error(&io->bio);
		return;
	}
	submit_bio(&io->bio);
}

/* Write @blocks (sorted by origin) to the origin; merge adjacent ones. */
static void pmc_wb_write(struct pmemcache *pc, struct list_head *blocks,
			 struct pmc_wb_batch *batch)
{
	blk_opf_t opf = REQ_OP_WRITE |
		(pmc_given(&pc->opts, PMC_OPT_NOFUA) ? 0 : REQ_FUA);
	struct pmc_wb_io *io = NULL;
	struct pmc_block *b, *tmp;
	u64 next = 0;

	list_for_each_entry_safe(b, tmp, blocks, list) {
		void *addr = pmc_data(pc, b);

		if (io && (b->origin != next ||
			   bio_add_page(&io->bio, pmc_pmem_page(addr),
					pc->block_size,
					offset_in_page(addr)) != pc->block_size)) {
			pmc_wb_submit(pc, batch, io);
			io = NULL;
		} else if (io) {
			list_move_tail(&b->list, &io->blocks);
			next++;
			continue;
		}
		io = container_of(bio_alloc_bioset(pc->origin->bdev,
						   BIO_MAX_VECS, opf, GFP_NOIO,
						   &pc->wb_bios),
				  struct pmc_wb_io, bio);
		INIT_LIST_HEAD(&io->blocks);
		io->batch = batch;
		io->sector = b->origin << (pc->block_shift - SECTOR_SHIFT);
		io->bio.bi_iter.bi_sector = io->sector;
		io->bio.bi_end_io = pmc_wb_endio;
		__bio_add_page(&io->bio, pmc_pmem_page(addr), pc->block_size,
			       offset_in_page(addr));
		list_move_tail(&b->list, &io->blocks);
		next = b->origin + 1;
	}
	if (io)
		pmc_wb_submit(pc, batch, io);
}

/**
 * struct pmc_wb_copy - s mode: one dm-kcopyd copy, cache device to origin
 * @blocks: the blocks, adjacent on both devices, in origin order
 * @batch: the batch it belongs to
 * @pc: the cache
 * @sector: where it starts on the origin
 */
struct pmc_wb_copy {
	struct list_head blocks;
	struct pmc_wb_batch *batch;
	struct pmemcache *pc;
	sector_t sector;
};

/**
 * pmc_wb_copies_init() - s mode: the pool of writeback's copy records
 * @pc: the cache
 *
 * Free with mempool_exit().
 *
 * Return: 0 or a negative errno.
 */
int pmc_wb_copies_init(struct pmemcache *pc)
{
	return mempool_init_kmalloc_pool(&pc->wb_copies, 16,
					 sizeof(struct pmc_wb_copy));
}

static void pmc_wb_copy_done(int read_err, unsigned long write_err,
			     void *context)
{
	struct pmc_wb_copy *c = context;
	struct pmc_wb_batch *batch = c->batch;
	bool bad = read_err || write_err;
	unsigned long flags;

	if (bad)
		DMERR_LIMIT("writeback: copy to origin sector %llu failed (%s)",
			    (unsigned long long)c->sector,
			    read_err ? "reading the cache" : "writing the origin");
	spin_lock_irqsave(&batch->lock, flags);
	list_splice_tail(&c->blocks, bad ? &batch->bad : &batch->good);
	spin_unlock_irqrestore(&batch->lock, flags);
	mempool_free(c, &c->pc->wb_copies);
	if (atomic_dec_and_test(&batch->pending))
		complete(&batch->done);
}

static void pmc_wb_copy_submit(struct pmemcache *pc, struct pmc_wb_copy *c,
			       u64 n)
{
	unsigned int shift = pc->block_shift - SECTOR_SHIFT;
	struct pmc_block *f = list_first_entry(&c->blocks, struct pmc_block,
					       list);
	struct dm_io_region from = {
		.bdev = pc->cache_dev->bdev,
		.sector = pmc_bdev_data_sector(pc, pmc_idx(pc, f)),
		.count = n << shift,
	};
	struct dm_io_region to = {
		.bdev = pc->origin->bdev,
		.sector = c->sector,
		.count = n << shift,
	};

	atomic_inc(&c->batch->pending);
	dm_kcopyd_copy(pc->bdev.kcopyd, &from, 1, &to, 0, pmc_wb_copy_done, c);
}

/*
 * s mode: copy @blocks (sorted by origin) from the cache device to the
 * origin with dm-kcopyd, one copy per run adjacent on both.  The origin
 * is flushed before the blocks are freed (pmc_wb_finish()).
 */
static void pmc_wb_copy(struct pmemcache *pc, struct list_head *blocks,
			struct pmc_wb_batch *batch)
{
	struct pmc_wb_copy *c = NULL;
	struct pmc_block *b, *tmp;
	u64 next = 0, next_idx = 0, n = 0;

	list_for_each_entry_safe(b, tmp, blocks, list) {
		if (c && b->origin == next && pmc_idx(pc, b) == next_idx) {
			list_move_tail(&b->list, &c->blocks);
			next++;
			next_idx++;
			n++;
			continue;
		}
		if (c)
			pmc_wb_copy_submit(pc, c, n);
		/* Waits for a copy of this batch to complete, at worst. */
		c = mempool_alloc(&pc->wb_copies, GFP_NOIO);
		INIT_LIST_HEAD(&c->blocks);
		c->batch = batch;
		c->pc = pc;
		c->sector = b->origin << (pc->block_shift - SECTOR_SHIFT);
		list_move_tail(&b->list, &c->blocks);
		next = b->origin + 1;
		next_idx = pmc_idx(pc, b) + 1;
		n = 1;
	}
	if (c)
		pmc_wb_copy_submit(pc, c, n);
}

/*
 * Finish a batch: blocks whose write (and, with nofua, the origin flush
 * after it) succeeded are freed: entry zeroed on media, fenced, then out
 * of the index and onto the free list.  So are blocks that failed but
 * were superseded by a committed write meanwhile: their entries must not
 * outlive the newer version's.  The other failed blocks stay dirty.
 * Under pc->commit_lock, so that pc->committed cannot move meanwhile.
 * Returns the number of blocks that failed.
 */
static unsigned int pmc_wb_finish(struct pmemcache *pc,
				  struct pmc_wb_batch *batch)
{
	struct pmc_block *b, *tmp;
	LIST_HEAD(done);
	LIST_HEAD(bad);
	unsigned int failed = 0, visited = 0;
	int flush_err = 0;

	/* Every bio has completed: the lists are ours alone. */
	list_splice_init(&batch->bad, &bad);
	/* dm-kcopyd (s mode) writes without FUA. */
	if ((pmc_given(&pc->opts, PMC_OPT_NOFUA) || pmc_on_bdev(pc)) &&
	    !list_empty(&batch->good))
		flush_err = pmc_pcheck_cut() ? -EIO :
			blkdev_issue_flush(pc->origin->bdev);
	if (flush_err) {
		DMERR_LIMIT("writeback: flushing %pg failed: %d",
			    pc->origin->bdev, flush_err);
		list_splice_init(&batch->good, &bad);
	} else {
		list_splice_init(&batch->good, &done);
	}

	mutex_lock(&pc->commit_lock);
	spin_lock(&pc->lock);
	list_for_each_entry_safe(b, tmp, &bad, list) {
		failed++;
		if (!pmc_indexed(b) && b->seq <= pc->committed)
			list_move_tail(&b->list, &done);
	}
	spin_unlock(&pc->lock);

	list_for_each_entry(b, &done, list)
		pmc_clear_entry(pc, pmc_idx(pc, b));
	if (pmc_meta_barrier(pc)) {
		/*
		 * s mode, the cache device failed: the zeroes may not be on
		 * media, so the blocks must not be reused.  They stay dirty
		 * (their data is on the origin too); writeback stops.  Not
		 * origin errors: not counted in wb_errors.
		 */
		list_splice_init(&done, &bad);
	}

	/*
	 * Freed last in origin order first: the free list hands out the last
	 * block freed first, so the next writes get these blocks in origin
	 * order, adjacent on the cache device when they were (s mode writes
	 * a run of adjacent blocks with one bio).  @done is in the order the
	 * copies completed: sorted first.  (The blocks are PMC_WRITEBACK:
	 * their origin does not change.)
	 */
	list_sort(NULL, &done, pmc_wb_cmp_origin);
	spin_lock(&pc->lock);
	list_for_each_entry_safe_reverse(b, tmp, &done, list) {
		/* The blocks are PMC_WRITEBACK: safe while the lock is let go. */
		pmc_lock_break(pc, &visited);
		list_del(&b->list);
		pc->nr_writeback--;
		if (pmc_indexed(b))
			pmc_index_erase(pc, b);
		else
			pc->nr_wb_superseded--;
		pmc_release(pc, b);
	}
	list_for_each_entry_safe(b, tmp, &bad, list) {
		pmc_lock_break(pc, &visited);
		list_del(&b->list);
		pc->nr_writeback--;
		b->state = PMC_DIRTY;
		/* Superseded meanwhile: kept until the newer write commits. */
		if (!pmc_indexed(b)) {
			pc->nr_wb_superseded--;
			list_add_tail(&b->list, &pc->superseded);
		}
	}
	spin_unlock(&pc->lock);
	mutex_unlock(&pc->commit_lock);
	/* Before the wake-up: writers waiting for a block look at it. */
	WRITE_ONCE(pc->wb_failing, failed != 0);
	wake_up_all(&pc->free_wait);
	if (failed)
		atomic64_add(failed, &pc->wb_errors);
	return failed;
}

/**
 * pmc_writeback_work() - the writeback loop
 * @w: pc->writeback_work
 *
 * Writes back batches of committed blocks in origin order while the
 * watermarks, max_age or a flush message ask for it, then frees them.
 */
void pmc_writeback_work(struct work_struct *w)
{
	struct pmemcache *pc = container_of(to_delayed_work(w),
					    struct pmemcache, writeback_work);
	unsigned int max_jobs = pc->opts.val[PMC_OPT_WRITEBACK_JOBS] ?: 8192;
	unsigned long min_age = 0;
	bool committed_once = false;

	for (;;) {
		unsigned int n, max = max_jobs;
		struct pmc_wb_batch batch;
		LIST_HEAD(blocks);
		bool want;

		spin_lock(&pc->lock);
		want = !pc->suspended && pmc_wb_wanted(pc, &pc->wb_active);
		/* Not on a failed device either: see pmc_wb_wanted(). */
		if (!want && !pc->suspended && pc->wb_age_due &&
		    !pmc_medium_failed(pc)) {
			want = true;
			min_age = msecs_to_jiffies(pc->opts.val[PMC_OPT_MAX_AGE]) ?: 1;
		}
		if (want && !min_age && !atomic_read(&pc->wb_all) &&
		    !READ_ONCE(pc->cleaner))
			max = min_t(u64, max, pmc_above_low(pc));
		n = want ? pmc_wb_pick(pc, &blocks, max, min_age) : 0;
		if (!n) {
			pc->wb_age_due = false;
			/* A max_age pass (min_age) looked at old blocks only. */
			if (want && !min_age && atomic_read(&pc->wb_all))
				pc->wb_upto_done = true;
		}
		spin_unlock(&pc->lock);

		if (!n) {
			/* Uncommitted writes cannot be written back: commit. */
			if (want && !committed_once && READ_ONCE(pc->epoch_writes)) {
				committed_once = true;
				pmc_commit(pc);
				continue;
			}
			break;
		}

		atomic_set(&batch.pending, 1);
		init_completion(&batch.done);
		spin_lock_init(&batch.lock);
		INIT_LIST_HEAD(&batch.good);
		INIT_LIST_HEAD(&batch.bad);
		pmc_test_point(PMC_TP_WB_SUBMIT);
		if (pmc_on_bdev(pc))
			pmc_wb_copy(pc, &blocks, &batch);
		else
			pmc_wb_write(pc, &blocks, &batch);
		if (!atomic_dec_and_test(&batch.pending))
			wait_for_completion_io(&batch.done);
		pmc_test_point(PMC_TP_WB_FINISH);
		if (pmc_wb_finish(pc, &batch)) {
			/* The origin fails: try again in a second. */
			if (!READ_ONCE(pc->suspended))
				mod_delayed_work(pc->wq, &pc->writeback_work, HZ);
			break;
		}
		cond_resched();
	}
}

/**
 * pmc_max_age_work() - the max_age timer
 * @w: pc->max_age_work
 *
 * Every max_age/2, asks writeback for the blocks older than max_age.
 */
void pmc_max_age_work(struct work_struct *w)
{
	struct pmemcache *pc = container_of(to_delayed_work(w),
					    struct pmemcache, max_age_work);
	unsigned long period = msecs_to_jiffies(pc->opts.val[PMC_OPT_MAX_AGE]) / 2;

	spin_lock(&pc->lock);
	pc->wb_age_due = true;
	spin_unlock(&pc->lock);
	pmc_commit(pc);
	pmc_kick_writeback(pc);
	if (!READ_ONCE(pc->suspended))
		queue_delayed_work(pc->wq, &pc->max_age_work,
				   max(period, msecs_to_jiffies(100)));
}

/**
 * pmc_write_back_all() - the flush message (and flush_on_suspend)
 * @pc: the cache
 * @interruptible: any signal ends it (else only a fatal one)
 *
 * Commits, then writes back every block committed by then; blocks written
 * later are left for the usual writeback, so that writes faster than the
 * origin cannot keep it going.
 *
 * Return: 0; -EBUSY when the device is suspended (writeback stops then),
 * -EINTR on a signal, -EIO when writeback fails.
 */
int pmc_write_back_all(struct pmemcache *pc, bool interruptible)
{
	u64 errors = atomic64_read(&pc->wb_errors);
	bool done;
	int r = 0;

	if (!interruptible)
		mutex_lock(&pc->flush_lock);
	else if (mutex_lock_interruptible(&pc->flush_lock))
		return -EINTR;
	if (pmc_commit(pc)) {
		/* s mode: the cache device failed; nothing more is written. */
		mutex_unlock(&pc->flush_lock);
		return -EIO;
	}
	spin_lock(&pc->lock);
	pc->wb_upto = pc->committed;
	pc->wb_upto_done = false;
	spin_unlock(&pc->lock);
	atomic_inc(&pc->wb_all);
	for (;;) {
		if (READ_ONCE(pc->suspended)) {
			r = -EBUSY;
			break;
		}
		mod_delayed_work(pc->wq, &pc->writeback_work, 0);
		flush_delayed_work(&pc->writeback_work);
		/*
		 * s mode, a failed cache device: writeback stops, with the
		 * blocks it had copied still dirty (their entries could not
		 * be cleared), so it would never be done.
		 */
		if (atomic64_read(&pc->wb_errors) != errors ||
		    pmc_medium_failed(pc)) {
			r = -EIO;
			break;
		}
		spin_lock(&pc->lock);
		done = pc->wb_upto_done;
		spin_unlock(&pc->lock);
		if (done)
			break;
		if (interruptible ? signal_pending(current) :
		    fatal_signal_pending(current)) {
			r = -EINTR;
			break;
		}
		schedule_timeout_interruptible(HZ / 100);
	}
	atomic_dec(&pc->wb_all);
	mutex_unlock(&pc->flush_lock);
	/* Blocks written meanwhile were left alone: writers may wait for them. */
	pmc_kick_writeback(pc);
	return r;
}
