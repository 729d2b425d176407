# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
#
# Power cuts enumerated under the persistence checker (persist_check.c),
# for tests/cases/persist_*: one workload (pmc_crashwl, SCRIPT below) run
# again and again in one VM boot, the power cut at its k-th fence or k-th
# store, then the cache activated again and every block checked, on the
# cache and, after writeback, on the origin.
#
# The origin side: the origin is dm-log-writes over a region of vda
# (odata), which logs a write only once a flush or FUA made it durable.
# After a cut, that log replayed over a second region (oreplay, which
# started as odata did) is what the origin would hold after the power
# cut; the cache is activated over oreplay.  Stack while the workload
# runs: pc -> origin (linear, or flakey to fail writes) -> olw
# (log-writes odata olog) -> vda.
#
#   _pc_setup                 devices, the workload's counts (PC_FENCES,
#                             PC_STORES) from a run without a cut; the
#                             workload is _pc_script's, or that of the
#                             function PC_SCRIPT names
#   _pc_point KIND K [ADV SEED]
#                             one cut: KIND fence|store, ADV 0|1|2 (see
#                             persist_check.c), SEED the adversary's; sets
#                             PC_BAD to a description when a guarantee
#                             broke, else empty
#   _pc_enumerate KIND FROM TO STEP [ADV SEED0]
#                             cuts at FROM, FROM+STEP, ... TO; counts into
#                             PC_POINTS and PC_BROKEN, keeps the first bad
#                             one in PC_FIRST_BAD
#   _pc_double K1 K2          two cuts: at fence K1 of the workload, then,
#                             after an activation that recovers the cache,
#                             at fence K2 of a second workload (_pc_script2)
#   _pc_doubles N             up to N of the fences K1 whose cut left
#                             uncommitted blocks for recovery to drop (as
#                             _pc_enumerate fence found them: PC_DROPS),
#                             spread over them, each with every K2;
#                             counts as _pc_enumerate

PC_P=/sys/module/dm_pmemcache/parameters
PC_WL=$PMC_TOP/tests/bin/pmc_crashwl
PC_LOG=/tmp/pc.log
PC_NB=42			# blocks the workload touches
PC_LEN=$((64 * 2048))		# origin: 64 MiB of vda (and as much for
				# the replay and the log)
PC_CACHE_SECTORS=$((8 * 2048))	# cache: 8 MiB of pmem0
PC_POINTS=0
PC_BROKEN=0
PC_FIRST_BAD=
PC_DOUBLES=0			# second cuts made
PC_DROPS=			# fences whose cut left uncommitted blocks

PC_FLUSH_MODE=${PC_FLUSH_MODE:-auto}
PC_BLOCK=${PC_BLOCK:-4096}

PC_OPTS=${PC_OPTS:-}

_pc_table() {
	local opts="autocommit_blocks 8 autocommit_time 60000 flush_mode $PC_FLUSH_MODE $PC_OPTS"

	# shellcheck disable=SC2086
	set -- $opts
	echo "0 $PC_LEN pmemcache p /dev/mapper/origin /dev/mapper/pcache $PC_BLOCK $# $opts"
}

# The workload: format, new blocks, in-epoch overwrites, commits on flush
# (from the writer and from another process), FUA and autocommit,
# superseded blocks freed, writeback and its errors,
# a discard, suspend/resume, a clean shutdown and a second activation;
# at its end a block superseded by a write that another process commits
# (its entry zeroed there), then written back (an entry that commit
# did not make durable would bring the first version back), a block
# written back twice, its first cache block left free while a later
# write reuses the second (an entry left valid by writeback would bring
# the first version back; it relies on writeback freeing a batch's
# blocks in reverse origin order, so that the second write of 36 takes
# 34's cache block), and two discarded blocks, the first written
# again by another process into the cache block of the second, committed
# and written back there before this process fences again (a discard
# that did not fence its zeroed entries before freeing the blocks would
# bring the first one's discarded version back; it relies on the free
# list being last in, first out, and the discard releasing blocks in
# origin order, so that the child takes the second block's cache block).  The writer's own process makes the dm
# calls, so only g and x lines commit in a task that then stores nothing
# more.
#
# m lines are device-mapper commands (pmc_crashwl makes the ioctls: a
# dmsetup process costs 0.25 s under emulation), M ones may fail.
_pc_script() {
	local t=$PC_TABLE linear flakey

	linear="0 $PC_LEN linear /dev/mapper/olw 0"
	flakey="0 $PC_LEN flakey /dev/mapper/olw 0 0 3600 1 error_writes"
	cat <<-EOF
	m create pc $t
	o
	w 0 4
	w 2
	f
	w 2
	w 8 2
	s 9
	w 2
	w 12 8
	m message pc flush
	w 3
	d 0 2
	f
	w 20 3
	m suspend pc
	m resume pc
	w 1
	m suspend origin
	m load origin $flakey
	m resume origin
	w 21
	M message pc flush
	m suspend origin
	m load origin $linear
	m resume origin
	g
	w 22 2
	w 5 3
	w 6
	g
	m message pc flush
	c
	m remove pc
	m create pc $t
	o
	w 4 2
	w 0
	f
	m message pc flush
	w 30 2
	s 31
	w 33
	f
	w 33
	g
	m message pc flush
	w 34
	f
	w 36
	w 37
	f
	m message pc flush
	w 36
	f
	m message pc flush
	w 38
	f
	w 39 2
	f
	d 39 2
	x s 39
	x m message pc flush
	w 41
	f
	c
	EOF
}

