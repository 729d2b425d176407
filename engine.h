/* SPDX-License-Identifier: GPL-2.0 */
/*
 * dm-pmemcache's engine: the in-memory state of one cache (struct
 * pmemcache, struct pmc_block) and what its parts call of each other.
 *
 *   dm-pmemcache.c  the target: table, ctr/dtr, map dispatch, status,
 *                   messages, suspend/resume
 *   index.c         blocks, entries, the index, the free list
 *   io.c            read, write and discard paths
 *   commit.c        epochs and commits
 *   writeback.c     writeback to the origin
 *   format.c        format, activation checks, recovery
 *   medium.h        the medium, p or s: where metadata stores go and how
 *                   they become durable
 *   pmem_map.c, flush.c  p: mapping pmem, making stores durable
 *   bdev_medium.c   s: the metadata image in RAM, its writes, data sectors
 */
#ifndef PMC_ENGINE_H
#define PMC_ENGINE_H

#include <linux/atomic.h>
#include <linux/bio.h>
#include <linux/dm-ioctl.h>
#include <linux/llist.h>
#include <linux/mempool.h>
#include <linux/mutex.h>
#include <linux/percpu.h>
#include <linux/percpu-rwsem.h>
#include <linux/rbtree.h>
#include <linux/seqlock.h>
#include <linux/spinlock.h>
#include <linux/wait.h>
#include <linux/workqueue.h>

#include "dm-pmemcache.h"

struct dm_io_client;
struct dm_kcopyd_client;
struct pmc_claim;

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
	PMC_OPT_FORCE_ORIGIN,
	PMC_NR_OPTS
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

