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
#include <linux/delay.h>
#include <linux/dm-ioctl.h>
#include <linux/highmem.h>
#include <linux/kernel.h>
#include <linux/ktime.h>
#include <linux/log2.h>
#include <linux/mm.h>
#include <linux/percpu.h>
#include <linux/percpu-rwsem.h>
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
	[PMC_OPT_FORCE_ORIGIN] = { "force_origin" },
};

/**
 * struct pmc_claim - a cache device that pmemcache tables use
 * @list: in pmc_claims
 * @holders: the caches of those tables (struct pmemcache.claim_node)
 * @disk: the disk the cache device is (a partition: is on)
 * @start: its first sector on @disk
 * @end: the sector after its last
 * @active: the cache that runs on it, from its resume to its suspend
 * @gen: bumped when a table runs on it for the first time; a table that
 *       ran before that (its index is stale) may not run again
 * @handing_over: the table handing the cache over (pmc_hand_over()),
 *                which runs without pmc_claims_lock; that table's
 *                pmc_unclaim() waits until it is done
 *
 * One cache device serves one origin: tables over another origin
 * would each overwrite the other's blocks.  A cache always extends to the
 * end of its device, so any overlap on one disk counts.  Tables of other
 * mapped devices over the same origin are let through, and may even run
 * while another does: lvm2 moves a writecache table to a new device (a
 * snapshot's -real device, and back when the snapshot goes) by loading
 * and resuming it there before it takes the old one away, as it does
 * with dm-writecache.  When the new table runs for the first time while
 * the old one still runs (not suspended), the old one hands the cache
 * over first (pmc_hand_over()).  Two targets of one table are refused,
 * and a table that was suspended while another ran, or handed the cache
 * over, does not run again (its index is stale).
 */
struct pmc_claim {
	struct list_head list;
	struct list_head holders;
	struct gendisk *disk;
	sector_t start, end;
	struct pmemcache *active;
	u64 gen;
	struct pmemcache *handing_over;
};

static LIST_HEAD(pmc_claims);
static DEFINE_MUTEX(pmc_claims_lock);	/* protects pmc_claims, the claims */
static DECLARE_WAIT_QUEUE_HEAD(pmc_claims_wait);	/* a hand-over ended */

/* Claim the cache device for this table (constructor). */
static int pmc_claim(struct pmemcache *pc)
{
	struct mapped_device *md = dm_table_get_md(pc->ti->table);
	struct block_device *bdev = pc->cache_dev->bdev;
	sector_t start = get_start_sect(bdev);
	sector_t end = start + bdev_nr_sectors(bdev);
	struct pmemcache *h;
	struct pmc_claim *c, *nc;

	if (dm_copy_name_and_uuid(md, pc->md_name, pc->md_uuid)) {
		strscpy(pc->md_name, dm_device_name(md), sizeof(pc->md_name));
		pc->md_uuid[0] = '\0';
	}
	nc = kzalloc(sizeof(*nc), GFP_KERNEL);
	if (!nc) {
		pc->ti->error = "Cannot allocate memory";
		return -ENOMEM;
	}
	mutex_lock(&pmc_claims_lock);
	list_for_each_entry(c, &pmc_claims, list)
		if (c->disk == bdev->bd_disk && c->start < end && start < c->end)
			break;
	if (list_entry_is_head(c, &pmc_claims, list)) {
		c = nc;
		nc = NULL;
		INIT_LIST_HEAD(&c->holders);
		c->disk = bdev->bd_disk;
		c->start = start;
		c->end = end;
		list_add(&c->list, &pmc_claims);
	}
	list_for_each_entry(h, &c->holders, claim_node) {
		if (h->ti->table == pc->ti->table) {
			mutex_unlock(&pmc_claims_lock);
			kfree(nc);
			pc->ti->error = "Two targets of one table on one cache device";
			return -EINVAL;
		}
		if (dm_table_get_md(h->ti->table) == md)
			continue;
		if (h->origin->bdev->bd_dev != pc->origin->bdev->bd_dev) {
			DMERR("%pg: already the cache of dm device %s, over origin %pg",
			      bdev, h->md_name, h->origin->bdev);
			mutex_unlock(&pmc_claims_lock);
			kfree(nc);
			pc->ti->error =
				"Cache device is in use by another pmemcache target: see the log";
			return -EBUSY;
		}
		pc->claim_shared = true;
	}
	list_add(&pc->claim_node, &c->holders);
	pc->claim = c;
	mutex_unlock(&pmc_claims_lock);
	kfree(nc);
	return 0;
}

