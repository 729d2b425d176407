// SPDX-License-Identifier: GPL-2.0
/*
 * dm-pmemcache: the on-media format at work: the layout, format, the
 * superblock checks at activation, and recovery (the index rebuilt from
 * the entries and the commit record).  The records themselves are
 * defined in dm-pmemcache.h.
 */

#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/crc32c.h>
#include <linux/dm-ioctl.h>
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

static u32 pmc_sb_crc(const struct pmc_sb *sb)
{
	return crc32c(~0U, (const u8 *)sb, offsetof(struct pmc_sb, crc));
}

/**
 * pmc_data_offset() - where data block 0 starts in a cache of @nr_blocks
 * @nr_blocks: data blocks
 *
 * Return: bytes from the start of the cache: the superblock and the
 * entries, rounded up to a page (so that no data block straddles one;
 * with 4 KiB pages, 4 KiB plus the entries rounded up to 4 KiB).
 */
u64 pmc_data_offset(u64 nr_blocks)
{
	return round_up(PMC_SB_SIZE + nr_blocks * sizeof(struct pmc_entry),
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
	void *base = pmc_meta_base(pc);

	pc->nr_blocks = nr_blocks;
	pc->sb = base;
	pc->entries = base + PMC_SB_SIZE;
	pc->data = pmc_on_bdev(pc) ? NULL : base + pmc_data_offset(nr_blocks);
}

static u32 pmc_origin_crc(struct pmemcache *pc, const struct pmc_origin *o)
{
	return crc32c(pc->crc_seed,
		      (const u8 *)o + offsetof(struct pmc_origin, sectors),
		      sizeof(*o) - offsetof(struct pmc_origin, sectors));
}

/*
 * The table's origin as an origin record names it: its length, and its
 * device-mapper uuid when it is a dm device that has one.  Needs
 * pc->crc_seed.
 */
static void pmc_origin_identity(struct pmemcache *pc, struct pmc_origin *o)
{
	struct block_device *bdev = pc->origin->bdev;
	struct mapped_device *md;
	char uuid[DM_UUID_LEN];

	memset(o, 0, sizeof(*o));
	o->magic = cpu_to_le32(PMC_ORIGIN_MAGIC);
	o->sectors = cpu_to_le64(bdev_nr_sectors(bdev));
	md = dm_get_md(bdev->bd_dev);
	if (md) {
		if (!dm_copy_name_and_uuid(md, NULL, uuid))
			strscpy((char *)o->uuid, uuid, sizeof(o->uuid));
		dm_put(md);
	}
	o->crc = cpu_to_le32(pmc_origin_crc(pc, o));
}

/*
 * How much of a dm uuid names the device itself: lvm2's
 * "LVM-<vg id><lv id>[-suffix]" changes its VG part when the VG is
 * renamed by uuid (vgimportclone, vgchange -u, vgsplit, vgmerge), so
 * from the LV id on; cryptsetup's "CRYPT-<type>-<uuid>-<name>" carries
 * the mapping's name, so up to the uuid; any other, all of it.
 */
static void pmc_uuid_key(const char *u, const char **key, size_t *len)
{
	const char *p;
	size_t n = strnlen(u, PMC_ORIGIN_UUID_LEN);

	*key = u;
	*len = n;
	if (n > 4 + 32 && !strncmp(u, "LVM-", 4)) {
		*key = u + 4 + 32;
		*len = n - 4 - 32;
	} else if (!strncmp(u, "CRYPT-", 6)) {
		p = strnchr(u + 6, n - 6, '-');
		if (p)
			p = strnchr(p + 1, n - (p + 1 - u), '-');
		if (p)
			*len = p - u;
	}
}

/*
 * Does the table's origin @now match the record @rec?  By uuid when both
 * have one (pmc_uuid_key(); an LV keeps its LV id when it is resized or
 * its PVs move); a uuid on one side only is another device; with no uuid
 * on either side, by length, which may have grown (an entry past the
 * table's end is refused by recovery anyway).
 */
static bool pmc_origin_same(const struct pmc_origin *rec,
			    const struct pmc_origin *now)
{
	const char *ka, *kb;
	size_t la, lb;

	if (rec->uuid[0] && now->uuid[0]) {
		pmc_uuid_key((const char *)rec->uuid, &ka, &la);
		pmc_uuid_key((const char *)now->uuid, &kb, &lb);
		return la == lb && !memcmp(ka, kb, la);
	}
	if (rec->uuid[0] || now->uuid[0])
		return false;
	return le64_to_cpu(now->sectors) >= le64_to_cpu(rec->sectors);
}

/*
 * Format (rule 6 in flush.c): first the magic with version 0, "format
 * under way", alone and fenced; then zero the entries and the commit
 * slots and write commit 0; then the rest of the superblock, fenced; then
 * magic and version in one 8-byte store, fenced.  Until that store is
 * durable the version is 0 (or the sector still zero) and the next
 * activation formats again (pmc_sb_unformatted()).
 */
static int pmc_format(struct pmemcache *pc, u64 nr_blocks)
{
	void *zero = page_address(ZERO_PAGE(0));
	struct pmc_origin origin;
	struct pmc_sb sb = { };
	size_t done, len;
	__le64 head;
	u64 bytes;

	pmc_layout(pc, nr_blocks);
	pmc_meta_u64(pc, (__le64 *)pc->sb, cpu_to_le64(PMC_MAGIC));
	if (pmc_meta_barrier(pc))
		return -EIO;
	bytes = pmc_data_offset(nr_blocks) - PMC_SB_SIZE;
	for (done = 0; done < bytes; done += len) {
		len = min_t(size_t, bytes - done, PAGE_SIZE);
		pmc_meta_copy(pc, (void *)pc->entries + done, zero, len);
		cond_resched();
	}
	pmc_meta_copy(pc, (void *)pc->sb + PMC_COMMIT_OFFSET(1), zero,
		      sizeof(struct pmc_commit));

	sb.magic = cpu_to_le32(PMC_MAGIC);
	sb.version = cpu_to_le32(PMC_VERSION);
	sb.block_size = cpu_to_le32(pc->block_size);
	sb.nr_blocks = cpu_to_le64(nr_blocks);
	sb.entries_offset = cpu_to_le64(PMC_SB_SIZE);
	sb.data_offset = cpu_to_le64(pmc_data_offset(nr_blocks));
	get_random_bytes(sb.uuid, sizeof(sb.uuid));
	sb.crc = cpu_to_le32(pmc_sb_crc(&sb));
	pc->crc_seed = crc32c(~0U, sb.uuid, sizeof(sb.uuid));
	/* The origin record, with the checksum seeded from the new uuid. */
	pmc_origin_identity(pc, &origin);
	pmc_meta_copy(pc, (void *)pc->sb + PMC_ORIGIN_OFFSET, &origin,
		      sizeof(origin));
	/* Fences: everything above durable. */
	if (pmc_write_commit(pc, 0))
		return -EIO;
	pmc_test_point(PMC_TP_FORMAT_MID);
	head = cpu_to_le64((u64)PMC_VERSION << 32 | PMC_MAGIC);
	sb.version = 0;
	pmc_meta_copy(pc, pc->sb, &sb, sizeof(sb));
	if (pmc_meta_barrier(pc))
		return -EIO;
	pmc_meta_u64(pc, (__le64 *)pc->sb, head);
	if (pmc_meta_barrier(pc))
		return -EIO;
	DMINFO("%pg: formatted a cache of %llu blocks of %u bytes",
	       pc->cache_dev->bdev, nr_blocks, pc->block_size);
	return 0;
}

/*
 * A cache device that no activation has finished formatting: in its
 * first 4 KiB, the superblock record zero, or our magic with version 0
 * (written first, alone; the version is written last) and whatever a cut
 * left of the record's other bytes; the two commit slots and the origin
 * record anything (a format cut short, or a cache whose superblock sector
 * was zeroed to start over, as lvm2 and the admin guide do); every other
 * byte zero.
 * Anything else may be someone's data: an ext4 file system has its
 * superblock at byte 1024 and an LVM2 physical volume its label at byte
 * 512, both behind a zero first sector.
 */
static bool pmc_sb_unformatted(const u8 *head)
{
	const struct pmc_sb *sb = (const void *)head;
	size_t at;
	int slot;

	if (sb->version)
		return false;
	if (!sb->magic)
		at = 0;
	else if (le32_to_cpu(sb->magic) == PMC_MAGIC)
		at = sizeof(*sb);
	else
		return false;
	/* The commit slots, then the origin record, may hold anything. */
	for (slot = 0; slot < 3; slot++) {
		size_t rec = slot < 2 ? PMC_COMMIT_OFFSET(slot) : PMC_ORIGIN_OFFSET;
		size_t len = slot < 2 ? sizeof(struct pmc_commit) :
			     sizeof(struct pmc_origin);

		if (memchr_inv(head + at, 0, rec - at))
			return false;
		at = rec + len;
	}
	return !memchr_inv(head + at, 0, PMC_SB_SIZE - at);
}

/**
 * struct pmc_foreign - what a cache device that is not ours may hold
 * @off: where its signature lies in the first 4 KiB
 * @sig: the signature
 * @len: its bytes
 * @what: for the log
 * @advice: for the log: what to do
 * @error: ti->error
 */
struct pmc_foreign {
	unsigned int off;
	const char *sig;
	unsigned int len;
	const char *what;
	const char *advice;
	char *error;
};

#define PMC_ZERO_ADVICE "check what it holds (wipefs -n); zeroing its first 4 KiB makes it a new cache and loses that"

static const struct pmc_foreign pmc_foreigners[] = {
	{ 1080, "\x53\xef", 2, "an ext2/3/4 file system", PMC_ZERO_ADVICE,
	  "Cache device holds something else (an ext2/3/4 file system)" },
	{ 0, "XFSB", 4, "an XFS file system", PMC_ZERO_ADVICE,
	  "Cache device holds something else (an XFS file system)" },
	{ 512, "LABELONE", 8, "an LVM2 physical volume", PMC_ZERO_ADVICE,
	  "Cache device holds something else (an LVM2 physical volume)" },
	{ 4086, "SWAPSPACE2", 10, "swap space", PMC_ZERO_ADVICE,
	  "Cache device holds something else (swap space)" },
	/* Last: anything else. */
	{ 0, NULL, 0, "data of an unknown kind", PMC_ZERO_ADVICE,
	  "Cache device holds something else (no pmemcache superblock)" },
};

/* What the first 4 KiB of a device that is not ours look like. */
static const struct pmc_foreign *pmc_foreign(const u8 *head)
{
	const struct pmc_foreign *f;

	for (f = pmc_foreigners; f->sig; f++)
		if (!memcmp(head + f->off, f->sig, f->len))
			break;
	return f;
}

/**
 * pmc_open_cache() - check the cache device at construction
 * @pc: the cache, its device mapped
 *
 * Formats a cache not yet formatted, accepts one of ours that matches the
 * table, refuses anything else with ti->error set.  Only the superblock
 * is read here; the entries are read at resume (pmc_load()).
 *
 * Return: 0 or a negative errno.
 */
int pmc_open_cache(struct pmemcache *pc)
{
	struct dm_target *ti = pc->ti;
	u64 fit = pmc_fit_blocks(pmc_on_bdev(pc) ? pc->bdev.size : pc->pmem.size,
				 pc->block_size);
	struct pmc_sb sb;
	const struct pmc_foreign *foreign;
	bool unformatted;
	u8 *head;
	int r;

	if (fit < PMC_MIN_BLOCKS) {
		ti->error = "Cache device too small: it must hold 8 blocks and the metadata";
		return -EINVAL;
	}
	if (pmc_on_bdev(pc)) {
		/* The whole metadata region, into RAM. */
		r = pmc_bdev_read_image(pc, pmc_data_offset(fit));
		if (r)
			return r;
	}
	pmc_layout(pc, fit);
	/* pmem's known media errors (a block device reports them per I/O). */
	if (!pmc_on_bdev(pc) &&
	    pmc_pmem_range_bad(&pc->pmem, 0, pc->data - pc->pmem.addr)) {
		DMERR("%pg: media error in the first %zu bytes (metadata)",
		      pc->cache_dev->bdev, (size_t)(pc->data - pc->pmem.addr));
		ti->error = "Media error in the cache metadata: clear it or raise start_sector";
		return -EIO;
	}
	if (!pmc_on_bdev(pc) && pc->pmem.nr_bad_pages) {
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
	head = kmalloc(PMC_SB_SIZE, GFP_KERNEL);
	if (!head) {
		ti->error = "Cannot allocate memory to read the cache superblock";
		return -ENOMEM;
	}
	if (copy_mc_to_kernel(head, pc->sb, PMC_SB_SIZE)) {
		kfree(head);
		ti->error = "Media error reading the cache superblock";
		return -EIO;
	}
	unformatted = false;
	if (pc->claim_shared && (pmc_wc_holds_cache(pc, head) ||
				 pmc_sb_unformatted(head))) {
		kfree(head);
		DMERR("%pg: a table of another mapped device holds it; not formatted",
		      pc->cache_dev->bdev);
		ti->error =
			"Cache device is in use by another pmemcache target: see the log";
		return -EBUSY;
	}
	if (pmc_wc_holds_cache(pc, head)) {
		/* dm-writecache's: its dirty data to the origin, then ours. */
		r = pmc_wc_take_over(pc, head);
		if (r) {
			kfree(head);
			return r;
		}
		unformatted = true;
	}
	memcpy(&sb, head, sizeof(sb));
	unformatted = unformatted || pmc_sb_unformatted(head);
	foreign = unformatted || le32_to_cpu(sb.magic) == PMC_MAGIC ? NULL :
		  pmc_foreign(head);
	kfree(head);
	if (unformatted) {
		r = pmc_format(pc, fit);
		if (r)
			ti->error = "Cannot write the cache device to format it";
		else if (pmc_on_bdev(pc))
			memcpy(&pc->bdev.sb_seen, pc->sb, sizeof(pc->bdev.sb_seen));
		return r;
	}
	if (foreign) {
		DMERR("%pg: holds %s, not a pmemcache cache; %s",
		      pc->cache_dev->bdev, foreign->what, foreign->advice);
		ti->error = foreign->error;
		return -EINVAL;
	}
	if (le32_to_cpu(sb.crc) != pmc_sb_crc(&sb)) {
		DMERR("%pg: it may hold dirty data not on the origin: keep the device as it is",
		      pc->cache_dev->bdev);
		ti->error = "Cache superblock checksum is wrong";
		return -EINVAL;
	}
	if (le32_to_cpu(sb.version) != PMC_VERSION || sb.features) {
		DMERR("%pg: cache format version %u features %#x, this module knows version %u",
		      pc->cache_dev->bdev, le32_to_cpu(sb.version),
		      le32_to_cpu(sb.features), PMC_VERSION);
		ti->error = "Cache format version or features unknown; use a newer module";
		return -EINVAL;
	}
	if (le32_to_cpu(sb.block_size) != pc->block_size) {
		DMERR("%pg: the cache was formatted with block size %u",
		      pc->cache_dev->bdev, le32_to_cpu(sb.block_size));
		ti->error = "Block size does not match the cache's superblock";
		return -EINVAL;
	}
	if (le64_to_cpu(sb.nr_blocks) != fit) {
		DMERR("%pg: the cache was formatted for %llu blocks, the device now holds %llu",
		      pc->cache_dev->bdev, le64_to_cpu(sb.nr_blocks), fit);
		ti->error =
			"Cache size (or start_sector) differs from the one it was formatted with";
		return -EINVAL;
	}
	pmc_layout(pc, fit);
	if (le64_to_cpu(sb.entries_offset) != PMC_SB_SIZE ||
	    le64_to_cpu(sb.data_offset) != pmc_data_offset(fit)) {
		ti->error = "Cache superblock offsets are inconsistent";
		return -EINVAL;
	}
	pc->crc_seed = crc32c(~0U, sb.uuid, sizeof(sb.uuid));
	if (pmc_on_bdev(pc))
		pc->bdev.sb_seen = sb;
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
			    pc->cache_dev->bdev, i, origin);
		atomic64_inc(&pc->media_errors);
	}
	pmc_clear_entry(pc, i);
}

