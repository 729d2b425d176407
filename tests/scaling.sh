#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make scaling: the curve QEMU can give of how each target scales with
# CPUs.  Boots the test VM in parallel mode (wall clock) with 1, 2 and 4
# vCPUs and runs, on J vCPUs, J fio threads of 4 KiB random writes, read
# hits and a 70/30 mix (each thread in a range of its own) on dm-linear,
# dm-writecache and dm-pmemcache (tests/bench-guest.sh), SCALING_ROUNDS
# rounds (default 3) of SCALING_IOS I/Os (default 100000).  This is
# emulation on the host's cores: QEMU runs each vCPU in a thread of its
# own, so beyond the host's core count (2 on the test machine) the vCPUs
# share cores, and any emulated lock or cache line costs what the
# emulator makes it cost.  What it can show is whether a target gains at
# all from a second CPU, and how it compares with the others in the same
# boot; not how it would scale on 32 real cores (make lockstat measures
# the contention that decides that).  Writes tests/results/scaling/table.md.

set -u
# shellcheck source=tests/lib/host.sh
. "$(dirname "$0")/lib/host.sh"

work=$PMC_TOP/tests/results/scaling
pmc_fresh_work "$work"
for j in 1 2 4; do
	mkdir -p "$work/$j"
	echo "# booting the VM with $j vCPUs"
	PMC_SMP=$j pmc_boot "$work/$j" 5400 \
		"pmc.script=tests/bench-guest.sh pmc.bench_mode=par pmc.bench_rounds=${SCALING_ROUNDS:-3} pmc.bench_par_ios=${SCALING_IOS:-100000} pmc.bench_systems=linear,writecache,pmemcache pmc.bench_workloads=randwrite_${j}jobs,readhit_${j}jobs,randrw_${j}jobs"
	rm -f "$work/$j"/*.img
	if [ "$(cat "$work/$j/result" 2>/dev/null)" != pass ]; then
		tail -n 20 "$work/$j/output"
		echo "# the run with $j vCPUs failed"
		exit 1
	fi
done

python3 - "$work" <<'PY' | tee "$work/table.md"
import json, os, statistics, sys
work = sys.argv[1]
cpus = [1, 2, 4]
systems = ["linear", "writecache", "pmemcache"]
names = {"linear": "dm-linear", "writecache": "dm-writecache", "pmemcache": "dm-pmemcache"}
wls = {"randwrite": "4K random writes", "readhit": "4K read hits", "randrw": "4K 70/30 read/write"}
print(f"Scaling under emulation (QEMU, wall clock, J fio threads on J vCPUs of a host "
      f"with {os.cpu_count()} cores): median IOPS of the rounds (min-max), and the "
      "gain over 1 vCPU.\n")
print("| workload | system | " + " | ".join(f"{j} vCPU" for j in cpus) + " | pmemcache/writecache at " +
      ", ".join(str(j) for j in cpus) + " |")
print("|---" * (len(cpus) + 3) + "|")
for w, label in wls.items():
    med = {}
    for s in systems:
        cells = []
        for j in cpus:
            top = os.path.join(work, str(j), "fio")
            vals = []
            for r in sorted(os.listdir(top), key=int):
                d = json.load(open(os.path.join(top, r, f"{w}_{j}jobs", s + ".json")))
                vals.append(sum(x["read"]["iops"] + x["write"]["iops"] for x in d["jobs"]))
            med[(s, j)] = statistics.median(vals)
            gain = f", {med[(s, j)] / med[(s, 1)]:.2f}x" if j > 1 else ""
            cells.append(f"{med[(s, j)] / 1000:.1f}k ({min(vals) / 1000:.1f}-{max(vals) / 1000:.1f}{gain})")
        ratio = ""
        if s == "pmemcache":
            ratio = ", ".join(f"{med[('pmemcache', j)] / med[('writecache', j)]:.2f}" for j in cpus)
        print(f"| {label} | {names[s]} | " + " | ".join(cells) + f" | {ratio} |")
PY
