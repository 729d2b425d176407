#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make lint: the kernel's checkpatch.pl --strict on every C file and
# header, then a W=1 build with sparse (C=2) against the guest kernel's
# headers.  Fails on any checkpatch message and on any compiler or sparse
# warning.  checkpatch comes from Debian's linux-source-6.1 package,
# unpacked on demand into the cache.

set -u
# shellcheck source=tests/lib/host.sh
. "$(dirname "$0")/lib/host.sh"

PMC_PACKAGES="linux-source-6.1 linux-headers-amd64 sparse xz-utils make gcc perl shellcheck python3"
pmc_install_packages
hdr=$(dpkg-query -W -f='${Depends}' linux-headers-amd64 |
	grep -o 'linux-headers-[^ ,]*-amd64' | head -n 1)
KDIR=${KDIR:-/usr/src/$hdr}

cp_dir=$PMC_CACHE/checkpatch-$(dpkg-query -W -f='${Version}' linux-source-6.1)
if [ ! -f "$cp_dir/scripts/kernel-doc" ]; then
	mkdir -p "$cp_dir"
	tar -xJf /usr/src/linux-source-6.1.tar.xz -C "$cp_dir" \
		--strip-components=1 linux-source-6.1/scripts/checkpatch.pl \
		linux-source-6.1/scripts/spelling.txt \
		linux-source-6.1/scripts/const_structs.checkpatch \
		linux-source-6.1/scripts/kernel-doc ||
		pmc_die "cannot unpack checkpatch.pl and kernel-doc"
fi

cd "$PMC_TOP" || exit 2
status=0
# The module's sources; tools/ is userspace (checked with gcc below).
files=$(git ls-files '*.c' '*.h' 2>/dev/null | grep -v '^tools/' || ls ./*.c ./*.h)
echo "# checkpatch --strict: $(echo $files)"
if ! "$cp_dir/scripts/checkpatch.pl" --strict --no-tree --terse \
		--show-types -f $files > /tmp/pmc-checkpatch.$$ 2>&1; then
	grep -v '^total:' /tmp/pmc-checkpatch.$$
	status=1
fi
rm -f /tmp/pmc-checkpatch.$$

# Every /** comment must be well-formed kernel-doc (the functions other
# files call have one).
echo "# kernel-doc"
# shellcheck disable=SC2086
if perl "$cp_dir/scripts/kernel-doc" -none -v $files 2>&1 |
		grep -v 'Scanning doc for'; then
	status=1
fi

echo "# W=1 C=2 (sparse) build against $KDIR"
out=$(make -s -C "$PMC_TOP" KDIR="$KDIR" C=2 modules 2>&1)
if echo "$out" | grep -E 'warning|error'; then
	status=1
fi
echo "# the same for the test build (test hooks, persistence checker)"
out=$(make -s -C "$PMC_TOP" KDIR="$KDIR" C=2 modules PMC_TEST_HOOKS=y \
	PMC_PERSIST_CHECK=y 2>&1)
if echo "$out" | grep -E 'warning|error'; then
	status=1
fi
make -s -C "$PMC_TOP" KDIR="$KDIR" clean > /dev/null 2>&1

echo "# gcc -Wall -Wextra -Werror tools/"
for f in tools/*.c; do
	gcc -O2 -Wall -Wextra -Werror -c -o /dev/null "$f" || status=1
done
gcc -O2 -Wall -Wextra -Werror -DPMC_TOOL_TEST_HOOKS -o /dev/null \
	tools/pmemcache.c tools/pmemcache_image.c || status=1

echo "# shellcheck tests/"
if ! shellcheck -x -S warning -s bash tests/*.sh tests/lib/*.sh tests/cases/*; then
	status=1
fi

# The admin guide's *Refusals* table lists every message the constructor
# can refuse a table with, and no other.
echo "# every refusal message in Documentation/admin-guide.md, and no other"
# shellcheck disable=SC2046
msgs=$(perl tests/refusal-messages.pl $(git ls-files "*.c" | grep -v "^tools/"))
# The first table of the section, its first column: one or more `message`.
doc=$(sed -n '/^## Refusals/,$p' Documentation/admin-guide.md |
	awk '/^\| message \|/ { t = 1; next } t && !/^\|/ { exit } t' |
	sed 's/\\|/\x1/g' | cut -d'|' -f2 | tr '\1' '|' |
	grep -o '`[^`]*`' | tr -d '`')
while IFS= read -r m; do
	grep -qxF -- "$m" <<< "$doc" ||
		{ echo "admin guide, Refusals: missing \"$m\""; status=1; }
done <<< "$msgs"
while IFS= read -r m; do
	grep -qxF -- "$m" <<< "$msgs" ||
		{ echo "admin guide, Refusals: \"$m\" is no message of the code"; status=1; }
done <<< "$doc"

# Every command block of the documents has its directive for
# tests/cases/doc_examples, and the blocks that show a file of the tree
# show it as it is.
echo "# example directives in README.md, admin-guide.md, runbooks.md"
docs="README.md Documentation/admin-guide.md Documentation/runbooks.md"
# shellcheck disable=SC2086
python3 tests/doc_examples.py check $docs > /dev/null || {
	python3 tests/doc_examples.py check $docs; status=1; }
# shellcheck disable=SC2086
python3 tests/doc_examples.py files $docs || status=1

# Tests run under pipefail: "producer | grep -q" fails when grep stops
# early and the producer dies of SIGPIPE (use _has, tests/lib/common.sh).
echo "# no early-exiting grep at the end of a test pipeline"
if grep -nE '\|[[:space:]]*grep([[:space:]]+-[[:alnum:]-]+)*[[:space:]]+-[[:alnum:]]*q' \
		tests/lib/*.sh tests/cases/*; then
	status=1
fi

[ $status -eq 0 ] && echo "# lint clean"
exit $status
