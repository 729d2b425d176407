#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make lockstat's guest side (run by tests/guest.sh on the debug kernel,
# which has CONFIG_LOCK_STAT, with the module loaded): on dm-writecache
# and on dm-pmemcache in turn, p mode, three workloads of two fio jobs in
# parallel (each in its own half of the range, 4 KiB, psync): random
# writes, read hits, a 70/30 read/write mix.  Around each run
# /proc/lock_stat is cleared and switched on, then copied to
# $PMC_WORK/lockstat/<system>-<workload>.txt beside fio's JSON.
set -e
# shellcheck source=tests/lib/common.sh
. "$PMC_TOP/tests/lib/common.sh"

N=${PMC_LOCKSTAT_IOS:-20000}
SIZE=${PMC_LOCKSTAT_SIZE:-64}
OUT=$PMC_WORK/lockstat
mkdir -p "$OUT"
[ -w /proc/lock_stat ] || _fail "no /proc/lock_stat: the kernel lacks CONFIG_LOCK_STAT"

_bench_setup

setup() {
	dd if=/dev/zero of=$C bs=4k count=1 oflag=direct status=none
	dmsetup create "$1" --table "0 $len $1 p /dev/mapper/origin $C 4096 0"
}

# Two jobs, each in its own SIZE MiB half, N/2 I/Os each.
job() {
	local dev=$2

	fio --direct=1 --filename="$dev" --randseed=1 --size="${SIZE}m" \
		--offset_increment="${SIZE}m" --numjobs=2 --thread --group_reporting \
		--bs=4k --ioengine=psync --io_size=$((N * 2))k --name="$1" \
		--output-format=json "${@:3}"
}

for s in writecache pmemcache; do
	for w in randwrite readhit randrw_70_30; do
		setup $s
		dev=/dev/mapper/$s
		case $w in
		readhit|randrw_70_30)
			# Both halves in the cache first.
			fio --direct=1 --filename="$dev" --size=$((SIZE * 2))m \
				--rw=write --bs=1m --ioengine=psync --name=fill \
				--output-format=terse > /dev/null ;;
		esac
		echo 0 > /proc/lock_stat
		echo 1 > /proc/sys/kernel/lock_stat
		case $w in
		randwrite) job $w $dev --rw=randwrite > "$OUT/$s-$w.json" ;;
		readhit) job $w $dev --rw=randread > "$OUT/$s-$w.json" ;;
		randrw_70_30) job $w $dev --rw=randrw --rwmixread=70 > "$OUT/$s-$w.json" ;;
		esac
		echo 0 > /proc/sys/kernel/lock_stat
		cp /proc/lock_stat "$OUT/$s-$w.txt"
		dmsetup status $s
		dmsetup remove $s
		echo "$s $w: done"
	done
done
