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
 * What works so far: the table is parsed and validated in full, the cache
 * device is claimed and mapped (pmem_map.c), and every bio is passed
 * through to the origin unchanged.  The cache engine is not written yet.
 */

#include <linux/module.h>
#include <linux/init.h>
#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/kernel.h>
#include <linux/log2.h>
#include <linux/percpu.h>
#include <linux/slab.h>
#include <linux/string.h>

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
	u64 writes;
	u64 writes_around;
	u64 flushes;
	u64 discards;
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
 * @stats: per-CPU counters, summed for the status line
 *
 * Everything but @stats is set in the constructor and constant after it.
 */
struct pmemcache {
	struct dm_target *ti;
	struct dm_dev *origin;
	struct pmc_pmem_map pmem;
	bool pmem_mode;
	unsigned int block_size;
	unsigned int block_shift;
	struct pmc_options opts;
	struct pmc_stats __percpu *stats;
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

static void pmc_free(struct pmemcache *pc)
{
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
	if ((pc->pmem.size >> pc->block_shift) == 0) {
		ti->error = "Cache device holds no block of this size";
		r = -EINVAL;
		goto bad;
	}

	pc->stats = alloc_percpu(struct pmc_stats);
	if (!pc->stats) {
		ti->error = "Cannot allocate statistics";
		r = -ENOMEM;
		goto bad;
	}

	ti->num_flush_bios = 1;
	ti->num_discard_bios = 1;
	ti->flush_supported = true;
	return 0;
bad:
	pmc_free(pc);
	ti->private = NULL;
	return r;
}

static void pmc_dtr(struct dm_target *ti)
{
	pmc_free(ti->private);
}

static int pmc_map(struct dm_target *ti, struct bio *bio)
{
	struct pmemcache *pc = ti->private;
	struct pmc_stats *s;
	u64 blocks = bio_sectors(bio) >> (pc->block_shift - SECTOR_SHIFT);

	s = get_cpu_ptr(pc->stats);
	switch (bio_op(bio)) {
	case REQ_OP_READ:
		s->reads += blocks;
		break;
	case REQ_OP_WRITE:
		if (bio->bi_opf & REQ_PREFLUSH && !blocks)
			s->flushes++;
		s->writes += blocks;
		s->writes_around += blocks;
		break;
	case REQ_OP_DISCARD:
		s->discards += blocks;
		break;
	default:
		break;
	}
	put_cpu_ptr(pc->stats);

	bio_set_dev(bio, pc->origin->bdev);
	if (bio_sectors(bio) || bio_op(bio) == REQ_OP_ZONE_RESET)
		bio->bi_iter.bi_sector = dm_target_offset(ti, bio->bi_iter.bi_sector);
	return DM_MAPIO_REMAPPED;
}

static void pmc_sum_stats(struct pmemcache *pc, struct pmc_stats *sum)
{
	int cpu;

	memset(sum, 0, sizeof(*sum));
	for_each_possible_cpu(cpu) {
		struct pmc_stats *s = per_cpu_ptr(pc->stats, cpu);

		sum->reads += s->reads;
		sum->writes += s->writes;
		sum->writes_around += s->writes_around;
		sum->flushes += s->flushes;
		sum->discards += s->discards;
	}
}

static void pmc_status(struct dm_target *ti, status_type_t type,
		       unsigned int status_flags, char *result,
		       unsigned int maxlen)
{
	struct pmemcache *pc = ti->private;
	const struct pmc_options *o = &pc->opts;
	unsigned int sz = 0, words = 0;
	struct pmc_stats st;
	u64 total;
	int i;

	switch (type) {
	case STATUSTYPE_INFO:
		/*
		 * dm-writecache's 14 fields, in its order.  No block is cached
		 * yet: every block is free, every write goes around.
		 */
		pmc_sum_stats(pc, &st);
		total = pc->pmem.size >> pc->block_shift;
		DMEMIT("%d %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu",
		       0, total, total, 0ULL, st.reads, 0ULL, st.writes, 0ULL,
		       0ULL, st.writes_around, 0ULL, 0ULL, st.flushes,
		       st.discards);
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
			if (pmc_opts[i].has_value)
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
}

static struct target_type pmc_target = {
	.name = "pmemcache",
	.version = { 0, 1, 0 },
	.module = THIS_MODULE,
	.ctr = pmc_ctr,
	.dtr = pmc_dtr,
	.map = pmc_map,
	.status = pmc_status,
	.iterate_devices = pmc_iterate_devices,
	.io_hints = pmc_io_hints,
};

static int __init pmc_init(void)
{
	int r = dm_register_target(&pmc_target);

	if (r)
		DMERR("cannot register the pmemcache target: %d", r);
	return r;
}

static void __exit pmc_exit(void)
{
	dm_unregister_target(&pmc_target);
}

module_init(pmc_init);
module_exit(pmc_exit);

MODULE_DESCRIPTION(DM_NAME " persistent memory write-back cache target");
MODULE_LICENSE("GPL");
