#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Runs inside the test VM when the host asks for several tests in one
# boot (PMC_BATCH=1; the file PMC_WORK/tests has a line "name timeout"
# for each): each runs as tests/guest.sh would run it alone, with
# PMC_WORK=<work>/<name>, and the machine is put back as a fresh boot
# left it before the next one: no dm device, no mount, null_blk and
# dm-writecache not loaded, NVDIMMs and the virtio disk zeroed where a
# test may have written (NVDIMM bad blocks a test injected dropped),
# fault injection and lock statistics as at boot, nothing new in /tmp.
#
# The boot ends (the host boots again for the tests left) after a test
# that did not pass or skip, after a kernel report (a warning, KASAN,
# lockdep, a taint: the next test would run on a kernel that is not as
# fresh), and after a reset that failed (PMC_WORK/<name>/reset says why;
# the host fails that test).  Each test's kernel messages are bracketed
# by "pmc-batch: start NAME" and "pmc-batch: end NAME" (the host cuts
# the console log there), and the kernel log is cleared between tests:
# each test's dmesg, and dmesg.reset of what came after it, are its own.

set -u
root=$PMC_WORK
export DM_DISABLE_UDEV=1
# Its own log is the boot's "output", which tells the host the guest started.
exec > "$root/output" 2>&1

# shellcheck source=tests/lib/common.sh
. "$PMC_TOP/tests/lib/common.sh"
# shellcheck source=tests/lib/kernel-log.sh
. "$PMC_TOP/tests/lib/kernel-log.sh"

mounts() { awk '{ print $2 }' /proc/mounts | sort; }
tmp_entries() { find /tmp -mindepth 1 -maxdepth 1 -printf "%f\n" | sort; }
step() { echo "  $(date +%s.%N | cut -c1-14) $*"; }
# Taints that say the kernel went wrong: W (a warning), B (bad page),
# D (an oops), L (a soft lockup).
bad_taints() { echo $(($(cat /proc/sys/kernel/tainted) & (512 | 32 | 128 | 16384))); }

fresh_mounts=$(mounts)
fresh_tmp=$(tmp_entries)
fresh_taints=$(bad_taints)

# namespace_of pmemN: its NVDIMM namespace and mode ("namespace0.0 fsdax").
namespace_of() {
	ndctl list -N | python3 -c '
import json, sys
j = json.load(sys.stdin)
for ns in j if isinstance(j, list) else [j]:
    if ns.get("blockdev") == sys.argv[1]:
        print(ns["dev"], ns["mode"])' "$1"
}

