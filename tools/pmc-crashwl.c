// SPDX-License-Identifier: GPL-2.0
/*
 * pmc-crashwl (built as tests/bin/pmc_crashwl): the workload of the power-cut enumeration, and the check of
 * what a device holds after it.
 *
 *   pmc_crashwl run DEV LOG [append] < SCRIPT
 *                                      run SCRIPT against DEV, log to LOG
 *                                      (append: after what LOG holds, with
 *                                      versions above those it names)
 *   pmc_crashwl verify DEV LOG FIRST N check blocks FIRST..FIRST+N-1
 *   pmc_crashwl restart DEV LOG FIRST N
 *                                      verify, then log what each block
 *                                      holds as a restart's starting point
 *   pmc_crashwl replay LOGDEV DEV      apply a dm-log-writes log to DEV
 *   pmc_crashwl ctl < SCRIPT           set-up lines, without a log:
 *                                      m/M as in run, "z DEV" zeroes the
 *                                      first 4 KiB of DEV, "F DEV FIRST N"
 *                                      writes version 0 of blocks
 *                                      FIRST..FIRST+N-1; exits 1 at the first
 *                                      failure of an m or z line, 2 of an
 *                                      F line or a bad line
 *
 * Under emulation a dmsetup call costs about 0.25 s, most of it starting
 * the program, and a power cut took some 30 of them; the m lines make the
 * same ioctls from this process instead.
 *
 * replay: dm-log-writes logs a plain write at the flush that follows it,
 * a FUA write as it completes, and at teardown every write still waiting
 * for a flush.  Replaying the entries up to the last flush, and the FUA
 * writes after it, over the device's first contents gives what the origin
 * would hold after a power cut.  Discards are not replayed: dm-log-writes logs one that
 * completed before a FUA write of the same block after that write (at the
 * next flush), and a discard may leave the old data anyway.  Plain and FUA
 * writes of the same block would have the same problem; the workload's
 * origin sees only one kind at a time (writeback is FUA, or all plain
 * with nofua).
 *
 * Every block written (4 KiB, O_DIRECT) holds a header - magic, its block
 * number, a version unique over the run - and bytes derived from both, so
 * a block read back tells which write of which block it came from.
 *
 * SCRIPT, a command a line:
 *   o             open DEV (O_DIRECT)          c      close it
 *   w B [N]       write blocks B..B+N-1        s B [N] the same with O_DSYNC
 *   f             fdatasync (a flush)          d B N  discard B..B+N-1
 *   g             a flush from another process (dd conv=fdatasync), so
 *                 that the commit runs in a task that wrote nothing
 *   m OP NAME ... a device-mapper command through the DM ioctls (see
 *                 dm_cmd()); it must succeed.  M: the same, may fail
 *   x LINE        LINE run by a child process (its stores into the cache
 *                 are another task's, which this process never fences)
 * The first failure ends the run (after a power cut every write fails), and
 * so does a power cut of the persistence checker (its persist_cut module
 * parameter no longer "none"), seen after each command.
 *
 * LOG, a line an event: "P B V" a write of version V of block B is about
 * to be issued; "A B V" it completed (acknowledged); "D B" B discarded;
 * "F" a flush completed; "E ..." the failure that ended the run; "END";
 * "R B V" (or "R B Z", zeroes) what B held when the device was activated
 * again after a power cut, and a run appended after it went on from.
 *
 * verify applies the guarantees: a write acknowledged before a flush that
 * completed (or written with O_DSYNC) is there or was overwritten by a
 * later write of the block; any other content of a block is a version of
 * that block that was written (or version 0), or zeroes after a discard;
 * never a version older than the last durable one, never another block's
 * data, never bytes that no write made.  After an R line a block holds
 * what it held then, or a version written since: what a restart found
 * is durable, and what it did not find never comes back.  Exits 1 and says which block
 * broke which guarantee.
 */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/dm-ioctl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#define BS		4096
#define MAGIC		0x504d4357524b4c31ULL	/* "PMCWRKL1" */
#define MAX_RUN		64

static void die(const char *what)
{
	perror(what);
	exit(2);
}

