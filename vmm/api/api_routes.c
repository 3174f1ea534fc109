// SPDX-License-Identifier: MIT
/*
 * The control API's resources (docs/api.md): paths, strict JSON input,
 * backend calls, JSON answers.  Every request is checked in one order: the
 * path (404), the method (405 with Allow), the query (400), the body (400),
 * then the backend (its -errno mapped to a status, api_backend.h).
 */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/api/api_backend.h"
#include "vmm/api/api_internal.h"

#define API_VERSION 1
#define API_DEFAULT_CONSOLE_LINES 20u
#define API_MAX_DIR 4095u

static const char *const state_names[] = {
	[API_VM_CREATED] = "created",
	[API_VM_RUNNING] = "running",
	[API_VM_PAUSED] = "paused",
	[API_VM_STOPPED] = "stopped",
};

static const char *const kind_names[] = {
	[API_SNAPSHOT_FULL] = "full",
	[API_SNAPSHOT_LIVE] = "live",
	[API_SNAPSHOT_DIFF] = "diff",
};

const char *api_vm_state_name(enum api_vm_state s)
{
	return (unsigned int)s < sizeof(state_names) / sizeof(state_names[0]) ? state_names[s]
									      : "unknown";
}

const char *api_snapshot_kind_name(enum api_snapshot_kind k)
{
	return (unsigned int)k < sizeof(kind_names) / sizeof(kind_names[0]) ? kind_names[k]
									    : "unknown";
}

/* ---- replies ------------------------------------------------------------- */

void api_reply_free(struct api_reply *r)
{
	free(r->body);
	r->body = NULL;
	r->len = 0;
}

static const char nomem_body[] =
    "{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}\n";

/* @r gets @j as its body (compact, one line); takes @j. */
static void reply_json(struct api_reply *r, unsigned int status, json_t *j)
{
	char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	size_t n;

	json_decref(j);
	api_reply_free(r);
	if (!text) {
		r->status = 500;
		r->body = strdup(nomem_body);
		r->len = r->body ? strlen(r->body) : 0;
		return;
	}
	n = strlen(text);
	r->body = realloc(text, n + 2);
	if (!r->body) {
		r->body = text;
		r->len = n;
	} else {
		r->body[n] = '\n';
		r->body[n + 1] = '\0';
		r->len = n + 1;
	}
	r->status = status;
}

static json_t *error_object(const char *code, const char *msg)
{
	return json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg);
}

static void reply_verror(struct api_reply *r, unsigned int status, const char *code,
			 const char *fmt, va_list ap)
{
	char msg[512];
	json_t *j;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	j = error_object(code, msg);
	if (!j) /* a message that is not UTF-8 (a path from a client): say less */
		j = error_object(code, "(message not UTF-8)");
	reply_json(r, status, j);
}

void api_reply_error(struct api_reply *r, unsigned int status, const char *code, const char *fmt,
		     ...)
{
	va_list ap;

	va_start(ap, fmt);
	reply_verror(r, status, code, fmt, ap);
	va_end(ap);
}

/* A backend's -errno as a reply; @what names the call, @detail the backend's reason. */
static void reply_errno(struct api_reply *r, int ret, const char *what, const char *detail)
{
	const char *msg = detail && *detail ? detail : strerror(-ret);

	switch (ret) {
	case -ENOENT:
		api_reply_error(r, 404, "no_such_vm", "%s: %s", what, msg);
		break;
	case -ESRCH:
		api_reply_error(r, 409, "vm_stopped", "%s: the VM stopped", what);
		break;
	case -EBUSY:
	case -EALREADY:
		api_reply_error(r, 409, "conflict", "%s: %s", what, msg);
		break;
	case -ENOSPC:
		api_reply_error(r, 409, "family_full", "%s: %s", what, msg);
		break;
	case -EEXIST:
		api_reply_error(r, 409, "exists", "%s: %s", what, msg);
		break;
	case -EINVAL:
		api_reply_error(r, 400, "invalid", "%s: %s", what, msg);
		break;
	case -EOPNOTSUPP:
	case -ENOSYS:
		api_reply_error(r, 501, "not_implemented", "%s: %s", what, msg);
		break;
	default:
		api_reply_error(r, 500, "internal", "%s: %s", what, msg);
		break;
	}
}

/* ---- paths ---------------------------------------------------------------- */

