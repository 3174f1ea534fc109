/* SPDX-License-Identifier: MIT */
/*
 * Absolute CLOCK_MONOTONIC deadlines for timed waits (pthread_cond_timedwait
 * on a condition variable set to CLOCK_MONOTONIC).  Header-only, so devices/
 * and vmm/ both use it.
 */
#ifndef FORKVM_DEVICES_TIME_H
#define FORKVM_DEVICES_TIME_H

#include <time.h>

/** deadline_after_ms() - set @ts to CLOCK_MONOTONIC now plus @ms milliseconds. */
static inline void deadline_after_ms(struct timespec *ts, unsigned int ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

#endif /* FORKVM_DEVICES_TIME_H */
