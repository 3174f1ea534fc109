// SPDX-License-Identifier: MIT
/*
 * The control API's HTTP side: the UNIX socket, libmicrohttpd, the limits.
 *
 * Why libmicrohttpd's internal polling thread rather than our own loop
 * driving MHD_run(): the VMM has no event loop to join yet (vCPUs, device
 * completions and the clone worker are threads of their own), and one MHD
 * thread gives us what the API needs: non-blocking I/O on every connection,
 * so a client that stalls holds only its own connection, and a single
 * thread for every backend call, so that the backend's rule is simple
 * (api_backend.h).  MHD enforces the idle timeout and a hard connection
 * limit; we count connections ourselves to answer a soft limit with a JSON
 * 503 before the hard one closes them unanswered.
 *
 * poll(), not epoll: libmicrohttpd 0.9.75's edge-triggered epoll misses a
 * client's half-close that arrives with its last bytes, so an incomplete
 * request followed by shutdown(SHUT_WR) held its connection until the idle
 * timeout (2 s in the tests, per connection); with poll() it is closed at
 * once.  poll() costs O(connections) per wakeup, and we have at most
 * 2 * max_conns of them.
 */
#include "vmm/api/api_server.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "vmm/api/api_internal.h"

#define API_LISTEN_BACKLOG 64
/* Body bytes dropped past the cap, in caps, before the connection is closed. */
#define API_MAX_DROPPED 16
/* Request line and headers: MHD answers more than this itself (431). */
#define API_HEADER_MEMORY (32u * 1024)

struct api_server {
	struct MHD_Daemon *mhd;
	const struct api_backend_ops *ops;
	void *ctx;
	size_t max_body;
	unsigned int max_conns;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	dev_t dev; /* the socket we bound, to remove only ours at stop */
	ino_t ino;
	char log[256]; /* MHD's last message (mhd_log()) */
	/* Written on the MHD thread, read anywhere (api_server_get_stats()). */
	_Atomic uint64_t requests, errors, connections, rejected;
	_Atomic unsigned int open;
};

/* One request's state between the handler's calls (MHD's *con_cls). */
struct api_req {
	char *body;
	size_t len;
	size_t cap;
	bool too_large; /* the body passed max_body: discarded, 413 at the end */
	bool has_later; /* @later is decided: the body is discarded, then it is sent */
	struct api_reply later;
	size_t dropped; /* bytes discarded */
	bool answered; /* a reply is queued already */
};

static int fail(char *err, size_t errlen, int ret, const char *fmt, const char *path)
{
	snprintf(err, errlen, fmt, path, strerror(-ret));
	return ret;
}

/*
 * May @path be bound?  Nothing there, or a socket nobody listens on (a
 * crashed server's, removed here).  A live socket or anything else is
 * refused and left intact.  Racy by nature (another server may bind between
 * the probe and our bind; bind() then fails with EADDRINUSE).
 */
static int clear_path(const char *path, const struct sockaddr_un *sa, char *err, size_t errlen)
{
	struct stat st;
	int fd, ret;

	if (lstat(path, &st)) {
		if (errno == ENOENT)
			return 0;
		return fail(err, errlen, -errno, "%s: %s", path);
	}
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "%s: exists and is not a socket; refusing to replace it",
			 path);
		return -EEXIST;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return fail(err, errlen, -errno, "%s: socket: %s", path);
	ret = connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) ? -errno : 0;
	close(fd);
	if (!ret) {
		snprintf(err, errlen, "%s: a server is listening on this socket", path);
		return -EADDRINUSE;
	}
	/* Only "nobody listens" makes it stale; EACCES and the like refuse. */
	if (ret != -ECONNREFUSED)
		return fail(err, errlen, ret, "%s: cannot probe the existing socket: %s", path);
	if (unlink(path) && errno != ENOENT)
		return fail(err, errlen, -errno, "%s: removing the stale socket: %s", path);
	return 0;
}