/* pmc_block.filling of a block whose data write failed (s mode). */
#define PMC_FILL_BAD	3

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
 * @users: readers copying data out right now (p mode) or reading it from
 *         the cache device (s mode); writers are counted in
 *         pmemcache.inflight instead: see pmc_map_discard().  Changed
 *         only with cmpxchg (pmc_get_user(), pmc_put_user()), with or
 *         without pc->lock: a read hit takes its count without the lock,
 *         so a block's count may also be held for a moment by a reader
 *         that found it in a stale view of the index and lets go again
 * @state: enum pmc_state; written under pc->lock, read without it by
 *         pmc_put_user() (PMC_DYING)
 * @filling: 1 from the moment a writer takes the block from the free list
 *           until its data is copied in, 2 when a reader waits for that;
 *           cleared by the writer without pc->lock (pmc_fill_done());
 *           PMC_FILL_BAD (s mode) once a write of its data failed
 *           (readers get EIO)
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
 * struct pmc_bdev_medium - s mode: the cache on a block device
 * @start: sectors skipped at the start of the device (start_sector)
 * @size: bytes of the device from @start on
 * @image: the metadata (superblock, commit slots, entries) in RAM: every
 *         metadata store goes here, and a barrier writes what changed
 * @image_size: bytes of @image, the metadata region of the device
 * @dirty: one bit per PMC_BDEV_CHUNK bytes of @image stored to since the
 *         last barrier wrote it
 * @nr_chunks: bits in @dirty
 * @sync_lock: one barrier at a time (one that found a chunk clean must
 *             not return before another's write of it completes)
 * @bounce: PMC_BDEV_BOUNCE bytes the dirty chunks are copied to before
 *          they are written (the image changes meanwhile; a device that
 *          checks data at submission needs it stable)
 * @sb_seen: the superblock as the constructor found or wrote it; resume
 *           reads the image again and must find the same
 * @io: dm-io client for the metadata writes
 * @kcopyd: dm-kcopyd client for writeback
 * @failed: a write or flush of the cache device failed: no barrier
 *          succeeds again, so that the media keeps what it held then
 *          (status field 1), no commit succeeds, no write is taken
 */
struct pmc_bdev_medium {
	sector_t start;
	u64 size;
	void *image;
	size_t image_size;
	unsigned long *dirty;
	unsigned long nr_chunks;
	struct mutex sync_lock;	/* see above */
	void *bounce;
	struct pmc_sb sb_seen;
	struct dm_io_client *io;
	struct dm_kcopyd_client *kcopyd;
	bool failed;
};

/**
 * struct pmemcache - one pmemcache target
 * @ti: the target
 * @origin: the slow device that is cached
 * @cache_dev: the cache device
 * @pmem: p mode: the cache device's linear mapping
 * @bdev: s mode: the cache device's metadata image and I/O clients
 * @pmem_mode: true for "p" (persistent memory) mode, false for "s"
 * @block_size: cache block size in bytes
 * @block_shift: log2(@block_size)
 * @opts: the optional arguments
 * @flush: persistence strategies for data and metadata
 * @stats: per-CPU counters, summed for the status line
 * @sb: the superblock (p: in pmem; s: in the metadata image)
 * @entries: the entry array (the same)
 * @data: p: data block 0 in pmem; s: NULL (pmc_bdev_data_sector())
 * @nr_blocks: data blocks in the cache
 * @origin_blocks: blocks of the target's length
 * @crc_seed: crc32c of the superblock's uuid
 * @blocks: in-memory state, one per data block
 * @lock: protects @index, @free, @superseded, @nr_free, @nr_writeback,
 *        @nr_wb_superseded, @seq_open, @committed, @epoch_writes, the
 *        fields of every struct pmc_block but @filling, @wb_upto,
 *        @wb_upto_done, @wb_active, @wb_age_due, and the writes of
 *        @suspended.  Some of them are also read without it (READ_ONCE,
 *        or a plain read of a counter) where a stale value only delays
 *        or hastens writeback or a commit; read hits walk @index without
 *        it, checked by @index_seq.
 * @index_seq: bumped around every change of @index (under @lock): a read
 *             hit looks its blocks up without @lock and goes on only if
 *             it did not move meanwhile (pmc_read_pin())
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
 * @wq: runs commits, writeback, and in s mode @defer_work and
 *      @bdev_put_work
 * @commit_work: an asynchronous commit (a writer waiting for a free block)
 * @autocommit_work: the autocommit_time timer
 * @writeback_work: the writeback loop
 * @max_age_work: the max_age timer
 * @wb_bios: bio set for writeback bios
 * @wb_copies: s mode: struct pmc_wb_copy for writeback's dm-kcopyd copies
 * @bdev_bios: s mode: bio set for the clones sent to the cache device
 * @defer_lock: protects @deferred (taken in bio completion)
 * @deferred: s mode: flushes, discards and FUA writes for @defer_work
 * @defer_work: s mode: handles @deferred (pmc_defer_work())
 * @bdev_puts: s mode: finished reads that were the last users of a dying
 *             block, for @bdev_put_work to free it
 * @bdev_put_work: s mode: pmc_bdev_put_work(), queued by a read that put
 *                 the first entry on @bdev_puts
 * @wb_all: a flush message runs: write back every block committed up to
 *          @wb_upto, whatever the watermarks
 * @wb_upto: see @wb_all; under pc->lock
 * @wb_upto_done: writeback found no block left up to @wb_upto
 * @wb_active: writeback went above high_watermark, runs to low_watermark
 * @wb_age_due: the max_age timer asks for a pass over old blocks
 * @cleaner: cleaner mode (option or message); set once, with WRITE_ONCE,
 *           read locklessly
 * @wb_failing: the last writeback batch had a failed block
 * @went_around: a write went around the cache because of @wb_failing
 * @flush_on_suspend: write back everything when suspended
 * @suspended: no writeback, no timers
 * @loaded: the index was built from the media (set in preresume; the
 *          flush message, the one that reads it, is turned away while
 *          @suspended)
 * @wb_errors: origin write errors seen by writeback
 * @media_errors: machine checks seen reading the cache
 * @meta_errors: entries found corrupt when loading
 * @nr_bad: blocks never used (unreadable entry, or data on a media error)
 * @loaded_dirty: dirty blocks pmc_load() found
 * @claim: the cache device's entry in the module's list of cache devices
 *         in use (dm-pmemcache.c), under its mutex
 * @claim_node: in @claim's holders
 * @claim_gen: @claim's generation when this table first ran
 * @claim_shared: a table of another mapped device held the cache device
 *                when this one was constructed: no format, no conversion
 * @md_name: the name of the table's mapped device, for the log
 * @md_uuid: its dm uuid ("" if none): who may take the cache over
 * @map_sem: held for reading by every map call, for writing while a
 *           table of another mapped device takes the cache over
 *           (pmc_hand_over()), so that no map call is half way then
 * @handed_over: another table takes the cache over: this one fails its
 *               I/O (set under @map_sem held for writing)
 * @committed_last: pmc_commit_last() ran: no commit after it (under
 *                  @commit_lock)
 */
struct pmemcache {
	struct dm_target *ti;
	struct dm_dev *origin;
	struct dm_dev *cache_dev;
	struct pmc_pmem_map pmem;
	struct pmc_bdev_medium bdev;
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
	seqcount_spinlock_t index_seq;
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
	mempool_t wb_copies;
	struct bio_set bdev_bios;
	spinlock_t defer_lock;	/* see above */
	struct bio_list deferred;
	struct work_struct defer_work;
	struct llist_head bdev_puts;
	struct delayed_work bdev_put_work;

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
	u64 loaded_dirty;
	struct pmc_claim *claim;
	struct list_head claim_node;
	u64 claim_gen;
	bool claim_shared;
	char md_name[DM_NAME_LEN];
	char md_uuid[DM_UUID_LEN];
	struct percpu_rw_semaphore map_sem;
	bool handed_over;
	bool committed_last;
};

static inline bool pmc_given(const struct pmc_options *o, enum pmc_opt opt)
{
	return o->given & BIT(opt);
}

static inline u64 pmc_idx(struct pmemcache *pc, struct pmc_block *b)
{
	return b - pc->blocks;
}

static inline void *pmc_data(struct pmemcache *pc, struct pmc_block *b)
{
	return pc->data + (pmc_idx(pc, b) << pc->block_shift);
}

static inline bool pmc_indexed(struct pmc_block *b)
{
	return !RB_EMPTY_NODE(&b->node);
}

/* Blocks that can hold data: all but the unusable ones. */
static inline u64 pmc_usable(struct pmemcache *pc)
{
	return pc->nr_blocks - pc->nr_bad;
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
 * Loops over blocks (a writeback pick, a discard, a commit's superseded
 * list) handle at most this many per hold of pc->lock, then let others in.
 */
#define PMC_LOCK_BATCH	1024

/* Most blocks a read serves from the cache in one call of pmc_map_read(). */
#define PMC_READ_RUN	32

/* index.c */
u32 pmc_entry_crc(struct pmemcache *pc, u64 origin, u64 seq, u64 idx);
u32 pmc_commit_crc(struct pmemcache *pc, u64 seq);
void pmc_write_entry(struct pmemcache *pc, u64 i, u64 origin, u64 seq);
void pmc_clear_entry(struct pmemcache *pc, u64 i);
struct pmc_block *pmc_lookup_ge(struct pmemcache *pc, u64 origin);
struct pmc_block *pmc_find(struct pmemcache *pc, u64 origin,
			   struct pmc_block *hint, struct pmc_slot *slot);
struct pmc_block *pmc_lookup(struct pmemcache *pc, u64 origin);
void pmc_index_link(struct pmemcache *pc, struct pmc_block *nb,
		    struct pmc_slot *slot);
void pmc_index_insert(struct pmemcache *pc, struct pmc_block *nb);
void pmc_index_replace(struct pmemcache *pc, struct pmc_block *b,
		       struct pmc_block *nb);
void pmc_index_erase(struct pmemcache *pc, struct pmc_block *b);
unsigned int pmc_read_pin(struct pmemcache *pc, u64 first, unsigned int nr,
			  unsigned int most, struct pmc_block **run, bool *cached);
void pmc_release(struct pmemcache *pc, struct pmc_block *b);
bool pmc_get_user(struct pmc_block *b);
bool pmc_put_user_last(struct pmc_block *b);
void pmc_free_dying(struct pmemcache *pc, struct pmc_block *b);
void pmc_put_user(struct pmemcache *pc, struct pmc_block *b);
void pmc_retire(struct pmemcache *pc, struct pmc_block *b, u64 seq);
u64 pmc_used_percent(struct pmemcache *pc);
void pmc_kick_writeback(struct pmemcache *pc);
bool pmc_lock_break(struct pmemcache *pc, unsigned int *turns);

/* commit.c */
int pmc_write_commit(struct pmemcache *pc, u64 seq);
int pmc_commit(struct pmemcache *pc);
int pmc_commit_last(struct pmemcache *pc);
void pmc_commit_in_map(struct pmemcache *pc);
void pmc_autocommit(struct pmemcache *pc);
void pmc_commit_work(struct work_struct *w);
void pmc_autocommit_work(struct work_struct *w);

/* writeback.c */
int pmc_wb_bioset_init(struct pmemcache *pc);
int pmc_wb_copies_init(struct pmemcache *pc);
void pmc_writeback_work(struct work_struct *w);
void pmc_max_age_work(struct work_struct *w);
int pmc_write_back_all(struct pmemcache *pc, bool interruptible);

/* io.c */
bool pmc_writes_around(struct pmemcache *pc);
int pmc_bdev_bioset_init(struct pmemcache *pc);
void pmc_defer(struct pmemcache *pc, struct bio *bio);
void pmc_defer_work(struct work_struct *w);
void pmc_bdev_put_work(struct work_struct *w);
int pmc_bdev_map(struct pmemcache *pc, struct bio *bio, bool promote);
int pmc_map_read(struct pmemcache *pc, struct bio *bio);
int pmc_map_write(struct pmemcache *pc, struct bio *bio, bool promote);
int pmc_map_discard(struct pmemcache *pc, struct bio *bio);
void pmc_remap(struct pmemcache *pc, struct bio *bio);

/* format.c */
int pmc_open_cache(struct pmemcache *pc);
int pmc_check_origin(struct pmemcache *pc);
int pmc_load(struct pmemcache *pc);
int pmc_settle_origin(struct pmemcache *pc);

/* writecache_format.c */
bool pmc_wc_holds_cache(struct pmemcache *pc, const u8 *head);
int pmc_wc_take_over(struct pmemcache *pc, const u8 *head);

#include "medium.h"

#endif /* PMC_ENGINE_H */