# The workload after a first cut and the recovery: a write (into the
# lowest free cache block, which may be a leftover of the cut), the
# first commit of the sequence number the leftovers carry, writeback and
# another commit: a leftover whose zeroing recovery did not make durable
# would be revived by that commit, or overtaken by the write's entry.
_pc_script2() {
	cat <<-EOF
	o
	w 24
	f
	w 25 2
	m message pc flush
	w 26
	f
	c
	EOF
}

_pc_param() {	# _pc_param NAME VALUE
	echo "$2" > "$PC_P/persist_$1"
}

# A fresh start: no cache device, the origin's blocks at version 0 (and
# the replay region's), an empty log, the cache unformatted, the power on.
_pc_fresh() {
	"$PC_WL" ctl <<< "M remove pc"
	_pc_param cut_fence 0
	_pc_param cut_store 0
	_pc_param reset 1
	"$PC_WL" ctl <<-EOF || _fail "cannot set up the origin"
	M remove origin
	M remove olw
	F /dev/mapper/odata 0 $PC_NB
	F /dev/mapper/oreplay 0 $PC_NB
	z /dev/mapper/olog
	m create olw 0 $PC_LEN log-writes /dev/mapper/odata /dev/mapper/olog
	m create origin 0 $PC_LEN linear /dev/mapper/olw 0
	z /dev/mapper/pcache
	EOF
}

# The power back on (no cut armed), the log-writes origin gone, its log
# replayed onto oreplay: what the origin held when the power went.
_pc_power_on() {
	_pc_param cut_fence 0
	_pc_param cut_store 0
	_pc_param reset 1
	"$PC_WL" ctl <<-EOF || _fail "cannot remove the log-writes origin"
	M remove origin
	m remove olw
	EOF
	"$PC_WL" replay /dev/mapper/olog /dev/mapper/oreplay > /dev/null ||
		_fail "cannot replay the origin's log"
}

# After the workload (cut or not): what a restart would find.  The cache
# is activated over the replayed origin and checked; then everything is
# written back and the origin checked alone.  Sets PC_BAD.
_pc_after() {
	local what=$1 cut

	PC_BAD=
	"$PC_WL" ctl <<< "M remove pc"
	read -r cut < "$PC_P/persist_cut"
	_pc_power_on
	"$PC_WL" ctl <<< "m create origin 0 $PC_LEN linear /dev/mapper/oreplay 0" ||
		_fail "cannot create the replayed origin"
	PC_DROPPED=0
	if ! "$PC_WL" ctl <<< "m create pc $PC_TABLE" 2> /tmp/pc.err; then
		PC_BAD="$what: recovery refused the cache: $(dmesg | grep -i pmemcache | tail -n 2 | tr '\n' ' ' || true)"
	elif ! PC_DROPPED=$(_pc_dropped); then
		PC_BAD="$what: recovery said nothing of what it dropped"
	elif ! "$PC_WL" verify /dev/mapper/pc "$PC_LOG" 0 $PC_NB > /tmp/pc.verify; then
		PC_BAD="$what: on the cache: $(grep -v 'bad block' /tmp/pc.verify | head -n 3 | tr '\n' ' ' || true)"
	elif ! "$PC_WL" ctl <<< "m message pc flush"; then
		PC_BAD="$what: writeback after recovery failed"
	else
		"$PC_WL" ctl <<< "m remove pc" || _fail "cannot remove the cache"
		"$PC_WL" verify /dev/mapper/oreplay "$PC_LOG" 0 $PC_NB > /tmp/pc.verify ||
			PC_BAD="$what: on the origin after writeback: $(grep -v 'bad block' /tmp/pc.verify | head -n 3 | tr '\n' ' ' || true)"
	fi
	"$PC_WL" ctl <<-EOF
	M remove pc
	M remove origin
	EOF
	# Pending stores the model could not keep: its image is wrong.
	case $cut in
	*overflowed*)
		[ -n "$PC_BAD" ] || PC_BAD="$what: the model overflowed, no verdict";;
	esac
	[ -z "$PC_BAD" ] || PC_BAD="$PC_BAD [cut: $cut]"
	return 0
}