static void pattern(uint64_t *buf, uint64_t blk, uint64_t ver)
{
	uint64_t x = (blk + 1) * 0x9e3779b97f4a7c15ULL ^ (ver + 1) * 0xbf58476d1ce4e5b9ULL;
	size_t i;

	buf[0] = MAGIC;
	buf[1] = blk;
	buf[2] = ver;
	for (i = 3; i < BS / 8; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		buf[i] = x;
	}
}

static void *block_buf(size_t n)
{
	void *p;

	if (posix_memalign(&p, BS, n * BS))
		die("posix_memalign");
	return p;
}

static int do_fill(const char *dev, uint64_t first, uint64_t n)
{
	uint64_t *buf = block_buf(1);
	int fd = open(dev, O_WRONLY | O_DIRECT);
	uint64_t b;

	if (fd < 0)
		die(dev);
	for (b = first; b < first + n; b++) {
		pattern(buf, b, 0);
		if (pwrite(fd, buf, BS, b * BS) != BS)
			die("fill: pwrite");
	}
	if (fsync(fd))
		die("fill: fsync");
	close(fd);
	return 0;
}

#define CUT_PARAM "/sys/module/dm_pmemcache/parameters/persist_cut"

/* Has the persistence checker cut the power? */
static int power_cut(void)
{
	char buf[8] = "";
	int fd = open(CUT_PARAM, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return n > 0 && strncmp(buf, "none", 4);
}

/* One DM ioctl on device @name; @io has room for 16 KiB of data. */
static int dm_ioctl_on(unsigned long cmd, const char *name,
		       struct dm_ioctl *io, uint32_t flags, uint32_t data_size)
{
	static int ctl = -1;

	if (ctl < 0)
		ctl = open("/dev/mapper/control", O_RDWR | O_CLOEXEC);
	if (ctl < 0)
		return -1;
	io->version[0] = DM_VERSION_MAJOR;
	io->version[1] = 0;
	io->version[2] = 0;
	io->data_size = sizeof(*io) + data_size;
	io->data_start = sizeof(*io);
	io->flags = flags;
	snprintf(io->name, sizeof(io->name), "%s", name);
	return ioctl(ctl, cmd, io);
}

#define DM_DATA		16384

/* Load a one-target table "START LEN TYPE PARAMS" into @name. */
static int dm_load(const char *name, const char *table, struct dm_ioctl *io)
{
	struct dm_target_spec *spec = (void *)(io + 1);
	unsigned long long start, len;
	char type[DM_MAX_TYPE_NAME];
	size_t plen;
	int pos = 0;

	memset(io, 0, sizeof(*io) + DM_DATA);
	if (sscanf(table, "%llu %llu %15s %n", &start, &len, type, &pos) < 3 ||
	    !pos) {
		errno = EINVAL;
		return -1;
	}
	plen = strlen(table + pos) + 1;
	if (sizeof(*spec) + plen > DM_DATA - 8) {
		errno = E2BIG;
		return -1;
	}
	spec->sector_start = start;
	spec->length = len;
	memcpy(spec->target_type, type, strlen(type));
	memcpy(spec + 1, table + pos, plen);
	spec->next = (sizeof(*spec) + plen + 7) & ~7UL;
	io->target_count = 1;
	return dm_ioctl_on(DM_TABLE_LOAD, name, io, 0, spec->next);
}

/*
 * A device-mapper command as dmsetup would make it (no udev):
 *   create NAME TABLE   load NAME TABLE   suspend NAME   resume NAME
 *   remove NAME         message NAME MSG  (to sector 0)
 * TABLE is one target.  create and remove make and unlink the node in
 * /dev/mapper.  Returns 0, or -1 with a message in @err.
 */
static int dm_cmd(const char *line, char *err, size_t errlen)
{
	static union {
		struct dm_ioctl io;
		char buf[sizeof(struct dm_ioctl) + DM_DATA];
	} u;
	struct dm_ioctl *io = &u.io;
	char op[16], name[DM_NAME_LEN], node[DM_NAME_LEN + 16];
	const char *arg;
	int pos = 0, r;

	if (sscanf(line, "%15s %127s %n", op, name, &pos) < 2) {
		snprintf(err, errlen, "bad dm command: %s", line);
		errno = EINVAL;
		return -1;
	}
	arg = pos ? line + pos : "";
	snprintf(node, sizeof(node), "/dev/mapper/%s", name);
	memset(&u, 0, sizeof(u));
	if (!strcmp(op, "create")) {
		r = dm_ioctl_on(DM_DEV_CREATE, name, io, 0, 0);
		if (!r && dm_load(name, arg, io)) {
			int e = errno;

			memset(&u, 0, sizeof(u));
			dm_ioctl_on(DM_DEV_REMOVE, name, io, 0, 0);
			errno = e;
			r = -1;
		} else if (!r) {
			memset(&u, 0, sizeof(u));
			r = dm_ioctl_on(DM_DEV_SUSPEND, name, io, 0, 0);
		}
		if (!r) {
			unlink(node);
			r = mknod(node, S_IFBLK | 0600,
				  makedev(major(io->dev), minor(io->dev)));
		}
	} else if (!strcmp(op, "load")) {
		r = dm_load(name, arg, io);
	} else if (!strcmp(op, "suspend")) {
		r = dm_ioctl_on(DM_DEV_SUSPEND, name, io, DM_SUSPEND_FLAG, 0);
	} else if (!strcmp(op, "resume")) {
		r = dm_ioctl_on(DM_DEV_SUSPEND, name, io, 0, 0);
	} else if (!strcmp(op, "remove")) {
		r = dm_ioctl_on(DM_DEV_REMOVE, name, io, 0, 0);
		if (!r)
			unlink(node);
	} else if (!strcmp(op, "message")) {
		struct dm_target_msg *msg = (void *)(io + 1);
		size_t len = strlen(arg) + 1;

		if (len > DM_DATA - sizeof(*msg)) {
			errno = E2BIG;
			r = -1;
		} else {
			memcpy(msg->message, arg, len);
			r = dm_ioctl_on(DM_TARGET_MSG, name, io, 0,
					(sizeof(*msg) + len + 7) & ~7UL);
		}
	} else {
		snprintf(err, errlen, "bad dm command: %s", line);
		errno = EINVAL;
		return -1;
	}
	if (r)
		snprintf(err, errlen, "dm %s: %s", line, strerror(errno));
	return r;
}

/* pmc_crashwl ctl: set-up lines from stdin; 1 at the first failure. */
static int do_ctl(void)
{
	char line[1024], err[1200], dev[512];
	unsigned long long first, n;
	int fd, r;

	while (fgets(line, sizeof(line), stdin)) {
		line[strcspn(line, "\n")] = 0;
		if ((line[0] == 'm' || line[0] == 'M') && line[1] == ' ') {
			if (dm_cmd(line + 2, err, sizeof(err)) &&
			    line[0] == 'm') {
				fprintf(stderr, "%s\n", err);
				return 1;
			}
		} else if (sscanf(line, "z %511s", dev) == 1) {
			void *buf = block_buf(1);

			memset(buf, 0, BS);
			fd = open(dev, O_WRONLY | O_DIRECT);
			r = fd < 0 || pwrite(fd, buf, BS, 0) != BS;
			if (fd >= 0)
				close(fd);
			free(buf);
			if (r) {
				fprintf(stderr, "%s: %s\n", line, strerror(errno));
				return 1;
			}
		} else if (sscanf(line, "F %511s %llu %llu", dev, &first, &n) == 3) {
			if (do_fill(dev, first, n))
				return 1;
		} else if (line[0] && line[0] != '#') {
			fprintf(stderr, "bad line: %s\n", line);
			return 2;
		}
	}
	return 0;
}

/* The state of pmc_crashwl run, shared with the children of x lines. */
struct run_state {
	const char *dev;
	FILE *log;
	uint64_t *buf;
	uint64_t *ver;		/* the last version written (shared memory) */
	int fd, fds;
};

/*
 * One line of the script.  Returns 0, 1 when it failed (said in the log:
 * the run ends), or 2 for a bad line.
 */
static int run_line(struct run_state *st, const char *line)
{
	unsigned long long b = 0, n = 1, i;
	char op = line[0];
	FILE *log = st->log;

	if (op == 'o') {
		st->fd = open(st->dev, O_RDWR | O_DIRECT);
		st->fds = open(st->dev, O_RDWR | O_DIRECT | O_DSYNC);
		if (st->fd < 0 || st->fds < 0) {
			fprintf(log, "E open %s: %s\n", st->dev, strerror(errno));
			return 1;
		}
	} else if (op == 'c') {
		close(st->fd);
		close(st->fds);
		st->fd = st->fds = -1;
	} else if (op == 'w' || op == 's') {
		uint64_t *buf = st->buf;

		if (sscanf(line + 1, "%llu %llu", &b, &n) < 1 ||
		    n < 1 || n > MAX_RUN)
			return 2;
		for (i = 0; i < n; i++) {
			pattern(buf + i * (BS / 8), b + i, ++*st->ver);
			fprintf(log, "P %llu %" PRIu64 "\n", b + i, *st->ver);
		}
		if (pwrite(op == 's' ? st->fds : st->fd, buf, n * BS, b * BS) !=
		    (ssize_t)(n * BS)) {
			fprintf(log, "E %s: %s\n", line, strerror(errno));
			return 1;
		}
		for (i = 0; i < n; i++)
			fprintf(log, "%c %llu %" PRIu64 "\n",
				op == 's' ? 'S' : 'A', b + i,
				buf[i * (BS / 8) + 2]);
	} else if (op == 'f') {
		if (fdatasync(st->fd)) {
			fprintf(log, "E %s: %s\n", line, strerror(errno));
			return 1;
		}
		fprintf(log, "F\n");
	} else if (op == 'g') {
		char cmd[300];

		snprintf(cmd, sizeof(cmd),
			 "dd if=/dev/null of=%s conv=notrunc,fdatasync status=none",
			 st->dev);
		if (system(cmd)) {
			fprintf(log, "E %s: flush failed\n", line);
			return 1;
		}
		fprintf(log, "F\n");
	} else if (op == 'd') {
		uint64_t r[2];

		if (sscanf(line + 1, "%llu %llu", &b, &n) != 2)
			return 2;
		r[0] = b * BS;
		r[1] = n * BS;
		/* Logged first: a cut may leave it half done. */
		for (i = 0; i < n; i++)
			fprintf(log, "D %llu\n", b + i);
		if (ioctl(st->fd, BLKDISCARD, r)) {
			fprintf(log, "E %s: %s\n", line, strerror(errno));
			return 1;
		}
	} else if ((op == 'm' || op == 'M') && line[1] == ' ') {
		char err[1200];

		if (dm_cmd(line + 2, err, sizeof(err)) && op == 'm') {
			fprintf(log, "E %s\n", err);
			return 1;
		}
	} else if (op == 'x' && line[1] == ' ' && line[2] != 'x') {
		int status;
		pid_t pid;

		/* In a child process: its stores are another task's. */
		fflush(log);
		pid = fork();
		if (pid < 0)
			die("fork");
		if (!pid) {
			int r = run_line(st, line + 2);

			fflush(log);
			_exit(r);
		}
		if (waitpid(pid, &status, 0) != pid)
			die("waitpid");
		if (!WIFEXITED(status)) {
			fprintf(log, "E %s: the child died\n", line);
			return 1;
		}
		return WEXITSTATUS(status);
	} else {
		return 2;
	}
	return 0;
}

/* The highest version an earlier run logged in @logname (0: none). */
static uint64_t last_version(const char *logname)
{
	FILE *log = fopen(logname, "r");
	char line[512];
	uint64_t b, v, max = 0;

	if (!log)
		return 0;
	while (fgets(line, sizeof(line), log))
		if ((line[0] == 'P' || line[0] == 'R') &&
		    sscanf(line + 2, "%" SCNu64 " %" SCNu64, &b, &v) == 2 &&
		    v > max)
			max = v;
	fclose(log);
	return max;
}

static int do_run(const char *dev, const char *logname, int append)
{
	struct run_state st = { .dev = dev, .fd = -1, .fds = -1 };
	const char *markdev = getenv("PMC_MARK_DEV");
	unsigned long marks = 0;
	char line[512];

	st.ver = mmap(NULL, sizeof(*st.ver), PROT_READ | PROT_WRITE,
		      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (st.ver == MAP_FAILED)
		die("mmap");
	*st.ver = append ? last_version(logname) : 0;
	st.log = fopen(logname, append ? "a" : "w");
	if (!st.log)
		die(logname);
	setvbuf(st.log, NULL, _IOLBF, 0);
	st.buf = block_buf(MAX_RUN);
	while (fgets(line, sizeof(line), stdin)) {
		int r;

		line[strcspn(line, "\n")] = 0;
		if (line[0] == '#' || line[0] == 0)
			continue;
		r = run_line(&st, line);
		if (r == 2) {
			fprintf(stderr, "bad line: %s\n", line);
			return 2;
		}
		if (r)
			break;
		if (power_cut()) {
			fprintf(st.log, "E power cut after: %s\n", line);
			break;
		}
		if (markdev && *markdev) {
			char cmd[300], err[1200];

			/* Where this line ended, in the dm-log-writes log. */
			snprintf(cmd, sizeof(cmd), "message %s mark %lu", markdev,
				 ++marks);
			if (dm_cmd(cmd, err, sizeof(err))) {
				fprintf(st.log, "E %s\n", err);
				break;
			}
			fprintf(st.log, "K %lu\n", marks);
		}
	}
	fprintf(st.log, "END\n");
	fclose(st.log);
	return 0;
}

/* What the log says of one block. */
struct blk_state {
	uint64_t floor;		/* the last durable version (0: the first) */
	uint64_t acked;		/* the last acknowledged, not yet durable */
	int floor_set;		/* floor is binding (no discard since) */
	int discarded;		/* discarded at some point */
	int nr;			/* versions written */
	int restarted;		/* an R line: only what it read, and later writes */
	uint64_t *vers;
};

static int written(const struct blk_state *s, uint64_t v)
{
	int i;

	/* Version 0, the first contents, unless a restart read another. */
	if (v == 0 && !s->restarted)
		return 1;
	for (i = 0; i < s->nr; i++)
		if (s->vers[i] == v)
			return 1;
	return 0;
}

static int do_verify(const char *dev, const char *logname, uint64_t first,
		     uint64_t n, int record, const char *upto)
{
	struct blk_state *st = calloc(n, sizeof(*st));
	uint64_t *buf = block_buf(1), *want = block_buf(1);
	FILE *log = fopen(logname, "r");
	char line[512];
	int fd, k, bad = 0, after = 0;
	uint64_t b, v, i;

	if (!log)
		die(logname);
	if (!st)
		die("calloc");
	for (i = 0; i < n; i++)
		st[i].floor_set = 1;
	/* Mark 0: the power went before the first line ended. */
	after = upto && !strcmp(upto, "0");
	while (fgets(line, sizeof(line), log)) {
		char op = line[0];
		struct blk_state *s;

		line[strcspn(line, "\n")] = 0;
		if (op == 'K' && upto && !strcmp(line + 2, upto)) {
			/*
			 * The power went after this mark: later writes may or
			 * may not have happened, nothing later is durable.
			 */
			after = 1;
			continue;
		}
		if (after && op != 'P' && op != 'D')
			continue;
		if (op == 'F') {
			/* Acknowledged before the flush began: durable now. */
			for (i = 0; i < n; i++) {
				if (!st[i].acked)
					continue;
				st[i].floor = st[i].acked;
				st[i].floor_set = 1;
				st[i].acked = 0;
			}
			continue;
		}
		if (op != 'P' && op != 'A' && op != 'S' && op != 'D' &&
		    op != 'R')
			continue;
		k = sscanf(line + 2, "%" SCNu64 " %" SCNu64, &b, &v);
		if (k < 1 || b < first || b >= first + n)
			continue;
		s = &st[b - first];
		if (op == 'R') {
			/*
			 * What a restart read: from then on the block holds
			 * that or what is written after it.
			 */
			s->nr = 0;
			s->restarted = 1;
			s->acked = 0;
			s->floor = 0;
			s->floor_set = k == 2;
			s->discarded = k < 2;
			if (k == 2) {
				s->floor = v;
				s->vers = realloc(s->vers, sizeof(v));
				if (!s->vers)
					die("realloc");
				s->vers[s->nr++] = v;
			}
		} else if (op == 'P') {
			s->vers = realloc(s->vers, (s->nr + 1) * sizeof(v));
			if (!s->vers)
				die("realloc");
			s->vers[s->nr++] = v;
		} else if (op == 'A') {
			s->acked = v;
		} else if (op == 'S') {
			s->floor = v;
			s->floor_set = 1;
			s->acked = 0;
		} else {
			s->discarded = 1;
			s->floor_set = 0;
			s->acked = 0;
		}
	}
	fclose(log);
	if (upto && !after) {
		fprintf(stderr, "verify: no mark %s in %s\n", upto, logname);
		return 2;
	}

	fd = open(dev, O_RDONLY | O_DIRECT);
	if (fd < 0)
		die(dev);
	for (b = first; b < first + n; b++) {
		struct blk_state *s = &st[b - first];
		const char *why = NULL;

		if (pread(fd, buf, BS, b * BS) != BS) {
			printf("block %" PRIu64 ": read failed: %s\n", b, strerror(errno));
			bad++;
			continue;
		}
		if (buf[0] != MAGIC) {
			memset(want, 0, BS);
			if (!memcmp(buf, want, BS)) {
				if (!s->discarded)
					why = "reads zeroes, but was never discarded";
				else if (s->floor_set)
					why = "reads zeroes after a durable write that followed its discard";
			} else {
				why = "reads bytes that no write made (torn or foreign)";
			}
		} else if (buf[1] != b) {
			printf("block %" PRIu64 ": reads version %" PRIu64 " of block %" PRIu64
			       ": another block's data\n", b, buf[2], buf[1]);
			bad++;
			continue;
		} else {
			pattern(want, b, buf[2]);
			if (memcmp(buf, want, BS))
				why = "reads a torn block (header of one version, bytes of another)";
			else if (!written(s, buf[2]))
				why = "reads a version never written to it";
			else if (s->floor_set && buf[2] < s->floor)
				why = "reads a version older than one made durable (an acknowledged write after a flush was lost)";
		}
		if (why) {
			printf("block %" PRIu64 ": %s: has version %" PRIu64
			       ", durable floor %" PRIu64 "\n", b, why,
			       buf[0] == MAGIC ? buf[2] : (uint64_t)-1, s->floor);
			bad++;
		}
		s->floor = buf[0] == MAGIC ? buf[2] : (uint64_t)-1;
	}
	close(fd);
	if (record && !bad) {
		log = fopen(logname, "a");
		if (!log)
			die(logname);
		fprintf(log, "# restart\n");
		for (b = first; b < first + n; b++) {
			if (st[b - first].floor == (uint64_t)-1)
				fprintf(log, "R %" PRIu64 " Z\n", b);
			else
				fprintf(log, "R %" PRIu64 " %" PRIu64 "\n", b,
					st[b - first].floor);
		}
		if (fclose(log))
			die(logname);
	}
	printf("%d bad block(s) of %" PRIu64 "\n", bad, n);
	return bad ? 1 : 0;
}

/* dm-log-writes' on-disk log (drivers/md/dm-log-writes.c). */
#define LW_MAGIC	0x6a736677736872ULL
#define LW_FLUSH	(1 << 0)
#define LW_FUA		(1 << 1)
#define LW_DISCARD	(1 << 2)
#define LW_MARK		(1 << 3)

struct lw_super {
	uint64_t magic, version, nr_entries;
	uint32_t sectorsize;
} __attribute__((packed));

struct lw_entry {
	uint64_t sector, nr_sectors, flags, data_len;
};

static int do_replay(const char *logdev, const char *dev)
{
	int lfd = open(logdev, O_RDONLY), dfd = open(dev, O_WRONLY);
	struct lw_super sb;
	uint64_t i, pos, replayed = 0;
	int64_t last_flush = -1;
	char *buf = NULL;
	size_t cap = 0;

	if (lfd < 0)
		die(logdev);
	if (dfd < 0)
		die(dev);
	if (pread(lfd, &sb, sizeof(sb), 0) != sizeof(sb))
		die("replay: read super");
	if (sb.magic != LW_MAGIC || sb.sectorsize < 512 || sb.sectorsize > 65536) {
		fprintf(stderr, "replay: %s holds no dm-log-writes log\n", logdev);
		return 2;
	}
	/* First pass: where the last flush is. */
	pos = sb.sectorsize;
	for (i = 0; i < sb.nr_entries; i++) {
		struct lw_entry e;

		if (pread(lfd, &e, sizeof(e), pos) != sizeof(e))
			die("replay: read entry");
		if (e.nr_sectors > (1ULL << 24)) {
			fprintf(stderr, "replay: entry %" PRIu64 " is corrupt\n", i);
			return 2;
		}
		pos += sb.sectorsize;
		if (!(e.flags & (LW_DISCARD | LW_MARK)))
			pos += e.nr_sectors * sb.sectorsize;
		if (e.flags & LW_FLUSH)
			last_flush = i;
	}
	pos = sb.sectorsize;
	for (i = 0; i < sb.nr_entries; i++) {
		struct lw_entry e;
		size_t len;

		if (pread(lfd, &e, sizeof(e), pos) != sizeof(e))
			die("replay: read entry");
		pos += sb.sectorsize;
		if (e.flags & LW_MARK)
			continue;
		len = e.nr_sectors * sb.sectorsize;
		if (e.flags & LW_DISCARD)
			continue;
		if (len > cap) {
			free(buf);
			buf = malloc(len);
			if (!buf)
				die("malloc");
			cap = len;
		}
		if (len && pread(lfd, buf, len, pos) != (ssize_t)len)
			die("replay: read data");
		pos += len;
		/* Not flushed before the end: lost in a power cut. */
		if ((last_flush < 0 || i > (uint64_t)last_flush) &&
		    !(e.flags & LW_FUA))
			continue;
		if (len && pwrite(dfd, buf, len, e.sector * sb.sectorsize) !=
		    (ssize_t)len)
			die("replay: write");
		replayed++;
	}
	if (fsync(dfd))
		die("replay: fsync");
	printf("replayed %" PRIu64 " of %" PRIu64 " log entries\n", replayed,
	       (uint64_t)sb.nr_entries);
	free(buf);
	close(lfd);
	close(dfd);
	return 0;
}

/* A dm-log-writes log, read one entry at a time. */
struct lw_reader {
	int fd;
	struct lw_super sb;
	uint64_t i;		/* the next entry */
	uint64_t pos;		/* its offset in the log */
	struct lw_entry e;	/* the entry read last */
	char mark[256];		/* its text, for a mark */
};

static int lw_open(struct lw_reader *r, const char *logdev)
{
	memset(r, 0, sizeof(*r));
	r->fd = open(logdev, O_RDONLY);
	if (r->fd < 0)
		die(logdev);
	if (pread(r->fd, &r->sb, sizeof(r->sb), 0) != sizeof(r->sb))
		die("log: read super");
	if (r->sb.magic != LW_MAGIC || r->sb.sectorsize < 512 ||
	    r->sb.sectorsize > 65536) {
		fprintf(stderr, "%s holds no dm-log-writes log\n", logdev);
		return -1;
	}
	r->pos = r->sb.sectorsize;
	return 0;
}

/* The next entry into r->e; its data starts at r->pos - data bytes. */
static int lw_next(struct lw_reader *r)
{
	char sec[512];

	if (r->i >= r->sb.nr_entries)
		return 0;
	if (pread(r->fd, sec, sizeof(sec), r->pos) != sizeof(sec))
		die("log: read entry");
	memcpy(&r->e, sec, sizeof(r->e));
	if (r->e.nr_sectors > (1ULL << 24)) {
		fprintf(stderr, "log: entry %" PRIu64 " is corrupt\n", r->i);
		exit(2);
	}
	r->mark[0] = 0;
	if (r->e.flags & LW_MARK) {
		size_t len = r->e.data_len;

		if (len > sizeof(sec) - sizeof(r->e))
			len = sizeof(sec) - sizeof(r->e);
		if (len > sizeof(r->mark) - 1)
			len = sizeof(r->mark) - 1;
		memcpy(r->mark, sec + sizeof(r->e), len);
		r->mark[len] = 0;
	}
	r->pos += r->sb.sectorsize;
	if (!(r->e.flags & (LW_DISCARD | LW_MARK)))
		r->pos += r->e.nr_sectors * r->sb.sectorsize;
	r->i++;
	return 1;
}

/* pmc_crashwl entries LOGDEV: one line an entry, "INDEX KIND SECTOR N". */
static int do_entries(const char *logdev)
{
	struct lw_reader r;

	if (lw_open(&r, logdev))
		return 2;
	while (lw_next(&r)) {
		const char *kind = r.e.flags & LW_MARK ? "mark" :
				   r.e.flags & LW_DISCARD ? "discard" :
				   r.e.flags & LW_FLUSH && !r.e.nr_sectors ? "flush" :
				   r.e.flags & LW_FUA ? "fua" : "write";

		printf("%" PRIu64 " %s %" PRIu64 " %" PRIu64 "%s%s\n", r.i - 1,
		       kind, (uint64_t)r.e.sector, (uint64_t)r.e.nr_sectors,
		       r.mark[0] ? " " : "", r.mark);
	}
	close(r.fd);
	return 0;
}

/*
 * pmc_crashwl apply LOGDEV DEV FROM TO [SEED]: the writes of entries
 * FROM..TO-1 onto DEV (discards and marks are skipped, as in replay); with
 * SEED, each write independently with probability 1/2: writes that
 * completed but that no flush made durable yet, some of which a power
 * cut keeps.  Prints how many it wrote.
 */
static int do_apply(const char *logdev, const char *dev, uint64_t from,
		    uint64_t to, uint64_t seed)
{
	int dfd = open(dev, O_WRONLY | O_DIRECT);
	uint64_t x = seed * 0x9e3779b97f4a7c15ULL + 1, done = 0;
	struct lw_reader r;
	void *buf = NULL;
	size_t cap = 0;

	if (dfd < 0)
		die(dev);
	if (lw_open(&r, logdev))
		return 2;
	while (r.i < to && lw_next(&r)) {
		size_t len = r.e.nr_sectors * r.sb.sectorsize;

		if (r.i - 1 < from || (r.e.flags & (LW_DISCARD | LW_MARK)) ||
		    !len)
			continue;
		if (seed) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			if (x & 1)
				continue;
		}
		if (len > cap) {
			free(buf);
			if (posix_memalign(&buf, BS, len))
				die("posix_memalign");
			cap = len;
		}
		if (pread(r.fd, buf, len, r.pos - len) != (ssize_t)len)
			die("apply: read data");
		if (pwrite(dfd, buf, len, r.e.sector * r.sb.sectorsize) !=
		    (ssize_t)len)
			die("apply: write");
		done++;
	}
	if (fsync(dfd))
		die("apply: fsync");
	printf("applied %" PRIu64 "\n", done);
	free(buf);
	close(r.fd);
	close(dfd);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "replay"))
		return do_replay(argv[2], argv[3]);
	if (argc == 2 && !strcmp(argv[1], "ctl"))
		return do_ctl();
	if (argc == 4 && !strcmp(argv[1], "run"))
		return do_run(argv[2], argv[3], 0);
	if (argc == 5 && !strcmp(argv[1], "run") && !strcmp(argv[4], "append"))
		return do_run(argv[2], argv[3], 1);
	if (argc == 6 && (!strcmp(argv[1], "verify") ||
			  !strcmp(argv[1], "restart")))
		return do_verify(argv[2], argv[3], strtoull(argv[4], NULL, 0),
				 strtoull(argv[5], NULL, 0),
				 !strcmp(argv[1], "restart"), NULL);
	if (argc == 7 && !strcmp(argv[1], "verify"))
		return do_verify(argv[2], argv[3], strtoull(argv[4], NULL, 0),
				 strtoull(argv[5], NULL, 0), 0, argv[6]);
	if (argc == 3 && !strcmp(argv[1], "entries"))
		return do_entries(argv[2]);
	if (argc == 6 && !strcmp(argv[1], "apply"))
		return do_apply(argv[2], argv[3], strtoull(argv[4], NULL, 0),
				strtoull(argv[5], NULL, 0), 0);
	if (argc == 7 && !strcmp(argv[1], "apply"))
		return do_apply(argv[2], argv[3], strtoull(argv[4], NULL, 0),
				strtoull(argv[5], NULL, 0),
				strtoull(argv[6], NULL, 0));
	fprintf(stderr, "usage: pmc_crashwl run DEV LOG [append] < SCRIPT | verify|restart DEV LOG FIRST N | verify DEV LOG FIRST N MARK | replay LOGDEV DEV | entries LOGDEV | apply LOGDEV DEV FROM TO [SEED] | ctl < SCRIPT\n");
	return 2;
}
