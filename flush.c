// SPDX-License-Identifier: GPL-2.0
/*
 * Persistence primitives for the persistent memory cache.
 *
 * Nothing else in the module issues cache-flush or non-temporal
 * instructions, nor stores into the mapped cache: test builds with the
 * persistence checker (persist_check.c) see every store made here, and
 * treat any other as never durable.  The operations:
 *   pmc_copy_to_pmem() - copy into pmem, durable after the next fence;
 *   pmc_flush_range()  - write back a range already stored in pmem,
 *                        durable after the next fence;
 *   pmc_fence()        - order and complete everything above, for the
 *                        calling CPU;
 *   pmc_publish_stores() - the same before a hand-off to another task;
 * and two inline shortcuts in dm-pmemcache.h for the metadata records
 * written on every I/O: pmc_copy_record() and pmc_zero_u64().
 *
 * Strategies (table option flush_mode):
 *   movnt      - memcpy_flushcache(): non-temporal stores (movnti) on x86,
 *                bypassing the CPU cache; no flush loop needed.
 *   clwb       - an ordinary copy, then clwb on every cache line: the data
 *                stays in the CPU cache for reads that follow.
 *   clflushopt - the same with clflushopt (CPUs without clwb).
 *   clflush    - the same with clflush (every x86-64 CPU; serialising).
 *   generic    - architectures other than x86: the kernel's pmem API.
 *   auto       - chosen per operation from the CPU's features and
 *                tools/bench-flush measurements (Documentation/): movnt
 *                for data blocks and metadata records on x86.
 * The flush loops use the kernel's clwb(), clflushopt() and clflush()
 * helpers (asm/special_insns.h); only arch_wb_cache_pmem() exists as a
 * pmem API for "write back this range", and it picks the instruction
 * itself, so it cannot serve an explicit choice.
 * The fence is pmem_wmb() (sfence on x86) for every strategy.
 *
 * The persistence rules of the engine (index.c, io.c, commit.c,
 * writeback.c, format.c, writecache_format.c), which make any crash
 * leave a consistent cache:
 *
 * 1. A write to a block that is not in the open epoch goes to a free
 *    block.  Its entry (origin block, the open sequence number S, crc) is
 *    written first, then the data; neither is fenced yet.  An entry with
 *    seq S > the committed sequence is ignored (and zeroed) by recovery,
 *    so a crash before the commit leaves the previous version in force.
 *    The writer stores the entry without pc->lock, from the origin block
 *    and S it took the block for under the lock: until S is committed,
 *    and its commit waits for the writer (2), nothing frees the block or
 *    writes its entry, but a write of S + 1 may already supersede it and
 *    change the block's in-memory seq.
 * 2. A writer of S publishes its stores (pmc_publish_stores()) as it
 *    leaves the epoch: a fence orders the stores of its own CPU only, so
 *    the commit's fence cannot stand in for the writers'.  A commit of S
 *    waits for every writer of S to leave, fences (its own stores: a
 *    FUA write commits in the writer's task), writes the commit record
 *    of S into slot S & 1 and fences again.  Only then does S count: recovery takes
 *    the newest commit record whose crc is right, so a torn record leaves
 *    S - 1 in force and S's entries are ignored as in 1.
 * 3. A block is reused only after its entry's seq was zeroed (one aligned
 *    8-byte store, which cannot tear) and fenced.  A block superseded by
 *    a write of S is zeroed only after S is committed; a written-back
 *    block only after the origin write (and, with nofua, an origin flush)
 *    completed.  So at any moment every origin block's newest committed
 *    version is either in a valid entry or on the origin.
 * 4. The entry of an origin block's newest committed version is never
 *    zeroed while an older valid entry of that block could survive a
 *    crash: a commit zeroes and fences the entries it supersedes before
 *    the engine counts it as committed (only then may writeback or a
 *    discard free the newer block); a superseded block whose writeback
 *    failed is zeroed at once if its successor is committed; a discard
 *    frees nothing while a superseded block is under writeback, and
 *    zeroes and fences the entries it drops before it lets go of the
 *    lock (a newer version written, and written back, meanwhile would
 *    otherwise be freed while the dropped entry is still valid).
 * 5. Recovery keeps, per origin block, the valid entry with the highest
 *    seq, and zeroes (then fences) every other one before the cache is
 *    used, so that a later commit of the same sequence number cannot
 *    revive a leftover of the crash.  It never zeroes a valid entry for
 *    an origin block past the table's end: such a table is refused.
 * 6. Format starts on a device that holds no finished format (its first
 *    4 KiB zero but for the commit slots and the origin record; see
 *    pmc_sb_unformatted()) and
 *    makes "format under way" durable first: the magic with version 0,
 *    one 8-byte store, fenced.  Then the zeroed entries and commit
 *    record 0, fenced together; then the rest of the superblock (version
 *    still 0), fenced; last the magic and version in one store, fenced.
 *    A cut anywhere leaves version 0 and the next activation formats
 *    again, whatever the cut left of the record; anything else in the
 *    first 4 KiB that is not a valid superblock is refused (it may be
 *    someone's data).
 * 7. A cache in dm-writecache's format (writecache_format.c) is formatted
 *    only once its committed blocks are durable on the origin: they are
 *    written there and the origin flushed; then dm-writecache's sequence
 *    number is set to 0 (one 8-byte store, fenced), which commits none of
 *    its entries any more; then the rest of the first 4 KiB is zeroed,
 *    fenced, and rule 6 follows.  Before that store a cut leaves the
 *    dm-writecache cache as it was; after it, its magic with sequence 0
 *    is an empty cache, formatted at the next activation.
 * 8. The origin record names the origin of every valid entry.  Format
 *    writes it with the zeroed entries (rule 6).  Afterwards it is
 *    rewritten only at a table's first resume, after recovery: for
 *    another origin only if no valid entry was found or the table says
 *    force_origin; for a cache without a record (formatted before they
 *    existed), always.  It is made durable before the table takes its
 *    first write, in three steps: its magic and checksum zeroed (one
 *    8-byte store, "no record"), fenced; the rest, fenced; the magic and
 *    checksum in one store, fenced.  A cut leaves the old record, none,
 *    or the new one: never a damaged one.
 * 9. One table at a time writes a cache.  A table reads it (recovery,
 *    rule 5; in s mode after reading the image again) only when no other
 *    table runs on it, or after the one that runs handed it over
 *    (pmc_hand_over(), dm-pmemcache.c): that one's map calls finished and
 *    turned away from then on, its writeback and timers stopped for
 *    good, its acknowledged writes committed (its last commit, rules
 *    1-4) and those it sent around the cache flushed on the origin, its
 *    data writes and reads done with their blocks; it commits nothing
 *    after that.  A table suspended meanwhile, or handed over, never
 *    runs again: its index is stale.
 *
 * The same rules hold in s mode, the cache on a block device (medium.h,
 * bdev_medium.c), where the engine stores metadata into a RAM image and
 * "fenced" means a pmc_meta_barrier() returned: the dirty chunks of the
 * image written, then the device's cache flushed.  That barrier makes
 * durable every store marked before it, whatever task made it, and every
 * data write that completed before it; so rule 1's data is durable once
 * its bio completed and a barrier followed (a commit waits for the
 * writers' bios, not for their stores), rule 2's publishing is not
 * needed, and a discard (rule 4) may let go of the lock for its barrier:
 * whatever frees a newer version meanwhile runs a barrier first, which
 * writes the discard's zeroes too.  A 512-byte sector is taken to be
 * written whole or not at all; entries and commit records lie within
 * one, so the 8-byte atomicity of rule 3 holds.
 */

