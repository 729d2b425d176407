# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
#
# The Debian packages of "make deb" (dm-pmemcache-dkms, pmemcache-tools),
# installed with dpkg into a scratch root: an overlay over the host root
# (read-only here) with a writable layer in /tmp, so that dpkg, the
# package's maintainer scripts and DKMS run as on an installed system.
# The guest kernel plays both parts DKMS serves: a kernel installed after
# the package (its postinst.d hook builds the module) and the running
# kernel when the package is installed (the package's postinst builds
# it).  tests/run.sh builds the packages into tests/bin/deb.

PR=/tmp/pkgroot
PR_SAVE=$PMC_WORK/pkgroot-upper.tar

# _pkgroot_mount: the overlay at $PR, with /proc, /sys, /dev and a /tmp of
# its own.  The writable layer comes back from the previous boot's tar.
_pkgroot_mount() {
	_modprobe overlay
	mkdir -p /tmp/pkg/upper /tmp/pkg/work $PR
	if [ -f "$PR_SAVE" ]; then
		tar -x --xattrs --xattrs-include='trusted.*' -C /tmp/pkg/upper -f "$PR_SAVE" ||
			_fail "cannot restore the scratch root's writable layer"
	fi
	mount -t overlay pkgroot -o lowerdir=/,upperdir=/tmp/pkg/upper,workdir=/tmp/pkg/work $PR ||
		_fail "cannot mount the overlay scratch root"
	mount --rbind /proc $PR/proc
	mount --rbind /sys $PR/sys
	mount --rbind /dev $PR/dev
	mount -t tmpfs tmpfs $PR/tmp
	mount -t tmpfs tmpfs $PR/run
	ls "$PMC_TOP"/tests/bin/deb/*.deb > /dev/null ||
		_fail "no packages in tests/bin/deb (make deb)"
	mkdir -p $PR/tmp/deb
	cp "$PMC_TOP"/tests/bin/deb/*.deb $PR/tmp/deb/
}

# _pkgroot_save: keep the writable layer for the next boot (what a disk
# would keep), with the scratch root's /tmp and /run left out.
_pkgroot_save() {
	tar -c --xattrs --xattrs-include='trusted.*' -C /tmp/pkg/upper \
		--exclude=./tmp --exclude=./run -f "$PR_SAVE" . ||
		_fail "cannot save the scratch root's writable layer"
}

# _pkgroot_kernel KVER: "install" the guest kernel into the scratch root
# as its linux-image and linux-headers packages would: its modules in
# /lib/modules/KVER, the headers at /lib/modules/KVER/build.
_pkgroot_kernel() {
	local d=$PR/lib/modules/$1

	mkdir -p "$d/kernel"
	cp "$PMC_KROOT/lib/modules/$1"/modules.order \
		"$PMC_KROOT/lib/modules/$1"/modules.builtin* "$d/"
	rm -f "$d/build"
	ln -s "$PMC_KDIR" "$d/build"
	_pkgroot_kernel_modules "$1"
	chroot $PR depmod "$1"
}

# The kernel's modules are bound in from the unpacked kernel, every boot.
_pkgroot_kernel_modules() {
	mount --bind "$PMC_KROOT/lib/modules/$1/kernel" "$PR/lib/modules/$1/kernel"
}

_in_root() {
	chroot $PR /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
		DEBIAN_FRONTEND=noninteractive "$@"
}

# _dkms_module KVER: the module DKMS installed for KVER ("" if none).
_dkms_module() {
	local f=$PR/lib/modules/$1/updates/dkms/dm-pmemcache.ko

	for f in "$f" "$f".*; do
		[ -f "$f" ] && { echo "$f"; return; }
	done
}

# _dkms_install_and_load: first boot, install the packages, see DKMS
# build the module for a kernel installed after them, load it the way
# lvm2 does (modprobe dm-writecache); later boots, the installed root
# comes back and the module is loaded from it.
_dkms_install_and_load() {
	local kv t0 ko f

	kv=$(uname -r)
	_modprobe dm_mod
	_modprobe crc32c_intel 2> /dev/null || _modprobe crc32c_generic
	_pkgroot_mount
	if [ "$PMC_BOOT" = 1 ]; then
		ls $PR/tmp/deb
		# The kernel is not installed yet in the scratch root:
		# the package adds its sources to DKMS and builds nothing.
		rm -rf "${PR:?}/lib/modules/$kv"
		_in_root sh -c 'dpkg -i /tmp/deb/pmemcache-tools_*.deb /tmp/deb/dm-pmemcache-dkms_*.deb' ||
			_fail "dpkg -i failed"
		_in_root dkms status
		_in_root dkms status | _has "^dm-pmemcache/.*: added" ||
			_fail "the package did not add its sources to DKMS"
		[ -z "$(_dkms_module "$kv")" ] || _fail "a module was built with no kernel installed"
		[ -f $PR/lib/modprobe.d/dm-pmemcache.conf ] ||
			_fail "no /lib/modprobe.d/dm-pmemcache.conf"
		[ -x $PR/usr/sbin/pmemcache ] || _fail "pmemcache-tools installed no /usr/sbin/pmemcache"

		# A kernel installed later: its postinst.d hook (run by
		# linux-image's postinst) has DKMS build and install the module.
		_pkgroot_kernel "$kv"
		t0=$(date +%s)
		_in_root /etc/kernel/postinst.d/dkms "$kv" ||
			_fail "the kernel's DKMS hook failed"
		echo "DKMS built the module for $kv in $(( $(date +%s) - t0 )) s"
		ko=$(_dkms_module "$kv")
		[ -n "$ko" ] || _fail "DKMS installed no module for $kv"
		_in_root dkms status | _has "^dm-pmemcache/.*, $kv, .*: installed" ||
			_fail "dkms status does not show the module installed for $kv"
		modinfo -F vermagic "$ko" | _has "^$kv " ||
			_fail "the module's vermagic is not $kv's"
		_pkgroot_save
	else
		_pkgroot_kernel_modules "$kv"
	fi
	ko=$(_dkms_module "$kv")
	[ -n "$ko" ] || _fail "no DKMS module in the scratch root"
	_in_root modprobe --show-depends dm-writecache
	_in_root modprobe dm-writecache || _fail "modprobe dm-writecache failed"
	[ -d /sys/module/dm_pmemcache ] || _fail "dm-pmemcache not loaded"
	[ ! -d /sys/module/dm_writecache ] || _fail "the in-kernel dm-writecache was loaded"
	[ "$(cat /sys/module/dm_pmemcache/srcversion)" = "$(modinfo -F srcversion "$ko")" ] ||
		_fail "the module loaded is not the one DKMS built"
	ls /sys/module/dm_pmemcache/parameters
	for f in /sys/module/dm_pmemcache/parameters/persist_* \
		/sys/module/dm_pmemcache/parameters/test_*; do
		[ ! -e "$f" ] || _fail "DKMS built a test build ($f)"
	done
	grep -q Y /sys/module/dm_pmemcache/parameters/writecache_name ||
		_fail "writecache_name not set by the package's configuration"
	dmsetup targets | _has -E "^writecache +v1\.6\.0" ||
		_fail "no writecache target v1.6.0"
	return 0
}

# _dkms_remove_reinstall: dpkg -r takes the module and the alias away
# (modprobe dm-writecache then names the kernel's own module); dpkg -i
# again, with the kernel installed, has the package's postinst build for
# the running kernel.  The build itself is the one the kernel hook ran
# (4 minutes under emulation): here the headers are held back, and the
# postinst must name the running kernel and say it skipped it for that.
_dkms_remove_reinstall() {
	local kv

	kv=$(uname -r)
	_in_root dpkg -r dm-pmemcache-dkms || _fail "dpkg -r failed"
	[ -z "$(_dkms_module "$kv")" ] || _fail "dpkg -r left the module"
	[ ! -e $PR/lib/modprobe.d/dm-pmemcache.conf ] ||
		_fail "dpkg -r left /lib/modprobe.d/dm-pmemcache.conf"
	_in_root dkms status | _has dm-pmemcache && _fail "dpkg -r left the module in DKMS"
	_in_root modprobe --show-depends dm-writecache | tee /tmp/deps
	grep -q "kernel/drivers/md/dm-writecache.ko" /tmp/deps ||
		_fail "after dpkg -r, dm-writecache does not name the kernel's module"
	mv $PR/lib/modules/"$kv"/build $PR/lib/modules/"$kv"/build.held
	_in_root sh -c 'dpkg -i /tmp/deb/dm-pmemcache-dkms_*.deb' > /tmp/dpkg.log 2>&1 ||
		{ cat /tmp/dpkg.log; _fail "dpkg -i again failed"; }
	cat /tmp/dpkg.log
	grep -q "^Building for $kv\$" /tmp/dpkg.log ||
		_fail "the package's postinst did not build for the running kernel"
	grep -q "Module build for kernel $kv was skipped since the" /tmp/dpkg.log ||
		_fail "the package's postinst did not try the running kernel"
	mv $PR/lib/modules/"$kv"/build.held $PR/lib/modules/"$kv"/build
	_in_root dkms status | _has "^dm-pmemcache/.*: added" ||
		_fail "dpkg -i again did not add the sources to DKMS"
}
