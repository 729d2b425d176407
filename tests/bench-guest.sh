#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The benchmark's guest side (make bench; run by tests/guest.sh with the
# module loaded).  Runs the fio matrix on each system, on the same fsdax
# namespace and the same slow origin, a fresh cache for every run, systems
# alternating within a round.  Writes $PMC_WORK/fio/<round>/<workload>/<system>.json.
set -e
# shellcheck source=tests/lib/common.sh
. "$PMC_TOP/tests/lib/common.sh"

N=${PMC_BENCH_IOS:-20000}
ROUNDS=${PMC_BENCH_ROUNDS:-1}
SYSTEMS="raw linear writecache pmemcache origin"
WORKLOADS="randwrite_qd1 randwrite_qd16 randwrite_fsync32 seqwrite_128k readhit_qd1 randrw_70_30"

_pmem_setup 1
_origin_setup 512 1
_modprobe dm_writecache
len=$(_sectors /dev/mapper/origin)
C=/dev/pmem0

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
	origin) echo /dev/mapper/origin ;;
	esac
}

teardown() {
	dmsetup remove lin 2>/dev/null || true
	dmsetup remove wc 2>/dev/null || true
	dmsetup remove pc 2>/dev/null || true
}

# job WORKLOAD DEV: the fio run, JSON on stdout
job() {
	local dev=$2 common
	common="--direct=1 --filename=$dev --randseed=1 --size=${PMC_BENCH_SIZE:-64m} --output-format=json --name=$1"
	case $1 in
	randwrite_qd1)
		fio $common --rw=randwrite --bs=4k --ioengine=psync --number_ios=$N ;;
	randwrite_qd16)
		fio $common --rw=randwrite --bs=4k --ioengine=libaio --iodepth=16 --number_ios=$N ;;
	randwrite_fsync32)
		fio $common --rw=randwrite --bs=4k --ioengine=psync --fsync=32 --number_ios=$N ;;
	seqwrite_128k)
		fio $common --rw=write --bs=128k --ioengine=psync --number_ios=$((N / 8)) ;;
	readhit_qd1)
		fio $common --rw=write --bs=1m --ioengine=psync --output-format=terse > /dev/null
		fio $common --rw=randread --bs=4k --ioengine=psync --number_ios=$N ;;
	randrw_70_30)
		fio $common --rw=write --bs=1m --ioengine=psync --output-format=terse > /dev/null
		fio $common --rw=randrw --rwmixread=70 --bs=4k --ioengine=psync --number_ios=$N ;;
	esac
}

# Warm-up, not recorded: the first run on a fresh device pays for
# first-touch costs that later runs do not.
for s in $SYSTEMS; do
	dev=$(setup $s)
	fio --direct=1 --filename="$dev" --size=16m --name=warmup --rw=randwrite \
		--bs=4k --ioengine=psync --number_ios=$((N / 10 + 1)) \
		--output-format=terse > /dev/null
	teardown
done

for r in $(seq 1 "$ROUNDS"); do
	for w in $WORKLOADS; do
		mkdir -p "$PMC_WORK/fio/$r/$w"
		for s in $SYSTEMS; do
			dev=$(setup $s)
			job $w "$dev" > "$PMC_WORK/fio/$r/$w/$s.json"
			teardown
			echo "round $r $w $s: done"
		done
	done
done
