#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The demo's guest side (run by tests/guest.sh with the module loaded).
set -e
# shellcheck source=tests/lib/common.sh
. "$PMC_TOP/tests/lib/common.sh"

_pmem_setup 1
_origin_setup 256 1
len=$(_sectors /dev/mapper/origin)
table="0 $len pmemcache p /dev/mapper/origin /dev/pmem0 4096 0"
echo "dmsetup create pmc --table '$table'"
dmsetup create pmc --table "$table"

job() {
	fio --name="$1" --filename="$2" --rw="$3" --bs=4k --direct=1 \
		--ioengine=psync --iodepth=1 --size=64m --time_based \
		--runtime=5 --randseed=1 --output-format=json
}

# randwrite first: the randread that follows reads what it wrote.
for rw in randwrite randread; do
	job origin /dev/mapper/origin $rw > /tmp/origin-$rw.json
	job pmemcache /dev/mapper/pmc $rw > /tmp/pmc-$rw.json
done

python3 - <<'PY'
import json
def get(name, rw):
    j = json.load(open(f"/tmp/{name}-{rw}.json"))["jobs"][0]
    d = j["write" if "write" in rw else "read"]
    return d["iops"], d["clat_ns"]["mean"] / 1000
print()
print("4 KiB O_DIRECT, QD1, 5 s each    origin alone        pmemcache")
for rw in ("randwrite", "randread"):
    o, p = get("origin", rw), get("pmc", rw)
    print(f"{rw:<12} IOPS            {o[0]:>12.0f} {p[0]:>16.0f}")
    print(f"{rw:<12} mean latency us {o[1]:>12.1f} {p[1]:>16.1f}")
print()
PY
echo "dmsetup status pmc: $(dmsetup status pmc)"
echo "Writes land in persistent memory and complete at its speed; reads of"
echo "blocks written before are served from it; other reads go to the origin."
echo "dmsetup message pmc 0 flush   (write everything back to the origin)"
dmsetup message pmc 0 flush
echo "dmsetup status pmc: $(dmsetup status pmc)"
dmsetup remove pmc
