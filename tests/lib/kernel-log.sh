#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
#
# What in a kernel log fails a test run, for the host (tests/lib/host.sh,
# after the VM) and the guest (tests/guest-batch.sh, between two tests of
# one boot).

# Lines of a kernel log that fail a run whatever the test said.
PMC_BAD_LOG='BUG:|WARNING:|Oops|general protection|Kernel panic|blocked for more than|KASAN:|UBSAN:|unreferenced object|possible circular locking|possible recursive locking|sleeping function called from invalid context|Call Trace:'
PMC_LOADED='dm_pmemcache: loading out-of-tree module'

# pmc_bad_log_lines FILE...: the lines of kernel logs that fail a run,
# from the first load of dm_pmemcache on (the whole log if it was never
# loaded).  A report before that cannot come from the module or the test:
# pmc_early_log_lines prints those.
pmc_bad_log_lines() {
	local f

	for f in "$@"; do
		[ -f "$f" ] || continue
		if grep -a -q "$PMC_LOADED" "$f"; then
			sed -n "/$PMC_LOADED/,\$p" "$f"
		else
			cat "$f"
		fi | grep -a -E "$PMC_BAD_LOG"
	done
}

pmc_early_log_lines() {
	local f

	for f in "$@"; do
		[ -f "$f" ] && grep -a -q "$PMC_LOADED" "$f" &&
			sed -n "1,/$PMC_LOADED/p" "$f" | grep -a -E "$PMC_BAD_LOG"
	done
}