enum route_id {
	R_VERSION,
	R_VMS,
	R_FAMILY,
	R_VM,
	R_PAUSE,
	R_RESUME,
	R_KILL,
	R_CLONE,
	R_SNAPSHOT,
	R_CONSOLE,
};

struct route {
	const char *sub; /* after /vms/{id}: NULL for the fixed paths */
	const char *path; /* the fixed paths */
	const char *method;
};

static const struct route routes[] = {
	[R_VERSION] = { NULL, "/version", "GET" },    [R_VMS] = { NULL, "/vms", "GET" },
	[R_FAMILY] = { NULL, "/family", "GET" },      [R_VM] = { "", NULL, "GET" },
	[R_PAUSE] = { "/pause", NULL, "POST" },	      [R_RESUME] = { "/resume", NULL, "POST" },
	[R_KILL] = { "/kill", NULL, "POST" },	      [R_CLONE] = { "/clone", NULL, "POST" },
	[R_SNAPSHOT] = { "/snapshot", NULL, "POST" }, [R_CONSOLE] = { "/console", NULL, "GET" },
};

#define NROUTES (sizeof(routes) / sizeof(routes[0]))

/*
 * Split "/vms/ID[/sub]": *@id_s / *@id_len the ID's text (any text: an ID
 * that is not one is "no such VM", a 404 from the body's check), *@sub the
 * rest.  Return: whether @path has that shape.
 */
static bool split_vm_path(const char *path, const char **id_s, size_t *id_len, const char **sub)
{
	const char *p;

	if (strncmp(path, "/vms/", 5))
		return false;
	p = path + 5;
	*id_s = p;
	while (*p && *p != '/')
		p++;
	*id_len = (size_t)(p - *id_s);
	*sub = p;
	return *id_len > 0;
}

/* The route of @path, -1 if none. */
static int find_route(const char *path, const char **id_s, size_t *id_len)
{
	const char *sub;
	size_t i;

	*id_s = NULL;
	*id_len = 0;
	for (i = 0; i < NROUTES; i++)
		if (routes[i].path && !strcmp(path, routes[i].path))
			return (int)i;
	if (!split_vm_path(path, id_s, id_len, &sub))
		return -1;
	for (i = 0; i < NROUTES; i++)
		if (routes[i].sub && !strcmp(sub, routes[i].sub))
			return (int)i;
	return -1;
}

bool api_route_check(const char *method, const char *path, struct api_reply *r)
{
	const char *id_s;
	size_t id_len;
	int route = find_route(path, &id_s, &id_len);

	if (route < 0) {
		api_reply_error(r, 404, "not_found", "no resource at '%s' (see docs/api.md)", path);
		return true;
	}
	if (strcmp(method, routes[route].method)) {
		api_reply_error(r, 405, "method_not_allowed", "%s takes %s, not %s", path,
				routes[route].method, method);
		r->allow = routes[route].method;
		return true;
	}
	return false;
}

/* A VM id: decimal digits, no sign, no leading zero, at most UINT32_MAX. */
static bool parse_id(const char *s, size_t n, uint32_t *id)
{
	uint64_t v = 0;
	size_t i;

	if (!n || n > 10 || (n > 1 && s[0] == '0'))
		return false;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > UINT32_MAX)
		return false;
	*id = (uint32_t)v;
	return true;
}

/* ---- input ------------------------------------------------------------------ */

struct field {
	const char *name;
	json_type type;
};

static const char *type_name(json_type t)
{
	switch (t) {
	case JSON_OBJECT:
		return "an object";
	case JSON_ARRAY:
		return "an array";
	case JSON_STRING:
		return "a string";
	case JSON_INTEGER:
		return "an integer";
	case JSON_REAL:
		return "a number with a fraction or exponent";
	case JSON_TRUE:
	case JSON_FALSE:
		return "a boolean";
	case JSON_NULL:
		return "null";
	}
	return "a value";
}

/* "a, b, c": the names of @fields. */
static const char *field_list(const struct field *fields, size_t n, char *buf, size_t len)
{
	size_t i, at = 0;

	buf[0] = '\0';
	for (i = 0; i < n && at < len; i++)
		at += (size_t)snprintf(buf + at, len - at, "%s%s", i ? ", " : "", fields[i].name);
	return buf;
}

/*
 * The body as an object whose fields are all in @fields, each of its type.
 * An empty body is {}.  Return: the object (owned), or NULL with @r filled.
 */