#include <linux/cache.h>
#include <linux/libnvdimm.h>
#include <linux/string.h>
#ifdef CONFIG_X86
#include <asm/cpufeature.h>
#include <asm/special_insns.h>
#endif

#include "dm-pmemcache.h"

static const char *const pmc_flush_names[PMC_NR_FLUSH_MODES] = {
	[PMC_FLUSH_AUTO] = "auto",
	[PMC_FLUSH_MOVNT] = "movnt",
	[PMC_FLUSH_CLWB] = "clwb",
	[PMC_FLUSH_CLFLUSHOPT] = "clflushopt",
	[PMC_FLUSH_CLFLUSH] = "clflush",
	[PMC_FLUSH_GENERIC] = "generic",
};

/**
 * pmc_flush_mode_name() - the name of a strategy
 * @mode: enum pmc_flush_mode
 *
 * Return: its name, as in the table line and the status line.
 */
const char *pmc_flush_mode_name(enum pmc_flush_mode mode)
{
	return mode < PMC_NR_FLUSH_MODES ? pmc_flush_names[mode] : "?";
}

/**
 * pmc_flush_mode_parse() - a strategy by name
 * @name: as in the table line
 *
 * Return: the enum pmc_flush_mode, or -EINVAL for an unknown name.
 */
int pmc_flush_mode_parse(const char *name)
{
	int i;

	for (i = 0; i < PMC_NR_FLUSH_MODES; i++)
		if (!strcasecmp(name, pmc_flush_names[i]))
			return i;
	return -EINVAL;
}

