// SPDX-License-Identifier: MIT
/* Guest error lines are rate-limited. */
#include <criterion/criterion.h>

#include "devices/log.h"

Test(dev_log, a_flood_of_guest_errors_is_mostly_suppressed)
{
	uint64_t before = dev_log_dropped();
	unsigned int i;

	for (i = 0; i < 100; i++)
		dev_guest_err("test", "error %u", i);
	/* At most DEV_LOG_BURST per second get through (two seconds at worst). */
	cr_expect_geq(dev_log_dropped() - before, 100 - 2 * DEV_LOG_BURST);
}
