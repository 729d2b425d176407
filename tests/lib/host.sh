#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Host-side helpers of the test harness: install what the VM needs from
# Debian's packages, fetch the guest kernel, build the initramfs and the
# module, and boot one VM.  Sourced by tests/run.sh and tests/demo.sh.
# Everything downloaded or built is kept in $PMC_CACHE between runs.

PMC_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=tests/lib/kernel-log.sh
. "$PMC_TOP/tests/lib/kernel-log.sh"
PMC_CACHE=${PMC_CACHE:-/var/cache/dm-pmemcache}
PMC_PACKAGES="qemu-system-x86 qemu-utils busybox-static linux-headers-amd64
	kmod cpio gzip xz-utils make gcc libc6-dev ndctl daxctl lvm2 dmsetup
	fio sparse linux-source-6.1 e2fsprogs util-linux coreutils python3
	dkms dpkg-dev debhelper dh-dkms build-essential"

pmc_log() { echo "# $*" >&2; }
pmc_die() { echo "# error: $*" >&2; exit 2; }

# Install the Debian packages that are missing (needs root).
pmc_install_packages() {
	local p missing=()

	for p in $PMC_PACKAGES; do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null |
			grep -q 'install ok installed' || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	pmc_log "installing: ${missing[*]}"
	[ "$(id -u)" -eq 0 ] || pmc_die "run as root to install ${missing[*]}"
	apt-get update -q >/dev/null || pmc_die "apt-get update failed"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
		--no-install-recommends "${missing[@]}" >/dev/null ||
		pmc_die "apt-get install ${missing[*]} failed"
}

