// SPDX-License-Identifier: GPL-2.0
/*
 * pmemcache (the userspace tool): the metadata of a cache device read
 * and classified as the module's recovery (format.c, pmc_load()) would:
 * the superblock checked, the newest valid commit record found, each
 * entry free, dirty (the newest valid one of its origin block),
 * superseded, uncommitted, corrupt or past the origin.
 */
#define _GNU_SOURCE
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pmemcache_image.h"

#define le32(x) le32toh(x)
#define le64(x) le64toh(x)

/* crc32c as the kernel's crc32c(): no inversion in or out. */
uint32_t pmc_crc32c(uint32_t crc, const void *buf, size_t len)
{
	static uint32_t table[256];
	const uint8_t *p = buf;
	size_t i;
	int k;

	if (!table[1]) {
		for (i = 0; i < 256; i++) {
			uint32_t c = i;

			for (k = 0; k < 8; k++)
				c = c & 1 ? (c >> 1) ^ 0x82f63b78 : c >> 1;
			table[i] = c;
		}
	}
	for (i = 0; i < len; i++)
		crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
	return crc;
}

static uint32_t pmc_entry_crc(uint32_t seed, uint64_t origin, uint64_t seq,
			      uint64_t idx)
{
	__le64 v[3] = { htole64(origin), htole64(seq), htole64(idx) };

	return pmc_crc32c(seed, v, sizeof(v));
}

static uint32_t pmc_commit_crc(uint32_t seed, uint64_t seq)
{
	__le64 v = htole64(seq);

	return pmc_crc32c(seed, &v, sizeof(v));
}

/* Superblock checks; a message in img->sb_error when it is unusable. */
static void pmc_check_sb(struct pmc_image *img, uint64_t size)
{
	const struct pmc_sb *sb = &img->sb;
	uint64_t n = le64(sb->nr_blocks), bs = le32(sb->block_size);
	uint64_t eoff = le64(sb->entries_offset), doff = le64(sb->data_offset);

#define SB_ERR(...) snprintf(img->sb_error, sizeof(img->sb_error), __VA_ARGS__)
	if (le32(sb->magic) != PMC_MAGIC)
		SB_ERR("no pmemcache superblock (magic %#x)", le32(sb->magic));
	else if (le32(sb->version) == 0)
		SB_ERR("a format that never finished (version 0): nothing cached");
	else if (le32(sb->crc) != pmc_crc32c(~0U, sb, offsetof(struct pmc_sb, crc)))
		SB_ERR("superblock checksum wrong");
	else if (le32(sb->version) != PMC_VERSION || sb->features)
		SB_ERR("format version %u, features %#x: this tool knows version %u",
		       le32(sb->version), le32(sb->features), PMC_VERSION);
	else if (bs < 512 || bs > 65536 || (bs & (bs - 1)))
		SB_ERR("block size %llu invalid", (unsigned long long)bs);
	else if (!n || n > (UINT64_MAX - PMC_SB_SIZE) / (sizeof(struct pmc_entry) + bs))
		SB_ERR("block count %llu invalid", (unsigned long long)n);
	else if (eoff != PMC_SB_SIZE || doff % 4096 ||
		 doff < PMC_SB_SIZE + n * sizeof(struct pmc_entry) ||
		 doff > size || n > (size - doff) / bs)
		SB_ERR("offsets (entries %llu, data %llu) do not fit %llu blocks of %llu bytes in %llu bytes",
		       (unsigned long long)eoff, (unsigned long long)doff,
		       (unsigned long long)n, (unsigned long long)bs,
		       (unsigned long long)size);
#undef SB_ERR
	if (img->sb_error[0])
		return;
	img->nr_blocks = n;
	img->block_size = bs;
	img->data_offset = doff;
	img->seed = pmc_crc32c(~0U, sb->uuid, sizeof(sb->uuid));
}

static int pmc_read_commits(struct pmc_image *img, const struct pmc_src *src)
{
	int slot, r;

	img->committed = -1;
	for (slot = 0; slot < 2; slot++) {
		struct pmc_commit c;
		uint64_t seq;

		r = src->read(src->ctx, &c, sizeof(c), PMC_COMMIT_OFFSET(slot));
		if (r)
			return r;
		seq = le64(c.seq);
		img->slot_seq[slot] = seq;
		img->slot_valid[slot] = (seq & 1) == (uint64_t)slot &&
					seq <= INT64_MAX &&
					le32(c.crc) == pmc_commit_crc(img->seed, seq);
		if (img->slot_valid[slot] && (int64_t)seq > img->committed)
			img->committed = seq;
	}
	return 0;
}

