/* SPDX-License-Identifier: MIT */
/*
 * The control API's server: HTTP/1.1 over a UNIX socket (libmicrohttpd),
 * JSON bodies (jansson), resources in vmm/api/api_routes.c, the VMs behind
 * a struct api_backend_ops (vmm/api/api_backend.h).  docs/api.md lists the
 * resources, the error format and the limits.
 *
 * One thread: libmicrohttpd's internal polling thread (poll()) does every
 * socket read and write without blocking, so a slow client holds only its
 * own connection, and it makes every backend call, one at a time (the
 * threading rule of api_backend.h).
 */
#ifndef FORKVM_VMM_API_API_SERVER_H
#define FORKVM_VMM_API_API_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "vmm/api/api_backend.h"

#define API_DEFAULT_MAX_BODY (64u * 1024) /* bytes of a request body; more: 413 */
#define API_DEFAULT_MAX_CONNS 32u /* open connections; more: 503, twice as many: closed */
#define API_DEFAULT_TIMEOUT_S 10u /* a connection idle this long is closed */

struct api_server;

struct api_server_config {
	const char *path; /* the socket's path */
	const struct api_backend_ops *ops;
	void *ctx; /* the ops' first argument */
	size_t max_body; /* 0: API_DEFAULT_MAX_BODY */
	unsigned int max_conns; /* 0: API_DEFAULT_MAX_CONNS */
	unsigned int timeout_s; /* 0: API_DEFAULT_TIMEOUT_S */
};

/* What the server saw; read with api_server_get_stats(). */
struct api_server_stats {
	uint64_t requests; /* requests whose headers were read */
	uint64_t errors; /* answers with a status of 400 or more */
	uint64_t connections; /* connections accepted */
	uint64_t rejected; /* requests answered 503 for the connection limit */
	unsigned int open; /* connections open right now */
};

/**
 * api_server_start() - create the socket at @cfg->path with mode 0600 and
 * serve it on a new thread.  An existing path is replaced only when it is a
 * socket nobody listens on (left by a crashed server); a live socket or
 * anything that is not a socket is refused and left as it is.
 * @cfg: the socket, the backend and the limits.
 * @out: the running server.
 * @err: a one-line reason on failure.
 * Return: 0; -EEXIST (not a socket), -EADDRINUSE (a server listens there),
 * -ENAMETOOLONG (longer than a sockaddr_un holds), -EINVAL (no path or
 * ops), or -errno of the failing call.
 */
int api_server_start(const struct api_server_config *cfg, struct api_server **out, char *err,
		     size_t errlen) __attribute__((warn_unused_result));

/**
 * api_server_stop() - stop serving (open connections are closed, a backend
 * call in progress finishes first), remove the socket if it is still ours,
 * free @s.  Not from a backend op.  NULL is a no-op.
 */
void api_server_stop(struct api_server *s);

/** api_server_path() - the socket's path. */
const char *api_server_path(const struct api_server *s);

/** api_server_get_stats() - a copy of @s's counters. */
void api_server_get_stats(struct api_server *s, struct api_server_stats *st);

#endif /* FORKVM_VMM_API_API_SERVER_H */
