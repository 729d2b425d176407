// SPDX-License-Identifier: GPL-2.0
/*
 * Device-mapper target "pmemcache": a write-back cache in persistent
 * memory for a slower origin block device.
 *
 * Table line:
 *   pmemcache <p|s> <origin_dev> <cache_dev> <block_size> <#opt_args> [opts]
 *
 * The options are those of dm-writecache, with the same names, ranges
 * and defaults; see Documentation/admin-guide.md.
 *
 * Writes are copied into persistent memory and committed (flush.c has
 * the persistence rules); reads of cached blocks are served from it;
 * committed blocks are written back to the origin in the background.
 * The on-media format is described in dm-pmemcache.h.
 */

#include <linux/module.h>
#include <linux/init.h>
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

#include "dm-pmemcache.h"

/*
 * Options, in the order dmsetup table prints them (dm-writecache's order,
 * start_sector first).
 */
enum pmc_opt {
	PMC_OPT_START_SECTOR,
	PMC_OPT_HIGH_WATERMARK,
	PMC_OPT_LOW_WATERMARK,
	PMC_OPT_WRITEBACK_JOBS,
	PMC_OPT_AUTOCOMMIT_BLOCKS,
	PMC_OPT_AUTOCOMMIT_TIME,
	PMC_OPT_FUA,
	PMC_OPT_NOFUA,
	PMC_OPT_CLEANER,
	PMC_OPT_MAX_AGE,
	PMC_OPT_METADATA_ONLY,
	PMC_OPT_PAUSE_WRITEBACK,
	PMC_OPT_FLUSH_MODE,
	PMC_NR_OPTS
};

/**
 * struct pmc_opt_desc - how one option is written and checked
 * @name: the keyword in the table line
 * @has_value: the keyword is followed by one number
 * @min: smallest value accepted
 * @max: largest value accepted
 * @deflt: value used when the option is not given
 * @error: ti->error for a value that is not a number in [@min, @max]
 */
struct pmc_opt_desc {
	const char *name;
	bool has_value;
	u64 min, max, deflt;
	char *error;
};

static const struct pmc_opt_desc pmc_opts[PMC_NR_OPTS] = {
	[PMC_OPT_START_SECTOR] = { "start_sector", true, 0, U64_MAX, 0,
		"start_sector must be a number of 512-byte sectors" },
	[PMC_OPT_HIGH_WATERMARK] = { "high_watermark", true, 0, 100, 50,
		"high_watermark must be a percentage from 0 to 100" },
	[PMC_OPT_LOW_WATERMARK] = { "low_watermark", true, 0, 100, 45,
		"low_watermark must be a percentage from 0 to 100" },
	[PMC_OPT_WRITEBACK_JOBS] = { "writeback_jobs", true, 0, UINT_MAX, 0,
		"writeback_jobs must be a number of blocks from 0 (no limit) to 4294967295" },
	[PMC_OPT_AUTOCOMMIT_BLOCKS] = { "autocommit_blocks", true, 1, UINT_MAX, 64,
		"autocommit_blocks must be a number of blocks from 1 to 4294967295" },
	[PMC_OPT_AUTOCOMMIT_TIME] = { "autocommit_time", true, 0, 3600000, 1000,
		"autocommit_time must be milliseconds from 0 to 3600000" },
	[PMC_OPT_FUA] = { "fua" },
	[PMC_OPT_NOFUA] = { "nofua" },
	[PMC_OPT_CLEANER] = { "cleaner" },
	[PMC_OPT_MAX_AGE] = { "max_age", true, 0, 86400000, 0,
		"max_age must be milliseconds from 0 to 86400000" },
	[PMC_OPT_METADATA_ONLY] = { "metadata_only" },
	[PMC_OPT_PAUSE_WRITEBACK] = { "pause_writeback", true, 0, 60000, 3000,
		"pause_writeback must be milliseconds from 0 to 60000" },
	[PMC_OPT_FLUSH_MODE] = { "flush_mode", true, 0, PMC_NR_FLUSH_MODES - 1,
		PMC_FLUSH_AUTO,
		"flush_mode must be auto, movnt, clwb, clflushopt, clflush or generic" },
};

/**
 * struct pmc_options - the optional arguments of a table line
 * @given: bit (1 << enum pmc_opt) set for every option in the table line
 * @val: the value of each option that takes one (default when not given)
 */
struct pmc_options {
	unsigned long given;
	u64 val[PMC_NR_OPTS];
};

/* Counters of the status line, per CPU so that the I/O path shares nothing. */
struct pmc_stats {
	u64 reads;
	u64 read_hits;
	u64 writes;
	u64 write_hits_uncommitted;
	u64 write_hits_committed;
	u64 writes_around;
	u64 writes_allocated;
	u64 writes_blocked;
	u64 flushes;
	u64 discards;
};

/* Where a cache block is in its life; see struct pmc_block. */
enum pmc_state {
	PMC_FREE,	/* on the free list; its entry's seq is 0 on media */
	PMC_DIRTY,	/* holds data not yet on the origin */
	PMC_WRITEBACK,	/* being written to the origin */
	PMC_DYING,	/* out of the index, freed when no one uses it */
};

/**
 * struct pmc_block - the in-memory state of one cache block (64 bytes)
 * @node: in pmemcache.index, by @origin, while the block is the newest
 *        version of its origin block; RB_CLEAR_NODE() while it is not
 * @list: on pmemcache.free, .superseded or a writeback batch
 * @origin: the origin block cached here
 * @seq: the commit sequence of the write that filled it; once superseded,
 *       the sequence of the write that superseded it
 * @users: readers copying data out right now (writers are counted in
 *         pmemcache.inflight instead: see pmc_map_discard())
 * @state: enum pmc_state
 * @filling: 1 from the moment a writer takes the block from the free list
 *           until its data is copied in, 2 when a reader waits for that;
 *           cleared by the writer without pc->lock (pmc_fill_done())
 * @age: jiffies when the block was filled (for max_age)
 */
struct pmc_block {
	struct rb_node node;
	struct list_head list;
	u64 origin;
	u64 seq;
	u16 users;
	u8 state;
	u8 filling;
	u32 age;
};

/**
 * struct pmemcache - one pmemcache target
 * @ti: the target
 * @origin: the slow device that is cached
 * @pmem: the cache device and its linear mapping
 * @pmem_mode: true for "p" (persistent memory) mode
 * @block_size: cache block size in bytes
 * @block_shift: log2(@block_size)
 * @opts: the optional arguments
 * @flush: persistence strategies for data and metadata
 * @stats: per-CPU counters, summed for the status line
 * @sb: the superblock in pmem
 * @entries: the entry array in pmem
 * @data: data block 0 in pmem
 * @nr_blocks: data blocks in the cache
 * @origin_blocks: blocks of the target's length
 * @crc_seed: crc32c of the superblock's uuid
 * @blocks: in-memory state, one per data block
 * @lock: protects @index, @free, @superseded, @nr_free, @nr_writeback,
 *        @seq_open, @epoch_writes, the fields of every struct pmc_block,
 *        @cleaner and @loaded
 * @index: struct pmc_block by origin block
 * @free: free blocks, entries already zeroed on media
 * @superseded: blocks replaced by a newer write, freed once it commits
 * @nr_free: blocks on @free
 * @nr_writeback: blocks in state PMC_WRITEBACK
 * @nr_wb_superseded: of those, blocks no longer in the index (a newer
 *                    version of their origin block was written)
 * @seq_open: sequence number given to writes now; @committed + 1 or more
 * @committed: the highest sequence number durable on media
 * @epoch_writes: blocks written in epoch @seq_open
 * @inflight: writers still copying, by parity of their sequence number
 * @inflight_wait: commit waits here for @inflight to drain
 * @free_wait: writers wait here for a free block
 * @commit_lock: serialises commits, and the end of a writeback batch
 *               with them
 * @flush_lock: one flush message (or flush_on_suspend) at a time
 * @wq: runs commits and writeback
 * @commit_work: an asynchronous commit (a writer waiting for a free block)
 * @autocommit_work: the autocommit_time timer
 * @writeback_work: the writeback loop
 * @max_age_work: the max_age timer
 * @wb_bios: bio set for writeback bios
 * @wb_all: a flush message runs: write back every block committed up to
 *          @wb_upto, whatever the watermarks
 * @wb_upto: see @wb_all; under pc->lock
 * @wb_upto_done: writeback found no block left up to @wb_upto
 * @wb_active: writeback went above high_watermark, runs to low_watermark
 * @wb_age_due: the max_age timer asks for a pass over old blocks
 * @cleaner: cleaner mode (option or message)
 * @wb_failing: the last writeback batch had a failed block
 * @went_around: a write went around the cache because of @wb_failing
 * @flush_on_suspend: write back everything when suspended
 * @suspended: no writeback, no timers
 * @loaded: the index was built from the media
 * @wb_errors: origin write errors seen by writeback
 * @media_errors: machine checks seen reading the cache
 * @meta_errors: entries found corrupt when loading
 * @nr_bad: blocks never used (unreadable entry, or data on a media error)
 */
