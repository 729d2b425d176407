# SPDX-License-Identifier: GPL-2.0
#
# Out-of-tree build of dm-pmemcache.ko, plus the project's targets.
# In a kernel tree, Kbuild (beside this file) is read instead.

KDIR ?= /lib/modules/$(shell uname -r)/build
export CONFIG_DM_PMEMCACHE ?= m

.PHONY: all modules install uninstall clean lint check demo bench profile bench-flush \
	crashcheck crashcheck-s mutate tools fuzz deb lockstat scaling

all: modules

modules:
	$(MAKE) -C $(KDIR) M=$(CURDIR) W=1 modules

# The module into /lib/modules/<version>/updates (INSTALL_MOD_PATH= moves
# that root), and the modprobe configuration that lets dm-pmemcache serve
# lvm2's "writecache" target, into $(DESTDIR)/etc/modprobe.d.  Run "make"
# first.  The module is not signed (for Secure Boot, sign it with your own
# key: scripts/sign-file in the kernel tree).  A test build (make check's,
# with test hooks) is refused unless ALLOW_TEST_BUILD=1 (the lvm2 test
# installs it into a scratch root).
KVER = $(shell sed -n 's/.*UTS_RELEASE "\(.*\)"/\1/p' \
	$(KDIR)/include/generated/utsrelease.h 2>/dev/null)

install: tools/pmemcache
	@parms=$$(modinfo -F parm ./dm-pmemcache.ko) || { \
		echo "cannot read dm-pmemcache.ko (run make first)" >&2; exit 1; }; \
	if [ -z "$(ALLOW_TEST_BUILD)" ] && \
		echo "$$parms" | grep -q '^\(persist_\|test_\)'; then \
		echo "dm-pmemcache.ko is a test build (test hooks, persistence checker:" \
			"root could cut a cache's power); make clean && make first" >&2; \
		exit 1; \
	fi
	$(MAKE) -C $(KDIR) M=$(CURDIR) INSTALL_MOD_DIR=updates \
		CONFIG_MODULE_SIG_ALL= modules_install
	depmod $(if $(INSTALL_MOD_PATH),-b $(INSTALL_MOD_PATH)) $(KVER)
	install -D -m 0644 modprobe.d/dm-pmemcache.conf \
		$(DESTDIR)/etc/modprobe.d/dm-pmemcache.conf
	install -D -m 0755 tools/pmemcache $(DESTDIR)/usr/sbin/pmemcache
	install -D -m 0644 Documentation/pmemcache.8 \
		$(DESTDIR)/usr/share/man/man8/pmemcache.8

# Undoes make install (give it the same KDIR, INSTALL_MOD_PATH and
# DESTDIR).  Refused while a table uses the module or an lvm2 LV has a
# writecache (its cache is in dm-pmemcache's format, which the in-kernel
# dm-writecache refuses): write back and split or remove the caches
# first (Documentation/admin-guide.md, "Removing it"); FORCE=1 overrides.
uninstall:
	@if [ -z "$(KVER)" ]; then \
		echo "no kernel version in $(KDIR) (its headers gone?): give" \
			"KDIR=/lib/modules/<version>/build, or remove" \
			"/lib/modules/<version>/updates/dm-pmemcache.ko by hand" >&2; \
		exit 1; \
	fi
	@refs=$$(cat /sys/module/dm_pmemcache/refcnt 2>/dev/null || echo 0); \
	if [ -z "$(FORCE)" ] && [ "$$refs" -gt 0 ]; then \
		echo "dm-pmemcache is in use ($$refs table(s): dmsetup table |" \
			"grep -E 'pmemcache|writecache'): write back and remove" \
			"them first, or FORCE=1" >&2; \
		exit 1; \
	fi; \
	lvs=$$(lvs -a --noheadings -o vg_name,lv_name,segtype 2>/dev/null | \
		awk '$$3 == "writecache" { print $$1 "/" $$2 }'); \
	if [ -z "$(FORCE)" ] && [ -n "$$lvs" ]; then \
		echo "LVs with a writecache: $$lvs; lvconvert --splitcache" \
			"them first, or FORCE=1" >&2; \
		exit 1; \
	fi
	rm -f $(INSTALL_MOD_PATH)/lib/modules/$(KVER)/updates/dm-pmemcache.ko*
	depmod $(if $(INSTALL_MOD_PATH),-b $(INSTALL_MOD_PATH)) $(KVER)
	rm -f $(DESTDIR)/etc/modprobe.d/dm-pmemcache.conf \
		$(DESTDIR)/usr/sbin/pmemcache \
		$(DESTDIR)/usr/share/man/man8/pmemcache.8
	@if [ -d /sys/module/dm_pmemcache ]; then \
		echo "dm-pmemcache is still loaded: rmmod dm-pmemcache"; fi

