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

u32 pmc_entry_crc(struct pmemcache *pc, u64 origin, u64 seq, u64 idx)
{
	__le64 v[3] = { cpu_to_le64(origin), cpu_to_le64(seq), cpu_to_le64(idx) };

	return crc32c(pc->crc_seed, (const u8 *)v, sizeof(v));
}

u32 pmc_commit_crc(struct pmemcache *pc, u64 seq)
{
	__le64 v = cpu_to_le64(seq);

	return crc32c(pc->crc_seed, (const u8 *)&v, sizeof(v));
}

/* Write the entry of @b; durable after the next fence.  Under pc->lock. */
void pmc_write_entry(struct pmemcache *pc, struct pmc_block *b)
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
void pmc_clear_entry(struct pmemcache *pc, u64 i)
{
	pmc_zero_u64(pc->flush.meta, &pc->entries[i].seq);
}

/* The first indexed block caching @origin or a later origin block. */
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

/*
 * The indexed block of @origin, or NULL and in @slot where it would go.
 * @hint, when not NULL, is the indexed block of @origin - 1 (the block
 * before in the same bio): its successor is then the only candidate, and
 * no descent from the root is needed.  Under pc->lock.
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

struct pmc_block *pmc_lookup(struct pmemcache *pc, u64 origin)
{
	struct pmc_slot slot;

	return pmc_find(pc, origin, NULL, &slot);
}

/* Index @nb, whose origin block is not in the index.  Under pc->lock. */
void pmc_index_insert(struct pmemcache *pc, struct pmc_block *nb)
{
	struct pmc_slot slot;

	pmc_find(pc, nb->origin, NULL, &slot);
	rb_link_node(&nb->node, slot.parent, slot.link);
	rb_insert_color(&nb->node, &pc->index);
}

void pmc_index_erase(struct pmemcache *pc, struct pmc_block *b)
{
	rb_erase(&b->node, &pc->index);
	RB_CLEAR_NODE(&b->node);
}

/*
 * A block whose entry is zero on media (and fenced) goes back to the free
 * list, or waits for its last user.  Under pc->lock.
 */
void pmc_release(struct pmemcache *pc, struct pmc_block *b)
{
	if (b->users) {
		b->state = PMC_DYING;
		return;
	}
	b->state = PMC_FREE;
	list_add(&b->list, &pc->free);
	pc->nr_free++;
}

void pmc_put_user(struct pmemcache *pc, struct pmc_block *b)
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
void pmc_retire(struct pmemcache *pc, struct pmc_block *b, u64 seq)
{
	b->seq = seq;
	if (b->state == PMC_DIRTY)
		list_add_tail(&b->list, &pc->superseded);
	else	/* PMC_WRITEBACK: dealt with when its writeback ends. */
		pc->nr_wb_superseded++;
}

u64 pmc_used_percent(struct pmemcache *pc)
{
	return div64_u64((pmc_usable(pc) - pc->nr_free) * 100,
			 max_t(u64, pmc_usable(pc), 1));
}

void pmc_kick_writeback(struct pmemcache *pc)
{
	if (!READ_ONCE(pc->suspended))
		mod_delayed_work(pc->wq, &pc->writeback_work, 0);
}

/*
 * In such a loop, under pc->lock: every PMC_LOCK_BATCH turns, let go of
 * the lock for a moment.  Returns true when it did: what the loop holds
 * must be safe meanwhile, and where it is in the index may have gone.
 */
bool pmc_lock_break(struct pmemcache *pc, unsigned int *turns)
{
	if (++*turns % PMC_LOCK_BATCH)
		return false;
	spin_unlock(&pc->lock);
	cond_resched();
	spin_lock(&pc->lock);
	return true;
}