/* The origin record: which origin the dirty data belongs to. */
static int pmc_read_origin_rec(struct pmc_image *img, const struct pmc_src *src)
{
	struct pmc_origin o;
	int r;

	r = src->read(src->ctx, &o, sizeof(o), PMC_ORIGIN_OFFSET);
	if (r) {
		img->origin_rec = -1;	/* unreadable: as the module, damaged */
		return 0;
	}
	if (!o.magic) {
		img->origin_rec = 0;
		return 0;
	}
	if (le32(o.magic) != PMC_ORIGIN_MAGIC ||
	    le32(o.crc) != pmc_crc32c(img->seed, &o.sectors,
				      sizeof(o) - offsetof(struct pmc_origin, sectors))) {
		img->origin_rec = -1;
		return 0;
	}
	img->origin_rec = 1;
	img->origin_rec_sectors = le64(o.sectors);
	memcpy(img->origin_rec_uuid, o.uuid, sizeof(o.uuid));
	img->origin_rec_uuid[sizeof(o.uuid)] = 0;
	return 0;
}

/**
 * pmc_origin_matches() - is a device the origin the record names?
 * @img: the image, read
 * @sectors: the device's length in 512-byte sectors
 * @uuid: its device-mapper uuid, "" if it has none
 *
 * As the module compares them: by uuid when both have one (lvm2's from
 * the LV id on, cryptsetup's without the mapping's name), a uuid on one
 * side only is another device, by length (which may have grown) when
 * neither has one.  True also when there is no valid record.
 */
/* As the module's pmc_uuid_key(): the part of a dm uuid that names the device. */
static void uuid_key(const char *u, const char **key, size_t *len)
{
	const char *p;
	size_t n = strlen(u);

	*key = u;
	*len = n;
	if (n > 4 + 32 && !strncmp(u, "LVM-", 4)) {
		*key = u + 4 + 32;
		*len = n - 4 - 32;
	} else if (!strncmp(u, "CRYPT-", 6)) {
		p = strchr(u + 6, '-');
		if (p)
			p = strchr(p + 1, '-');
		if (p)
			*len = p - u;
	}
}

bool pmc_origin_matches(const struct pmc_image *img, uint64_t sectors,
			const char *uuid)
{
	const char *ka, *kb;
	size_t la, lb;

	if (img->origin_rec != 1)
		return true;
	if (img->origin_rec_uuid[0] && uuid[0]) {
		uuid_key(img->origin_rec_uuid, &ka, &la);
		uuid_key(uuid, &kb, &lb);
		return la == lb && !memcmp(ka, kb, la);
	}
	if (img->origin_rec_uuid[0] || uuid[0])
		return false;
	return sectors >= img->origin_rec_sectors;
}

static int pmc_cmp_origin(const void *a, const void *b, void *arg)
{
	const struct pmc_image *img = arg;
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	if (img->origin[x] != img->origin[y])
		return img->origin[x] < img->origin[y] ? -1 : 1;
	if (img->seq[x] != img->seq[y])
		return img->seq[x] > img->seq[y] ? -1 : 1;
	return x < y ? -1 : x > y;
}

/* Entries per read. */
#define PMC_CHUNK 4096

