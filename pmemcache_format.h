/* SPDX-License-Identifier: GPL-2.0 */
/*
 * dm-pmemcache: the on-media format, the one definition of it, shared by
 * the module and the userspace tool (tools/pmemcache.c).  Only fixed-width
 * little-endian types and constants here: it compiles in the kernel and
 * in userspace (<linux/types.h> gives __le32 and __le64 in both).
 *
 * On-media format (all fields little-endian, fixed width), from the first
 * byte after start_sector of the cache device:
 *
 *   0        +--------------------------------------------+
 *            | struct pmc_sb: magic, version, features,    |
 *            | block size, block count, offsets, uuid, crc |
 *   1024     | struct pmc_commit, slot 0 (even sequences)  |
 *   2048     | struct pmc_commit, slot 1 (odd sequences)   |
 *   3072     | struct pmc_origin: the origin's identity    |
 *   4096     +--------------------------------------------+
 *            | struct pmc_entry[nr_blocks], 32 bytes each  |
 *            | (rounded up to 4 KiB)                       |
 *   data_off +--------------------------------------------+
 *            | data blocks, block_size bytes each          |
 *            +--------------------------------------------+
 *
 * The superblock never changes after formatting; its crc32c covers all
 * of it.  Each commit writes the sequence number it makes durable into
 * the slot of that number's parity, with a crc32c: a torn commit record
 * leaves the other slot, one commit older, in force.
 *
 * The origin record names the origin the cache's data belongs to: its
 * length and, when it is a device-mapper device with a uuid (every lvm2
 * LV has one), that uuid.  It is written at format, and rewritten when
 * a table names another origin while the cache holds no dirty data (or
 * the table says force_origin), before that table's first write.  A cache
 * formatted before the record existed has zeros there (no record).
 *
 * Entry i describes data block i: the origin block it caches and the
 * sequence number of the commit it belongs to; seq 0 means free.  An
 * entry is valid when seq != 0, seq <= the committed sequence and its
 * crc32c (seeded from the uuid, covering origin, seq and i) matches.
 * When several valid entries name the same origin block, the highest
 * seq wins.  The persistence rules are in flush.c.
 *
 * Checksums are crc32c as the kernel's crc32c() computes it: the
 * reflected Castagnoli polynomial, the register preset to the seed, no
 * final inversion.  The superblock's covers its bytes before @crc, seeded
 * with ~0.  The others are seeded with the crc32c (seeded with ~0) of the
 * superblock's uuid: a commit record's covers its sequence number as an
 * __le64; an entry's covers origin, seq and the entry's index, three
 * __le64 in that order; the origin record's covers its bytes after @crc.
 */
#ifndef PMEMCACHE_FORMAT_H
#define PMEMCACHE_FORMAT_H

#include <linux/types.h>

#define PMC_MAGIC		0x434d4d50	/* "PMMC" */
#define PMC_VERSION		1
#define PMC_SB_SIZE		4096
#define PMC_COMMIT_OFFSET(slot)	(1024 + 1024 * (slot))
#define PMC_ORIGIN_OFFSET	3072
#define PMC_ORIGIN_MAGIC	0x4e47524f	/* "ORGN" */
/* A device-mapper uuid (DM_UUID_LEN, 129 with its NUL), rounded up. */
#define PMC_ORIGIN_UUID_LEN	136

/**
 * struct pmc_sb - the superblock, at offset 0; written once, at format
 * @magic: PMC_MAGIC
 * @version: PMC_VERSION; a newer version is refused
 * @features: incompatible feature flags; none defined, any set is refused
 * @block_size: cache block size in bytes
 * @nr_blocks: number of data blocks
 * @entries_offset: byte offset of the entry array
 * @data_offset: byte offset of data block 0
 * @uuid: random at format; seeds the entry checksums
 * @reserved: zero
 * @crc: crc32c of everything before it
 */
struct pmc_sb {
	__le32 magic;
	__le32 version;
	__le32 features;
	__le32 block_size;
	__le64 nr_blocks;
	__le64 entries_offset;
	__le64 data_offset;
	__u8 uuid[16];
	__le32 reserved[5];
	__le32 crc;
};

/**
 * struct pmc_commit - a commit record
 * @seq: the highest committed sequence number
 * @crc: crc32c of @seq, seeded from the superblock's uuid
 * @pad: zero
 */
struct pmc_commit {
	__le64 seq;
	__le32 crc;
	__le32 pad;
};

/**
 * struct pmc_origin - the origin the cache's data belongs to
 * @magic: PMC_ORIGIN_MAGIC; 0: no record (a cache formatted without one)
 * @crc: crc32c of the bytes after it, seeded from the superblock's uuid
 * @sectors: the origin device's length in 512-byte sectors
 * @uuid: its device-mapper uuid, NUL-terminated; empty when it has none
 * @reserved: zero
 */
struct pmc_origin {
	__le32 magic;
	__le32 crc;
	__le64 sectors;
	__u8 uuid[PMC_ORIGIN_UUID_LEN];
	__le64 reserved;
};

/**
 * struct pmc_entry - metadata of one data block
 * @origin: origin block (in cache blocks) whose data this block holds
 * @seq: the commit this write belongs to; 0: the block is free
 * @crc: crc32c of @origin, @seq and the entry's index, seeded from uuid
 * @flags: zero
 * @reserved: zero
 *
 * @seq is written last and alone (one aligned 8-byte store) to free a
 * block, so that freeing can never tear.
 */
struct pmc_entry {
	__le64 origin;
	__le64 seq;
	__le32 crc;
	__le32 flags;
	__le64 reserved;
};

#endif /* PMEMCACHE_FORMAT_H */