static void pmc_stop_work(struct pmemcache *pc);

/* Wait until no read of @pc holds a block (s mode: bios in flight). */
static void pmc_wait_no_users(struct pmemcache *pc)
{
	unsigned long warn = jiffies + 10 * HZ;
	unsigned int turns = 0;
	u64 i;

	for (;;) {
		spin_lock(&pc->lock);
		for (i = 0; i < pc->nr_blocks; i++) {
			if (READ_ONCE(pc->blocks[i].users))
				break;
			pmc_lock_break(pc, &turns);
		}
		spin_unlock(&pc->lock);
		if (i == pc->nr_blocks)
			return;
		if (time_after(jiffies, warn)) {
			DMWARN("%pg: %s: the hand-over waits for reads of the cache device",
			       pc->cache_dev->bdev, pc->md_name);
			warn = jiffies + 10 * HZ;
		}
		usleep_range(1000, 2000);
	}
}

/*
 * @old runs on the cache, and @pc, a table of another mapped device over
 * the same origin, is about to read it for its first run.  @old hands it
 * over: no map call of it is half way (@map_sem), none will touch the
 * cache again, its writeback and timers stop for good (pmc_resume() does
 * not start them again), what it acknowledged is committed and, if it
 * sent writes around the cache, flushed on the origin; no write or read
 * of it holds a block, and it commits nothing more.  Without
 * pmc_claims_lock (it may wait for a slow origin); @old's claim says it
 * is handing over, which keeps @old from going (pmc_unclaim()).
 */
static void pmc_hand_over(struct pmemcache *old, struct pmemcache *pc)
{
	DMWARN("%pg: dm device %s takes the cache over from %s, which fails I/O from now on",
	       pc->cache_dev->bdev, pc->md_name, old->md_name);
	percpu_down_write(&old->map_sem);
	WRITE_ONCE(old->handed_over, true);
	percpu_up_write(&old->map_sem);
	pmc_stop_work(old);
	if (pmc_commit_last(old))
		DMERR("%pg: %s: last commit failed; writes since are lost",
		      old->cache_dev->bdev, old->md_name);
	/* Also when the commit failed: no data write of it still lands. */
	while (!wait_event_timeout(old->inflight_wait,
				   !atomic_read(&old->inflight[0]) &&
				   !atomic_read(&old->inflight[1]), 10 * HZ))
		DMWARN("%pg: %s: the hand-over waits for writes to the cache device",
		       old->cache_dev->bdev, old->md_name);
	if (pmc_writes_around(old) && !pmc_pcheck_cut() &&
	    blkdev_issue_flush(old->origin->bdev))
		DMERR("%pg: flushing the origin at the hand-over failed",
		      old->origin->bdev);
	pmc_wait_no_users(old);
}

/*
 * Are dm uuids @a and @b one lvm2 LV, one of them its "-real" device (a
 * snapshot's origin)?  lvm2 moves a writecache table between the two.
 */
static bool pmc_same_lv(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	if (la < lb) {
		swap(a, b);
		swap(la, lb);
	}
	return lb && la == lb + 5 && !strcmp(a + lb, "-real") &&
	       !strncmp(a, b, lb);
}

/*
 * A table's first resume, or a resume after a suspend: run on the cache
 * device, unless another table over another origin runs on it, or one
 * ran since this one did.  Of an LV and its -real device, the one that
 * resumes for the first time while the other runs takes the cache over
 * (pmc_hand_over()); any other table waits until the one that runs is
 * suspended.
 */
