// SPDX-License-Identifier: GPL-2.0
/*
 * The persistence checker: a model of what persistent memory would hold
 * after a power cut, so that tests can see what the emulator hides (under
 * QEMU every store reaches the NVDIMM's backing file, flushed or not).
 * Compiled only into test builds (make PMC_PERSIST_CHECK=y; make check
 * builds it in), and idle there until a test sets persist_check.
 *
 * The model, x86 with ADR: a store into the cache is durable only once it
 * was written back - by a non-temporal store, clwb, clflushopt or clflush
 * - and the task that wrote it back has fenced since.  flush.c reports
 * each store it makes (pmc_copy_to_pmem(), pmc_flush_range(),
 * pmc_write_u64()) and what of it was written back - each line its flush
 * loop wrote back, or the whole store when it was non-temporal - with the
 * bytes as they are at that moment; bytes stored but not written back,
 * and stores that do not go through flush.c, are never durable here.  A fence by one task
 * makes nothing of another task's durable: sfence orders the stores of
 * its own CPU only.  pmc_publish_stores() (flush.c) is the one place where
 * the engine lets a locked instruction stand in for a fence.
 *
 * The model keeps the durable image of the whole mapped cache (one
 * vmalloc()ed copy, so meant for test caches of tens of MiB) and a list of
 * the stores not yet durable.  A power cut, at the k-th fence or the k-th
 * store counted since persist_reset, writes the durable image over the
 * cache - in the adversarial variants after letting a random subset of
 * the pending stores persist, per cache line or per aligned 8-byte word,
 * as hardware may - and from then on flush.c drops every store, fences do
 * nothing, and the engine sends nothing more to the origin and fails
 * every bio it completes: the machine is off, as far as the cache and the
 * origin can tell.  Tear the target down, persist_reset, and activate it
 * again to see what a restart would find.  At a clean teardown the
 * pending stores drain (they would within nanoseconds) and the cache is
 * set to the durable image: a store that bypassed flush.c is lost there
 * too.
 *
 * Module parameters (/sys/module/dm_pmemcache/parameters/):
 *   persist_check     - 1: model the next cache activated (one at a time;
 *                       fences are counted whatever cache makes them, so
 *                       a test runs one cache while it counts)
 *   persist_cut_fence - cut the power instead of the k-th fence (0: never)
 *   persist_cut_store - cut the power instead of the k-th store (0: never)
 *   persist_adversary - 0: only what was fenced survives; 1: also a random
 *                       subset of the pending stores, per cache line;
 *                       2: the same per aligned 8-byte word
 *   persist_seed      - seed of that random choice (0 counts as 1)
 *   persist_reset     - write anything: counters to zero, power back on
 *                       (refused while the cache cut off is still active)
 *   persist_fences, persist_stores - counted since the last reset
 *   persist_cut       - "none", or which fence or store the cut replaced
 *                       and which stores it lost
 */

#include <linux/cache.h>
#include <linux/list.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include <linux/uaccess.h>
#include <linux/vmalloc.h>

#include "dm-pmemcache.h"

/*
 * The model of one cache: 64 MiB, more than a test needs (a cut copies it
 * with interrupts off).
 */
#define PCM_MAX_SIZE		(64UL << 20)
/* Stores waiting for a fence: beyond this the model gives up (and says so). */
#define PCM_MAX_PENDING		65536
#define PCM_DESC_LEN		512

/**
 * struct pcm_store - a store written back, not yet fenced
 * @list: in pcm.pending, oldest first
 * @pid: the task that wrote it back: only its fence makes it durable
 * @start: that task's start time (a pid, like a task_struct, is reused)
 * @caller: where in the engine it was made
 * @nt: made with non-temporal stores (see pcm_supersede())
 * @off: offset in the cache
 * @len: bytes
 * @data: the bytes as they were when written back
 */
struct pcm_store {
	struct list_head list;
	pid_t pid;
	u64 start;
	unsigned long caller;
	bool nt;
	size_t off;
	size_t len;
	u8 data[];
};

static struct {
	spinlock_t lock;	/* everything below */
	unsigned long gen;
	const void *owner;
	void *base;
	size_t size;
	u8 *durable;
	struct list_head pending;
	unsigned long nr_pending;
	unsigned long fences;
	unsigned long stores;
	bool cut;
	bool overflow;
	bool refused;
	u64 rnd;
	char desc[PCM_DESC_LEN];
} pcm = {
	.lock = __SPIN_LOCK_UNLOCKED(pcm.lock),
	.pending = LIST_HEAD_INIT(pcm.pending),
	.desc = "none",
};