struct pmemcache {
	struct dm_target *ti;
	struct dm_dev *origin;
	struct pmc_pmem_map pmem;
	bool pmem_mode;
	unsigned int block_size;
	unsigned int block_shift;
	struct pmc_options opts;
	struct pmc_flush flush;
	struct pmc_stats __percpu *stats;

	struct pmc_sb *sb;
	struct pmc_entry *entries;
	void *data;
	u64 nr_blocks;
	u64 origin_blocks;
	u32 crc_seed;
	struct pmc_block *blocks;

	spinlock_t lock;	/* see above */
	struct rb_root index;
	struct list_head free;
	struct list_head superseded;
	u64 nr_free;
	u64 nr_writeback;
	u64 nr_wb_superseded;
	u64 seq_open;
	u64 committed;
	u64 epoch_writes;
	atomic_t inflight[2];
	wait_queue_head_t inflight_wait;
	wait_queue_head_t free_wait;

	struct mutex commit_lock;	/* see above */
	struct mutex flush_lock;	/* see above */
	struct workqueue_struct *wq;
	struct work_struct commit_work;
	struct delayed_work autocommit_work;
	struct delayed_work writeback_work;
	struct delayed_work max_age_work;
	struct bio_set wb_bios;

	atomic_t wb_all;
	u64 wb_upto;
	bool wb_upto_done;
	bool wb_active;
	bool wb_age_due;
	bool cleaner;
	bool wb_failing;
	bool went_around;
	bool flush_on_suspend;
	bool suspended;
	bool loaded;
	atomic64_t wb_errors;
	atomic64_t media_errors;
	u64 meta_errors;
	u64 nr_bad;
};

static bool pmc_given(const struct pmc_options *o, enum pmc_opt opt)
{
	return o->given & BIT(opt);
}

static int pmc_parse_options(struct pmc_options *o, struct dm_arg_set *as,
			     unsigned int nr, struct dm_target *ti)
{
	int i;

	for (i = 0; i < PMC_NR_OPTS; i++)
		o->val[i] = pmc_opts[i].deflt;
	o->given = 0;

	while (nr) {
		const char *word = dm_shift_arg(as);
		const struct pmc_opt_desc *d = NULL;
		u64 v;

		nr--;
		for (i = 0; i < PMC_NR_OPTS; i++) {
			if (!strcasecmp(word, pmc_opts[i].name)) {
				d = &pmc_opts[i];
				break;
			}
		}
		if (!d) {
			DMERR("unknown option '%s'", word);
			ti->error =
				"Unknown optional argument (see the admin guide for the list)";
			return -EINVAL;
		}
		if (pmc_given(o, i)) {
			DMERR("option '%s' given twice", d->name);
			ti->error = "An optional argument is given twice";
			return -EINVAL;
		}
		o->given |= BIT(i);
		if (!d->has_value)
			continue;
		if (!nr) {
			DMERR("option '%s' needs a value", d->name);
			ti->error =
				"An optional argument has no value (#opt_args counts words)";
			return -EINVAL;
		}
		nr--;
		if (i == PMC_OPT_FLUSH_MODE) {
			int m = pmc_flush_mode_parse(dm_shift_arg(as));

			if (m < 0) {
				ti->error = d->error;
				return -EINVAL;
			}
			o->val[i] = m;
			continue;
		}
		if (kstrtou64(dm_shift_arg(as), 10, &v) || v < d->min ||
		    v > d->max) {
			ti->error = d->error;
			return -EINVAL;
		}
		o->val[i] = v;
	}

	if (o->val[PMC_OPT_LOW_WATERMARK] > o->val[PMC_OPT_HIGH_WATERMARK]) {
		ti->error = "low_watermark must not be above high_watermark";
		return -EINVAL;
	}
	if (pmc_given(o, PMC_OPT_FUA) && pmc_given(o, PMC_OPT_NOFUA)) {
		ti->error = "fua and nofua exclude each other";
		return -EINVAL;
	}
	return 0;
}

/* ---- cache blocks, entries, the index ---- */

static inline u64 pmc_idx(struct pmemcache *pc, struct pmc_block *b)
{
	return b - pc->blocks;
}

static inline void *pmc_data(struct pmemcache *pc, struct pmc_block *b)
{
	return pc->data + (pmc_idx(pc, b) << pc->block_shift);
}

static u32 pmc_entry_crc(struct pmemcache *pc, u64 origin, u64 seq, u64 idx)
{
	__le64 v[3] = { cpu_to_le64(origin), cpu_to_le64(seq), cpu_to_le64(idx) };

	return crc32c(pc->crc_seed, (const u8 *)v, sizeof(v));
}

static u32 pmc_commit_crc(struct pmemcache *pc, u64 seq)
{
	__le64 v = cpu_to_le64(seq);

	return crc32c(pc->crc_seed, (const u8 *)&v, sizeof(v));
}

/* Write the entry of @b; durable after the next fence.  Under pc->lock. */
static void pmc_write_entry(struct pmemcache *pc, struct pmc_block *b)
{
	u64 i = pmc_idx(pc, b);
	struct pmc_entry e = {
		.origin = cpu_to_le64(b->origin),
		.seq = cpu_to_le64(b->seq),
		.crc = cpu_to_le32(pmc_entry_crc(pc, b->origin, b->seq, i)),
	};

	pmc_copy_record(pc->flush.meta, &pc->entries[i], &e, sizeof(e));
}

/*
 * Free entry @i on media (after the next fence): one aligned 8-byte
 * store, which cannot tear, then a write-back of its cache line.
 */
static void pmc_clear_entry(struct pmemcache *pc, u64 i)
{
	pmc_zero_u64(pc->flush.meta, &pc->entries[i].seq);
}

/* The first indexed block caching @origin or a later origin block. */
static struct pmc_block *pmc_lookup_ge(struct pmemcache *pc, u64 origin)
{
	struct rb_node *n = pc->index.rb_node;
	struct pmc_block *best = NULL;

	while (n) {
		struct pmc_block *b = rb_entry(n, struct pmc_block, node);

		if (origin < b->origin) {
			best = b;
			n = n->rb_left;
		} else if (origin > b->origin) {
			n = n->rb_right;
		} else {
			return b;
		}
	}
	return best;
}

/**
 * struct pmc_slot - where a block not in the index would be linked
 * @parent: the node it would hang from (NULL: the root)
 * @link: the child pointer of @parent it would take
 */
struct pmc_slot {
	struct rb_node *parent;
	struct rb_node **link;
};

/*
 * The indexed block of @origin, or NULL and in @slot where it would go.
 * @hint, when not NULL, is the indexed block of @origin - 1 (the block
 * before in the same bio): its successor is then the only candidate, and
 * no descent from the root is needed.  Under pc->lock.
 */
static struct pmc_block *pmc_find(struct pmemcache *pc, u64 origin,
				  struct pmc_block *hint, struct pmc_slot *slot)
{
	struct rb_node **p = &pc->index.rb_node, *parent = NULL;

	if (hint) {
		struct rb_node *next = rb_next(&hint->node);

		if (next && rb_entry(next, struct pmc_block, node)->origin == origin)
			return rb_entry(next, struct pmc_block, node);
		/*
		 * Between @hint and its successor: the right child of @hint,
		 * or else the left child of the successor (the leftmost node
		 * of @hint's right subtree, which has none).
		 */
		if (!hint->node.rb_right) {
			slot->parent = &hint->node;
			slot->link = &hint->node.rb_right;
		} else {
			slot->parent = next;
			slot->link = &next->rb_left;
		}
		return NULL;
	}
	while (*p) {
		struct pmc_block *b = rb_entry(*p, struct pmc_block, node);

		parent = *p;
		if (origin < b->origin)
			p = &(*p)->rb_left;
		else if (origin > b->origin)
			p = &(*p)->rb_right;
		else
			return b;
	}
	slot->parent = parent;
	slot->link = p;
	return NULL;
}

static struct pmc_block *pmc_lookup(struct pmemcache *pc, u64 origin)
{
	struct pmc_slot slot;

	return pmc_find(pc, origin, NULL, &slot);
}

