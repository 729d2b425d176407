#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make check [T=name]: install what is needed, build the module against the
# guest kernel's headers, then boot one VM per test in tests/cases/ and
# print one TAP line per test and "N passed, N failed, N skipped".
# Each test's console log, output and kernel log are kept in
# tests/results/<name>/.  Exits non-zero when any test failed.

set -u
# shellcheck source=tests/lib/host.sh
. "$(dirname "$0")/lib/host.sh"

start=$(date +%s)

pmc_prepare
results=$PMC_TOP/tests/results
[ "${KERNEL:-}" = debug ] && results=$PMC_TOP/tests/results/debug
mkdir -p "$results"
# The test build: with the pause and crash points of test_hooks.c and
# the persistence checker of persist_check.c.
pmc_build_module "$results/build.log" PMC_TEST_HOOKS=y PMC_PERSIST_CHECK=y
# The power-cut workload of the persistence checker's tests.
mkdir -p "$PMC_TOP/tests/bin"
cc -O2 -Wall -Wextra -o "$PMC_TOP/tests/bin/pmc_crashwl" \
	"$PMC_TOP/tools/pmc-crashwl.c" || pmc_die "pmc_crashwl build failed"

if [ $# -gt 0 ] && [ -n "$1" ]; then
	tests=("$@")
else
	# Every test; on Debian's kernel not those that need the debug
	# kernel's fault injection or lock statistics (LANE=debug); never
	# the long runs (LANE=long), which have make targets of their own.
	mapfile -t tests < <(cd "$PMC_TOP/tests/cases" &&
		if [ "${KERNEL:-}" = debug ]; then
			grep -L '^LANE=long' -- *
		else
			grep -L '^LANE=\(debug\|long\)' -- *
		fi)
fi

pass=0 fail=0 skip=0 n=0
echo "TAP version 13"
echo "# kernel $PMC_KVER"
echo "1..${#tests[@]}"
for t in "${tests[@]}"; do
	n=$((n + 1))
	work=$results/$t
	rm -rf "$work"
	mkdir -p "$work"
	if [ ! -f "$PMC_TOP/tests/cases/$t" ]; then
		echo "not ok $n - $t # no such test"
		fail=$((fail + 1))
		continue
	fi
	tmo=$(sed -n 's/^TIMEOUT=\([0-9]*\).*/\1/p' "$PMC_TOP/tests/cases/$t")
	tmo=$(( ${tmo:-300} * ${PMC_TIMEOUT_SCALE:-1} ))
	# The guest starts the test within 30 s on 6.1 and 110 s on the
	# debug kernel, when all is well.
	boot_limit=150
	[ "${PMC_TIMEOUT_SCALE:-1}" -gt 1 ] && boot_limit=300
	boots=$(sed -n 's/^BOOTS=\([0-9]*\).*/\1/p' "$PMC_TOP/tests/cases/$t")
	# QEMU_CPU=model: the CPU the test needs (default: max).
	cpu=$(sed -n 's/^QEMU_CPU=\([A-Za-z0-9-]*\).*/\1/p' "$PMC_TOP/tests/cases/$t")
	# VM_MEM=size: guest memory the test needs (default: 2G).
	mem=$(sed -n 's/^VM_MEM=\([0-9]*G\).*/\1/p' "$PMC_TOP/tests/cases/$t")
	t0=$(date +%s)
	# A test of several boots (BOOTS=N) keeps its NVDIMM and disk files
	# from one boot to the next; every boot but the last must end with
	# "pass" or "crash" (the test killed the VM on purpose).
	for b in $(seq 1 "${boots:-1}"); do
		rm -f "$work/result" "$work/output"
		PMC_CPU=${cpu:-max} PMC_MEM=${mem:-2G} PMC_BOOT_LIMIT=$boot_limit \
			pmc_boot "$work" "$tmo" "pmc.test=$t pmc.boot=$b"
		qrc=$?
		# The emulated debug kernel has hung, rarely, right after
		# starting /init, before the test began: boot once more, and
		# say so.
		if [ $qrc -eq 125 ]; then
			echo "# $t: the VM hung before the test started; booting again"
			cp "$work/console.log" "$work/console.hung.$b"
			PMC_CPU=${cpu:-max} PMC_MEM=${mem:-2G} PMC_BOOT_LIMIT=$boot_limit \
				pmc_boot "$work" "$tmo" "pmc.test=$t pmc.boot=$b"
			qrc=$?
		fi
		[ "${boots:-1}" -gt 1 ] || break
		for f in console.log dmesg output; do
			[ -f "$work/$f" ] && cp "$work/$f" "$work/$f.$b"
		done
		res=$(cat "$work/result" 2>/dev/null)
		[ "$b" -lt "$boots" ] || break
		case "$res" in
		pass|crash) ;;
		*) break ;;
		esac
	done
	secs=$(( $(date +%s) - t0 ))
	rm -f "$work"/*.img
	bad=$(for f in "$work"/console.log* "$work"/dmesg*; do
		pmc_bad_log_lines "$f"; done | sort -u | head -n 20)
	# Reports from before the module was first loaded are shown, not
	# counted: neither the module nor the test had run yet.
	for f in "$work"/console.log*; do
		pmc_early_log_lines "$f"
	done | sort -u | head -n 3 |
		sed "s/^/# $t: before dm_pmemcache was loaded (not counted): /"
	res=$(cat "$work/result" 2>/dev/null)
	if [ $qrc -eq 125 ]; then
		res="fail: the VM hung twice before the test started"
	elif [ $qrc -eq 124 ]; then
		res="fail: VM timed out after ${tmo}s"
	elif [ "$res" = crash ]; then
		res="fail: the last boot ended in a crash"
	elif [ -z "$res" ]; then
		res="fail: VM ended without a result (QEMU status $qrc)"
	fi
	if [ -n "$bad" ] && [ "${res%%:*}" != fail ]; then
		res="fail: kernel log"
	fi
	if grep -q dm_pmemcache "$work/kmemleak" 2>/dev/null; then
		res="fail: kmemleak reports a leak in dm_pmemcache"
		bad="$bad
$(head -n 20 "$work/kmemleak")"
	fi
	case "$res" in
	pass)
		echo "ok $n - $t (${secs}s)"
		pass=$((pass + 1))
		;;
	skip*)
		# PMC_NO_SKIP=1 (CI): a test that cannot run is a failure,
		# not a pass that checked nothing.
		if [ "${PMC_NO_SKIP:-0}" = 1 ]; then
			echo "not ok $n - $t (${secs}s) # skipped, and PMC_NO_SKIP=1: ${res#skip: }"
			fail=$((fail + 1))
		else
			echo "ok $n - $t # SKIP ${res#skip: }"
			skip=$((skip + 1))
		fi
		;;
	*)
		echo "not ok $n - $t (${secs}s) # ${res#fail: }"
		fail=$((fail + 1))
		tail -n 8 "$work/output" 2>/dev/null | sed 's/^/#   /'
		grep -a '^init:' "$work/console.log" | sed 's/^/#   /'
		[ -n "$bad" ] && echo "$bad" | sed 's/^/#   kernel: /'
		;;
	esac
done
echo "# results in $results, $(( $(date +%s) - start ))s in all"
echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
