// SPDX-License-Identifier: GPL-2.0
/*
 * dm-pmemcache: cache blocks, their entries on media, the index of
 * cached origin blocks (an rbtree under pc->lock), and the free list.
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
 * pmc_entry_crc() - the checksum of an entry
 * @pc: the cache
 * @origin: the origin block it caches
 * @seq: its sequence number
 * @idx: the data block it describes
 *
 * Return: crc32c of the three, little-endian, seeded from the uuid.
 */
u32 pmc_entry_crc(struct pmemcache *pc, u64 origin, u64 seq, u64 idx)
{
	__le64 v[3] = { cpu_to_le64(origin), cpu_to_le64(seq), cpu_to_le64(idx) };

	return crc32c(pc->crc_seed, (const u8 *)v, sizeof(v));
}

/**
 * pmc_commit_crc() - the checksum of a commit record
 * @pc: the cache
 * @seq: the sequence number it makes durable
 *
 * Return: crc32c of @seq, little-endian, seeded from the uuid.
 */
u32 pmc_commit_crc(struct pmemcache *pc, u64 seq)
{
	__le64 v = cpu_to_le64(seq);

	return crc32c(pc->crc_seed, (const u8 *)&v, sizeof(v));
}

/**
 * pmc_write_entry() - write the entry of a block
 * @pc: the cache
 * @i: the block
 * @origin: the origin block it caches
 * @seq: the sequence number of the write that filled it
 *
 * Durable after the next fence (rule 1 in flush.c).  By the writer that
 * took the block from the free list, without pc->lock: until the commit
 * of its epoch, which waits for that writer, nothing else writes the
 * entry.  (The block's own @seq may change before: pmc_retire().)
 */
void pmc_write_entry(struct pmemcache *pc, u64 i, u64 origin, u64 seq)
{
	struct pmc_entry e = {
		.origin = cpu_to_le64(origin),
		.seq = cpu_to_le64(seq),
		.crc = cpu_to_le32(pmc_entry_crc(pc, origin, seq, i)),
	};

	pmc_meta_record(pc, &pc->entries[i], &e, sizeof(e));
}

/**
 * pmc_clear_entry() - free an entry in pmem
 * @pc: the cache
 * @i: the entry
 *
 * One aligned 8-byte store of its seq, which cannot tear, then a write-back
 * of its cache line; durable after the next fence (rules 3 and 4).
 */
void pmc_clear_entry(struct pmemcache *pc, u64 i)
{
	pmc_meta_u64(pc, &pc->entries[i].seq, 0);
}

/**
 * pmc_lookup_ge() - the first indexed block at or after an origin block
 * @pc: the cache
 * @origin: the origin block
 *
 * Under pc->lock.
 *
 * Return: the indexed block caching @origin or the next cached origin
 * block, or NULL.
 */
struct pmc_block *pmc_lookup_ge(struct pmemcache *pc, u64 origin)
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
 * pmc_find() - look an origin block up, or find where it would go
 * @pc: the cache
 * @origin: the origin block
 * @hint: NULL, or the indexed block of @origin - 1 (the block before in
 *        the same bio): its successor is then the only candidate, and no
 *        descent from the root is needed
 * @slot: filled in where a block of @origin would be linked, when none
 *        is
 *
 * Under pc->lock (or before the cache is live: recovery).
 *
 * Return: the indexed block of @origin, or NULL.
 */
