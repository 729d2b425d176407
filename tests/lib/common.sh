#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Helpers for the tests in tests/cases/, run inside the test VM.  A test
# file sets DESCRIPTION, may define requires() (adds to SKIP_REASONS and
# returns non-zero when something is missing) and defines test_body(),
# which runs under "set -e -o pipefail": any failing command fails it.

# Load a module of the guest kernel (from the unpacked linux-image).
_modprobe() {
	command modprobe -C "$PMC_TOP/tests/vm/modprobe.d" -d "$PMC_KROOT" "$@"
}

# crc32c for our checksums: libcrc32c and an implementation of it (the
# SSE 4.2 one when the CPU has it).  Loaded here because the guest kernel
# cannot autoload modules from the unpacked kernel tree.
_load_crc32c() {
	_modprobe crc32c_intel 2> /dev/null || _modprobe crc32c_generic 2> /dev/null
	_modprobe libcrc32c
}

# Load dm-mod and our freshly built module.
_load_pmemcache() {
	_modprobe dm_mod || return 1
	[ -d /sys/module/dm_pmemcache ] && return 0
	_load_crc32c || return 1
	insmod "$PMC_TOP/dm-pmemcache.ko"
}

# For requires(): is the guest kernel module $1 there?  (Not loaded: the
# test loads it with the parameters it wants.)
_have_module() {
	_modprobe -n -q "$1" && return 0
	SKIP_REASONS+=("module $1 not available")
	return 1
}

# PRODUCER | _has [GREP_OPTIONS] PATTERN: does the input match?  Reads
# all of it.  Not grep -q: it stops at the first match, the producer
# (dmesg, mostly) then dies of SIGPIPE, and under pipefail the pipeline
# fails although the line is there.
_has() {
	grep "$@" > /dev/null
}

_fail() {
	echo "FAIL: $*" >&2
	exit 1
}

# _pmem_setup [N]: turn the first N (default all) NVDIMM namespaces into
# fsdax mode; they appear as /dev/pmem0, /dev/pmem1...  The others are
# raw (block devices without DAX), as on a fresh boot, even when an
# earlier test of the same boot (tests/guest-batch.sh) made them fsdax.
_pmem_setup() {
	local n=${1:-99} i=0 ns want

	_modprobe nfit
	_modprobe nd_pmem
	for ns in $(ndctl list -N -i | sed -n 's/.*"dev":"\(namespace[0-9]*\.[0-9]*\)".*/\1/p' | sort); do
		want=raw
		[ $i -lt "$n" ] && want=fsdax
		# Already so (a later boot of the same NVDIMM files): kept.
		if ! ndctl list -n "$ns" | _has "\"mode\":\"$want\""; then
			ndctl create-namespace -f -e "$ns" -m $want > /dev/null
			# Back to raw from fsdax: zeroed, as on a fresh boot
			# (ndctl wipes only the info block, not the memmap).
			[ $want = fsdax ] || blkdiscard -f -z "/dev/$(ndctl list -n "$ns" |
				sed -n 's/.*"blockdev":"\([^"]*\)".*/\1/p')" 2> /dev/null
		fi
		i=$((i + 1))
	done
	udevadm settle 2>/dev/null || true
	for ns in $(seq 0 $((i - 1))); do
		[ -b "/dev/pmem$ns" ] || _fail "/dev/pmem$ns missing after ndctl"
	done
}

# _pmem_raw: load the NVDIMM drivers but leave namespaces in raw mode
# (a block device without DAX).
_pmem_raw() {
	_modprobe nfit
	_modprobe nd_pmem
}

_sectors() {
	blockdev --getsz "$1"
}

# _origin_setup [MiB] [delay_ms]: a slow origin /dev/mapper/origin, dm-delay
# over the memory-backed null_blk device /dev/nullb0 (/dev/nullb1 is left
# free for tests).  Delay 0 makes it fast.
_origin_setup() {
	local mib=${1:-256} ms=${2:-1}

	_modprobe null_blk nr_devices=2 gb=1 memory_backed=1 bs=512 \
		queue_mode=2 irqmode=0
	_modprobe dm_delay
	dmsetup create origin --table \
		"0 $((mib * 2048)) delay /dev/nullb0 0 $ms"
}

# _bench_setup: what make bench and make lockstat measure on.  The cache,
# C=/dev/pmem0; the origin, /dev/mapper/origin (512 MiB of dm-delay, 1 ms,
# over a memory-backed null_blk), len its sectors; dm-writecache loaded.
# The null_blk allocates a page at the first write of it: every page is
# allocated now, so that no system's writes pay for first touches
# another's did not.
# shellcheck disable=SC2034
_bench_setup() {
	_pmem_setup 1
	_origin_setup 512 1
	dd if=/dev/zero of=/dev/nullb0 bs=1M count=512 oflag=direct status=none
	_modprobe dm_writecache
	len=$(_sectors /dev/mapper/origin)
	C=/dev/pmem0
}

