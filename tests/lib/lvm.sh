# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
#
# lvm2 driving dm-pmemcache as its writecache, for tests/cases/lvm_*:
# make install into a scratch root, lvm2 set up without udev, and one
# workflow (attach, settings, lvs, reboot, splitcache, uncache) run with
# the cachevol on persistent memory (p mode) or on a disk (s mode).

MR=/tmp/modroot

# "make install" into a scratch root, beside the guest kernel's own
# dm-writecache.ko, then modprobe through the installed configuration:
# the command lvm2 runs when the writecache target is missing.
_install_and_load() {
	_modprobe dm_mod
	make -s -C "$PMC_TOP" install ALLOW_TEST_BUILD=1 KDIR="$PMC_KDIR" INSTALL_MOD_PATH=$MR \
		DESTDIR=$MR > /tmp/install.log 2>&1 ||
		{ cat /tmp/install.log; _fail "make install failed"; }
	_root_modules
	_wc_modprobe --show-depends dm-writecache
	_wc_modprobe dm-writecache
	[ -d /sys/module/dm_pmemcache ] || _fail "dm-pmemcache not loaded"
	[ ! -d /sys/module/dm_writecache ] || _fail "the in-kernel dm-writecache was loaded"
	grep -q Y /sys/module/dm_pmemcache/parameters/writecache_name ||
		_fail "writecache_name not set by the installed configuration"
	dmsetup targets | grep -E "^(writecache|pmemcache) "
	dmsetup targets | _has -E "^writecache +v1\.6\.0" ||
		_fail "no writecache target v1.6.0"
}

# After make install into $MR: the modules of the guest kernel that
# ours needs or replaces, beside it there, and their index.
_root_modules() {
	local kv m f

	kv=$(uname -r)
	mkdir -p $MR/lib/modules/"$kv"/kernel/drivers/md
	# Those that are modules of this kernel (the debug kernel builds
	# libcrc32c in: modules.builtin, copied below, says so).
	for m in dm-writecache libcrc32c; do
		f=$(find "$PMC_KROOT/lib/modules/$kv" -name "$m.ko*" | head -n 1)
		[ -z "$f" ] || ln -sf "$f" $MR/lib/modules/"$kv"/kernel/drivers/md/
	done
	# The crypto provider behind libcrc32c: the kernel's own request
	# for it cannot reach the unpacked kernel tree.
	_modprobe crc32c_intel 2> /dev/null || _modprobe crc32c_generic
	cp "$PMC_KROOT/lib/modules/$kv"/modules.builtin* $MR/lib/modules/"$kv"/
	depmod -b $MR "$kv"
}

_wc_modprobe() {
	command modprobe -C $MR/etc/modprobe.d -C "$PMC_TOP/tests/vm/modprobe.d" -d $MR "$@"
}

# lvm2 without udev, lvmetad, backups or a devices file, seeing only our
# PVs: the origin (LVM_ORIGIN, default /dev/mapper/origin), LVM_FAST and
# LVM_FAST2 if set.
_lvm_setup() {
	mkdir -p /tmp/lvm
	cat > /tmp/lvm/lvm.conf <<-EOF
	devices {
		use_devicesfile = 0
		obtain_device_list_from_udev = 0
		external_device_info_source = "none"
		hints = "none"
		multipath_component_detection = 0
		md_component_detection = 0
		filter = [ "a|^$LVM_FAST$|", "a|^${LVM_FAST2:-$LVM_FAST}$|", "a|^${LVM_ORIGIN:-/dev/mapper/origin}$|", "r|.*|" ]
	}
	activation {
		udev_sync = 0
		udev_rules = 0
		monitoring = 0
	}
	global {
		event_activation = 0
	}
	backup {
		backup = 0
		archive = 0
	}
	EOF
	export LVM_SYSTEM_DIR=/tmp/lvm
	export LVM_SUPPRESS_FD_WARNINGS=1
}

# _files MNT N: write N files of 1 MiB, record their checksums.
_files() {
	local i
	for i in $(seq 1 "$2"); do
		head -c 1M /dev/urandom > "$1/f$i.$RANDOM"
	done
	(cd "$1" && sha256sum f*) > "$PMC_WORK/sums"
}

_check_files() {
	(cd "$1" && sha256sum --quiet -c "$PMC_WORK/sums") ||
		_fail "checksums differ on $1"
	echo "$(wc -l < "$PMC_WORK/sums") files intact on $1"
}

