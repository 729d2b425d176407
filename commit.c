// SPDX-License-Identifier: GPL-2.0
/*
 * dm-pmemcache: commits.  Writes belong to the open sequence number; a
 * commit waits for that epoch's writers, fences, writes the commit
 * record, and frees the blocks the epoch superseded (rules 2 to 4 in
 * flush.c).
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
#include <linux/vmalloc.h>
#include <linux/wait.h>
#include <linux/wait_bit.h>
#include <linux/workqueue.h>

#include "engine.h"

/**
 * pmc_write_commit() - write and fence a commit record
 * @pc: the cache
 * @seq: the sequence number it makes durable
 *
 * Into the slot of @seq's parity, so that a torn record leaves the other
 * slot, one commit older, in force (rule 2 in flush.c).
 *
 * Return: 0, or -EIO when the cache device failed (s mode).
 */
int pmc_write_commit(struct pmemcache *pc, u64 seq)
{
	struct pmc_commit c = {
		.seq = cpu_to_le64(seq),
		.crc = cpu_to_le32(pmc_commit_crc(pc, seq)),
	};

	pmc_meta_record(pc, (void *)pc->sb + PMC_COMMIT_OFFSET(seq & 1), &c,
			sizeof(c));
	return pmc_meta_barrier(pc);
}

/*
 * Writers copy at most PMC_WRITE_RUN blocks between taking them and
 * leaving the epoch: a commit spins this many times for them before it
 * sleeps.
 */
#define PMC_COMMIT_SPINS	1000

/*
 * The commit, under pc->commit_lock: close the open epoch, wait for its
 * writers to finish copying, fence (data and entries durable), write the
 * commit record and fence again.  Then free the blocks that the committed
 * writes superseded.  Returns 0, or -EIO when the cache device failed (s
 * mode): then nothing counts as committed and nothing is freed.
 */
static int __pmc_commit(struct pmemcache *pc)
{
	struct pmc_block *b, *tmp;
	LIST_HEAD(done);
	unsigned int spins = 0, visited = 0;
	u64 seq = 0, target;
	bool freed;

	/*
	 * No commit succeeds on a failed cache device, not even an empty
	 * one; nor on a cache another table took over (the last one ran in
	 * pmc_hand_over()).
	 */
	if (pmc_medium_failed(pc) || pc->committed_last)
		return -EIO;
	spin_lock(&pc->lock);
	if (pc->epoch_writes) {
		seq = pc->seq_open++;
		pc->epoch_writes = 0;
	}
	spin_unlock(&pc->lock);

	if (seq) {
		atomic_t *writers = &pc->inflight[seq & 1];

		while (atomic_read(writers) && spins++ < PMC_COMMIT_SPINS &&
		       !need_resched())
			cpu_relax();
		wait_event(pc->inflight_wait, !atomic_read(writers));
		/* A writer's failed data write latched before it left. */
		smp_rmb();
		if (pmc_medium_failed(pc) || pmc_meta_barrier(pc) ||
		    pmc_write_commit(pc, seq))
			return -EIO;
	}

	/*
	 * The blocks that the commit superseded are freed on media before
	 * the commit counts in memory: until then nothing (writeback, a
	 * discard) may free the newer versions, whose older ones would
	 * come back after a crash.  Only commits take blocks off
	 * pc->superseded (writers add at its tail), so under commit_lock
	 * the walk can let go of pc->lock between batches.
	 */
	target = seq ?: pc->committed;
	spin_lock(&pc->lock);
	b = list_first_entry(&pc->superseded, struct pmc_block, list);
	while (&b->list != &pc->superseded) {
		pmc_lock_break(pc, &visited);
		tmp = list_next_entry(b, list);
		if (b->seq <= target)
			list_move_tail(&b->list, &done);
		b = tmp;
	}
	spin_unlock(&pc->lock);

	freed = !list_empty(&done);
	list_for_each_entry(b, &done, list)
		pmc_clear_entry(pc, pmc_idx(pc, b));
	if (freed && pmc_meta_barrier(pc)) {
		/* Failed device: leave them superseded, nothing counts. */
		spin_lock(&pc->lock);
		list_splice(&done, &pc->superseded);
		spin_unlock(&pc->lock);
		return -EIO;
	}

	spin_lock(&pc->lock);
	if (seq)
		pc->committed = seq;
	visited = 0;
	list_for_each_entry_safe(b, tmp, &done, list) {
		pmc_lock_break(pc, &visited);
		list_del(&b->list);
		pmc_release(pc, b);
	}
	spin_unlock(&pc->lock);
	if (freed)
		wake_up_all(&pc->free_wait);

	if (seq && pmc_used_percent(pc) >= pc->opts.val[PMC_OPT_HIGH_WATERMARK])
		pmc_kick_writeback(pc);
	return 0;
}

/**
 * pmc_commit() - make every write completed before the call durable
 * @pc: the cache
 *
 * For a flush, a FUA write, writeback and suspend.  Sleeps: takes
 * commit_lock.  In s mode it writes to the cache device: not from a map
 * function (see pmc_meta_barrier()).
 *
 * Return: 0, or -EIO when the cache device failed (s mode).
 */
int pmc_commit(struct pmemcache *pc)
{
	int r;

	mutex_lock(&pc->commit_lock);
	r = __pmc_commit(pc);
	mutex_unlock(&pc->commit_lock);
	return r;
}

/**
 * pmc_commit_last() - the last commit of a cache another table takes over
 * @pc: the cache, its map calls turned away and its work stopped
 *
 * Every write it acknowledged becomes durable; no commit succeeds after
 * this one (the other table's commits follow on media).
 *
 * Return: as pmc_commit().
 */
int pmc_commit_last(struct pmemcache *pc)
{
	int r;

	mutex_lock(&pc->commit_lock);
	r = __pmc_commit(pc);
	WRITE_ONCE(pc->committed_last, true);
	mutex_unlock(&pc->commit_lock);
	return r;
}

/**
 * pmc_autocommit() - commit when autocommit_blocks is reached
 * @pc: the cache
 *
 * Unless a commit is running already; then the next writer tries again.
 */
void pmc_autocommit(struct pmemcache *pc)
{
	if (!mutex_trylock(&pc->commit_lock))
		return;
	__pmc_commit(pc);
	mutex_unlock(&pc->commit_lock);
}

/**
 * pmc_commit_work() - an asynchronous commit (a writer waits for a free block)
 * @w: pc->commit_work
 */
void pmc_commit_work(struct work_struct *w)
{
	pmc_commit(container_of(w, struct pmemcache, commit_work));
}

/**
 * pmc_autocommit_work() - the autocommit_time timer
 * @w: pc->autocommit_work
 */
void pmc_autocommit_work(struct work_struct *w)
{
	pmc_commit(container_of(to_delayed_work(w), struct pmemcache,
				autocommit_work));
}

/**
 * pmc_commit_in_map() - pmc_commit() from a map function
 * @pc: the cache
 *
 * In s mode a commit writes to the cache device, which a map function
 * may not wait for itself (pmc_meta_barrier()): the worker commits while
 * the map function waits for it.
 */
void pmc_commit_in_map(struct pmemcache *pc)
{
	if (!pmc_on_bdev(pc)) {
		pmc_commit(pc);
		return;
	}
	queue_work(pc->wq, &pc->commit_work);
	flush_work(&pc->commit_work);
}