static bool pcm_enable;
static ulong pcm_cut_fence;
static ulong pcm_cut_store;
static int pcm_adversary;
static ulong pcm_seed = 1;

module_param_named(persist_check, pcm_enable, bool, 0644);
MODULE_PARM_DESC(persist_check, "Test builds: model the persistence of the next cache activated");
module_param_named(persist_cut_fence, pcm_cut_fence, ulong, 0644);
MODULE_PARM_DESC(persist_cut_fence, "Test builds: cut the power instead of this fence (0: never)");
module_param_named(persist_cut_store, pcm_cut_store, ulong, 0644);
MODULE_PARM_DESC(persist_cut_store, "Test builds: cut the power instead of this store (0: never)");
static int pcm_adversary_set(const char *val, const struct kernel_param *kp)
{
	int v, r = kstrtoint(val, 0, &v);

	if (r)
		return r;
	if (v < 0 || v > 2)
		return -EINVAL;
	WRITE_ONCE(pcm_adversary, v);
	return 0;
}

static const struct kernel_param_ops pcm_adversary_ops = {
	.set = pcm_adversary_set,
	.get = param_get_int,
};

module_param_cb(persist_adversary, &pcm_adversary_ops, &pcm_adversary, 0644);
MODULE_PARM_DESC(persist_adversary, "Test builds: pending stores that survive a cut: 0 none, 1 some lines, 2 some words");
module_param_named(persist_seed, pcm_seed, ulong, 0644);
MODULE_PARM_DESC(persist_seed, "Test builds: seed of the adversary's choice (0 counts as 1)");

/* xorshift64: reproducible from persist_seed, unlike get_random_u32(). */
static bool pcm_coin(void)
{
	u64 x = pcm.rnd;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	pcm.rnd = x;
	return x & 1;
}

static void pcm_free_pending(void)
{
	struct pcm_store *s, *tmp;

	list_for_each_entry_safe(s, tmp, &pcm.pending, list) {
		list_del(&s->list);
		kfree(s);
	}
	pcm.nr_pending = 0;
}

/* A pending store could not be kept: the model is wrong from here. */
static void pcm_overflowed(void)
{
	if (!pcm.overflow)
		pr_err("dm-pmemcache: persist_check: out of memory for pending stores: the model is wrong from here\n");
	pcm.overflow = true;
}

/* Let the adversary persist some of @s, in units of @unit aligned bytes. */
static void pcm_persist_some(struct pcm_store *s, size_t unit)
{
	size_t pos = s->off, end = s->off + s->len;

	while (pos < end) {
		size_t next = min(round_down(pos, unit) + unit, end);

		if (pcm_coin())
			memcpy(pcm.durable + pos, s->data + (pos - s->off),
			       next - pos);
		pos = next;
	}
}

/* The power goes off: under pcm.lock, instead of fence or store @nr. */
static void pcm_cut_now(const char *what, unsigned long nr,
			unsigned long caller)
{
	struct pcm_store *s;
	int len, shown = 0;

	len = scnprintf(pcm.desc, PCM_DESC_LEN,
			"%s %lu (%pS), adversary %d seed %lu; lost %lu pending store(s)",
			what, nr, (void *)caller, pcm_adversary, pcm_seed,
			pcm.nr_pending);
	pcm.rnd = pcm_seed ?: 1;
	list_for_each_entry(s, &pcm.pending, list) {
		if (shown++ < 4)
			len += scnprintf(pcm.desc + len, PCM_DESC_LEN - len,
					 "%s %pS at %zu+%zu",
					 shown == 1 ? ":" : ",",
					 (void *)s->caller, s->off, s->len);
		if (pcm_adversary == 1)
			pcm_persist_some(s, L1_CACHE_BYTES);
		else if (pcm_adversary == 2)
			pcm_persist_some(s, sizeof(u64));
	}
	pcm_free_pending();
	memcpy(pcm.base, pcm.durable, pcm.size);
	pcm.cut = true;
	pr_info("dm-pmemcache: persist_check: power cut at %s\n", pcm.desc);
}

/**
 * pmc_pcheck_attach() - model the persistence of a cache just mapped
 * @owner: who will detach it
 * @base: the mapping
 * @size: its bytes
 *
 * Only when persist_check is set, the power is on and no other cache is
 * modelled; the durable image starts as the cache's contents.
 */