# _cache_dev MODE: the cache device of the tests that run in both modes:
# p, /dev/pmem0 (_pmem_setup); s, /dev/nullb1, the second memory-backed
# null_blk device (_origin_setup loads two), standing in for an SSD.
_cache_dev() {
	case $1 in
	p) echo /dev/pmem0 ;;
	s) echo /dev/nullb1 ;;
	*) _fail "_cache_dev: no mode $1" ;;
	esac
}

# _disk_origin_setup [MiB] [delay_ms]: a slow origin /dev/mapper/origin,
# dm-delay over the VM's virtio disk, whose content survives a reboot.
_disk_origin_setup() {
	local mib=${1:-256} ms=${2:-1}

	_modprobe dm_delay
	_modprobe virtio_blk
	udevadm settle 2>/dev/null || sleep 1
	[ -b /dev/vda ] || _fail "no virtio disk"
	dmsetup create origin --table "0 $((mib * 2048)) delay /dev/vda 0 $ms"
}

# _crash: end this boot like a power cut: no sync, no unmount, no
# suspend of any dm device.  The next boot of a BOOTS=N test sees the
# NVDIMM and disk files as they are now.
_crash() {
	echo crash > "$PMC_WORK/result"
	dmesg > "$PMC_WORK/dmesg"
	sync "$PMC_WORK/result" "$PMC_WORK/dmesg" "$PMC_WORK/output"
	echo 1 > /proc/sys/kernel/sysrq
	echo b > /proc/sysrq-trigger
	sleep 10
}

# _check_create NAME TABLE: dmsetup create must succeed.
_check_create() {
	dmsetup create "$1" --table "$2" ||
		_fail "dmsetup create $1 '$2' failed"
}

# _mark: put a line in the kernel log; _logged ERE: the log matches ERE
# after the last _mark (not in what an earlier part of the test logged).
_mark() {
	PMC_MARK="pmc-test-mark-$RANDOM$RANDOM"
	echo "$PMC_MARK" > /dev/kmsg
}

_logged() {
	dmesg | sed -n "/$PMC_MARK/,\$p" | _has -E -- "$1"
}

# _expect_create_fail NAME TABLE LOG_REGEX [DMSETUP_OPTION]: creating must fail, and the
# kernel log must say why (LOG_REGEX, an extended regex).
_expect_create_fail() {
	local name=$1 table=$2 re=$3 opt=${4:-} mark

	mark="pmc-test-mark-$RANDOM$RANDOM"
	echo "$mark" > /dev/kmsg
	if dmsetup create ${opt:+"$opt"} "$name" --table "$table" 2>/dev/null; then
		dmsetup remove "$name"
		_fail "'$table' was accepted"
	fi
	dmsetup remove "$name" 2>/dev/null || true
	dmesg | sed -n "/$mark/,\$p" | _has -E -- "$re" ||
		_fail "'$table' refused without a message matching '$re'"
	echo "refused as expected: $table"
}

# _random_file PATH MiB
_random_file() {
	dd if=/dev/urandom of="$1" bs=1M count="$2" status=none
}

# _same_data FILE DEV [OFFSET_BYTES]: DEV holds FILE at OFFSET_BYTES.
# FILE may be a pipe (<(...)): it is read into a file first, so that the
# whole of it is compared.
_same_data() {
	local f=$1 n

	if [ ! -f "$f" ]; then
		f=$(mktemp)
		cat "$1" > "$f"
	fi
	n=$(stat -c %s "$f")
	[ "$n" -gt 0 ] || _fail "_same_data: $1 is empty"
	dd if="$2" of=/tmp/same_data.dev bs=1M iflag=direct,skip_bytes,count_bytes \
		skip="${3:-0}" count="$n" status=none ||
		_fail "reading $2 at ${3:-0} failed"
	cmp "$f" /tmp/same_data.dev || _fail "$2 does not hold $1 at ${3:-0}"
	[ "$f" = "$1" ] || rm -f "$f"
	rm -f /tmp/same_data.dev
}

# _hex FILE OFFSET LEN: LEN bytes of FILE from OFFSET, in hex.
_hex() {
	od -An -tx1 -j "$2" -N "$3" "$1" | tr -d ' \n'
}

