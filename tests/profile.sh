#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make profile [W=workload] [IOS=n]: boot the VM with one vCPU and
# profile one workload on dm-writecache and dm-pmemcache with perf
# (cpu-clock sampling); the reports are printed and kept in
# tests/results/profile/output.  Workloads: randwrite_qd1 (default),
# randwrite_qd16, randwrite_fsync32, seqwrite_128k, readhit_qd1.  Not in deterministic mode:
# there the sampling timer runs in step with the I/O loop and the samples
# pile up on a few instructions.

set -u
# shellcheck source=tests/lib/host.sh
. "$(dirname "$0")/lib/host.sh"

work=$PMC_TOP/tests/results/profile
PMC_PACKAGES="$PMC_PACKAGES linux-perf"
pmc_fresh_work "$work"
echo "# booting the VM (1 vCPU; not deterministic, see the header)"
PMC_SMP=1 \
	pmc_boot "$work" 3600 "pmc.script=tests/profile-guest.sh pmc.profile_workload=${W:-randwrite_qd1} pmc.profile_ios=${IOS:-20000}"
rm -f "$work"/*.img
cat "$work/output"
[ "$(cat "$work/result" 2>/dev/null)" = pass ]