/* The listening socket at @s->path, mode 0600.  Return: the fd or -errno. */
static int make_socket(struct api_server *s, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, ret;

	memcpy(sa.sun_path, s->path, sizeof(sa.sun_path));
	ret = clear_path(s->path, &sa, err, errlen);
	if (ret)
		return ret;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return fail(err, errlen, -errno, "%s: socket: %s", s->path);
	/*
	 * Linux gives the socket file the socket inode's mode, less the umask:
	 * setting the inode's mode first makes the file 0600 from its first
	 * instant, without umask(), which would change the mode of files that
	 * the VMM's other threads create meanwhile.
	 */
	if (fchmod(fd, 0600)) {
		ret = fail(err, errlen, -errno, "%s: fchmod: %s", s->path);
		goto err_fd;
	}
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		ret = fail(err, errlen, -errno, "%s: bind: %s", s->path);
		goto err_fd;
	}
	/* Verify: a socket, ours, 0600 (a kernel that ignores the inode's mode). */
	if (lstat(s->path, &st)) {
		ret = fail(err, errlen, -errno, "%s: %s", s->path);
		goto err_fd;
	}
	if ((st.st_mode & 07777) != 0600 && chmod(s->path, 0600) == 0 && lstat(s->path, &st)) {
		ret = fail(err, errlen, -errno, "%s: %s", s->path);
		goto err_unlink;
	}
	if (!S_ISSOCK(st.st_mode) || (st.st_mode & 07777) != 0600 || st.st_uid != geteuid()) {
		snprintf(err, errlen, "%s: the socket has mode %o, not 0600", s->path,
			 (unsigned int)(st.st_mode & 07777));
		ret = -EPERM;
		goto err_unlink;
	}
	s->dev = st.st_dev;
	s->ino = st.st_ino;
	if (listen(fd, API_LISTEN_BACKLOG)) {
		ret = fail(err, errlen, -errno, "%s: listen: %s", s->path);
		goto err_unlink;
	}
	return fd;

err_unlink:
	unlink(s->path);
err_fd:
	close(fd);
	return ret;
}

/* Remove the socket file if it is still the one we bound. */
static void remove_socket(struct api_server *s)
{
	struct stat st;

	if (!lstat(s->path, &st) && S_ISSOCK(st.st_mode) && st.st_dev == s->dev &&
	    st.st_ino == s->ino)
		unlink(s->path);
}

/* Is @a still open on the socket @b is? */
static bool same_socket(int a, int b)
{
	struct stat sa, sb;

	return !fstat(a, &sa) && !fstat(b, &sb) && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/*
 * MHD complains about every malformed request: the clients' errors, not
 * ours, so nothing is printed.  The last message is kept for a failed start.
 * Context: the starting thread, then the MHD thread only.
 */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	struct api_server *s = cls;
	size_t n;

	vsnprintf(s->log, sizeof(s->log), fmt, ap);
	n = strlen(s->log);
	if (n && s->log[n - 1] == '\n')
		s->log[n - 1] = '\0';
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
			  enum MHD_ConnectionNotificationCode code)
{
	struct api_server *s = cls;

	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		atomic_fetch_add(&s->connections, 1);
		atomic_fetch_add(&s->open, 1);
	} else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
		atomic_fetch_sub(&s->open, 1);
	}
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct api_req *rq = *con_cls;

	if (rq) {
		free(rq->body);
		api_reply_free(&rq->later);
		free(rq);
		*con_cls = NULL;
	}
}

/* Queue @r on @c; takes @r's body.  Return: MHD's answer. */
static enum MHD_Result queue(struct api_server *s, struct MHD_Connection *c, struct api_req *rq,
			     struct api_reply *r)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	resp = MHD_create_response_from_buffer(r->len, r->body, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		api_reply_free(r);
		return MHD_NO;
	}
	r->body = NULL; /* the response owns it now */
	if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json") !=
		MHD_YES ||
	    (r->allow &&
	     MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow) != MHD_YES) ||
	    (r->close &&
	     MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close") != MHD_YES)) {
		MHD_destroy_response(resp);
		return MHD_NO;
	}
	if (r->status >= 400)
		atomic_fetch_add(&s->errors, 1);
	rq->answered = true;
	ret = MHD_queue_response(c, r->status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result queue_error(struct api_server *s, struct MHD_Connection *c,
				   struct api_req *rq, unsigned int status, const char *code,
				   const char *msg)
{
	struct api_reply r = { 0 };

	api_reply_error(&r, status, code, "%s", msg);
	r.close = true;
	return queue(s, c, rq, &r);
}

/* The declared Content-Length: 0 without one, UINT64_MAX if unreadable. */
static uint64_t declared_length(struct MHD_Connection *c)
{
	const char *v =
	    MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	unsigned long long n;
	char *end;

	if (!v)
		return 0;
	errno = 0;
	n = strtoull(v, &end, 10);
	/* MHD refuses a malformed Content-Length itself; be safe anyway. */
	return errno || end == v ? UINT64_MAX : n;
}

/*
 * Will the client send a body without waiting for our word?  Then a reply
 * decided from the headers alone waits until that body is read and dropped:
 * closing while the client still writes resets the connection (AF_UNIX
 * does, as TCP does), and it might never read the reply.  Not when it asked
 * with Expect: 100-continue (it waits), nor for a body too large to drop.
 */
static bool body_comes_unasked(struct api_server *s, struct MHD_Connection *c)
{
	const char *expect =
	    MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);
	uint64_t n = declared_length(c);

	/* It waits for a 100 Continue that will not come. */
	if (expect && strcasestr(expect, "100-continue"))
		return false;
	/* Chunked: dropped chunk by chunk, cut off past the limit (append_body()). */
	if (MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING))
		return true;
	return n && n / API_MAX_DROPPED <= s->max_body;
}