struct pmc_block *pmc_find(struct pmemcache *pc, u64 origin,
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

/**
 * pmc_lookup() - the indexed block of an origin block
 * @pc: the cache
 * @origin: the origin block
 *
 * Under pc->lock (or before the cache is live: recovery).
 *
 * Return: the block, or NULL.
 */
struct pmc_block *pmc_lookup(struct pmemcache *pc, u64 origin)
{
	struct pmc_slot slot;

	return pmc_find(pc, origin, NULL, &slot);
}

/**
 * pmc_index_link() - index a block where pmc_find() said it would go
 * @pc: the cache
 * @nb: the block; no block of its origin is in the index
 * @slot: what pmc_find() filled in, the index unchanged since
 *
 * Under pc->lock.
 */
void pmc_index_link(struct pmemcache *pc, struct pmc_block *nb,
		    struct pmc_slot *slot)
{
	/*
	 * The seqcount's write barrier orders the block's fields before the
	 * link; a reader that sees the link before them fails its check.
	 */
	write_seqcount_begin(&pc->index_seq);
	rb_link_node(&nb->node, slot->parent, slot->link);
	rb_insert_color(&nb->node, &pc->index);
	write_seqcount_end(&pc->index_seq);
}

/**
 * pmc_index_insert() - index a block
 * @pc: the cache
 * @nb: the block; no block of its origin is in the index
 *
 * Under pc->lock.
 */
void pmc_index_insert(struct pmemcache *pc, struct pmc_block *nb)
{
	struct pmc_slot slot;

	pmc_find(pc, nb->origin, NULL, &slot);
	pmc_index_link(pc, nb, &slot);
}

/**
 * pmc_index_replace() - put a new version of an origin block in the index
 * @pc: the cache
 * @b: the indexed block of that origin block
 * @nb: the new block, its origin set
 *
 * Same place in the index: no rebalancing.  Under pc->lock.
 */
void pmc_index_replace(struct pmemcache *pc, struct pmc_block *b,
		       struct pmc_block *nb)
{
	write_seqcount_begin(&pc->index_seq);
	rb_replace_node_rcu(&b->node, &nb->node, &pc->index);
	RB_CLEAR_NODE(&b->node);
	write_seqcount_end(&pc->index_seq);
}

/**
 * pmc_index_erase() - take a block out of the index
 * @pc: the cache
 * @b: an indexed block
 *
 * Under pc->lock.
 */
void pmc_index_erase(struct pmemcache *pc, struct pmc_block *b)
{
	write_seqcount_begin(&pc->index_seq);
	rb_erase(&b->node, &pc->index);
	RB_CLEAR_NODE(&b->node);
	write_seqcount_end(&pc->index_seq);
}

/**
 * pmc_free_dying() - free a dying block no one uses any more
 * @pc: the cache
 * @b: a block pmc_release() marked dying, or one pmc_put_user_last() said
 *     this of
 *
 * Under pc->lock.  The caller of the latter wakes pc->free_wait once it
 * let go of it.
 */
void pmc_free_dying(struct pmemcache *pc, struct pmc_block *b)
{
	lockdep_assert_held(&pc->lock);
	/* pmc_release() may have seen the count at 0, and freed it. */
	if (b->state != PMC_DYING || READ_ONCE(b->users))
		return;
	b->state = PMC_FREE;
	list_add(&b->list, &pc->free);
	pc->nr_free++;
}

/**
 * pmc_release() - free a block whose entry is zero on media
 * @pc: the cache
 * @b: the block, out of the index; its zeroed entry fenced already
 *
 * It goes back to the free list, or, while readers hold it, becomes
 * PMC_DYING and goes there with its last user.  Under pc->lock.
 */
void pmc_release(struct pmemcache *pc, struct pmc_block *b)
{
	lockdep_assert_held(&pc->lock);
	WRITE_ONCE(b->state, PMC_DYING);
	/* Pairs with the cmpxchg of pmc_get_user() and pmc_put_user_last(). */
	smp_mb();
	pmc_free_dying(pc, b);
}

/**
 * pmc_get_user() - take a user count on a block
 * @b: the block
 *
 * With or without pc->lock; fully ordered.
 *
 * Return: false if the count is at its limit (none taken).
 */
bool pmc_get_user(struct pmc_block *b)
{
	u16 old = READ_ONCE(b->users);

	do {
		if (unlikely(old == U16_MAX))
			return false;
	} while (!try_cmpxchg(&b->users, &old, old + 1));
	return true;
}

/**
 * pmc_put_user_last() - let go of a user count on a block
 * @b: the block
 *
 * With or without pc->lock; fully ordered.
 *
 * Return: true if it was the last user of a dying block: the caller
 * must then call pmc_free_dying() (under pc->lock).
 */
bool pmc_put_user_last(struct pmc_block *b)
{
	u16 old = READ_ONCE(b->users);

	while (!try_cmpxchg(&b->users, &old, old - 1))
		;
	return old == 1 && READ_ONCE(b->state) == PMC_DYING;
}

/**
 * pmc_put_user() - a reader is done with a block
 * @pc: the cache
 * @b: the block
 *
 * A PMC_DYING block is freed with its last user.  Without pc->lock.
 */
void pmc_put_user(struct pmemcache *pc, struct pmc_block *b)
{
	if (likely(!pmc_put_user_last(b)))
		return;
	spin_lock(&pc->lock);
	pmc_free_dying(pc, b);
	spin_unlock(&pc->lock);
	wake_up_all(&pc->free_wait);
}

/*
 * Lockless lookups.  A read hit finds its blocks without pc->lock: it
 * walks the index, takes a user count on each block it found, then
 * checks that @index_seq did not move since it began.  If it did not,
 * the walk saw the index as it was then, so every block it counted was
 * the newest version of its origin block when counted, and cannot be
 * freed while counted: pmc_release() frees no block with users.  If it
 * did move, the reader lets the blocks go and tries again, in the end
 * under the lock.
 *
 * A walk that races with a writer may follow a node that moved (blocks
 * are reused at once, with no RCU grace period), so it may go astray;
 * but it only ever follows pointers to nodes of pc->blocks, and gives up
 * after PMC_WALK_MAX steps: no loop, no stray access.
 *
 * Ordering: the reader's count (a cmpxchg, fully ordered) comes before
 * its check of @index_seq.  The block left the index (a bump of
 * @index_seq) before pmc_release(), which marks it dying, then a full
 * barrier, then reads its count.  Either the reader sees the bump and
 * lets go, or pmc_release() sees the count and leaves the freeing to the
 * last user; that user's cmpxchg comes before its read of the state, so
 * one of the two sees the other (pmc_free_dying() frees it once).
 *
 * The check cannot tell @index_seq from the same value 2^31 changes of
 * the index later; a reader would have to stop between its walk and its
 * check for that long (minutes at millions of writes a second).
 */

/* More steps than a walk of any valid rbtree of up to 2^64 nodes takes. */
#define PMC_WALK_MAX	130

/* pmc_lookup_ge() without pc->lock; false if the walk gave up. */
static bool pmc_walk_ge(struct pmemcache *pc, u64 origin,
			struct pmc_block **found)
{
	struct rb_node *n = READ_ONCE(pc->index.rb_node);
	struct pmc_block *best = NULL;
	unsigned int steps = 0;

	while (n) {
		struct pmc_block *b = rb_entry(n, struct pmc_block, node);
		u64 o = READ_ONCE(b->origin);

		if (++steps > PMC_WALK_MAX)
			return false;
		if (origin < o) {
			best = b;
			n = READ_ONCE(n->rb_left);
		} else if (origin > o) {
			n = READ_ONCE(n->rb_right);
		} else {
			best = b;
			break;
		}
	}
	*found = best;
	return true;
}

/*
 * The block after @b in the index, if it caches @origin (else NULL): the
 * leftmost node of @b's right subtree (child pointers only), or else a
 * walk from the root.  Without pc->lock; false if a walk gave up.
 */
static bool pmc_walk_next(struct pmemcache *pc, struct pmc_block *b,
			  u64 origin, struct pmc_block **found)
{
	struct rb_node *n = READ_ONCE(b->node.rb_right), *l;
	unsigned int steps = 0;

	if (!n) {
		if (!pmc_walk_ge(pc, origin, found))
			return false;
	} else {
		while ((l = READ_ONCE(n->rb_left))) {
			if (++steps > PMC_WALK_MAX)
				return false;
			n = l;
		}
		*found = rb_entry(n, struct pmc_block, node);
	}
	if (*found && READ_ONCE((*found)->origin) != origin)
		*found = NULL;
	return true;
}

/* pmc_read_pin() under pc->lock; 0 (and no count) if a count was full. */
static unsigned int pmc_read_pin_locked(struct pmemcache *pc, u64 first,
					unsigned int nr, unsigned int most,
					struct pmc_block **run, bool *cached)
{
	unsigned int n;

	spin_lock(&pc->lock);
	run[0] = pmc_lookup_ge(pc, first);
	*cached = run[0] && run[0]->origin == first;
	if (!*cached) {
		n = run[0] ? min_t(u64, nr, run[0]->origin - first) : nr;
		spin_unlock(&pc->lock);
		return n;
	}
	for (n = 0; n < most; n++) {
		if (n) {
			struct rb_node *next = rb_next(&run[n - 1]->node);

			if (!next)
				break;
			run[n] = rb_entry(next, struct pmc_block, node);
			if (run[n]->origin != first + n)
				break;
		}
		if (!pmc_get_user(run[n]))
			break;
	}
	spin_unlock(&pc->lock);
	return n;
}

/**
 * pmc_read_pin() - find the first run of a read, and hold its blocks
 * @pc: the cache
 * @first: the origin block the read begins at
 * @nr: its length in blocks, 1 or more
 * @most: the most cached blocks to hold, 1 or more
 * @run: filled in with the blocks of the run, if cached; room for @most
 * @cached: set if the run is cached
 *
 * The run is the blocks from @first on that are all cached (at most
 * @most, each held with a user count: pmc_put_user() each when done), or
 * all not.
 * Without pc->lock, unless the index kept changing under the walk (see
 * above).  May sleep.
 *
 * Return: the length of the run, 1 to @nr.
 */
unsigned int pmc_read_pin(struct pmemcache *pc, u64 first, unsigned int nr,
			  unsigned int most, struct pmc_block **run, bool *cached)
{
	unsigned int seq, n, i, tries;
	bool whole;

	most = min(most, nr);
	for (tries = 0; tries < 2; tries++) {
		seq = read_seqcount_begin(&pc->index_seq);
		if (!pmc_walk_ge(pc, first, &run[0]))
			continue;
		*cached = run[0] && READ_ONCE(run[0]->origin) == first;
		if (!*cached) {
			/* Up to the first cached block. */
			n = run[0] ? min_t(u64, nr, READ_ONCE(run[0]->origin) - first) : nr;
			if (n && !read_seqcount_retry(&pc->index_seq, seq))
				return n;
			continue;
		}
		pmc_test_point(PMC_TP_READ_FOUND);
		whole = true;
		for (n = 0; n < most; n++) {
			if (n && !pmc_walk_next(pc, run[n - 1], first + n, &run[n])) {
				whole = false;
				break;
			}
			if (n && !run[n])
				break;
			if (!pmc_get_user(run[n]))
				break;
		}
		pmc_test_point(PMC_TP_READ_HELD);
		if (whole && n && !read_seqcount_retry(&pc->index_seq, seq))
			return n;
		for (i = 0; i < n; i++)
			pmc_put_user(pc, run[i]);
	}
	for (;;) {
		n = pmc_read_pin_locked(pc, first, nr, most, run, cached);
		if (n)
			return n;
		/* 65535 users of one block: wait for one to go. */
		schedule_timeout_uninterruptible(1);
	}
}

/**
 * pmc_retire() - a block is no longer the newest of its origin block
 * @pc: the cache
 * @b: the block, out of the index already
 * @seq: the sequence number of the write that supersedes it (the open
 *       sequence for a discard)
 *
 * Its entry must stay valid on media until @seq is committed: it waits on
 * the superseded list (or, under writeback, for that to end).  Under
 * pc->lock.
 */
void pmc_retire(struct pmemcache *pc, struct pmc_block *b, u64 seq)
{
	lockdep_assert_held(&pc->lock);
	b->seq = seq;
	if (b->state == PMC_DIRTY)
		list_add_tail(&b->list, &pc->superseded);
	else	/* PMC_WRITEBACK: dealt with when its writeback ends. */
		pc->nr_wb_superseded++;
}

/**
 * pmc_used_percent() - how full the cache is
 * @pc: the cache
 *
 * Return: blocks in use, in percent of the usable ones.
 */
u64 pmc_used_percent(struct pmemcache *pc)
{
	return div64_u64((pmc_usable(pc) - pc->nr_free) * 100,
			 max_t(u64, pmc_usable(pc), 1));
}

/**
 * pmc_kick_writeback() - run writeback now, unless suspended
 * @pc: the cache
 */
void pmc_kick_writeback(struct pmemcache *pc)
{
	if (!READ_ONCE(pc->suspended))
		mod_delayed_work(pc->wq, &pc->writeback_work, 0);
}

/**
 * pmc_lock_break() - let go of pc->lock now and then in a long loop
 * @pc: the cache, its lock held
 * @turns: the loop's counter
 *
 * Every PMC_LOCK_BATCH turns the lock is dropped for a moment: what the
 * loop holds must be safe meanwhile, and where it is in the index may
 * have gone.
 *
 * Return: true when it let go.
 */
bool pmc_lock_break(struct pmemcache *pc, unsigned int *turns)
{
	lockdep_assert_held(&pc->lock);
	if (++*turns % PMC_LOCK_BATCH)
		return false;
	spin_unlock(&pc->lock);
	cond_resched();
	spin_lock(&pc->lock);
	return true;
}
