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
 * pmc_write_entry() - write the entry of a block in pmem
 * @pc: the cache
 * @b: the block, its @origin and @seq set
 *
 * Durable after the next fence (rule 1 in flush.c).  Under pc->lock.
 */
void pmc_write_entry(struct pmemcache *pc, struct pmc_block *b)
{
	u64 i = pmc_idx(pc, b);
	struct pmc_entry e = {
		.origin = cpu_to_le64(b->origin),
		.seq = cpu_to_le64(b->seq),
		.crc = cpu_to_le32(pmc_entry_crc(pc, b->origin, b->seq, i)),
	};

	lockdep_assert_held(&pc->lock);
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
 * pmc_index_insert() - index a block
 * @pc: the cache
 * @nb: the block; no block of its origin is in the index
 *
 * Under pc->lock (or before the cache is live: recovery).
 */
void pmc_index_insert(struct pmemcache *pc, struct pmc_block *nb)
{
	struct pmc_slot slot;

	pmc_find(pc, nb->origin, NULL, &slot);
	rb_link_node(&nb->node, slot.parent, slot.link);
	rb_insert_color(&nb->node, &pc->index);
}

/**
 * pmc_index_erase() - take a block out of the index
 * @pc: the cache
 * @b: an indexed block
 *
 * Under pc->lock (or before the cache is live: recovery).
 */
void pmc_index_erase(struct pmemcache *pc, struct pmc_block *b)
{
	rb_erase(&b->node, &pc->index);
	RB_CLEAR_NODE(&b->node);
}

/**
 * pmc_release() - free a block whose entry is zero on media
 * @pc: the cache
 * @b: the block; its zeroed entry fenced already
 *
 * It goes back to the free list, or, while readers copy from it, becomes
 * PMC_DYING and goes there with its last user.  Under pc->lock.
 */
void pmc_release(struct pmemcache *pc, struct pmc_block *b)
{
	lockdep_assert_held(&pc->lock);
	if (b->users) {
		b->state = PMC_DYING;
		return;
	}
	b->state = PMC_FREE;
	list_add(&b->list, &pc->free);
	pc->nr_free++;
}

/**
 * pmc_put_user() - a reader is done with a block
 * @pc: the cache
 * @b: the block
 *
 * A PMC_DYING block is freed with its last user.  Under pc->lock.
 */
void pmc_put_user(struct pmemcache *pc, struct pmc_block *b)
{
	lockdep_assert_held(&pc->lock);
	if (!--b->users && b->state == PMC_DYING) {
		pmc_release(pc, b);
		wake_up_all(&pc->free_wait);
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