/* Answer @r, decided before the body: now, or once the body is dropped. */
static enum MHD_Result refuse(struct api_server *s, struct MHD_Connection *c, struct api_req *rq,
			      struct api_reply *r)
{
	r->close = true;
	if (!body_comes_unasked(s, c))
		return queue(s, c, rq, r);
	rq->later = *r;
	rq->has_later = true;
	return MHD_YES;
}

static enum MHD_Result refuse_error(struct api_server *s, struct MHD_Connection *c,
				    struct api_req *rq, unsigned int status, const char *code,
				    const char *msg)
{
	struct api_reply r = { 0 };

	api_reply_error(&r, status, code, "%s", msg);
	return refuse(s, c, rq, &r);
}

struct query_collect {
	struct api_query q[API_MAX_QUERY];
	size_t n;
	bool overflow;
};

static enum MHD_Result collect_arg(void *cls, enum MHD_ValueKind kind, const char *key,
				   const char *value)
{
	struct query_collect *qc = cls;

	if (qc->n == API_MAX_QUERY) {
		qc->overflow = true;
		return MHD_NO;
	}
	qc->q[qc->n].key = key;
	qc->q[qc->n].value = value;
	qc->n++;
	return MHD_YES;
}

static enum MHD_Result append_body(struct api_server *s, struct api_req *rq, const char *data,
				   size_t n)
{
	size_t cap;
	char *p;

	/*
	 * Answered already from the headers, or past the cap (a chunked body;
	 * a declared length was judged before): drop the rest for a clean
	 * reply, up to API_MAX_DROPPED times the cap, then close, so an endless
	 * body does not keep the thread reading.
	 */
	if (rq->has_later || rq->too_large || n > s->max_body - rq->len) {
		if (!rq->has_later && !rq->too_large) {
			rq->too_large = true;
			free(rq->body);
			rq->body = NULL;
			rq->len = rq->cap = 0;
		}
		rq->dropped += n;
		return rq->dropped / API_MAX_DROPPED > s->max_body ? MHD_NO : MHD_YES;
	}
	if (rq->len + n > rq->cap) {
		cap = rq->cap ? rq->cap : 1024;
		while (cap < rq->len + n)
			cap *= 2;
		if (cap > s->max_body)
			cap = s->max_body;
		p = realloc(rq->body, cap);
		if (!p)
			return MHD_NO;
		rq->body = p;
		rq->cap = cap;
	}
	memcpy(rq->body + rq->len, data, n);
	rq->len += n;
	return MHD_YES;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
			      const char *method, const char *version, const char *upload_data,
			      size_t *upload_data_size, void **con_cls)
{
	struct api_server *s = cls;
	struct api_req *rq = *con_cls;
	struct query_collect qc = { .n = 0 };
	struct api_request req;
	struct api_reply r = { 0 };
	char msg[128];

	if (!rq) {
		/* The headers are in: what can be refused before reading a body. */
		rq = calloc(1, sizeof(*rq));
		if (!rq)
			return MHD_NO;
		*con_cls = rq;
		atomic_fetch_add(&s->requests, 1);
		if (atomic_load(&s->open) > s->max_conns) {
			atomic_fetch_add(&s->rejected, 1);
			snprintf(msg, sizeof(msg), "more than %u connections are open; retry later",
				 s->max_conns);
			return refuse_error(s, c, rq, 503, "too_many_connections", msg);
		}
		/*
		 * HTTP/1.1 requires Host.  Checked here rather than with MHD's
		 * MHD_OPTION_STRICT_FOR_CLIENT, whose own 400 for it (0.9.75)
		 * is HTML with its header block sent twice.
		 */
		if (!strcmp(version, MHD_HTTP_VERSION_1_1) &&
		    !MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST))
			return refuse_error(s, c, rq, 400, "bad_request",
					    "an HTTP/1.1 request needs a Host header");
		if (declared_length(c) > s->max_body) {
			snprintf(msg, sizeof(msg), "the body is larger than %zu bytes",
				 s->max_body);
			return refuse_error(s, c, rq, 413, "body_too_large", msg);
		}
		if (api_route_check(method, url, &r))
			return refuse(s, c, rq, &r);
		return MHD_YES;
	}
	if (*upload_data_size) {
		size_t n = *upload_data_size;

		*upload_data_size = 0;
		if (rq->answered)
			return MHD_YES;
		return append_body(s, rq, upload_data, n);
	}
	if (rq->answered)
		return MHD_YES;
	if (rq->has_later) {
		r = rq->later;
		rq->later = (struct api_reply){ 0 };
		return queue(s, c, rq, &r);
	}
	if (rq->too_large) {
		snprintf(msg, sizeof(msg), "the body is larger than %zu bytes", s->max_body);
		return queue_error(s, c, rq, 413, "body_too_large", msg);
	}
	MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, collect_arg, &qc);
	if (qc.overflow) {
		snprintf(msg, sizeof(msg), "more than %d query arguments", API_MAX_QUERY);
		return queue_error(s, c, rq, 400, "bad_query", msg);
	}
	req = (struct api_request){
		.method = method,
		.path = url,
		.query = qc.q,
		.nquery = qc.n,
		.body = rq->body ? rq->body : "",
		.len = rq->len,
	};
	api_route(s->ops, s->ctx, &req, &r);
	return queue(s, c, rq, &r);
}