static bool pmc_cpu_has(enum pmc_flush_mode mode)
{
#ifdef CONFIG_X86
	switch (mode) {
	case PMC_FLUSH_MOVNT:
		return boot_cpu_has(X86_FEATURE_XMM2);
	case PMC_FLUSH_CLWB:
		return boot_cpu_has(X86_FEATURE_CLWB);
	case PMC_FLUSH_CLFLUSHOPT:
		return boot_cpu_has(X86_FEATURE_CLFLUSHOPT);
	case PMC_FLUSH_CLFLUSH:
		return boot_cpu_has(X86_FEATURE_CLFLUSH);
	default:
		return false;
	}
#else
	return mode == PMC_FLUSH_GENERIC;
#endif
}

/**
 * pmc_flush_choose() - resolve a flush_mode for data and for metadata
 * @asked: the table's flush_mode (PMC_FLUSH_AUTO when not given)
 * @f: filled in with the strategy for data blocks and for metadata
 *
 * auto takes movnt for both on x86: it was fastest for 4 KiB blocks and
 * for 16/64-byte records in tools/bench-flush (Documentation/), and it
 * does not evict what the CPU cache holds; generic elsewhere.
 *
 * Return: 0, or -EOPNOTSUPP when the CPU lacks the instruction asked for.
 */
int pmc_flush_choose(enum pmc_flush_mode asked, struct pmc_flush *f)
{
	if (asked == PMC_FLUSH_AUTO)
		asked = IS_ENABLED(CONFIG_X86) ? PMC_FLUSH_MOVNT : PMC_FLUSH_GENERIC;
	if (!pmc_cpu_has(asked))
		return -EOPNOTSUPP;
	f->data = asked;
	f->meta = asked;
	f->publish_fence = true;
#ifdef CONFIG_X86
	/* See pmc_publish_stores(): documented by Intel only. */
	if (f->data == PMC_FLUSH_MOVNT && f->meta == PMC_FLUSH_MOVNT &&
	    boot_cpu_data.x86_vendor == X86_VENDOR_INTEL)
		f->publish_fence = false;
#endif
	return 0;
}

#ifdef CONFIG_X86
static void pmc_flush_lines(enum pmc_flush_mode mode, void *addr, size_t len,
			    struct pmc_pcheck_op *op)
{
	char *p = (char *)((unsigned long)addr & ~(L1_CACHE_BYTES - 1UL));
	char *end = (char *)addr + len;

	for (; p < end; p += L1_CACHE_BYTES) {
		if (mode == PMC_FLUSH_CLWB)
			clwb(p);
		else if (mode == PMC_FLUSH_CLFLUSHOPT)
			clflushopt(p);
		else
			clflush(p);
		pmc_pcheck_written_back(op, p, L1_CACHE_BYTES);
	}
}
#endif

/**
 * pmc_copy_to_pmem() - copy into persistent memory
 * @mode: the strategy (struct pmc_flush's data or meta)
 * @dst: destination, inside the mapped cache
 * @src: source
 * @len: bytes to copy
 *
 * The copy is durable once pmc_fence() has returned.
 */