_pc_setup() {
	local off=0

	_pmem_setup 1
	_modprobe virtio_blk
	_modprobe dm_flakey
	_modprobe dm_log_writes
	udevadm settle 2> /dev/null || sleep 1
	[ -x "$PC_WL" ] || _fail "$PC_WL missing (tests/run.sh builds it)"
	[ -f "$PC_P/persist_check" ] || _fail "the module was built without PMC_PERSIST_CHECK=y"
	dmsetup create pcache --table "0 $PC_CACHE_SECTORS linear /dev/pmem0 0" ||
		_fail "cannot carve the cache out of pmem0"
	for d in odata oreplay olog; do
		dmsetup info $d > /dev/null 2>&1 ||
			dmsetup create $d --table "0 $PC_LEN linear /dev/vda $off"
		off=$((off + PC_LEN))
	done
	_pc_param check 1
	PC_TABLE=$(_pc_table)
	"${PC_SCRIPT:-_pc_script}" > /tmp/pc.script
	_pc_fresh
	"$PC_WL" run /dev/mapper/pc "$PC_LOG" < /tmp/pc.script ||
		_fail "pmc_crashwl run failed (a bad script line?)"
	grep -q '^E ' "$PC_LOG" && _fail "the workload failed without a cut: $(grep '^E ' "$PC_LOG")"
	[ "$(tail -n 1 "$PC_LOG")" = END ] || _fail "the workload's log does not end with END"
	PC_FENCES=$(cat "$PC_P/persist_fences")
	PC_STORES=$(cat "$PC_P/persist_stores")
	echo "workload: $PC_FENCES fences, $PC_STORES stores without a cut"
	[ "$PC_FENCES" -gt "${PC_MIN_FENCES:-20}" ] || _fail "the model saw only $PC_FENCES fences"
	_pc_after "no cut"
	[ -z "$PC_BAD" ] || _fail "a run without a cut broke a guarantee: $PC_BAD"
}

# How many uncommitted blocks the last activation dropped (its log line).
_pc_dropped() {
	dmesg | sed -n 's/.*commit [0-9]*, \([0-9]*\) uncommitted blocks dropped.*/\1/p' |
		tail -n 1 | grep .
}

_pc_point() {
	local kind=$1 k=$2 adv=${3:-0} seed=${4:-1} check=${5:-check}

	_pc_fresh
	_pc_param adversary "$adv"
	_pc_param seed "$seed"
	_pc_param "cut_$kind" "$k"
	"$PC_WL" run /dev/mapper/pc "$PC_LOG" < /tmp/pc.script > /dev/null 2>&1
	PC_BAD=
	[ "$check" = nocheck ] || _pc_after "$kind $k"
}

_pc_enumerate() {
	local kind=$1 from=$2 to=$3 step=$4 adv=${5:-0} seed=${6:-1} k

	for ((k = from; k <= to; k += step)); do
		_pc_point "$kind" "$k" "$adv" "$((seed + k))"
		PC_POINTS=$((PC_POINTS + 1))
		if [ "$kind" = fence ] && [ "$adv" = 0 ] && [ -z "$PC_BAD" ] &&
		   [ "$PC_DROPPED" -gt 0 ]; then
			PC_DROPS="$PC_DROPS $k"
		fi
		if [ -n "$PC_BAD" ]; then
			PC_BROKEN=$((PC_BROKEN + 1))
			[ -n "$PC_FIRST_BAD" ] || PC_FIRST_BAD=$PC_BAD
			echo "BROKEN: $PC_BAD"
			if [ "${PC_STOP_FIRST:-0}" = 1 ]; then
				return 0
			fi
		fi
	done
	return 0
}