# The userspace tool (rescue without the module): tools/pmemcache.
PMC_TOOL_SRCS = tools/pmemcache.c tools/pmemcache_image.c
tools: tools/pmemcache

tools/pmemcache: $(PMC_TOOL_SRCS) tools/pmemcache_image.h pmemcache_format.h
	$(CC) -O2 -Wall -Wextra $(CFLAGS) $(CPPFLAGS) -o $@ $(PMC_TOOL_SRCS) \
		$(LDFLAGS)

# Debian packages, built from a copy of this tree into DEB_DIR (default
# ./deb): dm-pmemcache-dkms (the sources, built by DKMS for every kernel,
# and the modprobe configuration) and pmemcache-tools (the tool).  Needs
# dpkg-dev, debhelper and dh-dkms.
DEB_DIR ?= $(CURDIR)/deb
deb:
	rm -rf $(DEB_DIR)
	mkdir -p $(DEB_DIR)/dm-pmemcache
	tar -c --exclude-vcs --exclude=./deb --exclude=./tests \
		--exclude='*.o' --exclude='*.ko' --exclude='*.cmd' \
		--exclude='*.mod' --exclude='*.mod.c' --exclude=tools/pmemcache \
		--exclude=Module.symvers --exclude=modules.order . | \
		tar -x -C $(DEB_DIR)/dm-pmemcache
	cd $(DEB_DIR)/dm-pmemcache && dpkg-buildpackage -b -us -uc \
		> ../build.log 2>&1 || { tail -n 30 ../build.log; exit 1; }
	rm -rf $(DEB_DIR)/dm-pmemcache
	ls $(DEB_DIR)/*.deb

# libFuzzer on the tool's parsers (clang): FUZZ_RUNS executions each
# (default 10 million), seeded from tools/fuzz-seeds/.
fuzz:
	FUZZ_RUNS=$(FUZZ_RUNS) tests/fuzz.sh

clean:
	$(MAKE) -C $(KDIR) M=$(CURDIR) clean
	rm -f tools/pmemcache

# checkpatch --strict and sparse; fails on any warning.
lint:
	tests/lint.sh

# Every test in a VM; T=name runs one; KERNEL=debug uses the debug kernel.
check:
	KERNEL=$(KERNEL) PMC_NO_SKIP=$(PMC_NO_SKIP) tests/run.sh $(T)

# The persistence checker's full enumeration of power cuts (hours).
# CONFIGS=auto:4096+clwb:512+auto:4096:nofua runs only those
# flush_mode:block_size[:options]; ADV=N, N adversarial cuts per mode.
crashcheck:
	PMC_NO_SKIP=1 PMC_KARGS="$(if $(CONFIGS),pmc.configs=$(CONFIGS)) \
		$(if $(ADV),pmc.adv=$(ADV))" tests/run.sh persist_full

# s mode: every flush of the dm-log-writes workload of tests/cases/ssd_crash
# (make check runs a spread of them).
crashcheck-s:
	PMC_NO_SKIP=1 PMC_KARGS="pmc.ssd_points=all" tests/run.sh ssd_crash

# Each mutation of tests/lib/mutations.py (a fence removed, an ordering
# swapped, a store around flush.c) built and run under the persistence
# checker: a table of which were caught, and how.
mutate:
	tests/mutate.sh $(M)

demo:
	tests/demo.sh

# fio: dm-pmemcache against dm-writecache, dm-linear, raw pmem, the origin.
bench:
	tests/bench.sh

# Lock contention per 1,000 I/Os, ours and dm-writecache's, from
# /proc/lock_stat of the debug kernel (2 vCPUs, 2 fio jobs).
lockstat:
	LOCKSTAT_IOS=$(LOCKSTAT_IOS) tests/lockstat.sh

# Throughput with 1, 2 and 4 vCPUs (emulation: see the script).
scaling:
	tests/scaling.sh

# perf profile of one benchmark workload (W=) on dm-writecache and us.
profile:
	W=$(W) tests/profile.sh

# Time the persistence strategies of flush.c on this CPU (userspace).
bench-flush: tools/bench-flush
	tools/bench-flush

tools/bench-flush: tools/bench-flush.c
	$(CC) -O2 -Wall -Wextra -o $@ $<