int api_server_start(const struct api_server_config *cfg, struct api_server **out, char *err,
		     size_t errlen)
{
	struct api_server *s;
	unsigned int timeout;
	int fd, mhd_fd, ret;

	if (!cfg || !cfg->path || !*cfg->path || !cfg->ops) {
		snprintf(err, errlen, "api: no socket path or no backend");
		return -EINVAL;
	}
	if (strlen(cfg->path) >= sizeof(s->path)) {
		snprintf(err, errlen, "%s: longer than a UNIX socket path (%zu bytes)", cfg->path,
			 sizeof(s->path) - 1);
		return -ENAMETOOLONG;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "api: out of memory");
		return -ENOMEM;
	}
	strcpy(s->path, cfg->path);
	s->ops = cfg->ops;
	s->ctx = cfg->ctx;
	s->max_body = cfg->max_body ? cfg->max_body : API_DEFAULT_MAX_BODY;
	s->max_conns = cfg->max_conns ? cfg->max_conns : API_DEFAULT_MAX_CONNS;
	timeout = cfg->timeout_s ? cfg->timeout_s : API_DEFAULT_TIMEOUT_S;

	fd = make_socket(s, err, errlen);
	if (fd < 0) {
		ret = fd;
		goto err_free;
	}
	/*
	 * MHD gets a duplicate: whether it closes the socket it was given
	 * when it fails to start is not documented, so we close our own and,
	 * if still open, theirs (same inode: not a number reused meanwhile).
	 */
	mhd_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (mhd_fd < 0) {
		ret = fail(err, errlen, -errno, "%s: dup: %s", s->path);
		goto err_socket;
	}
	s->mhd = MHD_start_daemon(
	    MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ERROR_LOG, 0, NULL, NULL,
	    handle, s, MHD_OPTION_LISTEN_SOCKET, (MHD_socket)mhd_fd, MHD_OPTION_EXTERNAL_LOGGER,
	    mhd_log, s, MHD_OPTION_CONNECTION_LIMIT, (unsigned int)(2 * s->max_conns),
	    MHD_OPTION_CONNECTION_TIMEOUT, timeout, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
	    (size_t)API_HEADER_MEMORY, MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
	    MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_END);
	if (!s->mhd) {
		snprintf(err, errlen, "%s: libmicrohttpd would not start on the socket%s%s",
			 s->path, *s->log ? ": " : "", s->log);
		ret = -EIO;
		if (same_socket(mhd_fd, fd))
			close(mhd_fd);
		goto err_socket;
	}
	/* MHD owns mhd_fd now (MHD_stop_daemon() closes it). */
	close(fd);
	*out = s;
	return 0;

err_socket:
	close(fd);
	remove_socket(s);
err_free:
	free(s);
	return ret;
}

void api_server_stop(struct api_server *s)
{
	if (!s)
		return;
	/* Joins the MHD thread, closes every connection and the listening socket. */
	MHD_stop_daemon(s->mhd);
	remove_socket(s);
	free(s);
}

const char *api_server_path(const struct api_server *s)
{
	return s->path;
}

void api_server_get_stats(struct api_server *s, struct api_server_stats *st)
{
	st->requests = atomic_load(&s->requests);
	st->errors = atomic_load(&s->errors);
	st->connections = atomic_load(&s->connections);
	st->rejected = atomic_load(&s->rejected);
	st->open = atomic_load(&s->open);
}
