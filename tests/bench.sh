#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make bench: boot the test VM in deterministic mode (one vCPU, QEMU
# -icount shift=0,sleep=off: guest time advances by instructions executed,
# idle time is skipped, so figures measure the software cost per I/O and
# repeat from run to run) and run the fio matrix of tests/bench-guest.sh on
# raw pmem, dm-linear over it, dm-writecache, dm-pmemcache and the origin
# alone (the origin: a memory-backed null_blk behind dm-delay, 1 ms).
# Writes tests/results/bench/{table.md,raw.json,ratios.png}.
# BENCH_ROUNDS (default 2) and BENCH_IOS (default 20000) size it: the
# default takes about 45 minutes.  fio reports runtime in whole
# milliseconds, so runs of a few thousand I/Os are quantised by several
# percent; 20000 4 KiB I/Os (2500 of 128 KiB) keep that under 1%.  Parallel mode runs
# BENCH_PAR_ROUNDS (default 5) rounds of BENCH_PAR_IOS (default 100000)
# I/Os per system and workload.

set -u
# shellcheck source=tests/lib/host.sh
. "$(dirname "$0")/lib/host.sh"

work=$PMC_TOP/tests/results/bench
PMC_PACKAGES="$PMC_PACKAGES gnuplot-nox"
pmc_fresh_work "$work"
# check DIR WHAT: the boot in DIR passed and logged nothing bad.
check() {
	local bad

	rm -f "$1"/*.img
	bad=$(pmc_bad_log_lines "$1/console.log" "$1/dmesg")
	if [ "$(cat "$1/result" 2>/dev/null)" != pass ] || [ -n "$bad" ]; then
		tail -n 20 "$1/output"
		echo "$bad"
		echo "# the $2 failed"
		exit 1
	fi
}

echo "# booting the VM in deterministic mode; this takes a while"
PMC_SMP=1 PMC_QEMU_EXTRA="-icount shift=0,sleep=off" \
	pmc_boot "$work" 5400 "pmc.script=tests/bench-guest.sh pmc.bench_rounds=${BENCH_ROUNDS:-2} pmc.bench_ios=${BENCH_IOS:-20000}"
check "$work" benchmark

# Parallel mode: 2 vCPUs, wall clock, several rounds (medians, min-max).
par=$work/parallel
mkdir -p "$par"
echo "# booting the VM in parallel mode (2 vCPUs)"
pmc_boot "$par" 5400 "pmc.script=tests/bench-guest.sh pmc.bench_mode=par pmc.bench_rounds=${BENCH_PAR_ROUNDS:-5} pmc.bench_par_ios=${BENCH_PAR_IOS:-100000}"
check "$par" "parallel-mode benchmark"

python3 - "$work" <<'PY'
import json, os, statistics, sys
work = sys.argv[1]
systems = ["raw", "linear", "writecache", "pmemcache", "origin"]
ssys = ["writecache_s", "pmemcache_s"]
names = {"raw": "raw pmem", "linear": "dm-linear", "writecache": "dm-writecache",
         "pmemcache": "dm-pmemcache", "origin": "origin",
         "writecache_s": "dm-writecache s", "pmemcache_s": "dm-pmemcache s"}
wls = ["randwrite_qd1", "randwrite_qd16", "randwrite_fsync32", "seqwrite_128k",
       "readhit_qd1", "randrw_70_30"]
label = {"randwrite_qd1": "4K randwrite QD1 (IOPS)", "randwrite_qd16": "4K randwrite QD16 (IOPS)",
         "randwrite_fsync32": "4K randwrite fsync=32 (IOPS)", "seqwrite_128k": "128K seq write (MiB/s)",
         "readhit_qd1": "4K read hits QD1 (IOPS)", "randrw_70_30": "4K 70/30 read/write (IOPS)"}
rounds = sorted(os.listdir(os.path.join(work, "fio")), key=int)
raw, res = {}, {}
for w in wls:
    for s in systems + ssys:
        vals, p50, p99 = [], [], []
        for r in rounds:
            j = json.load(open(os.path.join(work, "fio", r, w, s + ".json")))
            raw.setdefault(w, {}).setdefault(s, []).append(j)
            job = j["jobs"][0]
            if w == "seqwrite_128k":
                vals.append(job["write"]["bw"] / 1024)
            else:
                vals.append(job["read"]["iops"] + job["write"]["iops"])
            d = job["read"] if w == "readhit_qd1" else job["write"]
            pct = d["clat_ns"].get("percentile", {})
            p50.append(pct.get("50.000000", 0) / 1000)
            p99.append(pct.get("99.000000", 0) / 1000)
        res[(w, s)] = (statistics.median(vals), min(vals), max(vals),
                       statistics.median(p50), statistics.median(p99))
json.dump(raw, open(os.path.join(work, "raw.json"), "w"))
out = []
out.append(f"Deterministic mode (QEMU -icount, 1 vCPU), {len(rounds)} round(s), median; "
           "p50/p99 completion latency in us.\n")
out.append("| workload | " + " | ".join(names[s] for s in systems) +
           " | pmemcache/writecache | pmemcache/linear | pmemcache/raw |")
out.append("|---" * (len(systems) + 4) + "|")
ratios = []
for w in wls:
    cells = []
    for s in systems:
        v, lo, hi, a, b = res[(w, s)]
        k = f"{v / 1000:.1f}k" if w != "seqwrite_128k" else f"{v:.0f}"
        cells.append(f"{k} ({a:.0f}/{b:.0f})")
    pc = res[(w, "pmemcache")][0]
    rw, rl, rr = (pc / res[(w, x)][0] for x in ("writecache", "linear", "raw"))
    ratios.append((w, rw, rl, rr))
    out.append(f"| {label[w]} | " + " | ".join(cells) + f" | {rw:.2f} | {rl:.2f} | {rr:.2f} |")
# s mode: the same workloads, the cache on a block device (null_blk).
out.append("")
out.append("s mode (deterministic mode): the cache device is a memory-backed "
           "null_blk, the origin as above.\n")
out.append("| workload | " + " | ".join(names[s] for s in ssys) + " | pmemcache s/writecache s |")
out.append("|---" * (len(ssys) + 2) + "|")
for w in wls:
    cells = []
    for s in ssys:
        v, lo, hi, a, b = res[(w, s)]
        k = f"{v / 1000:.1f}k" if w != "seqwrite_128k" else f"{v:.0f}"
        cells.append(f"{k} ({a:.0f}/{b:.0f})")
    r = res[(w, "pmemcache_s")][0] / res[(w, "writecache_s")][0]
    out.append(f"| {label[w]} | " + " | ".join(cells) + f" | {r:.2f} |")
# Parallel mode: medians and min-max of the rounds.
pw = os.path.join(work, "parallel", "fio")
prounds = sorted(os.listdir(pw), key=int)
psys = ["raw", "linear", "writecache", "pmemcache"]
plabel = {"randwrite_2jobs": "4K randwrite, 2 jobs (IOPS)",
          "readhit_2jobs": "4K read hits, 2 jobs (IOPS)",
          "randrw_2jobs": "4K 70/30 read/write, 2 jobs (IOPS)",
          "randwrite_qd1": "4K randwrite QD1, 1 job (IOPS)"}
out.append("")
out.append(f"Parallel mode (2 vCPUs, wall clock, noisy), {len(prounds)} rounds: "
           "median (min-max) IOPS.\n")
out.append("| workload | " + " | ".join(names[s] for s in psys) + " | pmemcache/writecache |")
out.append("|---" * (len(psys) + 2) + "|")
for w in plabel:
    cells, med = [], {}
    for s in psys:
        vals = []
        for r in prounds:
            j = json.load(open(os.path.join(pw, r, w, s + ".json")))
            raw.setdefault("parallel", {}).setdefault(w, {}).setdefault(s, []).append(j)
            vals.append(sum(x["read"]["iops"] + x["write"]["iops"] for x in j["jobs"]))
        med[s] = statistics.median(vals)
        cells.append(f"{med[s] / 1000:.1f}k ({min(vals) / 1000:.1f}-{max(vals) / 1000:.1f})")
    out.append(f"| {plabel[w]} | " + " | ".join(cells) +
               f" | {med['pmemcache'] / med['writecache']:.2f} |")
json.dump(raw, open(os.path.join(work, "raw.json"), "w"))

# Writeback and recovery (deterministic mode).
ex = os.path.join(work, "extra")
def ld(n):
    return json.load(open(os.path.join(ex, n + ".json")))
out.append("")
out.append(f"Writeback (deterministic mode): random 4 KiB blocks spread over the "
           "origin (a pre-faulted memory-backed null_blk behind dm-delay, 1 ms), "
           "then the `flush` message, which returns when all is written back; "
           "each system twice (writecache, pmemcache, pmemcache, writecache), "
           "mean.  Recovery: creating the target again over that cache, not "
           "written back.\n")
out.append("| | dm-writecache | dm-pmemcache | pmemcache/writecache |")
out.append("|---|---|---|---|")
wb, rc = {}, {}
for s in ("writecache", "pmemcache"):
    runs = [ld(f"writeback_{s}_{i}") for i in (1, 2, 3, 4)
            if os.path.exists(os.path.join(ex, f"writeback_{s}_{i}.json"))]
    wb[s] = (statistics.mean(r["blocks"] / (r["ns"] / 1e9) for r in runs),
             sum(r["polls"] for r in runs))
    runs = [ld(f"recovery_{s}_{i}") for i in (1, 2, 3, 4)
            if os.path.exists(os.path.join(ex, f"recovery_{s}_{i}.json"))]
    rc[s] = (statistics.mean(r["ns"] for r in runs) / 1e6, runs[0]["total"],
             runs[0]["total"] - runs[0]["free"])
out.append(f"| writeback (blocks/s) | {wb['writecache'][0]:.0f} | {wb['pmemcache'][0]:.0f} | "
           f"{wb['pmemcache'][0] / wb['writecache'][0]:.2f} |")
out.append(f"| status polls after `flush` returned | {wb['writecache'][1]} | {wb['pmemcache'][1]} | |")
out.append(f"| recovery (ms; blocks, dirty) | {rc['writecache'][0]:.1f} ({rc['writecache'][1]}, "
           f"{rc['writecache'][2]}) | {rc['pmemcache'][0]:.1f} ({rc['pmemcache'][1]}, "
           f"{rc['pmemcache'][2]}) | {rc['pmemcache'][0] / rc['writecache'][0]:.2f} |")
open(os.path.join(work, "table.md"), "w").write("\n".join(out) + "\n")
with open(os.path.join(work, "ratios.dat"), "w") as f:
    for i, (w, rw, rl, rr) in enumerate(ratios):
        f.write(f"{i} {w} {rw:.3f} {rl:.3f} {rr:.3f}\n")
print("\n".join(out))
PY
gnuplot <<GP
set terminal png size 1000,500 noenhanced
set output "$work/ratios.png"
set title "dm-pmemcache throughput relative to its peers (deterministic mode)"
set style data histograms
set style fill solid 0.8 border -1
set yrange [0:*]
set ylabel "ratio"
set xtics rotate by -20
set key outside right top
set grid ytics
plot "$work/ratios.dat" using 3:xtic(2) title "/ dm-writecache", \
     "" using 4 title "/ dm-linear", "" using 5 title "/ raw pmem", 1 notitle lc rgb "black"
GP
echo "# table, raw.json and ratios.png in $work"
