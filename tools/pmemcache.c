// SPDX-License-Identifier: GPL-2.0
/*
 * pmemcache: look into and rescue a dm-pmemcache cache without the module.
 *
 *   pmemcache status [--json] NAME      the running target's status line,
 *                                       field by field
 *   pmemcache check [-s SECTOR] [-o ORIGIN] CACHE
 *                                       verify the metadata (read-only)
 *   pmemcache dump [--json] [-s SECTOR] [-o ORIGIN] CACHE
 *                                       superblock, commit records, dirty
 *                                       entries
 *   pmemcache writeback [-s SECTOR] CACHE ORIGIN
 *                                       every dirty block to the origin,
 *                                       then the cache marked clean
 *
 * -s: the table's start_sector.  Manual: Documentation/pmemcache.8.
 */
#define _GNU_SOURCE
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "pmemcache_image.h"

/* Exit codes, as fsck's. */
#define EX_CLEAN	0
#define EX_ERRORS	4
#define EX_OPERATION	8
#define EX_USAGE	16

static const char *const kind_name[] = {
	[PMC_ENT_FREE] = "free",
	[PMC_ENT_DIRTY] = "dirty",
	[PMC_ENT_SUPERSEDED] = "superseded",
	[PMC_ENT_UNCOMMITTED] = "uncommitted",
	[PMC_ENT_CORRUPT] = "corrupt",
	[PMC_ENT_BEYOND] = "beyond_origin",
	[PMC_ENT_UNREADABLE] = "unreadable",
};

/* What check says of each kind of entry that some are: a note or an error. */
static const char *const kind_say[][2] = {
	[PMC_ENT_SUPERSEDED] = { "note", "older versions of dirty blocks: recovery frees them" },
	[PMC_ENT_UNCOMMITTED] = { "note",
		"entries of a commit a crash cut short: recovery drops them (the writes were not acknowledged after a flush)" },
	[PMC_ENT_CORRUPT] = { "error",
		"entries with a wrong checksum: their data is lost (recovery drops them)" },
	[PMC_ENT_BEYOND] = { "error",
		"dirty entries lie past the origin's end (the wrong origin, or a shorter table)" },
	[PMC_ENT_UNREADABLE] = { "error", "entries could not be read (media errors?)" },
};

struct dev {
	int fd;
	uint64_t start;		/* bytes skipped: start_sector */
	uint64_t size;		/* bytes after them */
};