/**
 * pmc_load() - recovery: build the index from the entries
 * @pc: the cache, not yet live
 *
 * The valid entry with the highest seq of each origin block wins; the
 * others, and uncommitted leftovers of a crash, are zeroed so that a
 * later commit cannot revive them (rule 5 in flush.c).
 *
 * Return: 0 or a negative errno.
 */
int pmc_load(struct pmemcache *pc)
{
	s64 committed = pmc_read_commit(pc);
	u64 i, nr_dirty = 0, dropped = 0, beyond = 0, max_origin = 0;
	ktime_t t0 = ktime_get();

	if (committed < 0) {
		DMERR("%pg: no valid commit record; the cache is damaged",
		      pc->cache_dev->bdev);
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
		if (!pmc_on_bdev(pc) &&
		    pmc_pmem_range_bad(&pc->pmem,
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
				    pc->cache_dev->bdev, i, origin, seq);
			goto clear;
		}
		b->origin = origin;
		b->seq = seq;
		old = pmc_lookup(pc, origin);
		if (old && old->seq >= seq)
			goto clear;
		if (old) {
			/* Nothing else runs yet; the lock is for index_seq. */
			spin_lock(&pc->lock);
			pmc_index_erase(pc, old);
			spin_unlock(&pc->lock);
			pmc_clear_entry(pc, pmc_idx(pc, old));
			old->state = PMC_FREE;
			list_add(&old->list, &pc->free);
			pc->nr_free++;
			nr_dirty--;
		}
		b->state = PMC_DIRTY;
		b->age = (u32)jiffies;
		spin_lock(&pc->lock);
		pmc_index_insert(pc, b);
		spin_unlock(&pc->lock);
		nr_dirty++;
		continue;
clear:
		pmc_clear_entry(pc, i);
free:
		list_add_tail(&b->list, &pc->free);
		pc->nr_free++;
	}
	if (pmc_meta_barrier(pc)) {
		DMERR("%pg: cannot write the recovered metadata", pc->cache_dev->bdev);
		return -EIO;
	}
	if (beyond) {
		DMERR("%pg: %llu cached blocks lie past the target's end (block %llu; it has %llu)",
		      pc->cache_dev->bdev, beyond, max_origin, pc->origin_blocks);
		DMERR("%pg: load a table of at least %llu sectors, or flush under the old one",
		      pc->cache_dev->bdev,
		      (max_origin + 1) << (pc->block_shift - SECTOR_SHIFT));
		return -EINVAL;
	}
	pc->loaded_dirty = nr_dirty;
	DMINFO("%pg: recovered %llu dirty of %llu blocks in %lld us",
	       pc->cache_dev->bdev, nr_dirty, pc->nr_blocks,
	       ktime_us_delta(ktime_get(), t0));
	DMINFO("%pg: commit %lld, %llu uncommitted blocks dropped, %llu corrupt, %llu unusable",
	       pc->cache_dev->bdev, committed, dropped, pc->meta_errors,
	       pc->nr_bad);
	return 0;
}

