// SPDX-License-Identifier: MIT
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "devices/log.h"

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static time_t log_second; /* protected by log_lock */
static unsigned int log_lines; /* lines printed in log_second */
static uint64_t log_dropped; /* dropped since the last printed line */
static uint64_t log_dropped_total;

void dev_guest_err(const char *dev, const char *fmt, ...)
{
	struct timespec now;
	va_list ap;
	char msg[256];

	clock_gettime(CLOCK_MONOTONIC, &now);
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	pthread_mutex_lock(&log_lock);
	if (now.tv_sec != log_second) {
		log_second = now.tv_sec;
		log_lines = 0;
	}
	if (log_lines >= DEV_LOG_BURST) {
		log_dropped++;
		log_dropped_total++;
		pthread_mutex_unlock(&log_lock);
		return;
	}
	log_lines++;
	if (log_dropped)
		fprintf(stderr, "forkvm: %llu guest error lines suppressed\n",
			(unsigned long long)log_dropped);
	log_dropped = 0;
	/* One fprintf per line: stderr is unbuffered, the line stays whole. */
	fprintf(stderr, "forkvm: %s: guest error: %s\n", dev, msg);
	pthread_mutex_unlock(&log_lock);
}

uint64_t dev_log_dropped(void)
{
	uint64_t n;

	pthread_mutex_lock(&log_lock);
	n = log_dropped_total;
	pthread_mutex_unlock(&log_lock);
	return n;
}