void pmc_copy_to_pmem(enum pmc_flush_mode mode, void *dst, const void *src,
		      size_t len)
{
	struct pmc_pcheck_op op;

	if (!pmc_pcheck_store_begin(&op, dst, len, _RET_IP_))
		return;
#ifdef CONFIG_X86
	if (mode != PMC_FLUSH_MOVNT) {
		memcpy(dst, src, len);
		pmc_flush_lines(mode, dst, len, &op);
		pmc_pcheck_store_end(&op);
		return;
	}
#endif
	memcpy_flushcache(dst, src, len);
	op.nt = IS_ENABLED(CONFIG_X86);
	pmc_pcheck_written_back(&op, dst, len);
	pmc_pcheck_store_end(&op);
}

static void __pmc_flush_range(enum pmc_flush_mode mode, void *addr, size_t len,
			      struct pmc_pcheck_op *op)
{
#ifdef CONFIG_X86
	if (mode != PMC_FLUSH_MOVNT) {
		pmc_flush_lines(mode, addr, len, op);
		return;
	}
#endif
	arch_wb_cache_pmem(addr, len);
	pmc_pcheck_written_back(op, addr, len);
}

/**
 * pmc_flush_range() - write back a range already stored in pmem
 * @mode: the strategy; movnt writes back with the best the CPU has
 * @addr: start of the range, inside the mapped cache
 * @len: bytes
 *
 * The range is durable once pmc_fence() has returned.
 */
void pmc_flush_range(enum pmc_flush_mode mode, void *addr, size_t len)
{
	struct pmc_pcheck_op op;

	if (!pmc_pcheck_store_begin(&op, addr, len, _RET_IP_))
		return;
	__pmc_flush_range(mode, addr, len, &op);
	pmc_pcheck_store_end(&op);
}

#ifdef PMC_PERSIST_CHECK
/*
 * pmc_write_u64() of test builds (dm-pmemcache.h has the inline one): the
 * store and its write-back seen by the persistence checker as one.
 */
void pmc_write_u64(enum pmc_flush_mode mode, __le64 *p, __le64 val)
{
	struct pmc_pcheck_op op;

	if (!pmc_pcheck_store_begin(&op, p, sizeof(*p), _RET_IP_))
		return;
#ifdef CONFIG_X86
	if (mode == PMC_FLUSH_MOVNT) {
		memcpy_flushcache(p, &val, sizeof(*p));
		op.nt = IS_ENABLED(CONFIG_X86);
		pmc_pcheck_written_back(&op, p, sizeof(*p));
		pmc_pcheck_store_end(&op);
		return;
	}
#endif
	WRITE_ONCE(*p, val);
	__pmc_flush_range(mode, p, sizeof(*p), &op);
	pmc_pcheck_store_end(&op);
}
#endif

/**
 * pmc_fence() - make every earlier copy and flush of this CPU durable
 *
 * sfence orders the stores of the CPU that executes it, not of others:
 * a store made by another task is durable only after that task fenced
 * (or published it, pmc_publish_stores()).
 */
void pmc_fence(void)
{
	if (pmc_pcheck_fence(_RET_IP_))
		pmem_wmb();
}

/**
 * pmc_publish_stores() - make this task's stores durable before a hand-off
 * @f: the strategies the stores used
 *
 * Called right before a locked read-modify-write through which another
 * task learns that the stores are done (a writer leaving its epoch, which
 * the commit then fences and records).  On Intel CPUs the locked
 * instruction drains the write-combining buffers that hold non-temporal
 * stores (SDM vol. 3, 11.3.1), so movnt needs no fence here
 * (pmc_flush_choose() decides); the write-back of clwb, clflushopt and
 * clflush, other x86 vendors (whose manuals we did not find saying the
 * same) and every other architecture fence.  The persistence checker
 * counts this as a fence of the calling task either way: it cannot tell
 * whether the locked instruction really drains.
 */
void pmc_publish_stores(const struct pmc_flush *f)
{
	if (!pmc_pcheck_fence(_RET_IP_))
		return;
	if (f->publish_fence)
		pmem_wmb();
}