static json_t *parse_body(const struct api_request *rq, const struct field *fields, size_t n,
			  struct api_reply *r)
{
	json_error_t e;
	const char *key;
	char names[128];
	json_t *j, *v;
	size_t i;

	if (!rq->len)
		return json_object();
	j = json_loadb(rq->body, rq->len, JSON_REJECT_DUPLICATES, &e);
	if (!j) {
		api_reply_error(r, 400, "bad_json", "line %d, column %d: %s", e.line, e.column,
				e.text);
		return NULL;
	}
	if (!json_is_object(j)) {
		api_reply_error(r, 400, "wrong_type", "the body: expected an object, got %s",
				type_name(json_typeof(j)));
		goto err;
	}
	json_object_foreach(j, key, v)
	{
		for (i = 0; i < n; i++)
			if (!strcmp(key, fields[i].name))
				break;
		if (i == n) {
			if (n)
				api_reply_error(r, 400, "unknown_field",
						"unknown field '%s' (%s %s takes: %s)", key,
						rq->method, rq->path,
						field_list(fields, n, names, sizeof(names)));
			else
				api_reply_error(r, 400, "unknown_field",
						"unknown field '%s' (%s %s takes no fields)", key,
						rq->method, rq->path);
			goto err;
		}
		/* JSON_TRUE in @fields: a boolean, true or false. */
		if (json_typeof(v) != fields[i].type &&
		    !(fields[i].type == JSON_TRUE && json_is_boolean(v))) {
			api_reply_error(r, 400, "wrong_type", "field '%s': expected %s, got %s",
					key, type_name(fields[i].type), type_name(json_typeof(v)));
			goto err;
		}
	}
	return j;

err:
	json_decref(j);
	return NULL;
}

/* No query arguments but @allowed (NULL: none).  Return: true, or false with @r. */
static bool check_query(const struct api_request *rq, const char *allowed, struct api_reply *r)
{
	size_t i, k;

	for (i = 0; i < rq->nquery; i++) {
		if (!allowed || strcmp(rq->query[i].key, allowed)) {
			api_reply_error(r, 400, "bad_query", "unknown query argument '%s'",
					rq->query[i].key);
			return false;
		}
		for (k = 0; k < i; k++)
			if (!strcmp(rq->query[k].key, rq->query[i].key)) {
				api_reply_error(r, 400, "bad_query",
						"query argument '%s' given twice",
						rq->query[i].key);
				return false;
			}
	}
	return true;
}

static bool no_body(const struct api_request *rq, struct api_reply *r)
{
	if (!rq->len)
		return true;
	api_reply_error(r, 400, "unexpected_body", "%s %s takes no body", rq->method, rq->path);
	return false;
}

/* ---- answers ------------------------------------------------------------------- */

static json_t *stat_value(uint64_t v)
{
	return v == API_STAT_NONE ? json_null() : json_integer((json_int_t)v);
}

static json_t *info_object(const struct api_vm_info *vi)
{
	return json_pack("{s:I,s:s,s:o,s:b,s:o}", "id", (json_int_t)vi->id, "state",
			 api_vm_state_name(vi->state), "parent",
			 vi->has_parent ? json_integer(vi->parent) : json_null(), "guest_fork",
			 vi->guest_fork, "exit_status",
			 vi->state == API_VM_STOPPED ? json_integer(vi->exit_status) : json_null());
}

static void do_version(struct api_reply *r)
{
	reply_json(r, 200, json_pack("{s:s,s:i}", "name", "forkvm", "api", API_VERSION));
}

static void do_list(const struct api_backend_ops *ops, void *ctx, struct api_reply *r)
{
	struct api_vm_info *vi;
	json_t *arr, *o;
	size_t n = 0, i;
	int ret;

	vi = calloc(API_MAX_VMS, sizeof(*vi));
	if (!vi) {
		reply_errno(r, -ENOMEM, "list", NULL);
		return;
	}
	ret = ops->list(ctx, vi, API_MAX_VMS, &n);
	if (ret) {
		reply_errno(r, ret, "list", NULL);
		goto out;
	}
	arr = json_array();
	for (i = 0; arr && i < n && i < API_MAX_VMS; i++) {
		o = info_object(&vi[i]);
		if (!o || json_array_append_new(arr, o)) {
			json_decref(arr);
			arr = NULL;
		}
	}
	reply_json(r, 200, arr ? json_pack("{s:o}", "vms", arr) : NULL);
out:
	free(vi);
}

