#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The benchmark's guest side (make bench; run by tests/guest.sh with the
# module loaded).  Runs the fio matrix on each system, on the same fsdax
# namespace and the same slow origin, a fresh cache for every run, systems
# alternating within a round, in an order rotated from round to round.  Writes $OUT/fio/<round>/<workload>/<system>.json
# and $OUT/extra/*.json (OUT: PMC_BENCH_OUT, default PMC_WORK).
set -e
# shellcheck source=tests/lib/common.sh
. "$PMC_TOP/tests/lib/common.sh"

N=${PMC_BENCH_IOS:-20000}
ROUNDS=${PMC_BENCH_ROUNDS:-1}
# det: the deterministic matrix, then writeback and recovery timings;
# par: the parallel-mode workloads (2 vCPUs, wall clock; make scaling
# boots 1, 2 and 4 and runs J jobs on J vCPUs).
MODE=${PMC_BENCH_MODE:-det}
OUT=${PMC_BENCH_OUT:-$PMC_WORK}
if [ "$MODE" = par ]; then
	# Wall clock: runs of a few seconds, so that a moment of host noise
	# weighs less; fio goes round the range as often as needed.
	N=${PMC_BENCH_PAR_IOS:-100000}
	SYSTEMS="raw linear writecache pmemcache"
	WORKLOADS="randwrite_2jobs readhit_2jobs randrw_2jobs randwrite_qd1"
else
	SYSTEMS="raw linear writecache pmemcache writecache_s pmemcache_s origin"
	WORKLOADS="randwrite_qd1 randwrite_qd16 randwrite_fsync32 seqwrite_128k readhit_qd1 randrw_70_30"
fi
# A part of the matrix (the test of this script runs a few runs of each
# kind): PMC_BENCH_SYSTEMS, PMC_BENCH_WORKLOADS; PMC_BENCH_WARMUP=0 skips
# the warm-up runs, PMC_BENCH_EXTRA=0 the writeback and recovery timings.
# (commas or spaces between the names: the kernel command line has no spaces).
SYSTEMS=${PMC_BENCH_SYSTEMS:-$SYSTEMS}
SYSTEMS=${SYSTEMS//,/ }
WORKLOADS=${PMC_BENCH_WORKLOADS:-$WORKLOADS}
WORKLOADS=${WORKLOADS//,/ }

_bench_setup
# s mode's cache device: the second null_blk (memory-backed, no delay),
# every page allocated now so that no system pays for first touches.
SDEV=/dev/nullb1
case " $SYSTEMS " in
*_s" "*) dd if=/dev/zero of=$SDEV bs=1M oflag=direct status=none 2> /dev/null || true ;;
esac

# setup SYSTEM: create it fresh, print the device to test
setup() {
	dd if=/dev/zero of=$C bs=4k count=1 oflag=direct status=none
	case $1 in
	raw) echo $C ;;
	linear)
		dmsetup create lin --table "0 $(_sectors $C) linear $C 0"
		echo /dev/mapper/lin ;;
	writecache)
		dmsetup create wc --table "0 $len writecache p /dev/mapper/origin $C 4096 0"
		echo /dev/mapper/wc ;;
	pmemcache)
		dmsetup create pc --table "0 $len pmemcache p /dev/mapper/origin $C 4096 0"
		echo /dev/mapper/pc ;;
	writecache_s)
		dd if=/dev/zero of=$SDEV bs=4k count=1 oflag=direct status=none
		dmsetup create wcs --table "0 $len writecache s /dev/mapper/origin $SDEV 4096 0"
		echo /dev/mapper/wcs ;;
	pmemcache_s)
		dd if=/dev/zero of=$SDEV bs=4k count=1 oflag=direct status=none
		dmsetup create pcs --table "0 $len pmemcache s /dev/mapper/origin $SDEV 4096 0"
		echo /dev/mapper/pcs ;;
	origin) echo /dev/mapper/origin ;;
	esac
}

teardown() {
	dmsetup remove lin 2>/dev/null || true
	dmsetup remove wc 2>/dev/null || true
	dmsetup remove pc 2>/dev/null || true
	dmsetup remove wcs 2>/dev/null || true
	dmsetup remove pcs 2>/dev/null || true
}

