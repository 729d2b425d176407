#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make lockstat: lock contention of dm-pmemcache and dm-writecache, from
# the debug kernel's /proc/lock_stat (CONFIG_LOCK_STAT), 2 vCPUs, two fio
# jobs in parallel (tests/lockstat-guest.sh).  Two vCPUs cannot show how
# either scales on many cores; what lock_stat shows is how often a lock
# was found held by the other CPU (contentions) and for how long (wait
# time), per 1,000 I/Os.  Lockdep and KASAN slow everything down, so the
# wait times are relative, not what a production kernel would see.
# Writes tests/results/lockstat/table.md.
# LOCKSTAT_IOS (default 20000) I/Os per run.

set -u
# shellcheck source=tests/lib/host.sh
. "$(dirname "$0")/lib/host.sh"

work=$PMC_TOP/tests/results/lockstat
export KERNEL=debug
pmc_fresh_work "$work"
echo "# booting the debug kernel (2 vCPUs)"
pmc_boot "$work" 3600 \
	"pmc.script=tests/lockstat-guest.sh pmc.lockstat_ios=${LOCKSTAT_IOS:-20000}"
rm -f "$work"/*.img
if [ "$(cat "$work/result" 2>/dev/null)" != pass ]; then
	tail -n 20 "$work/output"
	echo "# the lock_stat run failed"
	exit 1
fi
python3 - "$work/lockstat" <<'PY' | tee "$work/table.md"
import json, os, re, sys
d = sys.argv[1]
# class name: con-bounces contentions waittime-min -max -total -avg
#             acq-bounces acquisitions holdtime-min -max -total -avg
line = re.compile(r"^\s*(\S.*?):\s+(\d+)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+"
                  r"([\d.]+)\s+(\d+)\s+(\d+)\s+")
def parse(path):
    locks = {}
    for l in open(path):
        m = line.match(l)
        if m:
            name = m.group(1)
            c = locks.setdefault(name, [0, 0.0, 0])
            c[0] += int(m.group(3))
            c[1] += float(m.group(6))
            c[2] += int(m.group(9))
    return locks
ours = lambda n: n.startswith("&pc->") or n in ("&m->sync_lock", "&batch.lock")
theirs = lambda n: n.startswith("&wc->")
wls = ["randwrite", "readhit", "randrw_70_30"]
label = {"randwrite": "4K random writes", "readhit": "4K read hits",
         "randrw_70_30": "4K 70/30 read/write"}
print("Lock contention (debug kernel: lockdep, KASAN; 2 vCPUs, 2 fio jobs), "
      "per 1,000 I/Os: contended acquisitions, wait time (us), acquisitions.\n")
print("| workload | system | I/Os | lock | contended | wait (us) | acquisitions |")
print("|---|---|---|---|---|---|---|")
for w in wls:
    for s, mine in (("writecache", theirs), ("pmemcache", ours)):
        j = json.load(open(os.path.join(d, f"{s}-{w}.json")))
        ios = sum(x["read"]["total_ios"] + x["write"]["total_ios"] for x in j["jobs"])
        locks = parse(os.path.join(d, f"{s}-{w}.txt"))
        k = 1000.0 / ios
        rows = sorted((n for n in locks if mine(n)), key=lambda n: -locks[n][2])
        tot = [0, 0.0, 0]
        for n in rows:
            c = locks[n]
            if c[2] == 0:
                continue
            print(f"| {label[w]} | {s} | {ios} | `{n}` | {c[0] * k:.1f} | "
                  f"{c[1] * k:.1f} | {c[2] * k:.0f} |")
            tot = [tot[0] + c[0], tot[1] + c[1], tot[2] + c[2]]
        print(f"| {label[w]} | {s} | {ios} | all of its own | {tot[0] * k:.1f} | "
              f"{tot[1] * k:.1f} | {tot[2] * k:.0f} |")
print("\nThe most contended locks of the whole kernel in each run:\n")
for w in wls:
    for s in ("writecache", "pmemcache"):
        locks = parse(os.path.join(d, f"{s}-{w}.txt"))
        top = sorted(locks, key=lambda n: -locks[n][0])[:4]
        print(f"- {label[w]}, {s}: " + ", ".join(f"`{n}` {locks[n][0]}" for n in top))
PY
echo "# table in $work/table.md"
