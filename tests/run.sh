#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make check [T=name]: install what is needed, build the module against the
# guest kernel's headers, then run the tests of tests/cases/ in VMs (most
# of them one after the other in shared boots, see run_shared) and print
# one TAP line per test and "N passed, N failed, N skipped".
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
# The rescue tool as make install installs it, and a test build of it
# with its stop point (PMEMCACHE_TEST_STOP).
make -s -C "$PMC_TOP" tools || pmc_die "the pmemcache tool's build failed"
make -s -C "$PMC_TOP" deb DEB_DIR="$PMC_TOP/tests/bin/deb" > /dev/null ||
	pmc_die "make deb failed: $PMC_TOP/tests/bin/deb/build.log"
cc -O2 -Wall -Wextra -DPMC_TOOL_TEST_HOOKS -o "$PMC_TOP/tests/bin/pmemcache" \
	"$PMC_TOP/tools/pmemcache.c" "$PMC_TOP/tools/pmemcache_image.c" ||
	pmc_die "the pmemcache tool's test build failed"

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

# A test's settings, from the lines of its file.
setting() { sed -n "s/^$2=\([A-Za-z0-9-]*\).*/\1/p" "$PMC_TOP/tests/cases/$1"; }
timeout_of() {
	local tmo

	tmo=$(setting "$1" TIMEOUT)
	echo $(( ${tmo:-300} * ${PMC_TIMEOUT_SCALE:-1} ))
}

# The guest starts the test within 30 s on 6.1 and 110 s on the debug
# kernel, when all is well.
boot_limit=150
[ "${PMC_TIMEOUT_SCALE:-1}" -gt 1 ] && boot_limit=300

pass=0 fail=0 skip=0 n=0 boots=0

# report NAME SECONDS QEMU_STATUS: judge a test from what its VM left in
# $results/NAME (result, output, console.log*, dmesg*, kmemleak) and
# print its TAP line.
report() {
	local t=$1 secs=$2 qrc=$3 work=$results/$1 res bad f

	n=$((n + 1))
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
	if [ "$qrc" -eq 125 ]; then
		res="fail: the VM hung twice before the test started"
	elif [ "$qrc" -eq 124 ]; then
		res="fail: VM timed out after $(timeout_of "$t")s"
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
}

# boot WORK TIMEOUT ARGS...: boot the VM (once more if it hung before
# the guest started); sets qrc.
boot() {
	local work=$1 tmo=$2

	shift 2
	boots=$((boots + 1))
	PMC_CPU=${cpu:-max} PMC_MEM=${mem:-2G} PMC_BOOT_LIMIT=$boot_limit \
		pmc_boot "$work" "$tmo" "$@"
	qrc=$?
	# The emulated debug kernel has hung, rarely, right after starting
	# /init, before the test began: boot once more, and say so.
	if [ $qrc -eq 125 ]; then
		echo "# ${work##*/}: the VM hung before the guest started; booting again"
		cp "$work/console.log" "$results/console.hung.$boots"
		boots=$((boots + 1))
		PMC_CPU=${cpu:-max} PMC_MEM=${mem:-2G} PMC_BOOT_LIMIT=$boot_limit \
			pmc_boot "$work" "$tmo" "$@"
		qrc=$?
	fi
}

# run_alone NAME: the test in VMs of its own (BOOTS=N of them, keeping
# the NVDIMM and disk files from one boot to the next; every boot but
# the last must end with "pass" or "crash": the test killed the VM on
# purpose).
run_alone() {
	local t=$1 work=$results/$1 tmo b nb t0 res

	rm -rf "$work"
	mkdir -p "$work"
	tmo=$(timeout_of "$t")
	nb=$(setting "$t" BOOTS)
	t0=$(date +%s)
	for b in $(seq 1 "${nb:-1}"); do
		rm -f "$work/result" "$work/output"
		boot "$work" "$tmo" "pmc.test=$t pmc.boot=$b"
		[ "${nb:-1}" -gt 1 ] || break
		for f in console.log dmesg output; do
			[ -f "$work/$f" ] && cp "$work/$f" "$work/$f.$b"
		done
		res=$(cat "$work/result" 2>/dev/null)
		[ "$b" -lt "$nb" ] || break
		case "$res" in
		pass|crash) ;;
		*) break ;;
		esac
	done
	report "$t" $(( $(date +%s) - t0 )) "$qrc"
}

# watch_shared WORK NAME...: while the shared boot of WORK runs, stop it when
# a test has run for its time limit and a minute more (the guest's own
# limit did not end it: the kernel is stuck), its result saying so.
watch_shared() {
	local work=$1 t tmo since

	shift
	for t in "$@"; do
		tmo=$(timeout_of "$t")
		while [ ! -d "$work/$t" ]; do sleep 5; done
		since=$(date +%s)
		while [ ! -f "$work/$t/secs" ]; do
			if [ $(( $(date +%s) - since )) -gt $((tmo + 60)) ]; then
				echo "fail: timed out after ${tmo}s (the guest was stuck; the host stopped the VM)" \
					> "$work/$t/result"
				pkill -f -- "pmc.work=$work "
				return
			fi
			sleep 5
		done
	done
}

