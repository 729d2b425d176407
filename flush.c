// SPDX-License-Identifier: GPL-2.0
/*
 * Persistence primitives for the persistent memory cache.
 *
 * Nothing else in the module issues cache-flush or non-temporal
 * instructions.  Three operations:
 *   pmc_copy_to_pmem() - copy data into pmem, durable after the next fence;
 *   pmc_flush_range()  - write back a range already stored in pmem,
 *                        durable after the next fence;
 *   pmc_fence()        - order and complete everything above.
 *
 * Only one strategy exists so far: the kernel's own pmem API
 * (memcpy_flushcache(), which uses non-temporal stores on x86, and
 * arch_wb_cache_pmem(), which uses clwb or clflushopt), fenced with
 * pmem_wmb().  The choice between strategies (flush_mode) is not written
 * yet.
 */

#include <linux/libnvdimm.h>
#include <linux/string.h>

#include "dm-pmemcache.h"

/**
 * pmc_flush_mode_name() - the persistence strategy, for the status line
 *
 * Return: "movnt" where memcpy_flushcache() uses non-temporal stores
 * (x86), else "generic".
 */
const char *pmc_flush_mode_name(void)
{
	return IS_ENABLED(CONFIG_X86) ? "movnt" : "generic";
}

/**
 * pmc_copy_to_pmem() - copy into persistent memory
 * @dst: destination, inside the mapped cache
 * @src: source
 * @len: bytes to copy
 *
 * The copy is durable once pmc_fence() has returned.
 */
void pmc_copy_to_pmem(void *dst, const void *src, size_t len)
{
	memcpy_flushcache(dst, src, len);
}

/**
 * pmc_flush_range() - write back a range already stored in pmem
 * @addr: start of the range, inside the mapped cache
 * @len: bytes
 *
 * The range is durable once pmc_fence() has returned.
 */
void pmc_flush_range(void *addr, size_t len)
{
	arch_wb_cache_pmem(addr, len);
}

/**
 * pmc_fence() - make every earlier copy and flush durable
 */
void pmc_fence(void)
{
	pmem_wmb();
}