# _wc_status: the fields of vg-main's status line in S[1..].
_wc_status() {
	local line
	line=$(dmsetup status vg-main)
	echo "status vg-main: $line"
	case "$line" in
	*" writecache "*) ;;
	*) _fail "vg-main is not a writecache device" ;;
	esac
	# shellcheck disable=SC2206
	S=(x ${line#* * writecache })
	# dm-writecache prints 14 fields; 20 means dm-pmemcache serves it.
	[ "${#S[@]}" -eq 21 ] || _fail "${#S[@]} status fields: not dm-pmemcache"
}

# _lvm_workflow MODE: the cachevol on $LVM_FAST, which lvm2 must turn into
# a writecache table of MODE (p or s).  The module comes from make install
# (_install_and_load), or from what LVM_INSTALL names.
_lvm_workflow() {
	local mode=$1
	local M=/mnt pct

	_modprobe ext4
	${LVM_INSTALL:-_install_and_load}
	_lvm_setup

	if [ "$PMC_BOOT" = 1 ]; then
		pvcreate -y "$LVM_FAST" /dev/mapper/origin
		vgcreate vg /dev/mapper/origin "$LVM_FAST"
		lvcreate -y -n main -L 256m vg /dev/mapper/origin
		lvcreate -y -n fast -L 64m vg "$LVM_FAST"
		lvchange -an vg/fast
		lvconvert -y --type writecache --cachevol fast \
			--cachesettings 'high_watermark=60 autocommit_time=500' vg/main
		dmsetup table vg-main
		dmsetup table vg-main | _has " writecache $mode " ||
			_fail "lvm2 did not make a $mode-mode writecache table"
		dmsetup table vg-main | _has "high_watermark 60" ||
			_fail "high_watermark=60 did not reach the table"
		dmsetup table vg-main | _has "autocommit_time 500" ||
			_fail "autocommit_time=500 did not reach the table"
		_wc_status
		mkfs.ext4 -q /dev/vg/main
		mkdir -p $M
		mount /dev/vg/main $M
		_files $M 24
		sync
		_wc_status
		[ "${S[7]}" -gt 0 ] || _fail "no writes went through the cache"
		lvs -a -o lv_name,segtype,data_percent,lv_size vg
		pct=$(lvs --noheadings -o data_percent vg/main | tr -d ' ')
		echo "lvs reports $pct% of the cache in use"
		awk -v p="$pct" 'BEGIN { exit !(p > 0) }' ||
			_fail "lvs reports no cache usage"
		# A snapshot of the cached LV: lvm2 moves the writecache table
		# to a new device (vg-main-real), loaded while vg-main runs.
		_modprobe dm_snapshot
		lvcreate -y -s -n snap -L 32m vg/main ||
			_fail "lvcreate -s of the cached LV failed"
		dmsetup table | grep -E "^vg-main-real: .* writecache $mode " ||
			_fail "the writecache table did not move to vg-main-real"
		mkdir -p /tmp/snap
		mount -o ro,noload /dev/vg/snap /tmp/snap
		_check_files /tmp/snap
		umount /tmp/snap
		lvremove -y vg/snap || _fail "lvremove of the snapshot failed"
		dmsetup table vg-main | _has " writecache $mode " ||
			_fail "vg-main is not its writecache again after lvremove"
		_check_files $M
		umount $M
		lvchange -an vg/main
		[ ! -e /dev/mapper/vg-main ] || _fail "vg-main still active"
		return 0
	fi

	# Second boot: activate on the same pmem and disk.
	vgchange -ay vg
	_wc_status
	mkdir -p $M
	mount /dev/vg/main $M
	_check_files $M

	# Detach while files are dirty in the cache.
	_files $M 16
	sync
	_wc_status
	[ $((S[2] - S[3])) -gt 0 ] || _fail "nothing dirty before splitcache"
	lvconvert -y --splitcache vg/main
	dmsetup table vg-main
	dmsetup table vg-main | _has writecache && _fail "still cached after splitcache"
	_check_files $M
	umount $M
	mount -o ro /dev/vg/main $M
	echo 3 > /proc/sys/vm/drop_caches
	_check_files $M
	umount $M

	# Attach again, dirty it, and remove the cache with --uncache.
	lvconvert -y --type writecache --cachevol fast vg/main
	mount /dev/vg/main $M
	_files $M 16
	sync
	_wc_status
	lvconvert -y --uncache vg/main
	lvs -a vg
	lvs vg/fast > /dev/null 2>&1 && _fail "vg/fast still there after --uncache"
	echo 3 > /proc/sys/vm/drop_caches
	_check_files $M
	umount $M
	vgchange -an vg
}