# run_shared NAME...: the tests one after the other in shared boots
# (tests/guest-batch.sh puts the machine back as a fresh boot left it
# between two).  A test that fails ends its boot; the next boot, with
# fresh NVDIMM and disk files, goes on with the tests left.
run_shared() {
	local left=("$@") work=$results/.shared t tmo secs started wpid why

	while [ ${#left[@]} -gt 0 ]; do
		rm -rf "$work"
		mkdir -p "$work"
		tmo=$boot_limit
		for t in "${left[@]}"; do
			echo "$t $(timeout_of "$t")"
			tmo=$((tmo + $(timeout_of "$t") + 30))
		done > "$work/tests"
		watch_shared "$work" "${left[@]}" &
		wpid=$!
		boot "$work" "$tmo" "pmc.batch=1"
		kill "$wpid" 2> /dev/null
		wait "$wpid" 2> /dev/null
		started=()
		for t in "${left[@]}"; do
			[ -d "$work/$t" ] && started+=("$t")
		done
		# The console log, cut at the guest's markers: each test's
		# part, the first test of the boot with the boot before it.
		python3 - "$work/console.log" "${started[@]}" <<'PY'
import os, re, sys
log, names = sys.argv[1], sys.argv[2:]
parts, cur = {}, None
head = []
for line in open(log, "rb"):
    m = re.search(rb"pmc-batch: start (\S+)", line)
    if m and m.group(1).decode() in names:
        cur = m.group(1).decode()
        parts[cur] = (head if not parts else []) + [line]
        continue
    (parts[cur] if cur else head).append(line)
for name in names:
    with open(os.path.join(os.path.dirname(log), name, "console.log"), "wb") as f:
        f.writelines(parts.get(name, [b"(no start marker in the console log)\n"]))
PY
		for t in "${started[@]}"; do
			rm -rf "${results:?}/$t"
			mv "$work/$t" "$results/$t"
			cp "$work/output" "$results/$t/batch.log" 2>/dev/null
			# What the guest found wrong after the test (a reset
			# that failed, a kernel report): the test fails.
			why=$(cat "$results/$t/reset" 2>/dev/null)
			if [ -n "$why" ] && [ "$(cat "$results/$t/result")" = pass ]; then
				echo "fail: after the test: $why" > "$results/$t/result"
			fi
			secs=$(cat "$results/$t/secs" 2>/dev/null || echo "?")
			report "$t" "$secs" "$( [ -f "$results/$t/result" ] && echo 0 || echo "$qrc")"
		done
		if [ ${#started[@]} -eq 0 ]; then
			# Not even the first test started: it fails, the
			# rest go on.
			rm -rf "${results:?}/${left[0]}"
			mkdir -p "$results/${left[0]}"
			cp "$work/console.log" "$results/${left[0]}/console.log"
			[ "$qrc" -eq 125 ] ||
				echo "fail: the boot ended before the test started (QEMU status $qrc)" \
					> "$results/${left[0]}/result"
			report "${left[0]}" 0 "$qrc"
			started=("${left[0]}")
		fi
		left=("${left[@]:${#started[@]}}")
	done
	rm -rf "$work"
}

echo "TAP version 13"
echo "# kernel $PMC_KVER"
echo "1..${#tests[@]}"
# Tests that need a VM of their own: several boots, another CPU model
# or more memory.  The others share boots.
alone=() shared=()
for t in "${tests[@]}"; do
	if [ ! -f "$PMC_TOP/tests/cases/$t" ]; then
		n=$((n + 1))
		echo "not ok $n - $t # no such test"
		fail=$((fail + 1))
		continue
	fi
	cpu=$(setting "$t" QEMU_CPU) mem=$(setting "$t" VM_MEM)
	if [ "$(setting "$t" BOOTS)" -gt 1 ] 2>/dev/null || [ -n "$cpu$mem" ] ||
		[ "${PMC_SHARE:-1}" = 0 ]; then
		alone+=("$t")
	else
		shared+=("$t")
	fi
done
cpu='' mem=''

[ ${#shared[@]} -gt 0 ] && run_shared "${shared[@]}"
for t in "${alone[@]}"; do
	cpu=$(setting "$t" QEMU_CPU) mem=$(setting "$t" VM_MEM)
	run_alone "$t"
done
echo "# $boots VM boots"
echo "# results in $results, $(( $(date +%s) - start ))s in all"
echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