/* Index @nb, whose origin block is not in the index.  Under pc->lock. */
static void pmc_index_insert(struct pmemcache *pc, struct pmc_block *nb)
{
	struct pmc_slot slot;

	pmc_find(pc, nb->origin, NULL, &slot);
	rb_link_node(&nb->node, slot.parent, slot.link);
	rb_insert_color(&nb->node, &pc->index);
}

static void pmc_index_erase(struct pmemcache *pc, struct pmc_block *b)
{
	rb_erase(&b->node, &pc->index);
	RB_CLEAR_NODE(&b->node);
}

static inline bool pmc_indexed(struct pmc_block *b)
{
	return !RB_EMPTY_NODE(&b->node);
}

/*
 * A block whose entry is zero on media (and fenced) goes back to the free
 * list, or waits for its last user.  Under pc->lock.
 */
static void pmc_release(struct pmemcache *pc, struct pmc_block *b)
{
	if (b->users) {
		b->state = PMC_DYING;
		return;
	}
	b->state = PMC_FREE;
	list_add(&b->list, &pc->free);
	pc->nr_free++;
}

static void pmc_put_user(struct pmemcache *pc, struct pmc_block *b)
{
	if (!--b->users && b->state == PMC_DYING) {
		pmc_release(pc, b);
		wake_up_all(&pc->free_wait);
	}
}

/*
 * @b was the newest version of its origin block and no longer is (a newer
 * write, or a discard when @seq is the open sequence); it is out of the
 * index already.  Its entry must stay valid on media until @seq is
 * committed.  Under pc->lock.
 */
static void pmc_retire(struct pmemcache *pc, struct pmc_block *b, u64 seq)
{
	b->seq = seq;
	if (b->state == PMC_DIRTY)
		list_add_tail(&b->list, &pc->superseded);
	else	/* PMC_WRITEBACK: dealt with when its writeback ends. */
		pc->nr_wb_superseded++;
}

/* Blocks that can hold data: all but the unusable ones. */
static inline u64 pmc_usable(struct pmemcache *pc)
{
	return pc->nr_blocks - pc->nr_bad;
}

static u64 pmc_used_percent(struct pmemcache *pc)
{
	return div64_u64((pmc_usable(pc) - pc->nr_free) * 100,
			 max_t(u64, pmc_usable(pc), 1));
}

static void pmc_kick_writeback(struct pmemcache *pc)
{
	if (!READ_ONCE(pc->suspended))
		mod_delayed_work(pc->wq, &pc->writeback_work, 0);
}

/*
 * Loops over blocks (a writeback pick, a discard, a commit's superseded
 * list) handle at most this many per hold of pc->lock, then let others in.
 */
#define PMC_LOCK_BATCH	1024

/*
 * In such a loop, under pc->lock: every PMC_LOCK_BATCH turns, let go of
 * the lock for a moment.  Returns true when it did: what the loop holds
 * must be safe meanwhile, and where it is in the index may have gone.
 */
static bool pmc_lock_break(struct pmemcache *pc, unsigned int *turns)
{
	if (++*turns % PMC_LOCK_BATCH)
		return false;
	spin_unlock(&pc->lock);
	cond_resched();
	spin_lock(&pc->lock);
	return true;
}

/* ---- commit ---- */

static void pmc_write_commit(struct pmemcache *pc, u64 seq)
{
	struct pmc_commit c = {
		.seq = cpu_to_le64(seq),
		.crc = cpu_to_le32(pmc_commit_crc(pc, seq)),
	};

	pmc_copy_record(pc->flush.meta,
			(void *)pc->sb + PMC_COMMIT_OFFSET(seq & 1), &c,
			sizeof(c));
	pmc_fence();
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
 * writes superseded.
 */
static void __pmc_commit(struct pmemcache *pc)
{
	struct pmc_block *b, *tmp;
	LIST_HEAD(done);
	unsigned int spins = 0, visited = 0;
	u64 seq = 0, target;
	bool freed;

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
		pmc_fence();
		pmc_write_commit(pc, seq);
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
	if (freed)
		pmc_fence();

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
}

/*
 * Make every write completed before the call durable (a flush, a FUA
 * write, writeback, suspend).
 */
static void pmc_commit(struct pmemcache *pc)
{
	mutex_lock(&pc->commit_lock);
	__pmc_commit(pc);
	mutex_unlock(&pc->commit_lock);
}

/*
 * autocommit_blocks reached: commit, unless a commit is running already;
 * then the next writer tries again.
 */
static void pmc_autocommit(struct pmemcache *pc)
{
	if (!mutex_trylock(&pc->commit_lock))
		return;
	__pmc_commit(pc);
	mutex_unlock(&pc->commit_lock);
}

static void pmc_commit_work(struct work_struct *w)
{
	pmc_commit(container_of(w, struct pmemcache, commit_work));
}

static void pmc_autocommit_work(struct work_struct *w)
{
	pmc_commit(container_of(to_delayed_work(w), struct pmemcache,
				autocommit_work));
}

/* ---- writeback ---- */

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

	if (atomic_read(&pc->wb_all) || pc->cleaner)
		return true;
	if (used >= pc->opts.val[PMC_OPT_HIGH_WATERMARK])
		*active = true;
	else if (used <= pc->opts.val[PMC_OPT_LOW_WATERMARK])
		*active = false;
	return *active;
}