/* Does the cache hold a valid entry (data recovery would keep)? */
static bool pmc_holds_dirty(struct pmemcache *pc)
{
	s64 committed = pmc_read_commit(pc);
	u64 i;

	if (committed < 0)
		return false;	/* pmc_load() refuses it, and says why */
	for (i = 0; i < pc->nr_blocks; i++) {
		struct pmc_entry e;
		u64 seq;

		if (!(i & 4095))
			cond_resched();
		if (copy_mc_to_kernel(&e, &pc->entries[i], sizeof(e)))
			continue;
		seq = le64_to_cpu(e.seq);
		if (seq && seq <= committed &&
		    le32_to_cpu(e.crc) ==
		    pmc_entry_crc(pc, le64_to_cpu(e.origin), seq, i))
			return true;
	}
	return false;
}

/* "uuid U, N sectors" or "no dm uuid, N sectors", for the log. */
static const char *pmc_origin_str(const struct pmc_origin *o, char *buf,
				  size_t len)
{
	if (o->uuid[0])
		snprintf(buf, len, "uuid %*pE, %llu sectors",
			 (int)strnlen((const char *)o->uuid, sizeof(o->uuid)),
			 o->uuid, le64_to_cpu(o->sectors));
	else
		snprintf(buf, len, "no dm uuid, %llu sectors",
			 le64_to_cpu(o->sectors));
	return buf;
}