static void do_get(const struct api_backend_ops *ops, void *ctx, uint32_t id, struct api_reply *r)
{
	struct api_vm_info vi = { 0 };
	struct api_vm_stats st = { 0 };
	json_t *o, *stats;
	int ret;

	ret = ops->get(ctx, id, &vi, &st);
	if (ret) {
		reply_errno(r, ret, "get", ret == -ENOENT ? "no such VM" : NULL);
		return;
	}
	o = info_object(&vi);
	stats = json_pack("{s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "pages", stat_value(st.pages),
			  "private_frames", stat_value(st.private_frames), "shared_frames",
			  stat_value(st.shared_frames), "pinned_frames",
			  stat_value(st.pinned_frames), "cow_copies", stat_value(st.cow_copies),
			  "cow_reuses", stat_value(st.cow_reuses), "faults", stat_value(st.faults),
			  "inflight", stat_value(st.inflight), "vmas", stat_value(st.vmas));
	if (o && stats && !json_object_set_new(o, "stats", stats)) {
		reply_json(r, 200, o);
		return;
	}
	json_decref(stats);
	json_decref(o);
	reply_json(r, 500, NULL);
}

/* pause, resume, kill: the call, then the VM as it is now. */
static void do_action(const struct api_backend_ops *ops, void *ctx, enum route_id route,
		      uint32_t id, struct api_reply *r)
{
	struct api_vm_info vi = { 0 };
	struct api_vm_stats st;
	const char *what = routes[route].sub + 1;
	int ret;

	switch (route) {
	case R_PAUSE:
		ret = ops->pause(ctx, id);
		break;
	case R_RESUME:
		ret = ops->resume(ctx, id);
		break;
	default:
		ret = ops->kill(ctx, id);
		break;
	}
	if (ret) {
		reply_errno(r, ret, what,
			    ret == -ENOENT     ? "no such VM"
			    : ret == -EALREADY ? (route == R_PAUSE ? "the VM is paused already"
								   : "the VM is not paused")
					       : NULL);
		return;
	}
	if (ops->get(ctx, id, &vi, &st)) {
		/* Done, but it went away meanwhile (a kill): say what was asked. */
		vi.id = id;
		vi.state = API_VM_STOPPED;
	}
	reply_json(r, 200, info_object(&vi));
}

static void do_clone(const struct api_backend_ops *ops, void *ctx, const struct api_request *rq,
		     uint32_t id, struct api_reply *r)
{
	static const struct field fields[] = { { "count", JSON_INTEGER } };
	uint32_t ids[API_MAX_CLONE_COUNT];
	unsigned int made = 0, i;
	json_int_t count = 1;
	json_t *body, *arr, *c, *o;
	char err[256] = "";
	int ret;

	body = parse_body(rq, fields, 1, r);
	if (!body)
		return;
	c = json_object_get(body, "count");
	if (c)
		count = json_integer_value(c);
	json_decref(body);
	if (count < 1 || count > (json_int_t)API_MAX_CLONE_COUNT) {
		api_reply_error(r, 400, "out_of_range", "field 'count': %lld is not in 1..%u",
				(long long)count, API_MAX_CLONE_COUNT);
		return;
	}
	ret = ops->clone(ctx, id, (unsigned int)count, ids, &made, err, sizeof(err));
	if (made > count)
		made = (unsigned int)count; /* a backend that overstates: trust the array's size */
	arr = json_array();
	for (i = 0; arr && i < made; i++)
		if (json_array_append_new(arr, json_integer(ids[i]))) {
			json_decref(arr);
			arr = NULL;
		}
	if (!arr) {
		reply_json(r, 500, NULL);
		return;
	}
	if (!ret) {
		reply_json(r, 201, json_pack("{s:o}", "ids", arr));
		return;
	}
	/* The error, and the clones made before it (they run). */
	reply_errno(r, ret, "clone", ret == -ENOENT ? "no such VM" : err);
	o = r->body ? json_loadb(r->body, r->len, 0, NULL) : NULL;
	if (o && !json_object_set_new(o, "ids", arr))
		reply_json(r, r->status, o);
	else {
		json_decref(o);
		json_decref(arr);
	}
}