static int pmc_claim_run(struct pmemcache *pc)
{
	struct pmc_claim *c = pc->claim;
	struct pmemcache *a;
	int r = 0;

	mutex_lock(&pmc_claims_lock);
	a = c->active;
	if (a == pc)
		a = NULL;
	if (c->handing_over) {
		DMERR("%pg: dm device %s is handing the cache over; try again",
		      pc->cache_dev->bdev, c->handing_over->md_name);
		r = -EBUSY;
	} else if (a && a->origin->bdev->bd_dev != pc->origin->bdev->bd_dev) {
		DMERR("%pg: in use by dm device %s over origin %pg",
		      pc->cache_dev->bdev, a->md_name, a->origin->bdev);
		r = -EBUSY;
	} else if (pc->loaded && pc->claim_gen != c->gen) {
		DMERR("%pg: another table ran on the cache since this was suspended; remove it",
		      pc->cache_dev->bdev);
		r = -EINVAL;
	} else if (a && !a->loaded) {
		DMERR("%pg: dm device %s is starting on the cache; try again",
		      pc->cache_dev->bdev, a->md_name);
		r = -EBUSY;
	} else if (a && (pc->loaded || !pmc_same_lv(a->md_uuid, pc->md_uuid))) {
		/* (Loaded: unreachable, the generation says stale.) */
		WARN_ON_ONCE(pc->loaded);
		DMERR("%pg: dm device %s runs on the cache: suspend or remove it first",
		      pc->cache_dev->bdev, a->md_name);
		r = -EBUSY;
	} else if (a && a->ti->len > pc->ti->len) {
		/* Its blocks past this table's end would refuse this one. */
		DMERR("%pg: dm device %s runs on the cache with a longer table (%llu sectors)",
		      pc->cache_dev->bdev, a->md_name,
		      (unsigned long long)a->ti->len);
		r = -EINVAL;
	} else if (a) {
		c->handing_over = a;
		mutex_unlock(&pmc_claims_lock);
		pmc_hand_over(a, pc);
		mutex_lock(&pmc_claims_lock);
		WRITE_ONCE(c->handing_over, NULL);
		c->gen++;
		c->active = pc;
		wake_up_all(&pmc_claims_wait);
	} else {
		c->active = pc;
	}
	mutex_unlock(&pmc_claims_lock);
	return r;
}

/*
 * A table's first resume succeeded: it has read the cache, and any other
 * table's view of it is stale from now on.  (Not before: a first resume
 * that fails leaves the others as they were.)
 */
static void pmc_claim_loaded(struct pmemcache *pc)
{
	mutex_lock(&pmc_claims_lock);
	pc->claim_gen = ++pc->claim->gen;
	pc->loaded = true;
	mutex_unlock(&pmc_claims_lock);
}

/* Suspended (or never resumed after all): another table may run. */
static void pmc_claim_stop(struct pmemcache *pc)
{
	mutex_lock(&pmc_claims_lock);
	if (pc->claim && pc->claim->active == pc)
		pc->claim->active = NULL;
	mutex_unlock(&pmc_claims_lock);
}

/* The table goes (destructor, or a refused constructor). */
static void pmc_unclaim(struct pmemcache *pc)
{
	struct pmc_claim *c = pc->claim;

	if (!c)
		return;
	mutex_lock(&pmc_claims_lock);
	while (c->handing_over == pc) {
		mutex_unlock(&pmc_claims_lock);
		wait_event(pmc_claims_wait, READ_ONCE(c->handing_over) != pc);
		mutex_lock(&pmc_claims_lock);
	}
	if (c->active == pc)
		c->active = NULL;
	list_del(&pc->claim_node);
	if (list_empty(&c->holders)) {
		list_del(&c->list);
		kfree(c);
	}
	mutex_unlock(&pmc_claims_lock);
	pc->claim = NULL;
}