# reset TEST: back to the state of a fresh boot, as far as a test can
# tell; says why not on stdout and fails.  NVDIMM namespaces a test put
# in fsdax mode stay so (_pmem_setup of tests/lib/common.sh puts every
# namespace in the mode the next test asks for), their data zeroed.
reset() {
	local t=$1 m d ns mode w pids=()

	dmsetup remove_all > /dev/null 2>&1
	if dmsetup ls 2>/dev/null | grep -q -v '^No devices found'; then
		echo "dm devices left: $(dmsetup ls | tr '\n' ' ')"
		return 1
	fi
	w=$(comm -13 <(echo "$fresh_mounts") <(mounts))
	[ -z "$w" ] || { echo "mounts left: $w"; return 1; }

	# Not scanned again for kmemleak after the test's rmmod: a scan
	# takes minutes on the emulated debug kernel.  What became
	# unreferenced only when dm_pmemcache was unloaded is found by the
	# next test's first scan (and fails that test, naming dm_pmemcache
	# if the module sits at the same address again).

	# Bad blocks a test injected (the badblocks file): the namespace
	# set up again, which reads the list anew from the platform (none
	# under QEMU).  The emulated NVDIMM cannot clear them by writing.
	for d in /sys/block/pmem[0-9]*; do
		[ -s "$d/badblocks" ] || continue
		read -r ns mode < <(namespace_of "${d##*/}")
		[ -n "$ns" ] || { echo "no namespace for ${d##*/}"; return 1; }
		ndctl create-namespace -f -e "$ns" -m "$mode" > /dev/null ||
			{ echo "cannot set up $ns again (bad blocks)"; return 1; }
		udevadm settle 2>/dev/null || true
		step "$ns set up again: bad blocks gone"
	done
	# Zeroed, side by side: every pmem device (pmem counts no I/O, so
	# whether a test wrote one is not known) and the virtio disk if
	# written (field 7 of its stat file: sectors written).
	for d in /sys/block/pmem[0-9]* /sys/block/vda; do
		[ -d "$d" ] || continue
		if [ "${d##*/}" = vda ] && [ "$(awk '{ print $7 }' "$d/stat")" = 0 ]; then
			continue
		fi
		blkdiscard -f -z "/dev/${d##*/}" 2> /dev/null &
		pids+=($!)
	done
	for m in "${pids[@]}"; do
		wait "$m" || { echo "cannot zero a device"; return 1; }
	done
	step zeroed

	# Fault injection and lock statistics as the boot left them.
	for f in /sys/kernel/debug/failslab /sys/kernel/debug/fail_page_alloc; do
		[ -d "$f" ] || continue
		echo 0 > "$f/probability"
		echo 1 > "$f/times"
		echo 2 > "$f/verbose"
		[ -w "$f/ignore-gfp-wait" ] && echo Y > "$f/ignore-gfp-wait"
		[ -w "$f/cache-filter" ] && echo N > "$f/cache-filter"
	done
	for f in /sys/kernel/slab/*/failslab; do
		[ -w "$f" ] && [ "$(cat "$f")" != 0 ] && echo 0 > "$f"
	done
	if [ -w /proc/sys/kernel/lock_stat ]; then
		echo 0 > /proc/sys/kernel/lock_stat
		echo 0 > /proc/lock_stat
	fi

	# Modules whose parameters a test chooses, or whose target name
	# another module may take: loaded anew by the next test.
	for m in null_blk dm_writecache; do
		[ -d "/sys/module/$m" ] || continue
		rmmod "$m" || { echo "cannot unload $m"; return 1; }
	done
	step modules

	for m in $(comm -13 <(echo "$fresh_tmp") <(tmp_entries)); do
		rm -rf --one-file-system "/tmp/${m:?}"
	done
	return 0
}

# kernel_went_wrong: says what, if the kernel reported something since
# the log was last cleared or lockdep turned itself off.
kernel_went_wrong() {
	local f

	f=$(mktemp)
	dmesg > "$f"
	if pmc_bad_log_lines "$f" | grep . > /dev/null; then
		echo "a kernel report: $(pmc_bad_log_lines "$f" | head -n 1)"
	elif [ "$(bad_taints)" != "$fresh_taints" ]; then
		echo "the kernel was tainted: $(cat /proc/sys/kernel/tainted)"
	elif [ -f /proc/lockdep_stats ] && ! grep -q 'debug_locks: *1' /proc/lockdep_stats; then
		echo "lockdep turned itself off"
	fi
	rm -f "$f"
}

mapfile -t specs < "$root/tests"
last=${specs[-1]%% *}
for spec in "${specs[@]}"; do
	read -r t tmo <<< "$spec"
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
	res=$(cat "$root/$t/result" 2>/dev/null)
	echo "$t: $res ($(cat "$root/$t/secs") s)"
	case "$res" in
	pass|skip*) ;;
	*) echo "pmc-batch: end $t" > /dev/kmsg; echo "stopping after $t"; break ;;
	esac
	[ "$t" = "$last" ] && { echo "pmc-batch: end $t" > /dev/kmsg; break; }
	t0=$(date +%s)
	why=$(reset "$t")
	rc=$?
	dmesg > "$root/$t/dmesg.reset"
	echo "pmc-batch: end $t" > /dev/kmsg
	echo "$why" | grep -v '^  ' > "$root/$t/reset"
	echo "$why"
	[ $rc -eq 0 ] || { echo "stopping: reset after $t failed"; break; }
	rm -f "$root/$t/reset"
	echo "reset after $t: $(( $(date +%s) - t0 )) s"
	why=$(kernel_went_wrong)
	if [ -n "$why" ]; then
		echo "$why" > "$root/$t/reset"
		echo "stopping after $t: $why"
		break
	fi
	dmesg -C
done
sync
