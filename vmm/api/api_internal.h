/* SPDX-License-Identifier: MIT */
/*
 * Between the server (api_server.c: sockets, HTTP, limits) and the routes
 * (api_routes.c: paths, JSON, backend calls).  The routes never see
 * libmicrohttpd: a request reaches them as plain strings.
 */
#ifndef FORKVM_VMM_API_API_INTERNAL_H
#define FORKVM_VMM_API_API_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "vmm/api/api_backend.h"

#define API_MAX_QUERY 8 /* query arguments in one request */

struct api_query {
	const char *key;
	const char *value; /* NULL: "?key" without '=' */
};

struct api_request {
	const char *method;
	const char *path; /* percent-decoded, without the query */
	const struct api_query *query;
	size_t nquery;
	const char *body; /* not NUL-terminated */
	size_t len;
};

struct api_reply {
	unsigned int status;
	char *body; /* malloc'd JSON text, ending in '\n' */
	size_t len;
	const char *allow; /* non-NULL: an Allow header (405) */
	bool close; /* close the connection after this reply */
};

/**
 * api_route_check() - what can be said of a request from its method and
 * path alone, before its body is read: an unknown path (404) or a method
 * the path does not take (405).
 * Return: true and @r filled when the request is answered already.
 */
bool api_route_check(const char *method, const char *path, struct api_reply *r);

/**
 * api_route() - answer @rq: check it, call the backend, fill @r.
 * Context: the server's thread (the backend's threading rule).
 */
void api_route(const struct api_backend_ops *ops, void *ctx, const struct api_request *rq,
	       struct api_reply *r);

/**
 * api_reply_error() - fill @r with status @status and the body
 * {"error":{"code":@code,"message":...}}.  Never fails: without memory the
 * body is a fixed one.
 */
void api_reply_error(struct api_reply *r, unsigned int status, const char *code, const char *fmt,
		     ...) __attribute__((format(printf, 4, 5)));

/** api_reply_free() - free @r's body.  Safe twice. */
void api_reply_free(struct api_reply *r);

#endif /* FORKVM_VMM_API_API_INTERNAL_H */
