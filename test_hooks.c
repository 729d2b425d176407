// SPDX-License-Identifier: GPL-2.0
/*
 * Test hooks: named points in the engine where a test can stop a thread
 * or cut the power, so that a race or a crash at a precise moment is
 * repeatable.  Compiled only into test builds (make PMC_TEST_HOOKS=y,
 * which make check uses); the module that make and make install build
 * has none of this, and pmc_test_point() is an empty inline there.
 *
 * Module parameters (/sys/module/dm_pmemcache/parameters/):
 *   test_pause_at  - a point name: every thread that reaches it waits
 *                    there until the parameter names another point
 *                    (write "none" to let them go);
 *   test_paused    - how many times a thread has stopped at a pause
 *                    point since the module was loaded (read only);
 *   test_resume    - writing anything lets the threads waiting now go
 *                    on, while later ones still stop;
 *   test_crash_at  - a point name: the first thread that reaches it
 *                    restarts the machine at once, like a power cut
 *                    (emergency_restart(): no sync, no shutdown).
 * The names are those of pmc_test_names[] below.
 */

#include <linux/atomic.h>
#include <linux/delay.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/reboot.h>
#include <linux/string.h>

#include "dm-pmemcache.h"

static const char *const pmc_test_names[PMC_NR_TEST_POINTS] = {
	[PMC_TP_NONE] = "none",
	[PMC_TP_WRITE_COPY] = "write_copy",
	[PMC_TP_WB_SUBMIT] = "wb_submit",
	[PMC_TP_WB_FINISH] = "wb_finish",
	[PMC_TP_FORMAT_MID] = "format_mid",
	[PMC_TP_LOADED] = "loaded",
	[PMC_TP_READ_FOUND] = "read_found",
	[PMC_TP_READ_HELD] = "read_held",
	[PMC_TP_WRITE_ENTRY] = "write_entry",
};

static int pmc_pause_at;
static int pmc_crash_at;
static atomic_t pmc_paused = ATOMIC_INIT(0);
static atomic_t pmc_resumes = ATOMIC_INIT(0);

static int pmc_tp_set(const char *val, const struct kernel_param *kp)
{
	int i;

	for (i = 0; i < PMC_NR_TEST_POINTS; i++) {
		if (sysfs_streq(val, pmc_test_names[i])) {
			WRITE_ONCE(*(int *)kp->arg, i);
			return 0;
		}
	}
	return -EINVAL;
}

static int pmc_tp_get(char *buf, const struct kernel_param *kp)
{
	return sysfs_emit(buf, "%s\n", pmc_test_names[READ_ONCE(*(int *)kp->arg)]);
}

static const struct kernel_param_ops pmc_tp_ops = {
	.set = pmc_tp_set,
	.get = pmc_tp_get,
};

module_param_cb(test_pause_at, &pmc_tp_ops, &pmc_pause_at, 0644);
MODULE_PARM_DESC(test_pause_at, "Test builds: threads wait at this point");
module_param_cb(test_crash_at, &pmc_tp_ops, &pmc_crash_at, 0644);
MODULE_PARM_DESC(test_crash_at, "Test builds: restart the machine at this point");

static int pmc_paused_get(char *buf, const struct kernel_param *kp)
{
	return sysfs_emit(buf, "%d\n", atomic_read(&pmc_paused));
}

static const struct kernel_param_ops pmc_paused_ops = {
	.get = pmc_paused_get,
};

module_param_cb(test_paused, &pmc_paused_ops, NULL, 0444);
MODULE_PARM_DESC(test_paused, "Test builds: stops at pause points so far");

static int pmc_resume_set(const char *val, const struct kernel_param *kp)
{
	atomic_inc(&pmc_resumes);
	return 0;
}

static const struct kernel_param_ops pmc_resume_ops = {
	.set = pmc_resume_set,
};

module_param_cb(test_resume, &pmc_resume_ops, NULL, 0200);
MODULE_PARM_DESC(test_resume, "Test builds: let the threads paused now go on");

/**
 * pmc_test_point() - a named point where a test may intervene
 * @p: the point
 *
 * Never called with a spinlock held: a pause sleeps.
 */
void pmc_test_point(enum pmc_test_point p)
{
	int resumes = atomic_read(&pmc_resumes);

	if (READ_ONCE(pmc_crash_at) == p) {
		pr_emerg("dm-pmemcache: test_crash_at %s: restarting now\n",
			 pmc_test_names[p]);
		emergency_restart();
	}
	if (READ_ONCE(pmc_pause_at) != p)
		return;
	atomic_inc(&pmc_paused);
	pr_info("dm-pmemcache: test_pause_at %s: waiting\n", pmc_test_names[p]);
	while (READ_ONCE(pmc_pause_at) == p &&
	       atomic_read(&pmc_resumes) == resumes)
		usleep_range(1000, 2000);
	pr_info("dm-pmemcache: test_pause_at %s: going on\n", pmc_test_names[p]);
}