void pmc_pcheck_attach(const void *owner, void *base, size_t size)
{
	u8 *img;

	spin_lock_irq(&pcm.lock);
	if (pcm.base) {
		/*
		 * A table reload, or a second cache: the modelled table must
		 * not rewrite the cache at its teardown, since this one may
		 * use it by then.  For the rest of the model's life: which
		 * of the tables goes first is not known here.
		 */
		pcm.refused = true;
		spin_unlock_irq(&pcm.lock);
		return;
	}
	spin_unlock_irq(&pcm.lock);
	if (!READ_ONCE(pcm_enable))
		return;
	if (size > PCM_MAX_SIZE) {
		pr_warn("dm-pmemcache: persist_check: cache of %zu bytes too large to model\n",
			size);
		return;
	}
	img = vmalloc(size);
	if (!img)
		return;
	if (copy_mc_to_kernel(img, base, size)) {
		pr_warn("dm-pmemcache: persist_check: media error: not modelled\n");
		vfree(img);
		return;
	}
	spin_lock_irq(&pcm.lock);
	if (pcm.base || pcm.cut) {
		if (pcm.base)
			pcm.refused = true;
		spin_unlock_irq(&pcm.lock);
		vfree(img);
		return;
	}
	pcm_free_pending();
	pcm.gen++;
	pcm.durable = img;
	pcm.owner = owner;
	pcm.size = size;
	pcm.base = base;
	spin_unlock_irq(&pcm.lock);
	pr_info("dm-pmemcache: persist_check: modelling %zu bytes\n", size);
}

/**
 * pmc_pcheck_detach() - a cache is let go of
 * @owner: as given to pmc_pcheck_attach()
 *
 * Without a power cut, the pending stores drain; then the cache is set to
 * the durable image, which loses any store that bypassed flush.c.
 */
void pmc_pcheck_detach(const void *owner)
{
	struct pcm_store *s;
	u8 *img;

	spin_lock_irq(&pcm.lock);
	if (!pcm.base || pcm.owner != owner) {
		spin_unlock_irq(&pcm.lock);
		return;
	}
	if (!pcm.cut && !pcm.refused) {
		list_for_each_entry(s, &pcm.pending, list)
			memcpy(pcm.durable + s->off, s->data, s->len);
		memcpy(pcm.base, pcm.durable, pcm.size);
	} else if (pcm.refused) {
		pr_warn("dm-pmemcache: persist_check: another table took the cache over: the model stops here\n");
	}
	pcm.refused = false;
	pcm_free_pending();
	pcm.gen++;
	img = pcm.durable;
	pcm.durable = NULL;
	pcm.base = NULL;
	pcm.owner = NULL;
	spin_unlock_irq(&pcm.lock);
	vfree(img);
}

/**
 * pmc_pcheck_cut() - has the power been cut?
 *
 * Return: true from a cut until persist_reset.
 */
bool pmc_pcheck_cut(void)
{
	return READ_ONCE(pcm.cut);
}

/**
 * pmc_pcheck_store_begin() - flush.c is about to store into pmem
 * @op: filled in; pass to pmc_pcheck_store_end()
 * @dst: where
 * @len: bytes
 * @caller: the engine's code making the store
 *
 * Return: false when the store must not be made (the power is off, or
 * this store is where it goes off).  When true, pmc_pcheck_store_end()
 * must follow the store.
 */
bool pmc_pcheck_store_begin(struct pmc_pcheck_op *op, void *dst, size_t len,
			    unsigned long caller)
{
	unsigned long flags;
	bool make = true;

	op->watched = false;
	if (!READ_ONCE(pcm.base) && !READ_ONCE(pcm.cut))
		return true;
	spin_lock_irqsave(&pcm.lock, flags);
	if (pcm.cut) {
		make = false;
	} else if (pcm.base && dst >= pcm.base && len <= pcm.size &&
		   dst - pcm.base <= pcm.size - len) {
		if (++pcm.stores == READ_ONCE(pcm_cut_store)) {
			pcm_cut_now("store", pcm.stores, caller);
			make = false;
		} else {
			op->watched = true;
			op->nt = false;
			op->gen = pcm.gen;
			op->dst = dst;
			op->len = len;
			op->caller = caller;
			op->wb_from = NULL;
			op->wb_to = NULL;
		}
	}
	spin_unlock_irqrestore(&pcm.lock, flags);
	return make;
}

