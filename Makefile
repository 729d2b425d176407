# SPDX-License-Identifier: GPL-2.0
#
# Out-of-tree build of dm-pmemcache.ko, plus the project's targets.
# In a kernel tree, Kbuild (beside this file) is read instead.

KDIR ?= /lib/modules/$(shell uname -r)/build
export CONFIG_DM_PMEMCACHE ?= m

.PHONY: all modules clean lint check demo bench bench-flush

all: modules

modules:
	$(MAKE) -C $(KDIR) M=$(CURDIR) W=1 modules

clean:
	$(MAKE) -C $(KDIR) M=$(CURDIR) clean

# checkpatch --strict and sparse; fails on any warning.
lint:
	tests/lint.sh

# Every test in a VM; T=name runs one; KERNEL=debug uses the debug kernel.
check:
	KERNEL=$(KERNEL) tests/run.sh $(T)

demo:
	tests/demo.sh

# fio: dm-pmemcache against dm-writecache, dm-linear, raw pmem, the origin.
bench:
	tests/bench.sh

# Time the persistence strategies of flush.c on this CPU (userspace).
bench-flush: tools/bench-flush
	tools/bench-flush

tools/bench-flush: tools/bench-flush.c
	$(CC) -O2 -Wall -Wextra -o $@ $<
