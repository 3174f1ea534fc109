// SPDX-License-Identifier: MIT
/*
 * The API's part of `forkvm run`: a server over the family, and one thread
 * that waits for SIGINT/SIGTERM.  A signal that comes while VMs run stops
 * the server first (so no API call is in progress), then every VM, and the
 * run goes on to its report as if they had ended; one that comes after the
 * VMs stopped just ends the run.
 */
#include "vmm/api/api_run.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/api/api_server.h"
#include "vmm/api/backend_machine.h"

struct api_run {
	struct api_server *srv; /* NULL once stopped: guarded by lock */
	struct api_machine_backend *b;
	pthread_t sig_thread;
	pthread_mutex_t lock;
	bool signalled; /* guarded by lock */
};

static void signal_set(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGTERM);
}

int api_run_block_signals(void)
{
	sigset_t set;

	signal_set(&set);
	return -pthread_sigmask(SIG_BLOCK, &set, NULL);
}

/* Context: r->lock held. */
static void stop_server_locked(struct api_run *r)
{
	api_server_stop(r->srv);
	r->srv = NULL;
}

static void *signal_thread(void *arg)
{
	struct api_run *r = arg;
	sigset_t set;
	int sig;

	signal_set(&set);
	if (sigwait(&set, &sig))
		return NULL;
	pthread_mutex_lock(&r->lock);
	r->signalled = true;
	/* The server first: after it no backend call runs, and ours may. */
	stop_server_locked(r);
	api_machine_backend_stop_all(r->b,
				     sig == SIGINT ? "stopped by SIGINT" : "stopped by SIGTERM");
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

int api_run_start(struct family *f, const char *path, const char *console, struct api_run **out,
		  char *err, size_t errlen)
{
	struct api_run *r = calloc(1, sizeof(*r));
	int ret;

	if (!r) {
		snprintf(err, errlen, "--api: out of memory");
		return -ENOMEM;
	}
	pthread_mutex_init(&r->lock, NULL);
	ret = api_machine_backend_create(f, console, &r->b);
	if (ret) {
		snprintf(err, errlen, "--api: %s", strerror(-ret));
		goto err_free;
	}
	ret = api_server_start(
	    &(struct api_server_config){ .path = path, .ops = &api_machine_ops, .ctx = r->b },
	    &r->srv, err, errlen);
	if (ret)
		goto err_backend;
	ret = -pthread_create(&r->sig_thread, NULL, signal_thread, r);
	if (ret) {
		snprintf(err, errlen, "--api: signal thread: %s", strerror(-ret));
		goto err_server;
	}
	*out = r;
	return 0;

err_server:
	api_server_stop(r->srv);
err_backend:
	api_machine_backend_destroy(r->b);
err_free:
	pthread_mutex_destroy(&r->lock);
	free(r);
	return ret;
}

bool api_run_finish(struct api_run *r)
{
	bool by_signal;

	if (!r)
		return false;
	pthread_mutex_lock(&r->lock);
	by_signal = r->signalled;
	if (!by_signal && r->srv)
		fprintf(stderr,
			"forkvm: every VM has stopped; the API stays on %s until SIGINT or "
			"SIGTERM\n",
			api_server_path(r->srv));
	pthread_mutex_unlock(&r->lock);
	pthread_join(r->sig_thread, NULL);
	pthread_mutex_lock(&r->lock);
	stop_server_locked(r);
	pthread_mutex_unlock(&r->lock);
	api_machine_backend_destroy(r->b);
	pthread_mutex_destroy(&r->lock);
	free(r);
	return by_signal;
}
