/* SPDX-License-Identifier: MIT */
/*
 * Log lines about guest errors.  A guest can produce errors as fast as it can
 * write descriptors, so these are rate-limited: at most DEV_LOG_BURST lines per
 * second for the whole process, then one line saying how many were dropped.
 */
#ifndef FORKVM_DEVICES_LOG_H
#define FORKVM_DEVICES_LOG_H

#include <stdint.h>

#define DEV_LOG_BURST 10

/** dev_guest_err() - log a guest error to stderr, rate-limited. */
void dev_guest_err(const char *dev, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** dev_log_dropped() - lines suppressed so far (for tests). */
uint64_t dev_log_dropped(void);

#endif /* FORKVM_DEVICES_LOG_H */
