/* SPDX-License-Identifier: GPL-2.0 */
/*
 * pmemcache (the userspace tool): reading a cache device's metadata
 * without the module.  The parser works on any source of bytes (a device
 * through pread(), or a buffer for the fuzzer), never reads past the end
 * it is given, and checks every size before it uses it.
 */
#ifndef PMEMCACHE_IMAGE_H
#define PMEMCACHE_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../pmemcache_format.h"

/* A source of bytes: @read copies @len bytes at @off, 0 or -errno. */
struct pmc_src {
	int (*read)(void *ctx, void *buf, size_t len, uint64_t off);
	void *ctx;
	uint64_t size;		/* bytes from the cache's start (start_sector) */
};

/* What each entry is, as recovery would see it. */
enum pmc_ent_kind {
	PMC_ENT_FREE,		/* seq 0 */
	PMC_ENT_DIRTY,		/* valid, the newest of its origin block */
	PMC_ENT_SUPERSEDED,	/* valid, an older version of its block */
	PMC_ENT_UNCOMMITTED,	/* seq above the committed one: dropped */
	PMC_ENT_CORRUPT,	/* checksum wrong: dropped, data lost */
	PMC_ENT_BEYOND,		/* valid, past the origin's end */
	PMC_ENT_UNREADABLE,	/* could not be read */
};

struct pmc_image {
	struct pmc_sb sb;
	char sb_error[160];	/* empty when the superblock is good */
	uint32_t seed;		/* crc32c of the uuid */
	int64_t committed;	/* -1: no valid commit record */
	bool slot_valid[2];
	uint64_t slot_seq[2];
	uint64_t nr_blocks;
	uint32_t block_size;
	uint64_t data_offset;
	uint64_t origin_blocks;	/* UINT64_MAX: not known */
	uint8_t *kind;		/* enum pmc_ent_kind per entry */
	uint64_t *origin;	/* per entry */
	uint64_t *seq;		/* per entry */
	uint64_t count[PMC_ENT_UNREADABLE + 1];
	int origin_rec;		/* 1 valid, 0 absent, -1 damaged */
	uint64_t origin_rec_sectors;
	char origin_rec_uuid[PMC_ORIGIN_UUID_LEN + 1];
};

uint32_t pmc_crc32c(uint32_t crc, const void *buf, size_t len);
bool pmc_origin_matches(const struct pmc_image *img, uint64_t sectors,
			const char *uuid);
int pmc_image_read(struct pmc_image *img, const struct pmc_src *src,
		   uint64_t origin_bytes);
void pmc_image_free(struct pmc_image *img);
int pmc_status_fields(char *line, char **f, unsigned int max);

#endif /* PMEMCACHE_IMAGE_H */
