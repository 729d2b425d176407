#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make fuzz: libFuzzer (Debian's clang, with ASan and UBSan) on the
# pmemcache tool's parsers: the cache image (tools/pmemcache_image.c's
# pmc_image_read()) and the status line (pmc_status_fields()).  Each runs
# FUZZ_RUNS executions (default 10 million), seeded from
# tools/fuzz-seeds/ (the head of a cache the tests wrote), and the
# executions, time and findings are printed; a finding fails the target
# and leaves its input in tests/results/fuzz/.

set -u
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/tests/lib/host.sh"
PMC_PACKAGES="clang libclang-rt-14-dev" pmc_install_packages

runs=${FUZZ_RUNS:-10000000}
out=$top/tests/results/fuzz
mkdir -p "$out"
status=0
for t in image status; do
	def=
	[ $t = status ] && def=-DFUZZ_STATUS
	# shellcheck disable=SC2086
	clang -g -O1 -fsanitize=fuzzer,address,undefined \
		-fno-sanitize-recover=undefined $def -o "$out/fuzz_$t" \
		"$top/tools/fuzz_image.c" "$top/tools/pmemcache_image.c" ||
		pmc_die "cannot build the $t fuzzer"
	rm -rf "$out/corpus-$t"
	mkdir -p "$out/corpus-$t"
	cp "$top"/tools/fuzz-seeds/"$t"-* "$out/corpus-$t/"
	start=$(date +%s)
	(cd "$out" && ./"fuzz_$t" -runs="$runs" -max_len=65552 \
		-artifact_prefix="$out/$t-" "corpus-$t" > "$out/$t.log" 2>&1)
	rc=$?
	done_line=$(grep -E '^Done [0-9]+ runs' "$out/$t.log" | tail -n 1)
	echo "$t: ${done_line:-no Done line} ($(( $(date +%s) - start )) s), exit $rc"
	if [ $rc -ne 0 ]; then
		status=1
		grep -E 'ERROR|SUMMARY' "$out/$t.log" | head -n 5
		ls "$out/$t-"* 2>/dev/null
	fi
done
exit $status