/* Blocks to write back to go down to low_watermark.  Under pc->lock. */
static u64 pmc_above_low(struct pmemcache *pc)
{
	u64 used = pmc_usable(pc) - pc->nr_free;
	u64 low = div64_u64(pmc_usable(pc) * pc->opts.val[PMC_OPT_LOW_WATERMARK], 100);

	return used > low ? used - low : 0;
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
	if (pmc_given(&pc->opts, PMC_OPT_NOFUA) && !list_empty(&batch->good))
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
	pmc_fence();

	spin_lock(&pc->lock);
	list_for_each_entry_safe(b, tmp, &done, list) {
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

static void pmc_writeback_work(struct work_struct *w)
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
		if (!want && !pc->suspended && pc->wb_age_due) {
			want = true;
			min_age = msecs_to_jiffies(pc->opts.val[PMC_OPT_MAX_AGE]) ?: 1;
		}
		if (want && !min_age && !atomic_read(&pc->wb_all) &&
		    !pc->cleaner)
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

/* max_age: every max_age/2, write back the blocks older than max_age. */
static void pmc_max_age_work(struct work_struct *w)
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

/*
 * The flush message (and flush_on_suspend): commit, then write back every
 * block committed by then; blocks written later are left for the usual
 * writeback, so that writes faster than the origin cannot keep it going.
 * Ends early, with -EBUSY, when the device is suspended (writeback stops
 * then), with -EINTR on a signal (@interruptible: any, else a fatal one),
 * with -EIO when writeback fails.
 */
static int pmc_write_back_all(struct pmemcache *pc, bool interruptible)
{
	u64 errors = atomic64_read(&pc->wb_errors);
	bool done;
	int r = 0;

	if (!interruptible)
		mutex_lock(&pc->flush_lock);
	else if (mutex_lock_interruptible(&pc->flush_lock))
		return -EINTR;
	pmc_commit(pc);
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
		if (atomic64_read(&pc->wb_errors) != errors) {
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

/* ---- the I/O path ---- */

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

static void pmc_remap(struct pmemcache *pc, struct bio *bio)
{
	bio_set_dev(bio, pc->origin->bdev);
}

/*
 * May writes go around the cache to the origin (cleaner, metadata_only,
 * or some did because the cache was full while writeback failed)?  Then
 * every flush goes on to the origin as well: tracking which writes went
 * around, and which flush covered them, is not worth its races.
 */
static bool pmc_writes_around(struct pmemcache *pc)
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
 * ordered by plain barriers), then clears the mark with xchg(), a full
 * barrier; readers load the mark with acquire semantics.
 */
static void pmc_fill_done(struct pmc_block *b)
{
	if (xchg(&b->filling, 0) == 2)
		wake_up_var(&b->filling);
}

/* Called with a user count on @b, without pc->lock. */
static void pmc_wait_filled(struct pmc_block *b)
{
	/* Acquire: the data copied in before the mark was cleared. */
	if (likely(!smp_load_acquire(&b->filling)) || !cmpxchg(&b->filling, 1, 2))
		return;
	/* Acquire, as above. */
	wait_var_event(&b->filling, !smp_load_acquire(&b->filling));
}

/*
 * Reads: the first run of blocks that are all cached, or all not, is
 * served (from pmem, or by remapping to the origin); dm sends the rest
 * of the bio again.
 */
#define PMC_READ_RUN	32

static int pmc_map_read(struct pmemcache *pc, struct bio *bio)
{
	u64 first = bio->bi_iter.bi_sector >> (pc->block_shift - SECTOR_SHIFT);
	unsigned int nr = bio_sectors(bio) >> (pc->block_shift - SECTOR_SHIFT);
	struct pmc_block *run[PMC_READ_RUN];
	struct bvec_iter iter;
	unsigned int i, n;
	bool cached, ok = true;

	spin_lock(&pc->lock);
	run[0] = pmc_lookup_ge(pc, first);
	cached = run[0] && run[0]->origin == first;
	if (cached) {
		/* The next origin blocks are the next nodes, if cached. */
		run[0]->users++;
		for (n = 1; n < min_t(unsigned int, nr, PMC_READ_RUN); n++) {
			struct rb_node *next = rb_next(&run[n - 1]->node);

			if (!next)
				break;
			run[n] = rb_entry(next, struct pmc_block, node);
			if (run[n]->origin != first + n)
				break;
			run[n]->users++;
		}
	} else {
		/* Up to the first cached block. */
		n = run[0] ? min_t(u64, nr, run[0]->origin - first) : nr;
	}
	spin_unlock(&pc->lock);

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
	spin_lock(&pc->lock);
	for (i = 0; i < n; i++)
		pmc_put_user(pc, run[i]);
	spin_unlock(&pc->lock);
	if (!ok) {
		atomic64_inc(&pc->media_errors);
		DMERR_LIMIT("%pg: media error reading the cache for origin block %llu",
			    pc->pmem.dev->bdev, first);
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
 * the data is in.
 */
static unsigned int pmc_write_blocks(struct pmemcache *pc, u64 origin,
				     unsigned int n, bool promote,
				     struct pmc_block **run, u64 *seq,
				     u32 *fresh, int *err)
{
	struct pmc_block *hint = NULL;
	struct pmc_slot slot;
	unsigned int k = 0;
	bool committed = false;

	BUILD_BUG_ON(PMC_WRITE_RUN > 32);
	*fresh = 0;

	spin_lock(&pc->lock);
	while (k < n) {
		struct pmc_block *b, *nb;

		b = pmc_find(pc, origin + k, hint, &slot);
		if (b && b->state == PMC_DIRTY && b->seq == pc->seq_open) {
			this_cpu_inc(pc->stats->write_hits_uncommitted);
			nb = b;
			goto got;
		}
		if (!b && !promote)
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
					pmc_commit(pc);
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
				   READ_ONCE(pc->wb_failing));
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
			/* Same place in the index: no rebalancing. */
			rb_replace_node(&b->node, &nb->node, &pc->index);
			RB_CLEAR_NODE(&b->node);
			pmc_retire(pc, b, nb->seq);
		} else {
			rb_link_node(&nb->node, slot.parent, slot.link);
			rb_insert_color(&nb->node, &pc->index);
		}
		pmc_write_entry(pc, nb);
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
	return k;
}

static void pmc_write_done(struct pmemcache *pc, unsigned int k, u64 seq)
{
	/* The commit of seq fences its own stores, not ours. */
	pmc_publish_stores(&pc->flush);
	if (atomic_sub_and_test(k, &pc->inflight[seq & 1]) &&
	    wq_has_sleeper(&pc->inflight_wait))
		wake_up_all(&pc->inflight_wait);
}

static int pmc_map_write(struct pmemcache *pc, struct bio *bio, bool promote)
{
	u64 first = bio->bi_iter.bi_sector >> (pc->block_shift - SECTOR_SHIFT);
	unsigned int nr = bio_sectors(bio) >> (pc->block_shift - SECTOR_SHIFT);
	struct bvec_iter iter = bio->bi_iter;
	unsigned int i;
	int err = 0;
	u64 written;

	for (i = 0; i < nr; ) {
		struct pmc_block *run[PMC_WRITE_RUN];
		unsigned int j, k;
		u32 fresh;
		u64 seq;

		k = pmc_write_blocks(pc, first + i,
				     min_t(unsigned int, nr - i, PMC_WRITE_RUN),
				     promote, run, &seq, &fresh, &err);
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

	if (!i && err) {
		DMERR_LIMIT("%pg: cache full, writeback failing: write of cached block %llu failed",
			    pc->pmem.dev->bdev, first);
		bio->bi_status = errno_to_blk_status(err);
		bio_endio(bio);
		return DM_MAPIO_SUBMITTED;
	}
	if (!i) {
		/*
		 * Not cached and not to be promoted, or the cache is full
		 * while writeback fails: around the cache.
		 */
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
	if (i < nr)
		dm_accept_partial_bio(bio, i << (pc->block_shift - SECTOR_SHIFT));

	if (bio->bi_opf & REQ_FUA) {
		pmc_commit(pc);
	} else {
		written = READ_ONCE(pc->epoch_writes);
		/*
		 * Commit here rather than in a work item: on a busy CPU the
		 * switch to the worker costs more than the commit.
		 */
		if (written >= pc->opts.val[PMC_OPT_AUTOCOMMIT_BLOCKS])
			pmc_autocommit(pc);
		else if (written && !delayed_work_pending(&pc->autocommit_work))
			queue_delayed_work(pc->wq, &pc->autocommit_work,
					   msecs_to_jiffies(pc->opts.val[PMC_OPT_AUTOCOMMIT_TIME]));
	}
	if (pmc_used_percent(pc) >= pc->opts.val[PMC_OPT_HIGH_WATERMARK] &&
	    !delayed_work_pending(&pc->writeback_work))
		pmc_kick_writeback(pc);
	bio_endio(bio);
	return DM_MAPIO_SUBMITTED;
}

/*
 * Discards drop the cached blocks in range and go on to the origin, when
 * it takes discards.  Uncommitted writes are committed first, since a
 * block of the open epoch may have writers copying into it; one written
 * meanwhile by a racing write is left cached, as if that write had come
 * after the discard.  A block under writeback stays cached (freed when
 * its writeback ends): out of the index, a later write of its origin
 * block could go around the cache and reach the origin before the
 * writeback's older data.  While any superseded block is under writeback
 * no block is dropped: its newer version must outlive its entry.
 */
static int pmc_map_discard(struct pmemcache *pc, struct bio *bio)
{
	unsigned int shift = pc->block_shift - SECTOR_SHIFT;
	/* Only blocks the discard covers whole are dropped. */
	u64 first = (bio->bi_iter.bi_sector + (1U << shift) - 1) >> shift;
	u64 end = bio_end_sector(bio) >> shift;
	struct pmc_block *b, *next;
	u64 pos = first;
	LIST_HEAD(dead);

	if (end > first)
		this_cpu_add(pc->stats->discards, end - first);
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
			pmc_fence();
			list_for_each_entry_safe(b, next, &dead, list) {
				list_del(&b->list);
				pmc_release(pc, b);
			}
			freed = true;
		}
		spin_unlock(&pc->lock);
		if (freed)
			wake_up_all(&pc->free_wait);
		cond_resched();
	}
	if (!bdev_max_discard_sectors(pc->origin->bdev)) {
		bio_endio(bio);
		return DM_MAPIO_SUBMITTED;
	}
	pmc_remap(pc, bio);
	return DM_MAPIO_REMAPPED;
}

static int pmc_map(struct dm_target *ti, struct bio *bio)
{
	struct pmemcache *pc = ti->private;

	bio->bi_iter.bi_sector = dm_target_offset(ti, bio->bi_iter.bi_sector);
	/* Test builds: after a simulated power cut nothing is written. */
	if (pmc_pcheck_cut() && op_is_write(bio_op(bio)))
		return DM_MAPIO_KILL;
	if (bio->bi_opf & REQ_PREFLUSH) {
		/* dm sends the flush as an empty bio; data comes separately. */
		this_cpu_inc(pc->stats->flushes);
		pmc_commit(pc);
		/* Test builds: the power went off during the commit. */
		if (pmc_pcheck_cut())
			return DM_MAPIO_KILL;
		/* Writes may go around the cache: the origin must flush too. */
		if (pmc_writes_around(pc)) {
			pmc_remap(pc, bio);
			return DM_MAPIO_REMAPPED;
		}
		bio_endio(bio);
		return DM_MAPIO_SUBMITTED;
	}
	/* The queue limits rule these out; never copy at a wrong offset. */
	if (unlikely(((u32)bio->bi_iter.bi_sector | bio_sectors(bio)) &
		     ((pc->block_size >> SECTOR_SHIFT) - 1)) &&
	    bio_op(bio) != REQ_OP_DISCARD) {
		DMERR_LIMIT("%s: I/O at sector %llu, %u sectors, not aligned to the block size %u",
			    dm_device_name(dm_table_get_md(ti->table)),
			    (unsigned long long)bio->bi_iter.bi_sector,
			    bio_sectors(bio), pc->block_size);
		return DM_MAPIO_KILL;
	}
	switch (bio_op(bio)) {
	case REQ_OP_READ:
		return pmc_map_read(pc, bio);
	case REQ_OP_WRITE:
		return pmc_map_write(pc, bio, !READ_ONCE(pc->cleaner) &&
				     (!pmc_given(&pc->opts, PMC_OPT_METADATA_ONLY) ||
				      (bio->bi_opf & REQ_META)));
	case REQ_OP_DISCARD:
		return pmc_map_discard(pc, bio);
	default:
		pmc_remap(pc, bio);
		return DM_MAPIO_REMAPPED;
	}
}

/* ---- on-media format: create, check, load ---- */

static u32 pmc_sb_crc(const struct pmc_sb *sb)
{
	return crc32c(~0U, (const u8 *)sb, offsetof(struct pmc_sb, crc));
}

/**
 * pmc_data_offset() - where data block 0 starts in a cache of @nr_blocks
 * @nr_blocks: data blocks
 *
 * Return: bytes from the start of the cache: the superblock, then the
 * entries rounded up to a page.
 */
u64 pmc_data_offset(u64 nr_blocks)
{
	return PMC_SB_SIZE + round_up(nr_blocks * sizeof(struct pmc_entry),
				      PAGE_SIZE);
}

/**
 * pmc_fit_blocks() - how many blocks a cache of @size bytes holds
 * @size: bytes of the cache device after start_sector
 * @block_size: bytes per data block
 *
 * Return: the most blocks whose data, entries and superblock fit in
 * @size (pmc_data_offset(n) + n * @block_size <= @size), 0 if none.
 */
u64 pmc_fit_blocks(u64 size, unsigned int block_size)
{
	u64 n;

	if (size < PMC_SB_SIZE)
		return 0;
	n = div64_u64(size - PMC_SB_SIZE, block_size + sizeof(struct pmc_entry));
	while (n && pmc_data_offset(n) + n * block_size > size)
		n--;
	return n;
}

/**
 * pmc_block_state_size() - RAM per cache block for its in-memory state
 *
 * Return: bytes; the index of a cache of n blocks is one array of n.
 */
size_t pmc_block_state_size(void)
{
	return sizeof(struct pmc_block);
}

static void pmc_layout(struct pmemcache *pc, u64 nr_blocks)
{
	pc->nr_blocks = nr_blocks;
	pc->sb = pc->pmem.addr;
	pc->entries = pc->pmem.addr + PMC_SB_SIZE;
	pc->data = pc->pmem.addr + pmc_data_offset(nr_blocks);
}

/*
 * Format (rule 6 in flush.c): first the magic with version 0, "format
 * under way", alone and fenced; then zero the entries and the commit
 * slots and write commit 0; then the rest of the superblock, fenced; then
 * magic and version in one 8-byte store, fenced.  Until that store is
 * durable the version is 0 (or the sector still zero) and the next
 * activation formats again (pmc_sb_unformatted()).
 */
static void pmc_format(struct pmemcache *pc, u64 nr_blocks)
{
	void *zero = page_address(ZERO_PAGE(0));
	struct pmc_sb sb = { };
	size_t done, len;
	__le64 head;
	u64 bytes;

	pmc_layout(pc, nr_blocks);
	pmc_write_u64(pc->flush.meta, (__le64 *)pc->sb,
		      cpu_to_le64(PMC_MAGIC));
	pmc_fence();
	bytes = (void *)pc->data - (void *)pc->entries;
	for (done = 0; done < bytes; done += len) {
		len = min_t(size_t, bytes - done, PAGE_SIZE);
		pmc_copy_to_pmem(pc->flush.meta, (void *)pc->entries + done,
				 zero, len);
		cond_resched();
	}
	pmc_copy_to_pmem(pc->flush.meta, (void *)pc->sb + PMC_COMMIT_OFFSET(1),
			 zero, sizeof(struct pmc_commit));

	sb.magic = cpu_to_le32(PMC_MAGIC);
	sb.version = cpu_to_le32(PMC_VERSION);
	sb.block_size = cpu_to_le32(pc->block_size);
	sb.nr_blocks = cpu_to_le64(nr_blocks);
	sb.entries_offset = cpu_to_le64((void *)pc->entries - pc->pmem.addr);
	sb.data_offset = cpu_to_le64(pc->data - pc->pmem.addr);
	get_random_bytes(sb.uuid, sizeof(sb.uuid));
	sb.crc = cpu_to_le32(pmc_sb_crc(&sb));
	pc->crc_seed = crc32c(~0U, sb.uuid, sizeof(sb.uuid));
	pmc_write_commit(pc, 0);	/* fences: everything above durable */
	pmc_test_point(PMC_TP_FORMAT_MID);
	head = cpu_to_le64((u64)PMC_VERSION << 32 | PMC_MAGIC);
	sb.version = 0;
	pmc_copy_to_pmem(pc->flush.meta, pc->sb, &sb, sizeof(sb));
	pmc_fence();
	pmc_write_u64(pc->flush.meta, (__le64 *)pc->sb, head);
	pmc_fence();
	DMINFO("%pg: formatted a cache of %llu blocks of %u bytes",
	       pc->pmem.dev->bdev, nr_blocks, pc->block_size);
}

/*
 * A first sector that no activation has finished formatting: all zero,
 * or our magic with version 0 (written first, alone; the version is
 * written last) and nothing past the superblock record, whatever a cut
 * left of the record's other bytes.  Anything else is someone's data.
 */
static bool pmc_sb_unformatted(const u8 *first)
{
	const struct pmc_sb *sb = (const void *)first;

	if (!memchr_inv(first, 0, SECTOR_SIZE))
		return true;
	return le32_to_cpu(sb->magic) == PMC_MAGIC && !sb->version &&
	       !memchr_inv(first + sizeof(*sb), 0, SECTOR_SIZE - sizeof(*sb));
}

/*
 * At construction: format a cache not yet formatted, accept one
 * of ours that matches the table, refuse anything else.  Only the
 * superblock is read here; the entries are read at resume (pmc_load).
 */
static int pmc_open_cache(struct pmemcache *pc)
{
	struct dm_target *ti = pc->ti;
	u64 fit = pmc_fit_blocks(pc->pmem.size, pc->block_size);
	struct pmc_sb sb;
	u8 first[SECTOR_SIZE];

	if (fit < PMC_MIN_BLOCKS) {
		ti->error = "Cache device too small: it must hold 8 blocks and the metadata";
		return -EINVAL;
	}
	pmc_layout(pc, fit);
	if (pmc_pmem_range_bad(&pc->pmem, 0, pc->data - pc->pmem.addr)) {
		DMERR("%pg: media error in the first %zu bytes (metadata)",
		      pc->pmem.dev->bdev, (size_t)(pc->data - pc->pmem.addr));
		ti->error = "Media error in the cache metadata: clear it or raise start_sector";
		return -EIO;
	}
	if (pc->pmem.nr_bad_pages) {
		u64 i, good = 0;

		for (i = 0; i < fit; i++)
			good += !pmc_pmem_range_bad(&pc->pmem,
						    (pc->data - pc->pmem.addr) +
						    (i << pc->block_shift),
						    pc->block_size);
		if (good < PMC_MIN_BLOCKS) {
			ti->error = "Cache device media errors leave fewer than 8 usable blocks";
			return -EIO;
		}
	}
	if (copy_mc_to_kernel(first, pc->pmem.addr, sizeof(first)) ||
	    copy_mc_to_kernel(&sb, pc->pmem.addr, sizeof(sb))) {
		ti->error = "Media error reading the cache superblock";
		return -EIO;
	}
	if (pmc_sb_unformatted(first)) {
		pmc_format(pc, fit);
		return 0;
	}
	if (le32_to_cpu(sb.magic) != PMC_MAGIC) {
		DMERR("%pg: no pmemcache superblock; to use the device, zero its first sector",
		      pc->pmem.dev->bdev);
		ti->error = "Cache device holds something else (no pmemcache superblock)";
		return -EINVAL;
	}
	if (le32_to_cpu(sb.crc) != pmc_sb_crc(&sb)) {
		DMERR("%pg: to start over, losing the cached data, zero the first sector",
		      pc->pmem.dev->bdev);
		ti->error = "Cache superblock checksum is wrong";
		return -EINVAL;
	}
	if (le32_to_cpu(sb.version) != PMC_VERSION || sb.features) {
		DMERR("%pg: cache format version %u features %#x, this module knows version %u",
		      pc->pmem.dev->bdev, le32_to_cpu(sb.version),
		      le32_to_cpu(sb.features), PMC_VERSION);
		ti->error = "Cache format version or features unknown; use a newer module";
		return -EINVAL;
	}
	if (le32_to_cpu(sb.block_size) != pc->block_size) {
		DMERR("%pg: the cache was formatted with block size %u",
		      pc->pmem.dev->bdev, le32_to_cpu(sb.block_size));
		ti->error = "Block size does not match the cache's superblock";
		return -EINVAL;
	}
	if (le64_to_cpu(sb.nr_blocks) != fit) {
		DMERR("%pg: the cache was formatted for %llu blocks, the device now holds %llu",
		      pc->pmem.dev->bdev, le64_to_cpu(sb.nr_blocks), fit);
		ti->error =
			"Cache size (or start_sector) differs from the one it was formatted with";
		return -EINVAL;
	}
	pmc_layout(pc, fit);
	if (le64_to_cpu(sb.entries_offset) != (void *)pc->entries - pc->pmem.addr ||
	    le64_to_cpu(sb.data_offset) != pc->data - pc->pmem.addr) {
		ti->error = "Cache superblock offsets are inconsistent";
		return -EINVAL;
	}
	pc->crc_seed = crc32c(~0U, sb.uuid, sizeof(sb.uuid));
	return 0;
}

/* The highest valid commit record, or -1 if neither is valid. */
static s64 pmc_read_commit(struct pmemcache *pc)
{
	s64 best = -1;
	int slot;

	for (slot = 0; slot < 2; slot++) {
		struct pmc_commit c;
		u64 seq;

		if (copy_mc_to_kernel(&c, (void *)pc->sb + PMC_COMMIT_OFFSET(slot),
				      sizeof(c)))
			continue;
		seq = le64_to_cpu(c.seq);
		if ((seq & 1) == slot && seq <= S64_MAX &&
		    le32_to_cpu(c.crc) == pmc_commit_crc(pc, seq) &&
		    (s64)seq > best)
			best = seq;
	}
	return best;
}

/*
 * A block whose data lies on a page with a known media error is never
 * used.  If it held committed data, that data cannot be read: say so and
 * forget the entry (reads then see the origin's older data).
 */
static void pmc_drop_bad_block(struct pmemcache *pc, struct pmc_block *b,
			       u64 i)
{
	struct pmc_entry e;
	u64 seq, origin;

	b->state = PMC_DYING;
	pc->nr_bad++;
	if (copy_mc_to_kernel(&e, &pc->entries[i], sizeof(e)) || !e.seq)
		return;
	seq = le64_to_cpu(e.seq);
	origin = le64_to_cpu(e.origin);
	if (seq <= pc->committed &&
	    le32_to_cpu(e.crc) == pmc_entry_crc(pc, origin, seq, i)) {
		DMERR_LIMIT("%pg: block %llu (origin %llu) on a media error: data lost",
			    pc->pmem.dev->bdev, i, origin);
		atomic64_inc(&pc->media_errors);
	}
	pmc_clear_entry(pc, i);
}

/*
 * Build the index from the entries: the valid entry with the highest seq
 * of each origin block wins; the others, and uncommitted leftovers of a
 * crash, are zeroed so that a later commit cannot revive them.
 */
static int pmc_load(struct pmemcache *pc)
{
	s64 committed = pmc_read_commit(pc);
	u64 i, nr_dirty = 0, dropped = 0, beyond = 0, max_origin = 0;
	ktime_t t0 = ktime_get();

	if (committed < 0) {
		DMERR("%pg: no valid commit record; the cache is damaged",
		      pc->pmem.dev->bdev);
		return -EIO;
	}
	pc->committed = committed;
	pc->seq_open = committed + 1;
	/* From scratch: an earlier attempt may have been refused. */
	pc->index = RB_ROOT;
	INIT_LIST_HEAD(&pc->free);
	INIT_LIST_HEAD(&pc->superseded);
	pc->nr_free = 0;
	pc->nr_bad = 0;
	pc->meta_errors = 0;

	for (i = 0; i < pc->nr_blocks; i++) {
		struct pmc_block *b = &pc->blocks[i], *old;
		struct pmc_entry e;
		u64 seq, origin;

		if (!(i & 4095))
			cond_resched();
		memset(b, 0, sizeof(*b));
		RB_CLEAR_NODE(&b->node);
		b->state = PMC_FREE;
		if (pmc_pmem_range_bad(&pc->pmem,
				       pmc_data(pc, b) - pc->pmem.addr,
				       pc->block_size)) {
			pmc_drop_bad_block(pc, b, i);
			continue;
		}
		if (copy_mc_to_kernel(&e, &pc->entries[i], sizeof(e))) {
			/* Unreadable: never used again. */
			pc->meta_errors++;
			pc->nr_bad++;
			b->state = PMC_DYING;
			continue;
		}
		seq = le64_to_cpu(e.seq);
		origin = le64_to_cpu(e.origin);
		if (!seq)
			goto free;
		if (seq > committed) {
			dropped++;
			goto clear;
		}
		if (le32_to_cpu(e.crc) == pmc_entry_crc(pc, origin, seq, i) &&
		    origin >= pc->origin_blocks) {
			/* A longer table wrote it: leave it as it is. */
			beyond++;
			max_origin = max(max_origin, origin);
			b->state = PMC_DYING;
			continue;
		}
		if (le32_to_cpu(e.crc) != pmc_entry_crc(pc, origin, seq, i)) {
			pc->meta_errors++;
			DMERR_LIMIT("%pg: corrupt entry %llu (origin %llu, seq %llu): data lost",
				    pc->pmem.dev->bdev, i, origin, seq);
			goto clear;
		}
		b->origin = origin;
		b->seq = seq;
		old = pmc_lookup(pc, origin);
		if (old && old->seq >= seq)
			goto clear;
		if (old) {
			pmc_index_erase(pc, old);
			pmc_clear_entry(pc, pmc_idx(pc, old));
			old->state = PMC_FREE;
			list_add(&old->list, &pc->free);
			pc->nr_free++;
			nr_dirty--;
		}
		b->state = PMC_DIRTY;
		b->age = (u32)jiffies;
		pmc_index_insert(pc, b);
		nr_dirty++;
		continue;
clear:
		pmc_clear_entry(pc, i);
free:
		list_add_tail(&b->list, &pc->free);
		pc->nr_free++;
	}
	pmc_fence();
	if (beyond) {
		DMERR("%pg: %llu cached blocks lie past the target's end (block %llu; it has %llu)",
		      pc->pmem.dev->bdev, beyond, max_origin, pc->origin_blocks);
		DMERR("%pg: load a table of at least %llu sectors, or flush under the old one",
		      pc->pmem.dev->bdev,
		      (max_origin + 1) << (pc->block_shift - SECTOR_SHIFT));
		return -EINVAL;
	}
	DMINFO("%pg: recovered %llu dirty of %llu blocks in %lld us",
	       pc->pmem.dev->bdev, nr_dirty, pc->nr_blocks,
	       ktime_us_delta(ktime_get(), t0));
	DMINFO("%pg: commit %lld, %llu uncommitted blocks dropped, %llu corrupt, %llu unusable",
	       pc->pmem.dev->bdev, committed, dropped, pc->meta_errors,
	       pc->nr_bad);
	return 0;
}

static void pmc_stop_work(struct pmemcache *pc)
{
	spin_lock(&pc->lock);
	pc->suspended = true;
	spin_unlock(&pc->lock);
	cancel_delayed_work_sync(&pc->max_age_work);
	cancel_delayed_work_sync(&pc->writeback_work);
	cancel_delayed_work_sync(&pc->autocommit_work);
	flush_work(&pc->commit_work);
}

static void pmc_free(struct pmemcache *pc)
{
	if (pc->wq)
		destroy_workqueue(pc->wq);
	bioset_exit(&pc->wb_bios);
	kvfree(pc->blocks);
	pmc_pmem_map_release(&pc->pmem);
	if (pc->pmem.dev)
		dm_put_device(pc->ti, pc->pmem.dev);
	if (pc->origin)
		dm_put_device(pc->ti, pc->origin);
	free_percpu(pc->stats);
	kfree(pc);
}

static int pmc_ctr(struct dm_target *ti, unsigned int argc, char **argv)
{
	struct dm_arg_set as = { .argc = argc, .argv = argv };
	const char *mode, *origin_path, *cache_path, *bs_arg;
	struct dm_dev *cache_dev;
	struct pmemcache *pc;
	unsigned int nr_opts, bs;
	int r;

	if (argc < 5) {
		ti->error =
			"Too few arguments: <p|s> <origin> <cache> <block_size> <#opt_args> ...";
		return -EINVAL;
	}

	pc = kzalloc(sizeof(*pc), GFP_KERNEL);
	if (!pc) {
		ti->error = "Cannot allocate the pmemcache structure";
		return -ENOMEM;
	}
	pc->ti = ti;
	ti->private = pc;

	mode = dm_shift_arg(&as);
	origin_path = dm_shift_arg(&as);
	cache_path = dm_shift_arg(&as);
	bs_arg = dm_shift_arg(&as);

	if (!strcasecmp(mode, "p")) {
		pc->pmem_mode = true;
	} else if (!strcasecmp(mode, "s")) {
		ti->error =
			"SSD mode (s) is not supported yet: use p with a pmem cache device";
		r = -EOPNOTSUPP;
		goto bad;
	} else {
		ti->error =
			"Invalid cache mode: must be p (persistent memory) or s (SSD)";
		r = -EINVAL;
		goto bad;
	}

	if (kstrtouint(bs_arg, 10, &bs) || bs < SECTOR_SIZE || bs > PAGE_SIZE ||
	    !is_power_of_2(bs)) {
		ti->error =
			"Invalid block size: need a power of two from 512 to the page size";
		r = -EINVAL;
		goto bad;
	}
	pc->block_size = bs;
	pc->block_shift = ilog2(bs);

	if (kstrtouint(dm_shift_arg(&as), 10, &nr_opts) ||
	    nr_opts > 2 * PMC_NR_OPTS) {
		ti->error =
			"Invalid #opt_args: it must be the number of optional words that follow it";
		r = -EINVAL;
		goto bad;
	}
	if (nr_opts > as.argc) {
		ti->error = "#opt_args is larger than the number of words that follow it";
		r = -EINVAL;
		goto bad;
	}
	r = pmc_parse_options(&pc->opts, &as, nr_opts, ti);
	if (r)
		goto bad;
	if (as.argc) {
		ti->error =
			"Too many arguments: more words than #opt_args counts";
		r = -EINVAL;
		goto bad;
	}

	if (ti->len & ((bs >> SECTOR_SHIFT) - 1)) {
		ti->error = "Target length is not a multiple of the block size";
		r = -EINVAL;
		goto bad;
	}

	r = dm_get_device(ti, origin_path, dm_table_get_mode(ti->table),
			  &pc->origin);
	if (r) {
		ti->error = "Cannot open the origin device (check the path or major:minor)";
		goto bad;
	}
	r = dm_get_device(ti, cache_path, dm_table_get_mode(ti->table),
			  &cache_dev);
	if (r) {
		ti->error = "Cannot open the cache device (check the path or major:minor)";
		goto bad;
	}
	if (cache_dev->bdev == pc->origin->bdev) {
		dm_put_device(ti, cache_dev);
		ti->error = "The origin and the cache must be different devices";
		r = -EINVAL;
		goto bad;
	}
	pc->pmem.dev = cache_dev;

	if (bdev_nr_sectors(pc->origin->bdev) < ti->len) {
		DMERR("origin %pg has %llu sectors, the target is %llu sectors long",
		      pc->origin->bdev,
		      (unsigned long long)bdev_nr_sectors(pc->origin->bdev),
		      (unsigned long long)ti->len);
		ti->error = "Origin device is smaller than the target length";
		r = -EINVAL;
		goto bad;
	}
	if (bdev_logical_block_size(pc->origin->bdev) > bs ||
	    bdev_logical_block_size(cache_dev->bdev) > bs) {
		ti->error =
			"Block size is below the logical block size of the origin or cache";
		r = -EINVAL;
		goto bad;
	}

	r = pmc_pmem_map_claim(&pc->pmem, ti, cache_dev,
			       pc->opts.val[PMC_OPT_START_SECTOR]);
	if (r)
		goto bad;
	r = pmc_flush_choose(pc->opts.val[PMC_OPT_FLUSH_MODE], &pc->flush);
	if (r) {
		DMERR("flush_mode %s: this CPU lacks the instruction",
		      pmc_flush_mode_name(pc->opts.val[PMC_OPT_FLUSH_MODE]));
		ti->error = "flush_mode names an instruction this CPU does not have";
		goto bad;
	}
	DMINFO("%pg: flush_mode %s: %s for data, %s for metadata",
	       pc->pmem.dev->bdev,
	       pmc_flush_mode_name(pc->opts.val[PMC_OPT_FLUSH_MODE]),
	       pmc_flush_mode_name(pc->flush.data),
	       pmc_flush_mode_name(pc->flush.meta));

	pc->origin_blocks = ti->len >> (pc->block_shift - SECTOR_SHIFT);
	r = pmc_open_cache(pc);
	if (r)
		goto bad;

	pc->stats = alloc_percpu(struct pmc_stats);
	pc->blocks = pmc_alloc_array(pc->nr_blocks, sizeof(*pc->blocks));
	if (!pc->stats || !pc->blocks) {
		ti->error = "Cannot allocate memory for the cache index";
		r = -ENOMEM;
		goto bad;
	}
	spin_lock_init(&pc->lock);
	pc->index = RB_ROOT;
	INIT_LIST_HEAD(&pc->free);
	INIT_LIST_HEAD(&pc->superseded);
	init_waitqueue_head(&pc->inflight_wait);
	init_waitqueue_head(&pc->free_wait);
	mutex_init(&pc->commit_lock);
	mutex_init(&pc->flush_lock);
	INIT_WORK(&pc->commit_work, pmc_commit_work);
	INIT_DELAYED_WORK(&pc->autocommit_work, pmc_autocommit_work);
	INIT_DELAYED_WORK(&pc->writeback_work, pmc_writeback_work);
	INIT_DELAYED_WORK(&pc->max_age_work, pmc_max_age_work);
	pc->cleaner = pmc_given(&pc->opts, PMC_OPT_CLEANER);
	pc->suspended = true;

	r = bioset_init(&pc->wb_bios, 64, offsetof(struct pmc_wb_io, bio),
			BIOSET_NEED_BVECS);
	if (r) {
		ti->error = "Cannot allocate the writeback bio set";
		goto bad;
	}
	pc->wq = alloc_workqueue("pmemcache-%s", WQ_MEM_RECLAIM, 0,
				 dm_table_device_name(ti->table));
	if (!pc->wq) {
		ti->error = "Cannot allocate the workqueue";
		r = -ENOMEM;
		goto bad;
	}

	ti->num_flush_bios = 1;
	ti->num_discard_bios = 1;
	ti->flush_supported = true;
	ti->discards_supported = true;
	return 0;
bad:
	pmc_free(pc);
	ti->private = NULL;
	return r;
}

static void pmc_dtr(struct dm_target *ti)
{
	struct pmemcache *pc = ti->private;

	/* A live table was suspended first; this one may never have run. */
	pmc_stop_work(pc);
	pmc_free(pc);
}

static void pmc_sum_stats(struct pmemcache *pc, struct pmc_stats *sum)
{
	u64 *t = (u64 *)sum;
	unsigned int k;
	int cpu;

	memset(sum, 0, sizeof(*sum));
	for_each_possible_cpu(cpu) {
		u64 *s = (u64 *)per_cpu_ptr(pc->stats, cpu);

		for (k = 0; k < sizeof(*sum) / sizeof(u64); k++)
			t[k] += s[k];
	}
}

static void pmc_clear_stats(struct pmemcache *pc)
{
	int cpu;

	for_each_possible_cpu(cpu)
		memset(per_cpu_ptr(pc->stats, cpu), 0, sizeof(struct pmc_stats));
}

static void pmc_status(struct dm_target *ti, status_type_t type,
		       unsigned int status_flags, char *result,
		       unsigned int maxlen)
{
	struct pmemcache *pc = ti->private;
	const struct pmc_options *o = &pc->opts;
	unsigned int sz = 0, words = 0;
	u64 nr_free, nr_wb, nr_dirty;
	struct pmc_stats st;
	int i;

	switch (type) {
	case STATUSTYPE_INFO:
		/* dm-writecache's 14 fields, in its order, then ours. */
		pmc_sum_stats(pc, &st);
		spin_lock(&pc->lock);
		nr_free = pc->nr_free;
		nr_wb = pc->nr_writeback;
		nr_dirty = pmc_usable(pc) - pc->nr_free;
		spin_unlock(&pc->lock);
		/* Field 1, an error latch in dm-writecache: stores to pmem fail not. */
		DMEMIT("0 %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu",
		       pmc_usable(pc), nr_free,
		       nr_wb, st.reads, st.read_hits, st.writes,
		       st.write_hits_uncommitted, st.write_hits_committed,
		       st.writes_around, st.writes_allocated, st.writes_blocked,
		       st.flushes, st.discards);
		DMEMIT(" %llu %s%s%s %llu %lld %lld %llu", nr_dirty,
		       pmc_flush_mode_name(pc->flush.data),
		       pc->flush.data == pc->flush.meta ? "" : "/",
		       pc->flush.data == pc->flush.meta ? "" :
		       pmc_flush_mode_name(pc->flush.meta), pc->nr_bad,
		       (long long)atomic64_read(&pc->wb_errors),
		       (long long)atomic64_read(&pc->media_errors),
		       pc->meta_errors);
		break;
	case STATUSTYPE_TABLE:
		for (i = 0; i < PMC_NR_OPTS; i++)
			if (pmc_given(o, i))
				words += pmc_opts[i].has_value ? 2 : 1;
		DMEMIT("%c %s %s %u %u", pc->pmem_mode ? 'p' : 's',
		       pc->origin->name, pc->pmem.dev->name, pc->block_size,
		       words);
		for (i = 0; i < PMC_NR_OPTS; i++) {
			if (!pmc_given(o, i))
				continue;
			if (i == PMC_OPT_FLUSH_MODE)
				DMEMIT(" %s %s", pmc_opts[i].name,
				       pmc_flush_mode_name(o->val[i]));
			else if (pmc_opts[i].has_value)
				DMEMIT(" %s %llu", pmc_opts[i].name, o->val[i]);
			else
				DMEMIT(" %s", pmc_opts[i].name);
		}
		break;
	case STATUSTYPE_IMA:
		*result = '\0';
		break;
	}
}

static void pmc_postsuspend(struct dm_target *ti)
{
	struct pmemcache *pc = ti->private;

	if (pc->flush_on_suspend && pmc_write_back_all(pc, false))
		DMERR("%pg: flush_on_suspend: writeback failed; dirty blocks stay in the cache",
		      pc->pmem.dev->bdev);
	pmc_stop_work(pc);
	/* Everything written so far is durable before a new table loads it. */
	pmc_commit(pc);
	if (pmc_writes_around(pc) && !pmc_pcheck_cut() &&
	    blkdev_issue_flush(pc->origin->bdev))
		DMERR("%pg: flushing the origin at suspend failed", pc->origin->bdev);
}

static int pmc_preresume(struct dm_target *ti)
{
	struct pmemcache *pc = ti->private;
	int r;

	if (pc->loaded)
		return 0;
	r = pmc_load(pc);
	if (r)
		return r;
	pc->loaded = true;
	return 0;
}

static void pmc_resume(struct dm_target *ti)
{
	struct pmemcache *pc = ti->private;

	spin_lock(&pc->lock);
	pc->suspended = false;
	spin_unlock(&pc->lock);
	if (pmc_given(&pc->opts, PMC_OPT_MAX_AGE))
		queue_delayed_work(pc->wq, &pc->max_age_work, 0);
	pmc_kick_writeback(pc);
}

static int pmc_message(struct dm_target *ti, unsigned int argc, char **argv,
		       char *result, unsigned int maxlen)
{
	struct pmemcache *pc = ti->private;

	if (argc != 1) {
		DMWARN("message %s: no arguments expected", argc ? argv[0] : "");
		return -EINVAL;
	}
	if (!strcasecmp(argv[0], "flush")) {
		if (!pc->loaded || READ_ONCE(pc->suspended))
			return -EBUSY;
		return pmc_write_back_all(pc, true);
	}
	if (!strcasecmp(argv[0], "flush_on_suspend")) {
		pc->flush_on_suspend = true;
		return 0;
	}
	if (!strcasecmp(argv[0], "cleaner")) {
		WRITE_ONCE(pc->cleaner, true);
		pmc_kick_writeback(pc);
		return 0;
	}
	if (!strcasecmp(argv[0], "clear_stats")) {
		pmc_clear_stats(pc);
		return 0;
	}
	DMWARN("unknown message '%s'", argv[0]);
	return -EINVAL;
}

static int pmc_iterate_devices(struct dm_target *ti,
			       iterate_devices_callout_fn fn, void *data)
{
	struct pmemcache *pc = ti->private;

	return fn(ti, pc->origin, 0, ti->len, data);
}

static void pmc_io_hints(struct dm_target *ti, struct queue_limits *limits)
{
	struct pmemcache *pc = ti->private;

	if (limits->logical_block_size < pc->block_size)
		limits->logical_block_size = pc->block_size;
	if (limits->physical_block_size < pc->block_size)
		limits->physical_block_size = pc->block_size;
	if (limits->io_min < pc->block_size)
		limits->io_min = pc->block_size;
	/* Discards drop cached blocks even when the origin takes none. */
	if (!limits->max_discard_sectors) {
		limits->max_hw_discard_sectors = UINT_MAX >> SECTOR_SHIFT;
		limits->max_discard_sectors = UINT_MAX >> SECTOR_SHIFT;
	}
	if (limits->discard_granularity < pc->block_size)
		limits->discard_granularity = pc->block_size;
}

#ifdef PMC_PERSIST_CHECK
/* Test builds: after a simulated power cut no bio ends well. */
static int pmc_end_io(struct dm_target *ti, struct bio *bio,
		      blk_status_t *error)
{
	if (pmc_pcheck_cut() && !*error)
		*error = BLK_STS_IOERR;
	return DM_ENDIO_DONE;
}
#endif

static struct target_type pmc_target = {
	.name = "pmemcache",
	.version = { 1, 0, 0 },
	.module = THIS_MODULE,
	.ctr = pmc_ctr,
	.dtr = pmc_dtr,
	.map = pmc_map,
#ifdef PMC_PERSIST_CHECK
	.end_io = pmc_end_io,
#endif
	.postsuspend = pmc_postsuspend,
	.preresume = pmc_preresume,
	.resume = pmc_resume,
	.message = pmc_message,
	.status = pmc_status,
	.iterate_devices = pmc_iterate_devices,
	.io_hints = pmc_io_hints,
};

/*
 * The same target under dm-writecache's name, for lvm2's writecache LVs;
 * filled in from pmc_target at load.  lvm2 checks the version: 1.6 is the
 * dm-writecache interface of Linux 6.1, all of whose table options,
 * messages and status fields we take.
 */
static struct target_type pmc_wc_target;

static bool writecache_name;
module_param(writecache_name, bool, 0444);
MODULE_PARM_DESC(writecache_name,
		 "Also register the target as \"writecache\", for lvm2 (default: no)");

static bool pmc_wc_registered;

static int __init pmc_init(void)
{
	int r;

	/* The on-media layout, and the RAM per block the docs promise. */
	BUILD_BUG_ON(sizeof(struct pmc_sb) != 80);
	BUILD_BUG_ON(offsetof(struct pmc_sb, version) != 4);
	BUILD_BUG_ON(sizeof(struct pmc_commit) != 16);
	BUILD_BUG_ON(sizeof(struct pmc_entry) != 32);
	BUILD_BUG_ON(PMC_COMMIT_OFFSET(1) + sizeof(struct pmc_commit) > PMC_SB_SIZE);
	BUILD_BUG_ON(sizeof(struct pmc_block) != 64);

	r = dm_register_target(&pmc_target);
	if (r) {
		DMERR("cannot register the pmemcache target: %d", r);
		return r;
	}
	if (!writecache_name)
		return 0;
	pmc_wc_target = pmc_target;
	INIT_LIST_HEAD(&pmc_wc_target.list);
	pmc_wc_target.name = "writecache";
	pmc_wc_target.version[0] = 1;
	pmc_wc_target.version[1] = 6;
	pmc_wc_target.version[2] = 0;
	r = dm_register_target(&pmc_wc_target);
	if (r) {
		/* Most likely dm-writecache holds the name: keep ours. */
		DMERR("cannot also register as \"writecache\" (%d); is dm-writecache loaded?",
		      r);
		return 0;
	}
	pmc_wc_registered = true;
	DMINFO("also registered as target \"writecache\" %u.%u.%u",
	       pmc_wc_target.version[0], pmc_wc_target.version[1],
	       pmc_wc_target.version[2]);
	return 0;
}

static void __exit pmc_exit(void)
{
	if (pmc_wc_registered)
		dm_unregister_target(&pmc_wc_target);
	dm_unregister_target(&pmc_target);
}

module_init(pmc_init);
module_exit(pmc_exit);

MODULE_DESCRIPTION(DM_NAME " persistent memory write-back cache target");
MODULE_LICENSE("GPL");
