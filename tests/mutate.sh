#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make mutate [M="name ..."]: each mutation of tests/lib/mutations.py (all,
# or those named) applied to a clone of the committed tree, built with the
# persistence checker, and run through tests/cases/persist_full in its
# mutant mode (every fence and every third store of the workload, second
# cuts after 6 recoveries, 10 adversarial cuts per mode, stopping at the
# first broken guarantee); those for s mode (config "ssd") through
# tests/cases/ssd_crash at every flush; those of the dm-writecache
# conversion (config "wc") through tests/cases/writecache_import's power
# cuts.  Prints a table:
# mutation, caught or not, after how many power cuts, and the first
# guarantee broken.  One VM boot per mutation; results in
# tests/results/mutate/.

set -u
top=$(cd "$(dirname "$0")/.." && pwd)
out=$top/tests/results/mutate
mkdir -p "$out"
names=${*:-$(python3 "$top/tests/lib/mutations.py" list | cut -f1)}
table=$out/table.txt
start=$(date +%s)

printf '%-26s %-8s %-7s %s\n' mutation caught "cuts" "how" | tee "$table"
for name in $names; do
	cfg=$(python3 "$top/tests/lib/mutations.py" list | awk -F'\t' -v n="$name" '$1 == n { print $2 }')
	[ -n "$cfg" ] || { echo "no mutation $name" >&2; exit 2; }
	tree=$out/$name
	rm -rf "$tree"
	git clone -q "$top" "$tree" || exit 2
	python3 "$top/tests/lib/mutations.py" apply "$name" "$tree" || exit 2
	# s-mode mutations run under the dm-log-writes crash test, every
	# flush of it; those of the dm-writecache conversion under
	# writecache_import's power cuts; the others under the persistence
	# checker.
	t=persist_full
	if [ "$cfg" = wc ]; then
		t=writecache_import
		(cd "$tree" && PMC_NO_SKIP=1 tests/run.sh $t) > "$tree/run.log" 2>&1
	elif [ "$cfg" = ssd ]; then
		t=ssd_crash
		(cd "$tree" && PMC_NO_SKIP=1 PMC_KARGS="pmc.ssd_points=all" \
			tests/run.sh $t) > "$tree/run.log" 2>&1
	else
		echo "$cfg" > "$tree/tests/.mutant"
		(cd "$tree" && PMC_NO_SKIP=1 tests/run.sh $t) > "$tree/run.log" 2>&1
	fi
	o=$tree/tests/results/$t/output
	res=$(cat "$tree/tests/results/$t/result" 2>/dev/null)
	# A failed body says why in its output.
	[ "$res" = "fail: test body exited with 1" ] &&
		res=$(grep -m1 '^FAIL: ' "$o" | sed 's/^FAIL: /fail: /')
	cuts=$(sed -n 's/^explored \([0-9]*\) \(power cuts\|crash points\).*/\1/p' "$o" 2>/dev/null)
	case "$res" in
	pass)
		caught=no how="every guarantee held" ;;
	*"power cuts broke a guarantee"* | *"crash points broke a guarantee"*)
		caught=yes how=$(grep -m1 '^BROKEN' "$o" | cut -c9-) ;;
	*"without a cut broke"* | *"workload failed without a cut"*)
		# The engine broke (or refused) its own state with the
		# power on.
		caught=yes how="a run without a cut: ${res#fail: }" ;;
	*"without a flush reaching the disk"*)
		caught=yes how="${res#fail: }" ;;
	*"overtaken before its fence"*)
		caught=yes how="$(grep -m1 'still holds unfenced' "$tree/tests/results/$t/dmesg" | cut -c1-300)" ;;
	*)
		caught=ERROR how="no verdict: ${res:-no result} (see $tree/run.log)" ;;
	esac
	printf '%-26s %-8s %-7s %s\n' "$name" "$caught" "${cuts:--}" "$how" | tee -a "$table"
done
echo "# $(( $(date +%s) - start )) s; table in $table"
