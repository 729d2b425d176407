#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Runs inside the test VM, chrooted into the host root (tests/vm/init).
# PMC_TEST=name runs tests/cases/name; PMC_SCRIPT=path runs that script;
# PMC_BATCH=1 runs the tests listed in PMC_WORK/tests in this boot, one
# after the other (tests/guest-batch.sh).
# Writes PMC_WORK/result ("pass", "fail: why" or "skip: why"),
# PMC_WORK/output (everything the test printed) and PMC_WORK/dmesg.

set -u
cd "$PMC_TOP" || exit 1
if [ "${PMC_BATCH:-0}" = 1 ] && [ -z "${PMC_TEST:-}" ]; then
	exec bash "$PMC_TOP/tests/guest-batch.sh"
fi
export DM_DISABLE_UDEV=1
export PMC_TOP PMC_WORK PMC_KROOT PMC_KDIR

# shellcheck source=tests/lib/common.sh
. "$PMC_TOP/tests/lib/common.sh"

finish() {
	echo "$1" > "$PMC_WORK/result"
	dmesg > "$PMC_WORK/dmesg"
	sync
	exit 0
}

exec > "$PMC_WORK/output" 2>&1

if [ -n "${PMC_SCRIPT:-}" ]; then
	_load_pmemcache || finish "fail: cannot load the module"
	bash -e "$PMC_TOP/$PMC_SCRIPT"
	rc=$?
	[ $rc -eq 0 ] && finish pass
	finish "fail: $PMC_SCRIPT exited with $rc"
fi

case_file=$PMC_TOP/tests/cases/$PMC_TEST
[ -f "$case_file" ] || finish "fail: no test $PMC_TEST"
# shellcheck disable=SC1090
. "$case_file"

SKIP_REASONS=()
if declare -F requires > /dev/null && ! requires; then
	finish "skip: ${SKIP_REASONS[*]:-requirement missing}"
fi

if [ "${AUTOLOAD:-1}" = 1 ]; then
	_load_pmemcache || finish "fail: cannot load dm-pmemcache.ko"
fi

# The debug kernel's checkers must be on, or the lane sees nothing:
# lockdep turns itself off at its first report (even one from before
# the test), and kmemleak may have failed to start.
debug_kernel=0
case "$(uname -r)" in *pmcdebug*) debug_kernel=1 ;; esac
_checkers_on() {
	[ $debug_kernel = 1 ] || return 0
	grep -q 'debug_locks: *1' /proc/lockdep_stats ||
		finish "fail: lockdep is off ($1; an earlier report turned it off)"
	if ! grep -q 'kmemleak=off' /proc/cmdline &&
		! echo scan > /sys/kernel/debug/kmemleak; then
		finish "fail: kmemleak is not running ($1)"
	fi
}
_checkers_on "before the test"

echo "== $PMC_TEST: $DESCRIPTION"
( set -e -o pipefail; test_body )
rc=$?
_checkers_on "after the test"

# Whatever the test left behind is removed; the module must then unload,
# or something still holds it (a leaked reference, a device not freed).
dmsetup remove_all > /dev/null 2>&1
# On the debug kernel: a kmemleak scan while the module's symbols are
# still loaded, so that a leak names it.
# kmemleak reports no object younger than 5 s: wait that long first.
if [ -w /sys/kernel/debug/kmemleak ]; then
	sleep 6
	echo scan > /sys/kernel/debug/kmemleak
	sleep 1
	echo scan > /sys/kernel/debug/kmemleak
	cat /sys/kernel/debug/kmemleak > "$PMC_WORK/kmemleak"
	# Reported once: the next test of the same boot starts clean.
	echo clear > /sys/kernel/debug/kmemleak
fi
if [ -d /sys/module/dm_pmemcache ] && ! rmmod dm_pmemcache; then
	finish "fail: rmmod dm_pmemcache failed after the test"
fi
[ $rc -eq 0 ] || finish "fail: test body exited with $rc"
finish pass