_pc_double() {
	local k1=$1 k2=$2 cut

	PC_FENCES2=0
	PC_CUT2=none
	_pc_point fence "$k1" 0 1 nocheck
	[ -z "$PC_BAD" ] || return 0
	"$PC_WL" ctl <<< "M remove pc"
	read -r cut < "$PC_P/persist_cut"
	[ "$cut" != none ] || return 0
	# The origin as the cut left it, in odata and oreplay, a fresh log.
	_pc_power_on
	dd if=/dev/mapper/oreplay of=/dev/mapper/odata bs=4096 count=$PC_NB \
		iflag=direct oflag=direct status=none ||
		_fail "cannot copy the replayed origin"
	"$PC_WL" ctl <<-EOF || _fail "cannot set up the origin again"
	z /dev/mapper/olog
	m create olw 0 $PC_LEN log-writes /dev/mapper/odata /dev/mapper/olog
	m create origin 0 $PC_LEN linear /dev/mapper/olw 0
	EOF
	_pc_param cut_fence "$k2"
	# Recovery in a process of its own: what it stores stays pending
	# until it fences, as the engine left it.
	if ! "$PC_WL" ctl <<< "m create pc $PC_TABLE" 2> /tmp/pc.err; then
		PC_BAD="fence $k1: recovery refused the cache: $(dmesg | grep -i pmemcache | tail -n 2 | tr '\n' ' ' || true)"
		"$PC_WL" ctl <<< "M remove origin"
		return 0
	fi
	read -r cut < "$PC_P/persist_cut"
	if [ "$cut" = none ]; then
		if ! "$PC_WL" restart /dev/mapper/pc "$PC_LOG" 0 $PC_NB > /tmp/pc.verify; then
			PC_BAD="fence $k1: on the cache after the first cut: $(grep -v 'bad block' /tmp/pc.verify | head -n 3 | tr '\n' ' ' || true)"
			"$PC_WL" ctl <<-EOF
			M remove pc
			M remove origin
			EOF
			return 0
		fi
		_pc_script2 | "$PC_WL" run /dev/mapper/pc "$PC_LOG" append > /dev/null 2>&1 ||
			_fail "pmc_crashwl run failed (a bad line in _pc_script2?)"
	fi
	PC_FENCES2=$(cat "$PC_P/persist_fences")
	read -r PC_CUT2 < "$PC_P/persist_cut"
	if [ "$PC_CUT2" = none ] &&
	   sed -n '/^# restart/,$p' "$PC_LOG" | _has '^E '; then
		PC_BAD="fence $k1: the workload after recovery failed without a cut: $(sed -n '/^# restart/,$p' "$PC_LOG" | grep '^E ' | head -n 1 || true)"
		"$PC_WL" ctl <<-EOF
		M remove pc
		M remove origin
		EOF
		return 0
	fi
	_pc_after "fence $k1, then fence $k2 after recovery"
}

_pc_doubles() {
	local n=$1 k1 k2 n2 j
	local -a drops

	read -r -a drops <<< "$PC_DROPS"
	[ "${#drops[@]}" -ge "$n" ] || n=${#drops[@]}
	for ((j = 0; j < n; j++)); do
		k1=${drops[j * ${#drops[@]} / n]}
		# The second workload's fences, the recovery's among them.
		_pc_double "$k1" 0
		PC_POINTS=$((PC_POINTS + 1))
		n2=$PC_FENCES2
		for ((k2 = 1; k2 <= n2; k2++)); do
			[ -z "$PC_BAD" ] || break
			_pc_double "$k1" "$k2"
			# Counted when the second cut came (it may not:
			# recovery may fence less than the calibration).
			[ "$PC_CUT2" = none ] && continue
			PC_POINTS=$((PC_POINTS + 1))
			PC_DOUBLES=$((PC_DOUBLES + 1))
		done
		if [ -n "$PC_BAD" ]; then
			PC_BROKEN=$((PC_BROKEN + 1))
			[ -n "$PC_FIRST_BAD" ] || PC_FIRST_BAD=$PC_BAD
			echo "BROKEN: $PC_BAD"
			[ "${PC_STOP_FIRST:-0}" = 1 ] && return 0
		fi
	done
	return 0
}
