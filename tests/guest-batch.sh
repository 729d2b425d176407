#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Runs inside the test VM when the host asks for several tests in one
# boot (PMC_TESTS=name:timeout,name:timeout...): each runs as
# tests/guest.sh would run it alone, with PMC_WORK=<work>/<name>, and
# the machine is put back as a fresh boot left it before the next one:
# no dm device, no mount, null_blk and dm-writecache not loaded, NVDIMMs
# and the virtio disk zeroed where a test may have written, fault
# injection and lock statistics off, nothing new in /tmp.
# The first test that does not pass or skip, or a reset that fails,
# ends the boot: the host boots again for the tests left.  Each test's
# kernel messages are bracketed by "pmc-batch: start NAME" and
# "pmc-batch: end NAME" (the host cuts the console log there), and the
# kernel log is cleared between tests (each test's dmesg is its own).

set -u
root=$PMC_WORK
# Its own log is the boot's "output", which tells the host the guest started.
exec > "$root/output" 2>&1

# shellcheck source=tests/lib/common.sh
. "$PMC_TOP/tests/lib/common.sh"

mounts() { awk '{ print $2 }' /proc/mounts | sort; }

fresh_mounts=$(mounts)
fresh_tmp=$(find /tmp -mindepth 1 -maxdepth 1 -printf "%f\n" | sort)

# reset: back to the state of a fresh boot, as far as a test can tell;
# prints why not and fails.  NVDIMM namespaces a test put in fsdax mode
# stay so (tests/lib/common.sh's _pmem_setup puts every namespace in the
# mode the test asks for), but their data are zeroed.
reset() {
	local m d w pids=()

	step() { echo "  $(date +%s.%N | cut -c1-14) $*" >&2; }
	dmsetup remove_all > /dev/null 2>&1
	if dmsetup ls 2>/dev/null | grep -q -v '^No devices found'; then
		echo "dm devices left: $(dmsetup ls)"
		return 1
	fi
	w=$(comm -13 <(echo "$fresh_mounts") <(mounts))
	[ -z "$w" ] || { echo "mounts left: $w"; return 1; }

	# Zeroed: each pmem device in fsdax mode, each one written (field
	# 7 of the stat file: sectors written), and the virtio disk if
	# written; side by side.
	for d in /sys/block/pmem[0-9]* /sys/block/vda; do
		[ -d "$d" ] || continue
		if [ -e "$d/dax" ] || [ "$(cat "$d/queue/dax" 2>/dev/null)" = 1 ] ||
			[ "$(awk '{ print $7 }' "$d/stat")" != 0 ]; then
			blkdiscard -f -z "/dev/${d##*/}" 2> /dev/null &
			pids+=($!)
		fi
	done
	for m in "${pids[@]}"; do
		wait "$m" || { echo "cannot zero a device"; return 1; }
	done
	step zeroed

	for f in /sys/kernel/debug/failslab /sys/kernel/debug/fail_page_alloc; do
		[ -w "$f/probability" ] && echo 0 > "$f/probability"
	done
	for f in /sys/kernel/slab/*/failslab; do
		[ -w "$f" ] && [ "$(cat "$f")" != 0 ] && echo 0 > "$f"
	done
	[ -w /proc/sys/kernel/lock_stat ] && echo 0 > /proc/sys/kernel/lock_stat

	# Modules whose parameters a test chooses, or whose target name
	# another module may take: loaded anew by the next test.
	for m in null_blk dm_writecache; do
		[ -d "/sys/module/$m" ] || continue
		rmmod "$m" || { echo "cannot unload $m"; return 1; }
	done
	step modules

	for m in $(comm -13 <(echo "$fresh_tmp") <(find /tmp -mindepth 1 -maxdepth 1 -printf "%f\n" | sort)); do
		rm -rf --one-file-system "/tmp/${m:?}"
	done
	return 0
}

for spec in ${PMC_TESTS//,/ }; do
	t=${spec%%:*}
	tmo=${spec#*:}
	mkdir -p "$root/$t"
	echo "pmc-batch: start $t" > /dev/kmsg
	t0=$(date +%s)
	PMC_TEST=$t PMC_WORK=$root/$t timeout -k 10 "$tmo" \
		bash "$PMC_TOP/tests/guest.sh"
	rc=$?
	echo $(( $(date +%s) - t0 )) > "$root/$t/secs"
	if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
		echo "fail: timed out after ${tmo}s" > "$root/$t/result"
		dmesg > "$root/$t/dmesg"
	fi
	echo "pmc-batch: end $t" > /dev/kmsg
	res=$(cat "$root/$t/result" 2>/dev/null)
	echo "$t: $res ($(cat "$root/$t/secs") s)"
	case "$res" in
	pass|skip*) ;;
	*) echo "stopping after $t"; break ;;
	esac
	t0=$(date +%s)
	why=$(reset) || { echo "stopping: reset after $t failed: $why"; break; }
	echo "reset after $t: $(( $(date +%s) - t0 )) s"
	dmesg -C
done
sync
