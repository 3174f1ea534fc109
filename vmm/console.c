// SPDX-License-Identifier: MIT
/* The console tap: prefix every line of a guest console, count the lines. */
#include "vmm/console.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "devices/thread_hook.h"
#include "devices/time.h"

#define TAP_LINE_MAX 1024
#define TAP_PREFIX_MAX 32

struct console_tap {
	int rfd;
	int wfd;
	int out_fd;
	char prefix[TAP_PREFIX_MAX];
	size_t prefix_len;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned long lines; /* under lock */
	size_t len; /* bytes in line[], thread only */
	char line[TAP_PREFIX_MAX + TAP_LINE_MAX];
};

/* Prefix and line in one write(), so lines of several taps never mix. */
static void emit_line(struct console_tap *t)
{
	size_t off = 0, total = t->prefix_len + t->len;
	ssize_t n;

	while (off < total) {
		n = write(t->out_fd, t->line + off, total - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break; /* the output is gone: drop the line, keep draining */
		off += (size_t)n;
	}
	t->len = 0;
	pthread_mutex_lock(&t->lock);
	t->lines++;
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
}

static void *tap_thread(void *arg)
{
	struct console_tap *t = arg;
	char buf[4096];
	ssize_t n, i;

	devices_thread_start("device");
	memcpy(t->line, t->prefix, t->prefix_len);
	for (;;) {
		n = read(t->rfd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		for (i = 0; i < n; i++) {
			t->line[t->prefix_len + t->len++] = buf[i];
			/* A line longer than the buffer is written in pieces. */
			if (buf[i] == '\n' || t->len == TAP_LINE_MAX)
				emit_line(t);
		}
	}
	if (t->len) {
		t->line[t->prefix_len + t->len++] = '\n';
		emit_line(t);
	}
	return NULL;
}

int console_tap_create(int out_fd, const char *prefix, struct console_tap **out)
{
	pthread_condattr_t attr;
	struct console_tap *t;
	int fds[2], ret;

	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->out_fd = out_fd;
	snprintf(t->prefix, sizeof(t->prefix), "%s", prefix ? prefix : "");
	t->prefix_len = strlen(t->prefix);
	if (pipe2(fds, O_CLOEXEC) < 0) {
		ret = -errno;
		goto err_free;
	}
	t->rfd = fds[0];
	t->wfd = fds[1];
	pthread_mutex_init(&t->lock, NULL);
	/* console_tap_wait_lines() waits against CLOCK_MONOTONIC. */
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&t->cond, &attr);
	pthread_condattr_destroy(&attr);
	ret = -pthread_create(&t->thread, NULL, tap_thread, t);
	if (ret)
		goto err_pipe;
	*out = t;
	return 0;

err_pipe:
	close(t->rfd);
	close(t->wfd);
err_free:
	free(t);
	return ret;
}

int console_tap_fd(const struct console_tap *t)
{
	return t->wfd;
}

int console_tap_wait_lines(struct console_tap *t, unsigned long n, unsigned int timeout_ms)
{
	struct timespec until;
	int ret = 0;

	deadline_after_ms(&until, timeout_ms);
	pthread_mutex_lock(&t->lock);
	while (t->lines < n && ret == 0)
		ret = pthread_cond_timedwait(&t->cond, &t->lock, &until);
	ret = t->lines >= n ? 0 : -ETIMEDOUT;
	pthread_mutex_unlock(&t->lock);
	return ret;
}

unsigned long console_tap_lines(struct console_tap *t)
{
	unsigned long n;

	pthread_mutex_lock(&t->lock);
	n = t->lines;
	pthread_mutex_unlock(&t->lock);
	return n;
}

void console_tap_destroy(struct console_tap *t)
{
	if (!t)
		return;
	/* EOF on the read end ends the thread once it has drained the pipe. */
	close(t->wfd);
	pthread_join(t->thread, NULL);
	close(t->rfd);
	pthread_mutex_destroy(&t->lock);
	pthread_cond_destroy(&t->cond);
	free(t);
}