static int pmc_read_entries(struct pmc_image *img, const struct pmc_src *src)
{
	struct pmc_entry *buf = malloc(PMC_CHUNK * sizeof(*buf));
	uint64_t n = img->nr_blocks, i, nvalid = 0, *valid;
	int r = 0;

	img->kind = calloc(n, 1);
	img->origin = calloc(n, sizeof(uint64_t));
	img->seq = calloc(n, sizeof(uint64_t));
	valid = calloc(n, sizeof(uint64_t));
	if (!buf || !img->kind || !img->origin || !img->seq || !valid) {
		r = -ENOMEM;
		goto out;
	}
	for (i = 0; i < n; i += PMC_CHUNK) {
		uint64_t k, m = n - i < PMC_CHUNK ? n - i : PMC_CHUNK;
		int err = src->read(src->ctx, buf, m * sizeof(*buf),
				    PMC_SB_SIZE + i * sizeof(*buf));

		for (k = 0; k < m; k++) {
			uint64_t j = i + k, seq, origin;
			uint8_t kind;

			if (err) {
				img->kind[j] = PMC_ENT_UNREADABLE;
				img->count[PMC_ENT_UNREADABLE]++;
				continue;
			}
			seq = le64(buf[k].seq);
			origin = le64(buf[k].origin);
			img->seq[j] = seq;
			img->origin[j] = origin;
			if (!seq)
				kind = PMC_ENT_FREE;
			else if ((int64_t)seq > img->committed || seq > INT64_MAX)
				kind = PMC_ENT_UNCOMMITTED;
			else if (le32(buf[k].crc) != pmc_entry_crc(img->seed, origin, seq, j))
				kind = PMC_ENT_CORRUPT;
			else if (origin >= img->origin_blocks)
				kind = PMC_ENT_BEYOND;
			else {
				kind = PMC_ENT_DIRTY;
				valid[nvalid++] = j;
			}
			img->kind[j] = kind;
			if (kind != PMC_ENT_DIRTY)
				img->count[kind]++;
		}
	}
	/* The newest valid entry of each origin block wins. */
	qsort_r(valid, nvalid, sizeof(*valid), pmc_cmp_origin, img);
	for (i = 0; i < nvalid; i++) {
		uint64_t j = valid[i];

		if (i && img->origin[valid[i - 1]] == img->origin[j])
			img->kind[j] = PMC_ENT_SUPERSEDED;
		img->count[img->kind[j]]++;
	}
out:
	free(valid);
	free(buf);
	return r;
}

/**
 * pmc_image_read() - read and classify a cache device's metadata
 * @img: zeroed; filled in (pmc_image_free() empties it)
 * @src: the cache device
 * @origin_bytes: the origin's size, UINT64_MAX when unknown
 *
 * Return: 0 when the metadata could be read (img->sb_error says whether
 * the superblock is usable; the entries are read only when it is), or
 * -errno when the device could not be read.
 */
int pmc_image_read(struct pmc_image *img, const struct pmc_src *src,
		   uint64_t origin_bytes)
{
	int r;

	memset(img, 0, sizeof(*img));
	img->committed = -1;
	if (src->size < PMC_SB_SIZE) {
		snprintf(img->sb_error, sizeof(img->sb_error),
			 "device too small (%llu bytes) for a cache",
			 (unsigned long long)src->size);
		return 0;
	}
	r = src->read(src->ctx, &img->sb, sizeof(img->sb), 0);
	if (r)
		return r;
	pmc_check_sb(img, src->size);
	if (img->sb_error[0])
		return 0;
	img->origin_blocks = origin_bytes == UINT64_MAX ? UINT64_MAX :
			     origin_bytes / img->block_size;
	r = pmc_read_commits(img, src);
	if (!r)
		r = pmc_read_origin_rec(img, src);
	if (r || img->committed < 0)
		return r;
	return pmc_read_entries(img, src);
}

void pmc_image_free(struct pmc_image *img)
{
	free(img->kind);
	free(img->origin);
	free(img->seq);
	img->kind = NULL;
	img->origin = NULL;
	img->seq = NULL;
}

/**
 * pmc_status_fields() - split a dmsetup status line into its target's fields
 * @line: "START LEN TARGET FIELD...", changed in place
 * @f: where the fields go
 * @max: room in @f
 *
 * Return: the number of fields after the target name (pmemcache or
 * writecache), at most @max; -1 when there is no such target name.
 */
int pmc_status_fields(char *line, char **f, unsigned int max)
{
	char *p, *save = NULL;
	unsigned int n = 0;
	int word = 0, target = 0;

	for (p = strtok_r(line, " \t\n", &save); p; p = strtok_r(NULL, " \t\n", &save)) {
		if (!target) {
			if (word++ == 2) {
				if (strcmp(p, "pmemcache") && strcmp(p, "writecache"))
					return -1;
				target = 1;
			}
			continue;
		}
		if (n < max)
			f[n] = p;
		n++;
	}
	return target ? (int)(n < max ? n : max) + (n > max) : -1;
}
