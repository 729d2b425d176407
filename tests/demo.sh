#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make demo: boot the test VM, put a pmemcache device over an fsdax
# namespace and a slow origin (dm-delay, 1 ms), run the same short fio job
# on it and on the origin alone, and print both results side by side.

set -u
# shellcheck source=tests/lib/host.sh
. "$(dirname "$0")/lib/host.sh"

work=$PMC_TOP/tests/results/demo
pmc_prepare
mkdir -p "$work"
rm -f "$work"/*.img "$work/result" "$work/output"
pmc_build_module "$work/build.log"
echo "# booting the VM (about a minute under emulation)"
pmc_boot "$work" 600 "pmc.script=tests/demo-guest.sh"
rm -f "$work"/*.img
cat "$work/output" 2>/dev/null
bad=$(pmc_bad_log_lines "$work/console.log" "$work/dmesg")
if [ -n "$bad" ]; then
	echo "# kernel log:"
	echo "$bad"
	exit 1
fi
[ "$(cat "$work/result" 2>/dev/null)" = pass ]