/* String field @name of @body (NULL if absent), 1..API_MAX_DIR bytes, else @r. */
static bool path_field(json_t *body, const char *name, const char **out, struct api_reply *r)
{
	json_t *v = json_object_get(body, name);
	size_t n;

	*out = NULL;
	if (!v)
		return true;
	n = json_string_length(v);
	/* jansson refuses \u0000 in strings (no JSON_ALLOW_NUL): a C string. */
	if (!n || n > API_MAX_DIR) {
		api_reply_error(r, 400, "out_of_range", "field '%s': expected 1 to %u bytes", name,
				API_MAX_DIR);
		return false;
	}
	*out = json_string_value(v);
	return true;
}

static json_t *snapshot_answer(uint32_t id, const struct api_snapshot_req *sr,
			       const struct api_snapshot_result *res)
{
	return json_pack("{s:I,s:s,s:s,s:o,s:b,s:o,s:o,s:o,s:o}", "id", (json_int_t)id, "dir",
			 sr->dir, "kind", api_snapshot_kind_name(sr->kind), "base",
			 sr->base ? json_string(sr->base) : json_null(), "kept", sr->keep,
			 "paused_us", stat_value(res->paused_us), "total_us",
			 stat_value(res->total_us), "pages", stat_value(res->pages), "disk_bytes",
			 stat_value(res->disk_bytes));
}

static void do_snapshot(const struct api_backend_ops *ops, void *ctx, const struct api_request *rq,
			uint32_t id, struct api_reply *r)
{
	static const struct field fields[] = { { "dir", JSON_STRING },
					       { "kind", JSON_STRING },
					       { "base", JSON_STRING },
					       { "keep", JSON_TRUE } };
	struct api_snapshot_req sr = { .kind = API_SNAPSHOT_FULL };
	struct api_snapshot_result res = { API_STAT_NONE, API_STAT_NONE, API_STAT_NONE,
					   API_STAT_NONE };
	const char *k;
	json_t *body, *v;
	char err[256] = "";
	size_t i;
	int ret;

	body = parse_body(rq, fields, sizeof(fields) / sizeof(fields[0]), r);
	if (!body)
		return;
	if (!path_field(body, "dir", &sr.dir, r) || !path_field(body, "base", &sr.base, r))
		goto out;
	if (!sr.dir) {
		api_reply_error(r, 400, "missing_field", "field 'dir': missing");
		goto out;
	}
	v = json_object_get(body, "kind");
	if (v) {
		k = json_string_value(v);
		for (i = 0; i < sizeof(kind_names) / sizeof(kind_names[0]); i++)
			if (!strcmp(k, kind_names[i]))
				break;
		if (i == sizeof(kind_names) / sizeof(kind_names[0])) {
			api_reply_error(r, 400, "out_of_range",
					"field 'kind': '%s' is not full, live or diff", k);
			goto out;
		}
		sr.kind = (enum api_snapshot_kind)i;
	}
	if (sr.kind == API_SNAPSHOT_DIFF && !sr.base) {
		api_reply_error(r, 400, "missing_field",
				"field 'base': missing (a diff names the dir of a kept snapshot)");
		goto out;
	}
	if (sr.kind != API_SNAPSHOT_DIFF && sr.base) {
		api_reply_error(r, 400, "invalid", "field 'base': only with kind diff");
		goto out;
	}
	sr.keep = json_is_true(json_object_get(body, "keep"));
	ret = ops->snapshot(ctx, id, &sr, &res, err, sizeof(err));
	if (ret)
		reply_errno(r, ret, "snapshot",
			    ret == -ENOENT			     ? "no such VM"
			    : *err				     ? err
			    : (ret == -EOPNOTSUPP || ret == -ENOSYS) ? "snapshots are not built yet"
								     : NULL);
	else
		reply_json(r, 200, snapshot_answer(id, &sr, &res));
out:
	json_decref(body);
}

/* A console line as a JSON string: bytes that are not UTF-8 become '?'. */
static json_t *console_line(const char *s, size_t n)
{
	json_t *j = json_stringn(s, n);
	char *copy;
	size_t i;

	if (j)
		return j;
	copy = malloc(n ? n : 1);
	if (!copy)
		return NULL;
	for (i = 0; i < n; i++)
		copy[i] = (unsigned char)s[i] >= 0x80 || !s[i] ? '?' : s[i];
	j = json_stringn(copy, n);
	free(copy);
	return j;
}