/* How the origin record compares with the table's origin. */
enum pmc_origin_state {
	PMC_ORIGIN_SAME,	/* it names the table's origin */
	PMC_ORIGIN_ABSENT,	/* no record (formatted before records) */
	PMC_ORIGIN_OTHER,	/* it names another device */
	PMC_ORIGIN_DAMAGED,	/* its checksum is wrong */
};

/*
 * The origin record on media into @rec, against the table's origin,
 * computed into @now (again at each call: the origin may have changed
 * since the constructor).
 */
static enum pmc_origin_state pmc_origin_state(struct pmemcache *pc,
					      struct pmc_origin *rec,
					      struct pmc_origin *now)
{
	pmc_origin_identity(pc, now);
	if (copy_mc_to_kernel(rec, (void *)pc->sb + PMC_ORIGIN_OFFSET,
			      sizeof(*rec)))
		return PMC_ORIGIN_DAMAGED;
	if (!rec->magic)
		return PMC_ORIGIN_ABSENT;
	if (le32_to_cpu(rec->magic) != PMC_ORIGIN_MAGIC ||
	    le32_to_cpu(rec->crc) != pmc_origin_crc(pc, rec))
		return PMC_ORIGIN_DAMAGED;
	return pmc_origin_same(rec, now) ? PMC_ORIGIN_SAME :
	       PMC_ORIGIN_OTHER;
}