/* @len bytes at @off (after start_sector): all of them, or -errno. */
static int dev_io(struct dev *d, void *buf, size_t len, uint64_t off,
		  bool write)
{
	size_t done = 0;

	if (off > d->size || len > d->size - off)
		return -ERANGE;
	while (done < len) {
		ssize_t n = write ?
			pwrite(d->fd, (char *)buf + done, len - done, d->start + off + done) :
			pread(d->fd, (char *)buf + done, len - done, d->start + off + done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		done += n;
	}
	return 0;
}

static int dev_read(void *ctx, void *buf, size_t len, uint64_t off)
{
	return dev_io(ctx, buf, len, off, false);
}

static int dev_write(struct dev *d, const void *buf, size_t len, uint64_t off)
{
	return dev_io(d, (void *)buf, len, off, true);
}

static int dev_open(struct dev *d, const char *path, int flags, uint64_t start)
{
	struct stat st;
	uint64_t size;

	d->fd = open(path, flags | O_CLOEXEC);
	if (d->fd < 0) {
		fprintf(stderr, "pmemcache: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (fstat(d->fd, &st) == 0 && S_ISBLK(st.st_mode)) {
		if (ioctl(d->fd, BLKGETSIZE64, &size)) {
			fprintf(stderr, "pmemcache: %s: size: %s\n", path, strerror(errno));
			return -1;
		}
		/*
		 * The module stores into pmem through DAX, around the page
		 * cache: drop what it may hold of the device.
		 */
		ioctl(d->fd, BLKFLSBUF, 0);
	} else {
		size = st.st_size;
	}
	if (start > size) {
		fprintf(stderr, "pmemcache: %s: start sector beyond its end\n", path);
		return -1;
	}
	d->start = start;
	d->size = size - start;
	return 0;
}

/*
 * A device's identity as the origin record holds it: its length in
 * sectors and, for a device-mapper device, its uuid ("" if none).
 */
static void origin_id(const struct dev *d, uint64_t *sectors, char *uuid,
		      size_t len)
{
	char path[64];
	struct stat st;
	FILE *f;

	*sectors = d->size / 512;
	uuid[0] = 0;
	if (fstat(d->fd, &st) || !S_ISBLK(st.st_mode))
		return;
	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/dm/uuid",
		 major(st.st_rdev), minor(st.st_rdev));
	f = fopen(path, "r");
	if (!f)
		return;
	if (!fgets(uuid, len, f))
		uuid[0] = 0;
	uuid[strcspn(uuid, "\n")] = 0;
	fclose(f);
}

/* The origin record in words: "uuid U, N sectors" and the like. */
static void say_origin(char *buf, size_t len, uint64_t sectors, const char *uuid)
{
	size_t i, n;

	n = snprintf(buf, len, "%s", uuid[0] ? "uuid " : "no dm uuid");
	for (i = 0; uuid[i] && n + 5 < len; i++)
		n += snprintf(buf + n, len - n, (unsigned char)uuid[i] < 0x20 ||
			      (unsigned char)uuid[i] > 0x7e ? "\\x%02x" : "%c",
			      (unsigned char)uuid[i]);
	snprintf(buf + n, len - n, ", %" PRIu64 " sectors", sectors);
}

static void rec_words(const struct pmc_image *img, char *buf, size_t len)
{
	if (img->origin_rec == 1)
		say_origin(buf, len, img->origin_rec_sectors, img->origin_rec_uuid);
	else
		snprintf(buf, len, "%s", img->origin_rec ? "damaged (checksum wrong)" :
			 "none (formatted before origin records)");
}

static int load(struct pmc_image *img, struct dev *cache, const char *path,
		uint64_t origin_bytes)
{
	struct pmc_src src = { .read = dev_read, .ctx = cache, .size = cache->size };
	int r = pmc_image_read(img, &src, origin_bytes);

	if (r) {
		fprintf(stderr, "pmemcache: %s: cannot read the metadata: %s\n",
			path, strerror(-r));
		return -1;
	}
	return 0;
}

/*
 * Does the origin given belong to the cache's dirty data?  Says why not
 * (on @out) when it does not.  A damaged record over dirty data counts
 * as not.
 */
static bool origin_ok(const struct pmc_image *img, const struct dev *origin,
		      const char *path, FILE *out)
{
	char uuid[PMC_ORIGIN_UUID_LEN + 8], a[600], b[600];
	uint64_t sectors;

	if (!img->count[PMC_ENT_DIRTY] && !img->count[PMC_ENT_SUPERSEDED])
		return true;
	origin_id(origin, &sectors, uuid, sizeof(uuid));
	if (img->origin_rec >= 0 && pmc_origin_matches(img, sectors, uuid))
		return true;
	rec_words(img, a, sizeof(a));
	say_origin(b, sizeof(b), sectors, uuid);
	fprintf(out, "the cache's dirty data belongs to the origin its record names (%s); %s is another (%s)\n",
		a, path, b);
	return false;
}

static int problems(const struct pmc_image *img)
{
	return img->sb_error[0] || img->committed < 0 ||
	       img->count[PMC_ENT_CORRUPT] || img->count[PMC_ENT_BEYOND] ||
	       img->count[PMC_ENT_UNREADABLE];
}

/* What recovery would do, in words. */
static void report(const struct pmc_image *img, const char *path)
{
	char words[600];
	int slot, k;

	printf("%s: pmemcache cache, version %u, %" PRIu64 " blocks of %u bytes\n",
	       path, le32toh(img->sb.version), img->nr_blocks, img->block_size);
	for (slot = 0; slot < 2; slot++)
		printf("commit slot %d: sequence %" PRIu64 ", %s\n", slot,
		       img->slot_seq[slot],
		       img->slot_valid[slot] ? "valid" :
		       "invalid (torn or never written: the other slot is in force)");
	if (img->committed < 0) {
		printf("no valid commit record: the module refuses this cache\n");
		return;
	}
	printf("committed sequence: %" PRId64 "\n", img->committed);
	rec_words(img, words, sizeof(words));
	printf("origin record: %s\n", words);
	for (k = PMC_ENT_FREE; k <= PMC_ENT_UNREADABLE; k++)
		printf("%-14s %" PRIu64 "\n", kind_name[k], img->count[k]);
	for (k = PMC_ENT_FREE; k <= PMC_ENT_UNREADABLE; k++)
		if (kind_say[k][0] && img->count[k])
			printf("%s: %" PRIu64 " %s\n", kind_say[k][0], img->count[k],
			       kind_say[k][1]);
}

static void dump_json(const struct pmc_image *img)
{
	uint64_t i;
	int k;
	bool first = true;

	printf("{\"version\": %u, \"block_size\": %u, \"nr_blocks\": %" PRIu64
	       ", \"data_offset\": %" PRIu64 ", \"commit_slots\": [", le32toh(img->sb.version),
	       img->block_size, img->nr_blocks, img->data_offset);
	for (k = 0; k < 2; k++)
		printf("%s{\"seq\": %" PRIu64 ", \"valid\": %s}", k ? ", " : "",
		       img->slot_seq[k], img->slot_valid[k] ? "true" : "false");
	printf("], \"committed\": %" PRId64 ", \"origin_record\": {\"state\": \"%s\"",
	       img->committed, img->origin_rec == 1 ? "valid" :
	       img->origin_rec ? "damaged" : "absent");
	if (img->origin_rec == 1) {
		const char *u;

		printf(", \"sectors\": %" PRIu64 ", \"uuid\": \"", img->origin_rec_sectors);
		for (u = img->origin_rec_uuid; *u; u++)
			printf((unsigned char)*u < 0x20 || (unsigned char)*u > 0x7e ||
			       *u == '"' || *u == '\\' ? "\\u%04x" : "%c",
			       (unsigned char)*u);
		printf("\"");
	}
	printf("}, \"counts\": {");
	for (k = PMC_ENT_FREE; k <= PMC_ENT_UNREADABLE; k++)
		printf("%s\"%s\": %" PRIu64, k ? ", " : "", kind_name[k], img->count[k]);
	printf("}, \"dirty\": [");
	for (i = 0; img->kind && i < img->nr_blocks; i++) {
		if (img->kind[i] != PMC_ENT_DIRTY)
			continue;
		printf("%s{\"block\": %" PRIu64 ", \"origin\": %" PRIu64 ", \"seq\": %" PRIu64 "}",
		       first ? "" : ", ", i, img->origin[i], img->seq[i]);
		first = false;
	}
	printf("]}\n");
}

static void dump_text(const struct pmc_image *img, const char *path)
{
	uint64_t i;

	report(img, path);
	if (!img->kind)
		return;
	printf("dirty entries (cache block, origin block, sequence):\n");
	for (i = 0; i < img->nr_blocks; i++)
		if (img->kind[i] == PMC_ENT_DIRTY)
			printf("%" PRIu64 " %" PRIu64 " %" PRIu64 "\n", i,
			       img->origin[i], img->seq[i]);
}

static int cmd_check_dump(const char *cache_path, const char *origin_path,
			  uint64_t start, int dump, int json)
{
	struct pmc_image img;
	struct dev cache, origin;
	uint64_t origin_bytes = UINT64_MAX;
	int ret;

	if (dev_open(&cache, cache_path, O_RDONLY, start))
		return EX_OPERATION;
	if (origin_path) {
		if (dev_open(&origin, origin_path, O_RDONLY, 0))
			return EX_OPERATION;
		origin_bytes = origin.size;
	}
	if (load(&img, &cache, cache_path, origin_bytes))
		return EX_OPERATION;
	if (img.sb_error[0]) {
		if (json)
			printf("{\"error\": \"%s\"}\n", img.sb_error);
		else
			printf("%s: %s\n", cache_path, img.sb_error);
		ret = le32toh(img.sb.magic) == PMC_MAGIC && !img.sb.version ?
		      EX_CLEAN : EX_ERRORS;
	} else {
		if (json)
			dump_json(&img);
		else if (dump)
			dump_text(&img, cache_path);
		else
			report(&img, cache_path);
		ret = problems(&img) ? EX_ERRORS : EX_CLEAN;
		if (origin_path && !origin_ok(&img, &origin, origin_path,
					      json ? stderr : stdout))
			ret = EX_ERRORS;
	}
	if (origin_path)
		close(origin.fd);
	pmc_image_free(&img);
	close(cache.fd);
	return ret;
}

#ifdef PMC_TOOL_TEST_HOOKS
/*
 * Test builds (tests/bin/pmemcache): PMEMCACHE_TEST_STOP=PHASE:N ends the
 * process at once, as a kill would, after the N-th write of PHASE
 * (origin: the dirty blocks; older: the other entries zeroed; dirty: the
 * dirty entries zeroed), before anything is flushed.
 */
static void test_stop(const char *phase, uint64_t n)
{
	const char *v = getenv("PMEMCACHE_TEST_STOP");
	size_t len = strlen(phase);

	if (v && !strncmp(v, phase, len) && v[len] == ':' &&
	    strtoull(v + len + 1, NULL, 10) == n) {
		fprintf(stderr, "pmemcache: test stop after %s write %" PRIu64 "\n",
			phase, n);
		_exit(99);
	}
}
#else
static void test_stop(const char *phase __attribute__((unused)),
		      uint64_t n __attribute__((unused)))
{
}
#endif

static int cmp_origin(const void *a, const void *b, void *arg)
{
	const struct pmc_image *img = arg;
	uint64_t x = img->origin[*(const uint64_t *)a];
	uint64_t y = img->origin[*(const uint64_t *)b];

	return x < y ? -1 : x > y;
}

/*
 * Zero the seq of the dirty entries (@winners) or of the others that
 * have one, then make that durable.
 */
static int clear_entries(struct dev *cache, const struct pmc_image *img,
			 bool winners)
{
	const __le64 zero = 0;
	uint64_t i, n = 0;

	for (i = 0; i < img->nr_blocks; i++) {
		int k = img->kind[i];

		if (k == PMC_ENT_FREE || k == PMC_ENT_UNREADABLE ||
		    (k == PMC_ENT_DIRTY) != winners)
			continue;
		if (dev_write(cache, &zero, sizeof(zero), PMC_SB_SIZE +
			      i * sizeof(struct pmc_entry) +
			      offsetof(struct pmc_entry, seq)))
			return -1;
		test_stop(winners ? "dirty" : "older", ++n);
	}
	return fdatasync(cache->fd);
}

/*
 * Every dirty block to the origin, in origin order; the origin flushed;
 * then the other entries with a sequence number zeroed (older versions,
 * leftovers of a crash, corrupt ones), made durable, and only then the
 * dirty ones: at every moment each origin block's newest version is in
 * a valid entry or on the origin, and no older one can come back.  Run
 * again after an interruption, it writes what is still dirty again.
 */
static int cmd_writeback(const char *cache_path, const char *origin_path,
			 uint64_t start, int force)
{
	struct pmc_image img;
	struct dev cache, origin;
	uint64_t *order, n = 0, i, unread = 0;
	char *buf;
	int ret = EX_OPERATION;

	if (dev_open(&cache, cache_path, O_RDWR, start) ||
	    dev_open(&origin, origin_path, O_RDWR, 0))
		return EX_OPERATION;
	if (load(&img, &cache, cache_path, origin.size))
		return EX_OPERATION;
	if (img.sb_error[0] || img.committed < 0) {
		fprintf(stderr, "pmemcache: %s: %s\n", cache_path,
			img.sb_error[0] ? img.sb_error : "no valid commit record");
		return EX_ERRORS;
	}
	if (img.count[PMC_ENT_BEYOND]) {
		fprintf(stderr, "pmemcache: %" PRIu64 " dirty blocks lie past the end of %s: the wrong origin?\n",
			img.count[PMC_ENT_BEYOND], origin_path);
		return EX_ERRORS;
	}
	if (!origin_ok(&img, &origin, origin_path, stderr)) {
		if (!force) {
			fprintf(stderr, "pmemcache: not written; --force-origin if %s is the right origin\n",
				origin_path);
			return EX_ERRORS;
		}
		fprintf(stderr, "pmemcache: --force-origin: writing to %s all the same\n",
			origin_path);
	}
	order = malloc((img.count[PMC_ENT_DIRTY] + 1) * sizeof(*order));
	buf = malloc(img.block_size);
	if (!order || !buf) {
		fprintf(stderr, "pmemcache: out of memory\n");
		return EX_OPERATION;
	}
	for (i = 0; i < img.nr_blocks; i++)
		if (img.kind[i] == PMC_ENT_DIRTY)
			order[n++] = i;
	qsort_r(order, n, sizeof(*order), cmp_origin, &img);
	for (i = 0; i < n; i++) {
		uint64_t b = order[i];
		int r = dev_read(&cache, buf, img.block_size,
				 img.data_offset + b * img.block_size);

		if (r) {
			/* The others still go: as much as can be saved. */
			fprintf(stderr, "pmemcache: cache block %" PRIu64 " (origin block %" PRIu64 "): %s; not written\n",
				b, img.origin[b], strerror(-r));
			unread++;
			continue;
		}
		r = dev_write(&origin, buf, img.block_size,
			      img.origin[b] * img.block_size);
		if (r) {
			fprintf(stderr, "pmemcache: %s: writing origin block %" PRIu64 ": %s\n",
				origin_path, img.origin[b], strerror(-r));
			goto out;
		}
		test_stop("origin", i + 1);
	}
	if (fdatasync(origin.fd)) {
		fprintf(stderr, "pmemcache: %s: flush: %s\n", origin_path, strerror(errno));
		goto out;
	}
	if (unread) {
		fprintf(stderr, "pmemcache: %" PRIu64 " of %" PRIu64 " dirty blocks could not be read; the others are on %s; the cache is left as it was\n",
			unread, n, origin_path);
		ret = EX_ERRORS;
		goto out;
	}
	if (clear_entries(&cache, &img, false) || clear_entries(&cache, &img, true)) {
		fprintf(stderr, "pmemcache: %s: marking it clean: %s\n", cache_path,
			strerror(errno));
		goto out;
	}
	printf("%s: %" PRIu64 " dirty blocks written to %s; the cache is clean\n",
	       cache_path, n, origin_path);
	if (img.count[PMC_ENT_CORRUPT])
		printf("%s: %" PRIu64 " corrupt entries dropped (their data was lost)\n",
		       cache_path, img.count[PMC_ENT_CORRUPT]);
	ret = img.count[PMC_ENT_CORRUPT] || img.count[PMC_ENT_UNREADABLE] ?
	      EX_ERRORS : EX_CLEAN;
out:
	free(order);
	free(buf);
	pmc_image_free(&img);
	close(cache.fd);
	close(origin.fd);
	return ret;
}

/* The status fields, as the admin guide numbers them. */
static const char *const status_name[] = {
	"error", "total_blocks", "free_blocks", "writeback_blocks",
	"read_blocks", "read_hits", "write_blocks", "write_hits_uncommitted",
	"write_hits_committed", "writes_around", "writes_allocated",
	"writes_waited", "flushes", "discarded_blocks", "dirty_blocks",
	"flush_mode", "unusable_blocks", "writeback_errors", "media_errors",
	"corrupt_entries",
};
#define NR_STATUS (sizeof(status_name) / sizeof(status_name[0]))

static int cmd_status(const char *name, int json)
{
	char cmd[512], line[4096], *f[NR_STATUS + 1];
	double total, freeb;
	unsigned int i;
	FILE *pf;
	int n;

	if (strchr(name, '\'') || strlen(name) > 256) {
		fprintf(stderr, "pmemcache: bad device name\n");
		return EX_USAGE;
	}
	snprintf(cmd, sizeof(cmd), "dmsetup status '%s'", name);
	pf = popen(cmd, "r");
	if (!pf || !fgets(line, sizeof(line), pf)) {
		fprintf(stderr, "pmemcache: dmsetup status %s failed\n", name);
		if (pf)
			pclose(pf);
		return EX_OPERATION;
	}
	pclose(pf);
	n = pmc_status_fields(line, f, NR_STATUS + 1);
	if (n != (int)NR_STATUS) {
		fprintf(stderr, "pmemcache: %s: not a dm-pmemcache target (%d status fields, not %zu)\n",
			name, n, NR_STATUS);
		return EX_OPERATION;
	}
	total = strtod(f[1], NULL);
	freeb = strtod(f[2], NULL);
	if (json) {
		printf("{\"device\": \"%s\"", name);
		for (i = 0; i < NR_STATUS; i++)
			printf(i == 15 ? ", \"%s\": \"%s\"" : ", \"%s\": %s",
			       status_name[i], f[i]);
		printf(", \"used_percent\": %.1f}\n",
		       total ? 100.0 * (total - freeb) / total : 0.0);
		return EX_CLEAN;
	}
	printf("%s: %s mode\n", name, strcmp(f[15], "bdev") ? "p (persistent memory)" :
	       "s (block device)");
	for (i = 0; i < NR_STATUS; i++) {
		printf("  %-24s %s", status_name[i], f[i]);
		if ((i == 2 || i == 14) && total)
			printf("  (%.1f%%)", 100.0 * strtod(f[i], NULL) / total);
		printf("\n");
	}
	printf("  %-24s %.1f%%\n", "used", total ? 100.0 * (total - freeb) / total : 0.0);
	return EX_CLEAN;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: pmemcache status [--json] NAME\n"
		"       pmemcache check [-s START_SECTOR] [-o ORIGIN] CACHE\n"
		"       pmemcache dump [--json] [-s START_SECTOR] [-o ORIGIN] CACHE\n"
		"       pmemcache writeback [-s START_SECTOR] [--force-origin] CACHE ORIGIN\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "start-sector", required_argument, NULL, 's' },
		{ "origin", required_argument, NULL, 'o' },
		{ "force-origin", no_argument, NULL, 'f' },
		{ NULL, 0, NULL, 0 },
	};
	const char *cmd, *origin = NULL;
	unsigned long long start = 0;
	char *end;
	int c, json = 0, force = 0;

	if (argc < 2) {
		usage();
		return EX_USAGE;
	}
	cmd = argv[1];
	optind = 2;
	while ((c = getopt_long(argc, argv, "s:o:", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = 1;
			break;
		case 's':
			errno = 0;
			start = strtoull(optarg, &end, 0);
			if (errno || *end || start > UINT64_MAX / 512) {
				usage();
				return EX_USAGE;
			}
			break;
		case 'o':
			origin = optarg;
			break;
		case 'f':
			force = 1;
			break;
		default:
			usage();
			return EX_USAGE;
		}
	}
	argc -= optind;
	argv += optind;
	if (!strcmp(cmd, "status") && argc == 1)
		return cmd_status(argv[0], json);
	if (!strcmp(cmd, "check") && argc == 1)
		return cmd_check_dump(argv[0], origin, start * 512, 0, json);
	if (!strcmp(cmd, "dump") && argc == 1)
		return cmd_check_dump(argv[0], origin, start * 512, 1, json);
	if (!strcmp(cmd, "writeback") && argc == 2)
		return cmd_writeback(argv[0], argv[1], start * 512, force);
	usage();
	return EX_USAGE;
}