# job WORKLOAD DEV: the fio run, JSON on stdout.  WORKLOAD_<J>jobs: J
# fio threads in parallel.
job() {
	local dev=$2 common J=${1##*_}

	J=${J%jobs}
	common="--direct=1 --filename=$dev --randseed=1 --size=${PMC_BENCH_SIZE:-64m} --output-format=json --name=$1"
	case $1 in
	randwrite_qd1)
		if [ "$MODE" = par ]; then
			fio $common --rw=randwrite --bs=4k --ioengine=psync --io_size=$((N * 4))k
		else
			fio $common --rw=randwrite --bs=4k --ioengine=psync --number_ios=$N
		fi ;;
	randwrite_qd16)
		fio $common --rw=randwrite --bs=4k --ioengine=libaio --iodepth=16 --number_ios=$N ;;
	randwrite_fsync32)
		fio $common --rw=randwrite --bs=4k --ioengine=psync --fsync=32 --number_ios=$N ;;
	seqwrite_128k)
		# io_size, not number_ios: fio stops a sequential pass at the
		# end of --size (512 I/Os); io_size goes round it again.
		fio $common --rw=write --bs=128k --ioengine=psync --io_size=$((N / 8 * 128))k ;;
	readhit_qd1)
		fio $common --rw=write --bs=1m --ioengine=psync --output-format=terse > /dev/null
		fio $common --rw=randread --bs=4k --ioengine=psync --number_ios=$N ;;
	randrw_70_30)
		fio $common --rw=write --bs=1m --ioengine=psync --output-format=terse > /dev/null
		fio $common --rw=randrw --rwmixread=70 --bs=4k --ioengine=psync --number_ios=$N ;;
	randwrite_*jobs)
		# J threads, each in a range of its own, N/J I/Os each.
		fio $common --rw=randwrite --bs=4k --ioengine=psync --io_size=$((N * 4 / J))k \
			--numjobs=$J --offset_increment=${PMC_BENCH_SIZE:-64m} --thread \
			--group_reporting ;;
	readhit_*jobs | randrw_*jobs)
		# J threads, each in its own J-th of the range, written first
		# (cached), N/J I/Os each: read hits, or 70/30 reads and writes.
		local size=${PMC_BENCH_SIZE:-64m} part rw=randread

		part=$((${size%m} / J))m
		[ "${1%%_*}" = randrw ] && rw="randrw --rwmixread=70"
		fio --direct=1 --filename="$dev" --name=fill --rw=write --bs=1m \
			--ioengine=psync --size="$size" --output-format=terse > /dev/null
		# shellcheck disable=SC2086
		fio --direct=1 --filename="$dev" --randseed=1 --output-format=json --name=$1 \
			--size=$part --rw=$rw --bs=4k --ioengine=psync --io_size=$((N * 4 / J))k \
			--numjobs=$J --offset_increment=$part --thread --group_reporting ;;
	esac
}

# Warm-up, not recorded: the first run on a fresh device pays for
# first-touch costs that later runs do not.
for s in $SYSTEMS; do
	[ "${PMC_BENCH_WARMUP:-1}" = 1 ] || break
	dev=$(setup $s)
	fio --direct=1 --filename="$dev" --size=16m --name=warmup --rw=randwrite \
		--bs=4k --ioengine=psync --number_ios=$((N / 10 + 1)) \
		--output-format=terse > /dev/null
	teardown
done

# rotate N WORDS...: the words, the first N moved to the end.
rotate() {
	local n=$1

	shift
	n=$((n % $#))
	echo "${@:n+1}" "${@:1:n}"
}

for r in $(seq 1 "$ROUNDS"); do
	for w in $WORKLOADS; do
		mkdir -p "$OUT/fio/$r/$w"
		# shellcheck disable=SC2086
		for s in $(rotate $((r - 1)) $SYSTEMS); do
			dev=$(setup $s)
			job $w "$dev" > "$OUT/fio/$r/$w/$s.json"
			teardown
			echo "round $r $w $s: done"
		done
	done
done

[ "$MODE" = det ] && [ "${PMC_BENCH_EXTRA:-1}" = 1 ] || exit 0

# Writeback: WB random 4 KiB writes spread over the origin (each block
# once), then the flush message, which writes everything back and returns
# when it is done: the wait is in the kernel, not a poll on the only
# vCPU.  The status is read once after it (polls counts any further read,
# 50 ms apart, that a cache not yet clean would need).  Each system runs
# twice, in the order writecache pmemcache pmemcache writecache.
# Recovery: the time to create the target again over the same cache, not
# written back.
WB=${PMC_BENCH_WB_IOS:-8192}
mkdir -p "$OUT/extra"
now() { date +%s%N; }
run=0
for s in writecache pmemcache pmemcache writecache; do
	run=$((run + 1))
	dev=$(setup $s)
	name=${dev#/dev/mapper/}
	fio --direct=1 --filename="$dev" --randseed=3 --size=$((len / 2048))m \
		--name=fill --rw=randwrite --bs=4k --ioengine=psync --number_ios="$WB" \
		--output-format=terse > /dev/null
	sync "$dev"
	# Recovery: the target created again over the filled cache.
	table=$(dmsetup table "$name")
	dmsetup remove "$name"
	t0=$(now)
	dmsetup create "$name" --table "$table"
	t1=$(now)
	read -r -a f < <(dmsetup status "$name")
	echo "{\"total\": ${f[4]}, \"free\": ${f[5]}, \"ns\": $((t1 - t0))}" > "$OUT/extra/recovery_${s}_$run.json"
	echo "recovery $s: ${f[4]} blocks, $((f[4] - f[5])) dirty, in $(((t1 - t0) / 1000)) us"
	# Writeback: the flush message, until the cache is clean.
	polls=0
	t0=$(now)
	dmsetup message "$name" 0 flush
	while :; do
		read -r -a f < <(dmsetup status "$name")
		[ "${f[4]}" = "${f[5]}" ] && break
		polls=$((polls + 1))
		sleep 0.05
	done
	t1=$(now)
	echo "{\"blocks\": $WB, \"ns\": $((t1 - t0)), \"polls\": $polls}" > "$OUT/extra/writeback_${s}_$run.json"
	echo "writeback $s: $WB blocks in $(((t1 - t0) / 1000)) us, $polls polls after the flush message"
	teardown
done