/**
 * pmc_pcheck_written_back() - part of a store was written back
 * @op: from pmc_pcheck_store_begin()
 * @addr: start of what was written back (a cache line, or a range stored
 *        non-temporally)
 * @len: its bytes
 *
 * Only the bytes written back become pending at pmc_pcheck_store_end();
 * of a line, only those the store covers (the rest of the line is someone
 * else's to write back).  Calls come in address order.
 */
void pmc_pcheck_written_back(struct pmc_pcheck_op *op, void *addr, size_t len)
{
	void *from, *to;

	if (!op->watched)
		return;
	from = max(addr, op->dst);
	to = min(addr + len, op->dst + op->len);
	if (from >= to)
		return;
	if (!op->wb_to) {
		op->wb_from = from;
		op->wb_to = to;
	} else if (from <= op->wb_to) {
		op->wb_to = max(op->wb_to, to);
	} else {
		/* A gap: what follows it is not counted as written back. */
		pr_warn_once("dm-pmemcache: persist_check: write-back with a gap at %pS\n",
			     (void *)op->caller);
	}
}

/*
 * @newer just became durable: the bytes it covers of pending stores
 * older than it (before it in pcm.pending) can no longer persist, when
 * they went through the cache: stores to one address are ordered (cache
 * coherence), so once the newer value is durable an older line written
 * back cannot land over it - neither when its task fences nor when the
 * adversary picks it at a cut.  Until then it may (its write-back may
 * have landed before the newer store was made), so nothing is trimmed at
 * store time.  A non-temporal store of another task is not trimmed: it
 * may still sit in that CPU's write-combining buffer, unseen by the CPU
 * that made @newer, and land after it - the engine must not let that
 * happen (it publishes or fences before another task may store there),
 * and a model that trimmed it could not catch an engine that does.
 * Under pcm.lock.
 */
static void pcm_supersede(struct pcm_store *newer)
{
	size_t off = newer->off, end = newer->off + newer->len;
	struct pcm_store *s, *tmp, *tail;

	list_for_each_entry_safe(s, tmp, &pcm.pending, list) {
		size_t s_end = s->off + s->len;

		if (s == newer)
			break;
		if (s_end <= off || s->off >= end)
			continue;
		if (s->nt && (s->pid != newer->pid || s->start != newer->start)) {
			pr_warn_once("dm-pmemcache: persist_check: %pS made durable bytes that a non-temporal store of another task (%pS) still holds unfenced: that store may land after it\n",
				     (void *)newer->caller, (void *)s->caller);
			continue;
		}
		if (off <= s->off && end >= s_end) {
			list_del(&s->list);
			kfree(s);
			pcm.nr_pending--;
		} else if (off <= s->off) {
			memmove(s->data, s->data + (end - s->off), s_end - end);
			s->len = s_end - end;
			s->off = end;
		} else if (end >= s_end) {
			s->len = off - s->off;
		} else {
			/* Inside: its tail becomes a store of its own. */
			tail = kmalloc(struct_size(tail, data, s_end - end),
				       GFP_ATOMIC | __GFP_NOWARN);
			if (!tail || pcm.nr_pending >= PCM_MAX_PENDING) {
				kfree(tail);
				pcm_overflowed();
				continue;
			}
			*tail = *s;
			tail->off = end;
			tail->len = s_end - end;
			memcpy(tail->data, s->data + (end - s->off), tail->len);
			s->len = off - s->off;
			list_add(&tail->list, &s->list);
			pcm.nr_pending++;
		}
	}
}

/**
 * pmc_pcheck_store_end() - the store announced has been made
 * @op: from pmc_pcheck_store_begin()
 *
 * Records the bytes written back, as they are now in pmem, as pending
 * until this task fences.  Bytes stored but not written back are never
 * durable.  If the power went off meanwhile (on another CPU), the store
 * is undone: it came too late.
 */
void pmc_pcheck_store_end(struct pmc_pcheck_op *op)
{
	struct pcm_store *s;
	unsigned long flags;
	size_t off;

	if (!op->watched)
		return;
	spin_lock_irqsave(&pcm.lock, flags);
	if (op->gen != pcm.gen || !pcm.base) {
		/* The model ended (a reload) while the store was made. */
		spin_unlock_irqrestore(&pcm.lock, flags);
		return;
	}
	if (pcm.cut) {
		off = op->dst - pcm.base;
		memcpy(op->dst, pcm.durable + off, op->len);
		spin_unlock_irqrestore(&pcm.lock, flags);
		return;
	}
	if (!op->wb_to) {
		spin_unlock_irqrestore(&pcm.lock, flags);
		return;
	}
	off = op->wb_from - pcm.base;
	s = kmalloc(struct_size(s, data, op->wb_to - op->wb_from),
		    GFP_ATOMIC | __GFP_NOWARN);
	if (!s || pcm.nr_pending >= PCM_MAX_PENDING) {
		kfree(s);
		pcm_overflowed();
	} else {
		s->pid = current->pid;
		s->start = current->start_time;
		s->caller = op->caller;
		s->nt = op->nt;
		s->off = off;
		s->len = op->wb_to - op->wb_from;
		memcpy(s->data, op->wb_from, s->len);
		list_add_tail(&s->list, &pcm.pending);
		pcm.nr_pending++;
	}
	spin_unlock_irqrestore(&pcm.lock, flags);
}

