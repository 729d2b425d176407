#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make profile: the guest side.  One fio workload of the benchmark on
# dm-writecache and on dm-pmemcache, each under "perf record" (cpu-clock,
# all CPUs), so that the reports show where each spends its time.
set -e
# shellcheck source=tests/lib/common.sh
. "$PMC_TOP/tests/lib/common.sh"

N=${PMC_PROFILE_IOS:-20000}
W=${PMC_PROFILE_WORKLOAD:-randwrite_qd1}
_pmem_setup 1
_origin_setup 512 1
_modprobe dm_writecache
len=$(_sectors /dev/mapper/origin)
C=/dev/pmem0
echo -1 > /proc/sys/kernel/perf_event_paranoid
echo 0 > /proc/sys/kernel/kptr_restrict

# The fio arguments of workload $W: N I/Os of 4 KiB (N/8 of 128 KiB),
# wrapping around the 64 MiB range as often as needed.
args() {
	case $W in
	randwrite_qd1) echo "--rw=randwrite --bs=4k --ioengine=psync --io_size=$((N * 4))k" ;;
	randwrite_qd16) echo "--rw=randwrite --bs=4k --ioengine=libaio --iodepth=16 --io_size=$((N * 4))k" ;;
	randwrite_fsync32) echo "--rw=randwrite --bs=4k --ioengine=psync --fsync=32 --io_size=$((N * 4))k" ;;
	seqwrite_128k) echo "--rw=write --bs=128k --ioengine=psync --io_size=$((N * 16))k" ;;
	readhit_qd1) echo "--rw=randread --bs=4k --ioengine=psync --io_size=$((N * 4))k" ;;
	*) _fail "unknown workload $W" ;;
	esac
}

for s in writecache pmemcache; do
	dd if=/dev/zero of=$C bs=4k count=1 oflag=direct status=none
	dmsetup create x --table "0 $len $s p /dev/mapper/origin $C 4096 0"
	fio --direct=1 --filename=/dev/mapper/x --size=64m --name=fill --rw=write \
		--bs=1m --ioengine=psync --output-format=terse > /dev/null
	# shellcheck disable=SC2046
	fio --direct=1 --filename=/dev/mapper/x --randseed=1 --size=64m \
		--name=warm $(args) --output-format=terse > /dev/null
	# shellcheck disable=SC2046
	if ! perf record -q -a -g -e cpu-clock -F 10000 -o "/tmp/perf.$s" -- \
		fio --direct=1 --filename=/dev/mapper/x --randseed=2 --size=64m \
		--name="$W" $(args) > "/tmp/fio.$s"; then
		cat "/tmp/fio.$s"
		_fail "perf record or fio failed on $s"
	fi
	dmsetup remove x
	echo "== $s: $W, $(grep -o 'iops=[0-9]*' "/tmp/fio.$s" | head -n 2 | tr '\n' ' ')"
	grep -E "IOPS|lat \(usec\)" "/tmp/fio.$s" | head -n 4
	# Busy time only: the idle task's samples are left out.
	echo "-- $s: where fio's time goes (% of its samples)"
	perf report -i "/tmp/perf.$s" --no-children --sort sym --stdio \
		-g none --comms fio --percentage relative --percent-limit 0.8 \
		2>/dev/null | grep -v -e '^#' -e '^$' | head -n 40
	echo "-- $s: other busy tasks (% of all samples)"
	perf report -i "/tmp/perf.$s" --no-children --sort comm --stdio \
		-g none 2>/dev/null | grep -v -e '^#' -e '^$' | head -n 8
	echo "-- $s: callers of fio's top kernel symbols"
	perf report -i "/tmp/perf.$s" --no-children --sort sym --stdio \
		-g caller,3,callee,function,percent --max-stack 6 --comms fio \
		--percentage relative --percent-limit 3 2>/dev/null |
		grep -v -e '^#' -e '^$' -e '0x' | head -n 100
done