/* Log why the table's origin is not the record's. */
static void pmc_origin_complain(struct pmemcache *pc,
				enum pmc_origin_state st,
				const struct pmc_origin *rec,
				const struct pmc_origin *now)
{
	char a[240], b[240];

	if (st == PMC_ORIGIN_DAMAGED)
		DMERR("%pg: damaged origin record over dirty data; the table names %pg (%s)",
		      pc->cache_dev->bdev, pc->origin->bdev,
		      pmc_origin_str(now, b, sizeof(b)));
	else
		DMERR("%pg: holds dirty data of origin (%s); the table names %pg (%s)",
		      pc->cache_dev->bdev, pmc_origin_str(rec, a, sizeof(a)),
		      pc->origin->bdev,
		      pmc_origin_str(now, b, sizeof(b)));
	if (pmc_given(&pc->opts, PMC_OPT_FORCE_ORIGIN))
		DMWARN("%pg: force_origin: that dirty data goes to %pg",
		       pc->cache_dev->bdev, pc->origin->bdev);
}

/**
 * pmc_check_origin() - compare the cache's origin record with the table
 * @pc: the cache, opened (pmc_open_cache())
 *
 * A table that names another origin than the one the cache's dirty data
 * belongs to (or whose record is damaged) is refused, with ti->error
 * set, unless it says force_origin.  pmc_settle_origin() checks again at
 * resume, when it counts.
 *
 * Return: 0 or -EINVAL.
 */