/**
 * pmc_pcheck_fence() - the calling task is about to fence
 * @caller: the engine's code fencing
 *
 * Return: false when the fence must not be executed (the power is off,
 * or this fence is where it goes off); else the task's pending stores are
 * durable from now on.
 */
bool pmc_pcheck_fence(unsigned long caller)
{
	struct pcm_store *s, *tmp;
	unsigned long flags;

	if (!READ_ONCE(pcm.base) && !READ_ONCE(pcm.cut))
		return true;
	spin_lock_irqsave(&pcm.lock, flags);
	if (pcm.cut) {
		spin_unlock_irqrestore(&pcm.lock, flags);
		return false;
	}
	if (!pcm.base) {
		spin_unlock_irqrestore(&pcm.lock, flags);
		return true;
	}
	if (++pcm.fences == READ_ONCE(pcm_cut_fence)) {
		pcm_cut_now("fence", pcm.fences, caller);
		spin_unlock_irqrestore(&pcm.lock, flags);
		return false;
	}
	list_for_each_entry_safe(s, tmp, &pcm.pending, list) {
		if (s->pid != current->pid || s->start != current->start_time)
			continue;
		pcm_supersede(s);
		memcpy(pcm.durable + s->off, s->data, s->len);
		list_del(&s->list);
		kfree(s);
		pcm.nr_pending--;
	}
	spin_unlock_irqrestore(&pcm.lock, flags);
	return true;
}

static int pcm_reset_set(const char *val, const struct kernel_param *kp)
{
	spin_lock_irq(&pcm.lock);
	if (pcm.cut && pcm.base) {
		/* The engine that saw the cut would go on as if nothing was. */
		spin_unlock_irq(&pcm.lock);
		return -EBUSY;
	}
	pcm.fences = 0;
	pcm.stores = 0;
	pcm.cut = false;
	pcm.overflow = false;
	strscpy(pcm.desc, "none", PCM_DESC_LEN);
	spin_unlock_irq(&pcm.lock);
	return 0;
}

static const struct kernel_param_ops pcm_reset_ops = {
	.set = pcm_reset_set,
};

module_param_cb(persist_reset, &pcm_reset_ops, NULL, 0200);
MODULE_PARM_DESC(persist_reset, "Test builds: counters to zero, power back on");

static int pcm_get(char *buf, const struct kernel_param *kp)
{
	unsigned long which = (unsigned long)kp->arg, v;
	int n;

	spin_lock_irq(&pcm.lock);
	if (which == 2) {
		n = sysfs_emit(buf, "%s%s\n", pcm.desc,
			       pcm.overflow ? " (the model overflowed)" : "");
		spin_unlock_irq(&pcm.lock);
		return n;
	}
	v = which == 0 ? pcm.fences : which == 1 ? pcm.stores : pcm.nr_pending;
	spin_unlock_irq(&pcm.lock);
	return sysfs_emit(buf, "%lu\n", v);
}

static const struct kernel_param_ops pcm_get_ops = {
	.get = pcm_get,
};

module_param_cb(persist_fences, &pcm_get_ops, (void *)0UL, 0444);
MODULE_PARM_DESC(persist_fences, "Test builds: fences since persist_reset");
module_param_cb(persist_stores, &pcm_get_ops, (void *)1UL, 0444);
MODULE_PARM_DESC(persist_stores, "Test builds: stores since persist_reset");
module_param_cb(persist_cut, &pcm_get_ops, (void *)2UL, 0444);
MODULE_PARM_DESC(persist_cut, "Test builds: where the power was cut, or none");
module_param_cb(persist_pending, &pcm_get_ops, (void *)3UL, 0444);
MODULE_PARM_DESC(persist_pending, "Test builds: stores waiting for a fence");