# The guest kernel is the one linux-headers-amd64 points at.  Sets
# PMC_KVER (6.1.0-NN-amd64), PMC_KDIR (its headers) and PMC_KROOT (the
# unpacked linux-image package, with modules.dep).
pmc_kernel() {
	local hdr ver deb
	hdr=$(dpkg-query -W -f='${Depends}' linux-headers-amd64 |
		grep -o 'linux-headers-[^ ,]*-amd64' | head -n 1)
	[ -n "$hdr" ] || pmc_die "linux-headers-amd64 names no headers package"
	PMC_KVER=${hdr#linux-headers-}
	PMC_KDIR=/usr/src/$hdr
	ver=$(dpkg-query -W -f='${Version}' "$hdr")
	PMC_KROOT=$PMC_CACHE/kernel-$PMC_KVER-$ver
	[ -d "$PMC_KDIR" ] || pmc_die "$PMC_KDIR missing"
	if [ ! -f "$PMC_KROOT/.done" ]; then
		pmc_log "fetching linux-image-$PMC_KVER $ver"
		rm -rf "$PMC_KROOT" "$PMC_CACHE/deb"
		mkdir -p "$PMC_CACHE/deb" "$PMC_KROOT"
		(cd "$PMC_CACHE/deb" &&
			apt-get download -q "linux-image-$PMC_KVER=$ver" \
				>/dev/null 2>&1) ||
			pmc_die "apt-get download linux-image-$PMC_KVER=$ver failed"
		deb=$(ls "$PMC_CACHE"/deb/linux-image-*.deb)
		dpkg-deb -x "$deb" "$PMC_KROOT" || pmc_die "cannot unpack $deb"
		depmod -b "$PMC_KROOT" "$PMC_KVER" || pmc_die "depmod failed"
		rm -rf "$PMC_CACHE/deb"
		touch "$PMC_KROOT/.done"
	fi
	PMC_VMLINUZ=$PMC_KROOT/boot/vmlinuz-$PMC_KVER
}

# The debug kernel (KASAN, lockdep, kmemleak): Debian's linux-source-6.12
# with tests/debug-kernel.config, built once and cached until the fragment
# or the source package changes.  Sets the same variables as pmc_kernel.
pmc_debug_kernel() {
	local ver key dir src jobs o
	local frag=$PMC_TOP/tests/debug-kernel.config

	ver=$(dpkg-query -W -f='${Version}' linux-source-6.12)
	key=$( (echo "$ver"; cat "$frag") | sha1sum | cut -c1-12)
	dir=$PMC_CACHE/debug-$key
	src=$dir/src
	if [ ! -f "$dir/.done" ]; then
		pmc_log "building the debug kernel from linux-source-6.12 $ver (about 15 minutes)"
		rm -rf "$PMC_CACHE"/debug-*
		mkdir -p "$src" "$dir/root/boot"
		tar -xJf /usr/src/linux-source-6.12.tar.xz -C "$src" \
			--strip-components=1 || pmc_die "cannot unpack linux-source-6.12"
		jobs=$(nproc)
		(cd "$src" && make -s tinyconfig &&
			scripts/kconfig/merge_config.sh -m .config "$frag" > /dev/null &&
			make -s olddefconfig) > "$dir/config.log" 2>&1 ||
			pmc_die "debug kernel config failed: $dir/config.log"
		for o in KASAN PROVE_LOCKING DEBUG_KMEMLEAK DEBUG_ATOMIC_SLEEP \
			FAULT_INJECTION FAILSLAB FAULT_INJECTION_DEBUG_FS \
			ACPI_NFIT BLK_DEV_PMEM FS_DAX NVDIMM_PFN \
			NET_9P_VIRTIO 9P_FS BLK_DEV_DM MODULE_UNLOAD MAGIC_SYSRQ \
			LOCK_STAT; do
			grep -q "^CONFIG_$o=y" "$src/.config" ||
				pmc_die "debug kernel config lost CONFIG_$o"
		done
		# What the tests load as modules: lost, they would skip.
		for o in BLK_DEV_NULL_BLK DM_DELAY DM_FLAKEY DM_LOG_WRITES DM_WRITECACHE; do
			grep -q "^CONFIG_$o=[ym]" "$src/.config" ||
				pmc_die "debug kernel config lost CONFIG_$o"
		done
		(cd "$src" && make -j"$jobs" bzImage modules &&
			make -s modules_install INSTALL_MOD_PATH="$dir/root" \
				INSTALL_MOD_STRIP=1) > "$dir/build.log" 2>&1 ||
			pmc_die "debug kernel build failed: $dir/build.log"
		cp "$src/arch/x86/boot/bzImage" "$dir/root/boot/vmlinuz"
		touch "$dir/.done"
	fi
	PMC_KVER=$(make -s -C "$src" kernelrelease)
	PMC_KDIR=$src
	PMC_KROOT=$dir/root
	PMC_VMLINUZ=$dir/root/boot/vmlinuz
	# Under KASAN, emulated, the boot's device probing alone can hold a
	# CPU for 30 s: give the soft-lockup detector 120 s.  kmemleak is on
	# (PMC_KMEMLEAK=0 turns it off); the tests run several times slower
	# than on 6.1, hence the longer time limits.
	# acpi=noirq: PCI interrupts from the BIOS's routing table, not
	# from the ACPI _PRT method, whose AML loop ran into ACPICA's time
	# limit under KASAN when the host was busy, leaving virtio without
	# interrupts (the boot hung right after starting /init).
	# kasan_multi_shot: every KASAN report, not only the first of a boot.
	PMC_KARGS="${PMC_KARGS:-} watchdog_thresh=60 acpi=noirq kasan_multi_shot"
	[ "${PMC_KMEMLEAK:-1}" = 1 ] || PMC_KARGS="$PMC_KARGS kmemleak=off"
	# shellcheck disable=SC2034 # read by tests/run.sh
	PMC_TIMEOUT_SCALE=3
}

# The initramfs: static busybox, the virtio and 9p modules, tests/vm/init.
# Cached under a name that changes with its inputs.
pmc_initramfs() {
	local key dir m f
	local mods="virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev
		virtio_pci 9pnet 9pnet_virtio netfs fscache 9p"

	key=$( (echo "$PMC_KVER $mods"; cat "$PMC_TOP/tests/vm/init" /bin/busybox) |
		sha1sum | cut -c1-12)
	PMC_INITRD=$PMC_CACHE/initramfs-$key.cpio.gz
	[ -f "$PMC_INITRD" ] && return 0
	pmc_log "building the initramfs"
	dir=$(mktemp -d)
	mkdir -p "$dir"/{bin,sbin,proc,sys,dev,host,mod,tmp}
	cp /bin/busybox "$dir/bin/busybox"
	cp "$PMC_TOP/tests/vm/init" "$dir/init"
	chmod 755 "$dir/init"
	: > "$dir/mod/order"
	for m in $mods; do
		f=$(find "$PMC_KROOT/lib/modules/$PMC_KVER/kernel" -name "$m.ko" |
			head -n 1)
		[ -n "$f" ] || continue	# built in
		cp "$f" "$dir/mod/"
		echo "$m" >> "$dir/mod/order"
	done
	(cd "$dir" && find . | cpio -o -H newc --quiet | gzip -1) \
		> "$PMC_INITRD.tmp" && mv "$PMC_INITRD.tmp" "$PMC_INITRD"
	rm -rf "$dir"
}

# pmc_build_module LOG [MAKE_ARGS...]: build dm-pmemcache.ko against the
# guest kernel's headers (make check adds PMC_TEST_HOOKS=y).
pmc_build_module() {
	make -s -C "$PMC_TOP" KDIR="$PMC_KDIR" modules "${@:2}" > "$1" 2>&1 ||
		{ cat "$1" >&2; pmc_die "module build failed"; }
}

# KERNEL=debug selects the debug kernel, anything else Debian's 6.1.
pmc_prepare() {
	if [ "${KERNEL:-}" = debug ]; then
		PMC_PACKAGES="$PMC_PACKAGES linux-source-6.12 flex bison bc libelf-dev libssl-dev"
	fi
	pmc_install_packages
	mkdir -p "$PMC_CACHE"
	if [ "${KERNEL:-}" = debug ]; then
		pmc_debug_kernel
	else
		pmc_kernel
	fi
	pmc_initramfs
}

# pmc_boot WORKDIR TIMEOUT KERNEL_ARGS...
# Boots the guest with two 512 MiB NVDIMMs and a 1 GiB virtio disk, all
# backed by files in WORKDIR (created when missing, kept otherwise, so a
# second boot sees what the first left).  The host root is shared
# read-only, WORKDIR writable.  The console goes to WORKDIR/console.log,
# QEMU's own messages to WORKDIR/qemu.log.
# Returns QEMU's status, 124 on timeout.
pmc_boot() {
	local work=$1 tmo=$2 i
	local -a dimms=()

	shift 2
	for i in 0 1; do
		[ -f "$work/nvdimm$i.img" ] || truncate -s 512M "$work/nvdimm$i.img"
		dimms+=(-object "memory-backend-file,id=mem$i,share=on,mem-path=$work/nvdimm$i.img,size=512M"
			-device "nvdimm,id=nv$i,memdev=mem$i")
	done
	[ -f "$work/disk.img" ] || truncate -s 1G "$work/disk.img"
	timeout -k 5 "$tmo" qemu-system-x86_64 \
		-machine pc,nvdimm=on,accel=tcg -cpu "${PMC_CPU:-max}" \
		-smp "${PMC_SMP:-2}" ${PMC_QEMU_EXTRA:-} \
		-m "${PMC_MEM:-2G},slots=4,maxmem=16G" "${dimms[@]}" \
		-drive "file=$work/disk.img,if=virtio,format=raw,cache=unsafe" \
		-kernel "$PMC_VMLINUZ" -initrd "$PMC_INITRD" \
		-append "console=ttyS0 oops=panic panic=-1 hung_task_panic=1 softlockup_panic=1 ${PMC_KARGS:-} pmc.kroot=$PMC_KROOT pmc.kdir=$PMC_KDIR pmc.top=$PMC_TOP pmc.work=$work $*" \
		-virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap" \
		-virtfs "local,path=$work,mount_tag=work,security_model=none,multidevs=remap" \
		-display none -monitor none -serial "file:$work/console.log" \
		-no-reboot < /dev/null 2> "$work/qemu.log" &
	pmc_wait_boot $! "$work"
}

# pmc_wait_boot PID WORKDIR: wait for the VM.  With PMC_BOOT_LIMIT set, a
# VM whose guest has not started tests/guest.sh (WORKDIR/output) within
# that many seconds is killed, and 125 returned: a hung boot, not a test
# result.  Otherwise QEMU's (or timeout's) status.
pmc_wait_boot() {
	local pid=$1 work=$2 t=0

	while [ -n "${PMC_BOOT_LIMIT:-}" ] && [ ! -e "$work/output" ] &&
		kill -0 "$pid" 2>/dev/null; do
		if [ $t -ge "$PMC_BOOT_LIMIT" ]; then
			kill "$pid"
			wait "$pid"
			return 125
		fi
		sleep 5
		t=$((t + 5))
	done
	wait "$pid"
}

# pmc_fresh_work DIR: prepare everything, empty DIR and build the module
# (for the scripts that boot one VM of their own: bench, profile).
pmc_fresh_work() {
	pmc_prepare
	rm -rf "$1"
	mkdir -p "$1"
	pmc_build_module "$1/build.log"
}