int pmc_check_origin(struct pmemcache *pc)
{
	struct pmc_origin rec, now;
	enum pmc_origin_state st = pmc_origin_state(pc, &rec, &now);

	if (st == PMC_ORIGIN_SAME || st == PMC_ORIGIN_ABSENT ||
	    !pmc_holds_dirty(pc))
		return 0;
	pmc_origin_complain(pc, st, &rec, &now);
	if (pmc_given(&pc->opts, PMC_OPT_FORCE_ORIGIN))
		return 0;
	if (st == PMC_ORIGIN_DAMAGED)
		pc->ti->error =
			"Damaged origin record, dirty cache: see the log; force_origin overrides";
	else
		pc->ti->error =
			"Not the dirty data's origin: see the log; force_origin overrides";
	return -EINVAL;
}

/*
 * Write the origin record so that a cut leaves the old record, none
 * (magic 0), or the new one, never a damaged one (rule 8): its magic and
 * checksum zeroed (one 8-byte store), fenced; the rest, fenced; then
 * magic and checksum in one store, fenced.
 */
static int pmc_write_origin(struct pmemcache *pc, const struct pmc_origin *o)
{
	struct pmc_origin *dst = (void *)pc->sb + PMC_ORIGIN_OFFSET;
	__le64 head;

	pmc_meta_u64(pc, (__le64 *)dst, 0);
	if (pmc_meta_barrier(pc))
		return -EIO;
	pmc_meta_copy(pc, (u8 *)dst + offsetof(struct pmc_origin, sectors),
		      (const u8 *)o + offsetof(struct pmc_origin, sectors),
		      sizeof(*o) - offsetof(struct pmc_origin, sectors));
	if (pmc_meta_barrier(pc))
		return -EIO;
	memcpy(&head, o, sizeof(head));
	pmc_meta_u64(pc, (__le64 *)dst, head);
	return pmc_meta_barrier(pc) ? -EIO : 0;
}

