// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer entry points for the tool's parsers (make fuzz):
 * built as is, it feeds the input to pmc_image_read() as the first bytes
 * of a cache device: the last 16 bytes give the device's size (at most
 * 4 MiB, so that a run stays short; reads past the input fail as an
 * unreadable device would) and the origin's.  When the size is odd, the
 * superblock's and the commit records' checksums are made right first,
 * so that mutations of their fields reach the code past the checks.
 * Built with -DFUZZ_STATUS, it feeds the input to pmc_status_fields() as
 * a dmsetup status line.
 */
#include <endian.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pmemcache_image.h"

#ifndef FUZZ_STATUS
struct buf {
	const uint8_t *p;
	size_t n;
};

static uint64_t dev_size;

static int buf_read(void *ctx, void *dst, size_t len, uint64_t off)
{
	const struct buf *b = ctx;

	if (off > dev_size || len > dev_size - off)
		abort();	/* the parser must not ask past the end */
	if (off > b->n || len > b->n - off)
		return -5;	/* EIO: beyond what the input gives */
	memcpy(dst, b->p + off, len);
	return 0;
}

/* The superblock's crc, then both commit records' with its uuid's seed. */
static void fix_checksums(uint8_t *p)
{
	struct pmc_sb *sb = (struct pmc_sb *)p;
	uint32_t seed;
	int slot;

	sb->crc = htole32(pmc_crc32c(~0U, sb, offsetof(struct pmc_sb, crc)));
	seed = pmc_crc32c(~0U, sb->uuid, sizeof(sb->uuid));
	for (slot = 0; slot < 2; slot++) {
		struct pmc_commit *c = (struct pmc_commit *)(p + PMC_COMMIT_OFFSET(slot));

		c->crc = htole32(pmc_crc32c(seed, &c->seq, sizeof(c->seq)));
	}
}

#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
#ifdef FUZZ_STATUS
	char line[4096], *f[40];

	if (size >= sizeof(line))
		return 0;
	memcpy(line, data, size);
	line[size] = 0;
	pmc_status_fields(line, f, 40);
#else
	struct buf b = { data, size };
	uint8_t *copy = NULL;
	struct pmc_src src = { .read = buf_read, .ctx = &b };
	struct pmc_image img;
	uint64_t origin = UINT64_MAX;

	dev_size = size;
	if (size >= 16) {
		memcpy(&dev_size, data + size - 16, 8);
		memcpy(&origin, data + size - 8, 8);
		b.n = size - 16;
		dev_size %= 4 << 20;
		if (dev_size < b.n)
			dev_size = b.n;
	}
	src.size = dev_size;
	if ((dev_size & 1) && b.n >= PMC_SB_SIZE) {
		copy = malloc(b.n);
		if (!copy)
			return 0;
		memcpy(copy, data, b.n);
		fix_checksums(copy);
		b.p = copy;
	}
	pmc_image_read(&img, &src, origin);
	free(copy);
	pmc_image_free(&img);
#endif
	return 0;
}