# _pmc_status NAME: the status fields of a pmemcache device in S[1..],
# numbered as in the admin guide (S[1] error, S[2] total blocks, ...).
_pmc_status() {
	local line
	line=$(dmsetup status "$1") || _fail "dmsetup status $1 failed"
	echo "status $1: $line"
	# shellcheck disable=SC2206,SC2034
	S=(x ${line#* * pmemcache })
}

# _old_or_new DEV OFFSET OLD NEW: every 4 KiB block of DEV from OFFSET on
# (as long as the files) equals the same block of OLD or of NEW.  Prints
# how many blocks matched each.
_old_or_new() {
	python3 - "$@" <<'PY'
import os, sys
dev, off, old, new = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
a, b = open(old, "rb").read(), open(new, "rb").read()
fd = os.open(dev, os.O_RDONLY)
got = os.pread(fd, len(a), off)
n_old = n_new = bad = 0
for i in range(0, len(a), 4096):
    blk = got[i:i + 4096]
    if blk == a[i:i + 4096]:
        n_old += 1
    elif blk == b[i:i + 4096]:
        n_new += 1
    else:
        bad += 1
        if bad <= 5:
            print(f"block at {off + i}: neither old nor new")
print(f"{dev}@{off}: {n_old} old, {n_new} new, {bad} neither")
sys.exit(1 if bad else 0)
PY
}

# Test hooks (test_hooks.c; make check builds the module with them).
PMC_PARAMS=/sys/module/dm_pmemcache/parameters

# _pause_at POINT: threads that reach POINT wait there (none: let go).
_pause_at() {
	echo "$1" > $PMC_PARAMS/test_pause_at
}

# _resume: let the threads paused now go on (later ones still stop).
_resume() {
	echo 1 > $PMC_PARAMS/test_resume
}

# _paused: how many times a thread stopped at a pause point so far.
_paused() {
	cat $PMC_PARAMS/test_paused
}

# _wait_paused N: wait (30 s at most) until N stops were counted.
_wait_paused() {
	local i

	for i in $(seq 1 300); do
		[ "$(_paused)" -ge "$1" ] && return 0
		sleep 0.1
	done
	_fail "no thread reached the pause point (stops: $(_paused), expected $1)"
}

# _wait_blocked PID: wait (20 s at most) until process PID has ended or
# sleeps uninterruptibly (state D: waiting in the kernel).  PID must be
# the process itself (an external command started with &, not a shell
# function, whose $! is a subshell).
_wait_blocked() {
	local i st

	for i in $(seq 1 200); do
		st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 0
		[ "$st" = D ] && return 0
		sleep 0.1
	done
	_fail "process $1 neither ended nor blocked"
}

# _crash_at POINT CMD...: cut the power when the module reaches POINT
# while CMD runs (the next boot of a BOOTS=N test goes on).  Fails when
# CMD ends without reaching it.
_crash_at() {
	local point=$1

	shift
	echo crash > "$PMC_WORK/result"
	dmesg > "$PMC_WORK/dmesg"
	sync "$PMC_WORK/result" "$PMC_WORK/dmesg" "$PMC_WORK/output"
	echo "$point" > $PMC_PARAMS/test_crash_at
	"$@"
	echo none > $PMC_PARAMS/test_crash_at
	_fail "'$*' ended without reaching test point $point"
}

# _pattern FILE CHAR [BLOCKS]: FILE is BLOCKS (default 1) 4 KiB blocks of CHAR.
_pattern() {
	head -c $((4096 * ${3:-1})) /dev/zero | tr '\0' "$2" > "$1"
}

# A read hit finds its block without the cache's lock, then holds it.
# _read_reuse DEV BLOCK POINT: a read of BLOCK (cached, committed) stops
# at POINT; meanwhile a newer write of BLOCK is committed, which frees the
# block the read found (or, once the read holds it, leaves it to the read
# to free), and a write of BLOCK + 100 takes the block freed last.  The
# read must return BLOCK's old or new data, never BLOCK + 100's, and the
# block must be freed in the end (no free block lost).
_read_reuse() {
	local dev=$1 blk=$2 point=$3 p r

	_pattern /tmp/RA a
	_pattern /tmp/RB b
	_pattern /tmp/RC c
	dd if=/tmp/RA of="$dev" bs=4k seek="$blk" oflag=direct status=none
	sync "$dev"
	p=$(_paused)
	_pause_at "$point"
	dd if="$dev" of=/tmp/R bs=4k skip="$blk" count=1 iflag=direct status=none &
	r=$!
	_wait_paused $((p + 1))
	_wait_blocked $r
	dd if=/tmp/RB of="$dev" bs=4k seek="$blk" oflag=direct status=none
	sync "$dev"
	dd if=/tmp/RC of="$dev" bs=4k seek=$((blk + 100)) oflag=direct status=none
	sync "$dev"
	_pause_at none
	wait $r || _fail "$point: the read of block $blk failed"
	if cmp -s /tmp/R /tmp/RC; then
		_fail "$point: a read of block $blk returned block $((blk + 100))'s data"
	fi
	cmp -s /tmp/R /tmp/RA || cmp -s /tmp/R /tmp/RB ||
		_fail "$point: a read of block $blk returned neither its old nor its new data ($(head -c 1 /tmp/R))"
	echo "$point: the read returned $(head -c 1 /tmp/R) (a: old, b: new data of its block)"
	dd if="$dev" of=/tmp/R bs=4k skip=$((blk + 100)) count=1 iflag=direct status=none
	cmp -s /tmp/R /tmp/RC || _fail "$point: block $((blk + 100)) lost its data"
	dmsetup message "${dev##*/}" 0 flush
	# A block the read failed to free would be neither free nor dirty.
	_wait_clean "${dev##*/}"
}

# _wait_clean NAME: wait (60 s at most) until NAME has no dirty block.
_wait_clean() {
	local i

	for i in $(seq 1 600); do
		_pmc_status "$1" > /dev/null
		[ "${S[2]}" = "${S[3]}" ] && [ "${S[4]}" = 0 ] && return 0
		sleep 0.1
	done
	_pmc_status "$1"
	_fail "$1 did not become clean"
}