static void do_console(const struct api_backend_ops *ops, void *ctx, const struct api_request *rq,
		       uint32_t id, struct api_reply *r)
{
	unsigned long lines = API_DEFAULT_CONSOLE_LINES;
	const char *v = rq->nquery ? rq->query[0].value : NULL;
	const char *p, *end, *nl;
	size_t len = 0, n;
	json_t *arr, *s;
	char *buf, *e;
	int ret;

	if (rq->nquery) {
		/* Digits only: strtoul would take a sign and leading spaces. */
		if (!v || !*v || strspn(v, "0123456789") != strlen(v) || strlen(v) > 7) {
			api_reply_error(r, 400, "bad_query",
					"query argument 'lines': expected 1 to %u",
					API_MAX_CONSOLE_LINES);
			return;
		}
		lines = strtoul(v, &e, 10);
		if (lines < 1 || lines > API_MAX_CONSOLE_LINES) {
			api_reply_error(r, 400, "out_of_range",
					"query argument 'lines': %lu is not in 1..%u", lines,
					API_MAX_CONSOLE_LINES);
			return;
		}
	}
	buf = malloc(API_CONSOLE_BYTES);
	if (!buf) {
		reply_errno(r, -ENOMEM, "console", NULL);
		return;
	}
	ret = ops->console(ctx, id, (unsigned int)lines, buf, API_CONSOLE_BYTES, &len);
	if (ret) {
		reply_errno(r, ret, "console", ret == -ENOENT ? "no such VM" : NULL);
		goto out;
	}
	if (len > API_CONSOLE_BYTES)
		len = API_CONSOLE_BYTES;
	arr = json_array();
	for (p = buf, end = buf + len; arr && p < end; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			nl = end;
		n = (size_t)(nl - p);
		if (n && p[n - 1] == '\r')
			n--;
		s = console_line(p, n);
		if (!s || json_array_append_new(arr, s)) {
			json_decref(arr);
			arr = NULL;
		}
	}
	reply_json(r, 200, arr ? json_pack("{s:I,s:o}", "id", (json_int_t)id, "lines", arr) : NULL);
out:
	free(buf);
}

static void do_family(const struct api_backend_ops *ops, void *ctx, struct api_reply *r)
{
	struct api_family_stats st = { 0 };
	int ret = ops->family(ctx, &st);

	if (ret) {
		reply_errno(r, ret, "family", NULL);
		return;
	}
	reply_json(r, 200,
		   json_pack("{s:I,s:I,s:{s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o}}", "vms",
			     (json_int_t)st.vms, "running", (json_int_t)st.running, "memory",
			     "frames_used", stat_value(st.frames_used), "frames_total",
			     stat_value(st.frames_total), "bytes_resident",
			     stat_value(st.bytes_resident), "vmas", stat_value(st.vmas),
			     "cow_copies", stat_value(st.cow_copies), "cow_reuses",
			     stat_value(st.cow_reuses), "faults", stat_value(st.faults),
			     "pinned_frames", stat_value(st.pinned_frames)));
}

void api_route(const struct api_backend_ops *ops, void *ctx, const struct api_request *rq,
	       struct api_reply *r)
{
	const char *id_s;
	size_t id_len;
	uint32_t id = 0;
	int route;

	if (api_route_check(rq->method, rq->path, r))
		return;
	route = find_route(rq->path, &id_s, &id_len);
	if (!check_query(rq, route == R_CONSOLE ? "lines" : NULL, r))
		return;
	if (routes[route].method[0] == 'G' && !no_body(rq, r))
		return;
	if (id_s && !parse_id(id_s, id_len, &id)) {
		api_reply_error(r, 404, "no_such_vm", "'%.*s' is not a VM id (0, 1, 2, ...)",
				(int)(id_len > 32 ? 32 : id_len), id_s);
		return;
	}
	switch ((enum route_id)route) {
	case R_VERSION:
		do_version(r);
		break;
	case R_VMS:
		do_list(ops, ctx, r);
		break;
	case R_FAMILY:
		do_family(ops, ctx, r);
		break;
	case R_VM:
		do_get(ops, ctx, id, r);
		break;
	case R_PAUSE:
	case R_RESUME:
	case R_KILL: {
		json_t *b = parse_body(rq, NULL, 0, r);

		if (!b)
			return;
		json_decref(b);
		do_action(ops, ctx, (enum route_id)route, id, r);
		break;
	}
	case R_CLONE:
		do_clone(ops, ctx, rq, id, r);
		break;
	case R_SNAPSHOT:
		do_snapshot(ops, ctx, rq, id, r);
		break;
	case R_CONSOLE:
		do_console(ops, ctx, rq, id, r);
		break;
	}
}