/**
 * pmc_settle_origin() - make the origin record name the table's origin
 * @pc: the cache, recovered (pmc_load())
 *
 * At the first resume of a table, once recovery counted the dirty
 * blocks, against the record as it is now (a reload's old table may have
 * written since the constructor): another origin, or a damaged record,
 * over dirty data refuses the resume unless the table says force_origin;
 * otherwise the record is rewritten for the table's origin, and durable
 * before the table takes a write (flush.c, rule 8).  A cache formatted
 * before records existed takes the table's origin.
 *
 * Return: 0, -EINVAL (refused) or -EIO.
 */
int pmc_settle_origin(struct pmemcache *pc)
{
	struct pmc_origin rec, now;
	enum pmc_origin_state st = pmc_origin_state(pc, &rec, &now);
	char b[240];

	BUILD_BUG_ON(sizeof(struct pmc_origin) != 160);
	BUILD_BUG_ON(PMC_ORIGIN_OFFSET % 512 + sizeof(struct pmc_origin) > 512);
	BUILD_BUG_ON(PMC_ORIGIN_OFFSET + sizeof(struct pmc_origin) > PMC_SB_SIZE);
	if (st == PMC_ORIGIN_SAME)
		return 0;
	if (pc->loaded_dirty && st != PMC_ORIGIN_ABSENT) {
		pmc_origin_complain(pc, st, &rec, &now);
		if (!pmc_given(&pc->opts, PMC_OPT_FORCE_ORIGIN)) {
			DMERR("%pg: %llu dirty blocks, not resumed",
			      pc->cache_dev->bdev, pc->loaded_dirty);
			return -EINVAL;
		}
	}
	if (st == PMC_ORIGIN_ABSENT && pc->loaded_dirty)
		DMWARN("%pg: no origin record: its %llu dirty blocks are taken to be %pg's (%s)",
		       pc->cache_dev->bdev, pc->loaded_dirty, pc->origin->bdev,
		       pmc_origin_str(&now, b, sizeof(b)));
	if (pmc_write_origin(pc, &now)) {
		DMERR("%pg: cannot write the origin record", pc->cache_dev->bdev);
		return -EIO;
	}
	return 0;
}