static int pmc_parse_options(struct pmc_options *o, struct dm_arg_set *as,
			     unsigned int nr, struct dm_target *ti, bool pmem)
{
	int i;

	for (i = 0; i < PMC_NR_OPTS; i++)
		o->val[i] = pmc_opts[i].deflt;
	/* As dm-writecache: a block device's commits cost a flush each. */
	if (!pmem)
		o->val[PMC_OPT_AUTOCOMMIT_BLOCKS] = 65536;
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
		if (!pmem && (i == PMC_OPT_FUA || i == PMC_OPT_NOFUA ||
			      i == PMC_OPT_FLUSH_MODE)) {
			DMERR("option '%s' applies to p mode only", d->name);
			ti->error = "fua, nofua and flush_mode apply to p mode only";
			return -EINVAL;
		}
		/*
		 * force_origin may be followed by 1 or 0: lvm2 passes a
		 * setting it does not know (--cachesettings force_origin=1)
		 * as a keyword and a value.
		 */
		if (i == PMC_OPT_FORCE_ORIGIN && nr &&
		    (!strcmp(as->argv[0], "1") || !strcmp(as->argv[0], "0"))) {
			nr--;
			if (!strcmp(dm_shift_arg(as), "0"))
				o->given &= ~BIT(i);
			continue;
		}
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

static int __pmc_map(struct dm_target *ti, struct bio *bio)
{
	struct pmemcache *pc = ti->private;
	bool promote;

	bio->bi_iter.bi_sector = dm_target_offset(ti, bio->bi_iter.bi_sector);
	/* Test builds: after a simulated power cut nothing is written. */
	if (pmc_pcheck_cut() && op_is_write(bio_op(bio)))
		return DM_MAPIO_KILL;
	if (bio->bi_opf & REQ_PREFLUSH) {
		/* dm sends the flush as an empty bio; data comes separately. */
		this_cpu_inc(pc->stats->flushes);
		if (pmc_on_bdev(pc)) {
			pmc_defer(pc, bio);
			return DM_MAPIO_SUBMITTED;
		}
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
	promote = !READ_ONCE(pc->cleaner) &&
		(!pmc_given(&pc->opts, PMC_OPT_METADATA_ONLY) ||
		 (bio->bi_opf & REQ_META));
	if (pmc_on_bdev(pc))
		return pmc_bdev_map(pc, bio, promote);
	switch (bio_op(bio)) {
	case REQ_OP_READ:
		return pmc_map_read(pc, bio);
	case REQ_OP_WRITE:
		return pmc_map_write(pc, bio, promote);
	case REQ_OP_DISCARD:
		return pmc_map_discard(pc, bio);
	default:
		pmc_remap(pc, bio);
		return DM_MAPIO_REMAPPED;
	}
}

/* Every map call holds map_sem, so that a hand-over finds none half way. */
static int pmc_map(struct dm_target *ti, struct bio *bio)
{
	struct pmemcache *pc = ti->private;
	int r;

	percpu_down_read(&pc->map_sem);
	if (unlikely(pc->handed_over)) {
		percpu_up_read(&pc->map_sem);
		DMERR_LIMIT("%s: I/O failed: another table took the cache over; remove this device",
			    pc->md_name);
		return DM_MAPIO_KILL;
	}
	r = __pmc_map(ti, bio);
	percpu_up_read(&pc->map_sem);
	return r;
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
	flush_work(&pc->defer_work);
	flush_delayed_work(&pc->bdev_put_work);
}

static void pmc_free(struct pmemcache *pc)
{
	if (pc->wq) {
		/*
		 * Flushed at postsuspend already; a timer still armed
		 * would fire after destroy_workqueue().
		 */
		flush_delayed_work(&pc->bdev_put_work);
		destroy_workqueue(pc->wq);
	}
	percpu_free_rwsem(&pc->map_sem);
	bioset_exit(&pc->wb_bios);
	bioset_exit(&pc->bdev_bios);
	mempool_exit(&pc->wb_copies);
	kvfree(pc->blocks);
	pmc_pmem_map_release(&pc->pmem);
	pmc_bdev_close(pc);
	pmc_unclaim(pc);
	if (pc->cache_dev)
		dm_put_device(pc->ti, pc->cache_dev);
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
		pc->pmem_mode = false;
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
	r = pmc_parse_options(&pc->opts, &as, nr_opts, ti, pc->pmem_mode);
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
	pc->cache_dev = cache_dev;
	r = pmc_claim(pc);
	if (r)
		goto bad;

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

	if (!pc->pmem_mode) {
		r = pmc_bdev_open(pc, pc->opts.val[PMC_OPT_START_SECTOR]);
		if (r)
			goto bad;
		r = pmc_bdev_bioset_init(pc);
		if (!r)
			r = pmc_wb_copies_init(pc);
		if (r) {
			ti->error = "Cannot allocate the cache device's bio set";
			goto bad;
		}
		goto open;
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
	       pc->cache_dev->bdev,
	       pmc_flush_mode_name(pc->opts.val[PMC_OPT_FLUSH_MODE]),
	       pmc_flush_mode_name(pc->flush.data),
	       pmc_flush_mode_name(pc->flush.meta));
open:

	pc->origin_blocks = ti->len >> (pc->block_shift - SECTOR_SHIFT);
	r = pmc_open_cache(pc);
	if (!r)
		r = pmc_check_origin(pc);
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
	seqcount_spinlock_init(&pc->index_seq, &pc->lock);
	pc->index = RB_ROOT;
	INIT_LIST_HEAD(&pc->free);
	INIT_LIST_HEAD(&pc->superseded);
	init_waitqueue_head(&pc->inflight_wait);
	init_waitqueue_head(&pc->free_wait);
	mutex_init(&pc->commit_lock);
	mutex_init(&pc->flush_lock);
	spin_lock_init(&pc->defer_lock);
	bio_list_init(&pc->deferred);
	INIT_WORK(&pc->defer_work, pmc_defer_work);
	init_llist_head(&pc->bdev_puts);
	INIT_DELAYED_WORK(&pc->bdev_put_work, pmc_bdev_put_work);
	INIT_WORK(&pc->commit_work, pmc_commit_work);
	INIT_DELAYED_WORK(&pc->autocommit_work, pmc_autocommit_work);
	INIT_DELAYED_WORK(&pc->writeback_work, pmc_writeback_work);
	INIT_DELAYED_WORK(&pc->max_age_work, pmc_max_age_work);
	pc->cleaner = pmc_given(&pc->opts, PMC_OPT_CLEANER);
	pc->suspended = true;
	if (percpu_init_rwsem(&pc->map_sem)) {
		ti->error = "Cannot allocate memory";
		r = -ENOMEM;
		goto bad;
	}

	r = pmc_wb_bioset_init(pc);
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

	/*
	 * First out of the claims, so that no other table takes the cache
	 * over from this one while it is freed.  A live table was
	 * suspended first; this one may never have run.
	 */
	pmc_unclaim(pc);
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
		/*
		 * Field 1, the error latch: stores to pmem fail not; writes
		 * to a cache block device may.
		 */
		DMEMIT("%d %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu",
		       READ_ONCE(pc->bdev.failed) ? -EIO : 0,
		       pmc_usable(pc), nr_free,
		       nr_wb, st.reads, st.read_hits, st.writes,
		       st.write_hits_uncommitted, st.write_hits_committed,
		       st.writes_around, st.writes_allocated, st.writes_blocked,
		       st.flushes, st.discards);
		DMEMIT(" %llu %s%s%s %llu %lld %lld %llu", nr_dirty,
		       pmc_on_bdev(pc) ? "bdev" :
		       pmc_flush_mode_name(pc->flush.data),
		       pc->flush.data == pc->flush.meta ? "" : "/",
		       pc->flush.data == pc->flush.meta ? "" :
		       pmc_flush_mode_name(pc->flush.meta), pc->nr_bad,
		       (long long)atomic64_read(&pc->wb_errors),
		       (long long)atomic64_read(&pc->media_errors),
		       pc->meta_errors);
		break;
	case STATUSTYPE_TABLE:
		/*
		 * Not force_origin: it serves the activation that needs it,
		 * and a table copied from this one must not carry it.
		 */
		for (i = 0; i < PMC_NR_OPTS; i++)
			if (pmc_given(o, i) && i != PMC_OPT_FORCE_ORIGIN)
				words += pmc_opts[i].has_value ? 2 : 1;
		DMEMIT("%c %s %s %u %u", pc->pmem_mode ? 'p' : 's',
		       pc->origin->name, pc->cache_dev->name, pc->block_size,
		       words);
		for (i = 0; i < PMC_NR_OPTS; i++) {
			if (!pmc_given(o, i) || i == PMC_OPT_FORCE_ORIGIN)
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

	/* Another table has the cache: nothing is written to it. */
	if (READ_ONCE(pc->handed_over)) {
		pmc_claim_stop(pc);
		return;
	}
	if (pc->flush_on_suspend && pmc_write_back_all(pc, false) &&
	    !READ_ONCE(pc->handed_over))
		DMERR("%pg: flush_on_suspend: writeback failed; dirty blocks stay in the cache",
		      pc->cache_dev->bdev);
	pmc_stop_work(pc);
	/* Everything written so far is durable before a new table loads it. */
	pmc_commit(pc);
	if (pmc_writes_around(pc) && !pmc_pcheck_cut() &&
	    blkdev_issue_flush(pc->origin->bdev))
		DMERR("%pg: flushing the origin at suspend failed", pc->origin->bdev);
	pmc_claim_stop(pc);
}

static int pmc_preresume(struct dm_target *ti)
{
	struct pmemcache *pc = ti->private;
	int r;

	r = pmc_claim_run(pc);
	if (r)
		return r;
	if (pc->loaded)
		return 0;
	/* s mode: what an older table wrote since the constructor read it. */
	if (pmc_on_bdev(pc)) {
		r = pmc_bdev_reread_image(pc);
		if (r)
			goto stop;
	}
	r = pmc_load(pc);
	if (!r)
		r = pmc_settle_origin(pc);
	if (r)
		goto stop;
	pmc_claim_loaded(pc);
	pmc_test_point(PMC_TP_LOADED);
	return 0;
stop:
	pmc_claim_stop(pc);
	return r;
}

static void pmc_resume(struct dm_target *ti)
{
	struct pmemcache *pc = ti->private;

	/*
	 * Handed over between its preresume and here (see
	 * pmc_hand_over()): it stays stopped.  handed_over is set before
	 * the hand-over takes pc->lock to stop the work.
	 */
	spin_lock(&pc->lock);
	if (READ_ONCE(pc->handed_over)) {
		spin_unlock(&pc->lock);
		return;
	}
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
