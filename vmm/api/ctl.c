// SPDX-License-Identifier: MIT
/*
 * `forkvm ctl`: one HTTP request over the API's UNIX socket per command,
 * human-readable output, or the raw JSON with --json.
 */
#include "vmm/api/ctl.h"

#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define CTL_MAX_ANSWER (16u << 20) /* bytes; an answer larger than this is refused */

static const char ctl_usage[] =
    "usage: forkvm ctl SOCKET VERB [ARGS] [--json]\n"
    "Talk to a forkvm serving its control API on SOCKET (run --api SOCKET).\n"
    "  list                       the VMs of the family\n"
    "  show ID                    one VM: state and memory figures\n"
    "  pause ID | resume ID | kill ID\n"
    "  clone ID [COUNT]           COUNT live clones of VM ID (default 1); their ids\n"
    "  snapshot ID DIR [--kind K] [--base DIR0] [--keep]\n"
    "                             write VM ID into DIR (absolute, must not exist);\n"
    "                             K full (default), live, diff (of the kept DIR0);\n"
    "                             --keep: keep it as the base of a later diff\n"
    "  console ID [LINES]         the last LINES lines of its console (default 20)\n"
    "  family                     the family's memory\n"
    "  version                    the API's version\n"
    "  --json                     print the server's JSON answer as it is\n"
    "Exit status: 0 done; 1 the server answered an error or could not be reached;\n"
    "2 bad arguments.\n";

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Wait for @events on @fd until @deadline.  Return: 0 or -ETIMEDOUT / -errno. */
static int wait_fd(int fd, short events, uint64_t deadline)
{
	struct pollfd p = { .fd = fd, .events = events };
	uint64_t now;
	int n;

	for (;;) {
		now = now_ms();
		if (now >= deadline)
			return -ETIMEDOUT;
		n = poll(&p, 1, (int)(deadline - now));
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -errno;
	}
}

static int send_all(int fd, const char *p, size_t n, uint64_t deadline)
{
	ssize_t w;
	int ret;

	while (n) {
		ret = wait_fd(fd, POLLOUT, deadline);
		if (ret)
			return ret;
		w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Decode a chunked body in place.  Return: its length, or -EPROTO. */
static long dechunk(char *b, size_t n)
{
	size_t in = 0, out = 0, sz;
	char *end;

	for (;;) {
		if (in >= n)
			return -EPROTO;
		errno = 0;
		sz = strtoul(b + in, &end, 16);
		if (errno || end == b + in)
			return -EPROTO;
		end = memmem(end, n - (size_t)(end - b), "\r\n", 2);
		if (!end)
			return -EPROTO;
		in = (size_t)(end - b) + 2;
		if (!sz)
			return (long)out;
		if (sz > n - in)
			return -EPROTO;
		memmove(b + out, b + in, sz);
		out += sz;
		in += sz + 2;
	}
}

/* Split the answer in @buf (@n bytes) into *@status and the body, in place. */
static int parse_answer(char *buf, size_t n, unsigned int *status, char **resp, size_t *len,
			char *err, size_t errlen)
{
	char *hdr_end, *p, *line;
	bool chunked = false;
	size_t body_len;
	long d;

	buf[n] = '\0';
	if (n < 12 || strncmp(buf, "HTTP/1.", 7) || buf[8] != ' ') {
		snprintf(err, errlen, "the server's answer is not HTTP");
		return -EPROTO;
	}
	*status = (unsigned int)strtoul(buf + 9, NULL, 10);
	hdr_end = memmem(buf, n, "\r\n\r\n", 4);
	if (!hdr_end) {
		snprintf(err, errlen, "the server's answer has no end of headers");
		return -EPROTO;
	}
	*hdr_end = '\0';
	for (line = strstr(buf, "\r\n"); line; line = strstr(line + 2, "\r\n")) {
		p = line + 2;
		if (!strncasecmp(p, "Transfer-Encoding:", 18) && strcasestr(p, "chunked"))
			chunked = true;
	}
	p = hdr_end + 4;
	body_len = n - (size_t)(p - buf);
	if (chunked) {
		d = dechunk(p, body_len);
		if (d < 0) {
			snprintf(err, errlen, "the server's chunked answer is malformed");
			return -EPROTO;
		}
		body_len = (size_t)d;
	}
	memmove(buf, p, body_len);
	buf[body_len] = '\0';
	*resp = buf;
	*len = body_len;
	return 0;
}

int api_client_call(const char *sock, const char *method, const char *path, const char *body,
		    unsigned int *status, char **resp, size_t *len, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	uint64_t deadline = now_ms() + CTL_TIMEOUT_MS;
	size_t blen = body ? strlen(body) : 0, n = 0, cap = 4096;
	char head[1024], *buf = NULL, *p;
	int fd, ret, hl;
	ssize_t r;

	*resp = NULL;
	*len = 0;
	if (strlen(sock) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "%s: longer than a UNIX socket path", sock);
		return -ENAMETOOLONG;
	}
	if (strpbrk(method, " \r\n") || strpbrk(path, " \r\n")) {
		snprintf(err, errlen, "a space or line break in the request line");
		return -EINVAL;
	}
	strcpy(sa.sun_path, sock);
	hl = snprintf(head, sizeof(head),
		      "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
		      "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
		      method, path, blen);
	if (hl < 0 || (size_t)hl >= sizeof(head)) {
		snprintf(err, errlen, "the request path is too long");
		return -EINVAL;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return ret;
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		ret = -errno;
		snprintf(err, errlen, "%s: %s (is forkvm running with --api %s?)", sock,
			 strerror(errno), sock);
		goto err_fd;
	}
	ret = send_all(fd, head, (size_t)hl, deadline);
	if (!ret && blen)
		ret = send_all(fd, body, blen, deadline);
	if (ret) {
		snprintf(err, errlen, "%s: sending the request: %s", sock, strerror(-ret));
		goto err_fd;
	}
	buf = malloc(cap + 1);
	if (!buf) {
		ret = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto err_fd;
	}
	for (;;) {
		if (n == cap) {
			if (cap >= CTL_MAX_ANSWER) {
				ret = -EFBIG;
				snprintf(err, errlen, "the answer is larger than %u bytes",
					 CTL_MAX_ANSWER);
				goto err_buf;
			}
			cap *= 2;
			p = realloc(buf, cap + 1);
			if (!p) {
				ret = -ENOMEM;
				snprintf(err, errlen, "out of memory");
				goto err_buf;
			}
			buf = p;
		}
		ret = wait_fd(fd, POLLIN, deadline);
		if (ret) {
			snprintf(err, errlen, "%s: no answer: %s", sock, strerror(-ret));
			goto err_buf;
		}
		r = recv(fd, buf + n, cap - n, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			/* A reset after a complete answer (the server closed first) is fine. */
			if (n && memmem(buf, n, "\r\n\r\n", 4))
				break;
			snprintf(err, errlen, "%s: reading the answer: %s", sock, strerror(errno));
			goto err_buf;
		}
		if (!r)
			break;
		n += (size_t)r;
	}
	close(fd);
	ret = parse_answer(buf, n, status, resp, len, err, errlen);
	if (ret)
		free(buf);
	return ret;

err_buf:
	free(buf);
err_fd:
	close(fd);
	return ret;
}

/* ---- the ctl command ----------------------------------------------------------- */

static bool is_number(const char *s)
{
	return *s && strlen(s) <= 10 && strspn(s, "0123456789") == strlen(s);
}

static int usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "forkvm ctl: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, " (see forkvm ctl --help)\n");
	return 2;
}

static void print_stat(const char *name, json_t *v)
{
	if (json_is_integer(v))
		printf("  %-16s %lld\n", name, (long long)json_integer_value(v));
	else
		printf("  %-16s -\n", name);
}

static void print_vm_line(json_t *vm)
{
	json_t *parent = json_object_get(vm, "parent");
	json_t *exit_status = json_object_get(vm, "exit_status");
	char from[16] = "-", code[16] = "-";

	if (json_is_integer(parent))
		snprintf(from, sizeof(from), "%lld", (long long)json_integer_value(parent));
	if (json_is_integer(exit_status))
		snprintf(code, sizeof(code), "%lld", (long long)json_integer_value(exit_status));
	printf("%-5lld %-8s %-6s %-5s%s\n",
	       (long long)json_integer_value(json_object_get(vm, "id")),
	       json_string_value(json_object_get(vm, "state")) ?: "?", from, code,
	       json_is_true(json_object_get(vm, "guest_fork")) ? " guest-fork" : "");
}

/* The human form of a 2xx answer @j to @verb. */
static void print_human(const char *verb, json_t *j)
{
	const char *key;
	json_t *v, *o;
	size_t i;

	if (!strcmp(verb, "list")) {
		printf("ID    STATE    PARENT EXIT\n");
		json_array_foreach(json_object_get(j, "vms"), i, v) print_vm_line(v);
	} else if (!strcmp(verb, "show")) {
		printf("ID    STATE    PARENT EXIT\n");
		print_vm_line(j);
		json_object_foreach(json_object_get(j, "stats"), key, v) print_stat(key, v);
	} else if (!strcmp(verb, "clone")) {
		printf("new VMs:");
		json_array_foreach(json_object_get(j, "ids"), i, v)
		    printf(" %lld", (long long)json_integer_value(v));
		printf("\n");
	} else if (!strcmp(verb, "snapshot")) {
		const char *base = json_string_value(json_object_get(j, "base"));

		printf("VM %lld: %s snapshot in %s%s%s%s\n",
		       (long long)json_integer_value(json_object_get(j, "id")),
		       json_string_value(json_object_get(j, "kind")) ?: "?",
		       json_string_value(json_object_get(j, "dir")) ?: "?", base ? " of " : "",
		       base ? base : "",
		       json_is_true(json_object_get(j, "kept")) ? " (kept as a base)" : "");
		/* The figures: every number or null of the answer. */
		json_object_foreach(j, key, v)
		{
			if (strcmp(key, "id") && (json_is_integer(v) || json_is_null(v)) &&
			    strcmp(key, "base"))
				print_stat(key, v);
		}
	} else if (!strcmp(verb, "console")) {
		json_array_foreach(json_object_get(j, "lines"), i, v)
		    printf("%s\n", json_string_value(v) ?: "");
	} else if (!strcmp(verb, "family")) {
		printf("VMs: %lld (%lld running or paused)\n",
		       (long long)json_integer_value(json_object_get(j, "vms")),
		       (long long)json_integer_value(json_object_get(j, "running")));
		o = json_object_get(j, "memory");
		json_object_foreach(o, key, v) print_stat(key, v);
	} else if (!strcmp(verb, "version")) {
		printf("%s API %lld\n", json_string_value(json_object_get(j, "name")) ?: "?",
		       (long long)json_integer_value(json_object_get(j, "api")));
	} else {
		/* pause, resume, kill: the VM as it is now. */
		printf("VM %lld: %s\n", (long long)json_integer_value(json_object_get(j, "id")),
		       json_string_value(json_object_get(j, "state")) ?: "?");
	}
}

int ctl_main(int argc, char **argv)
{
	const char *args[5], *sock, *verb, *method = "POST", *kind = NULL, *base = NULL;
	char path[256], err[512], *resp = NULL, *body = NULL;
	unsigned int status = 0, nargs = 0;
	bool json_out = false, keep = false, snap_opts = false;
	json_t *j;
	size_t len;
	int i, ret;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json_out = true;
		else if (!strcmp(argv[i], "--keep"))
			keep = snap_opts = true;
		else if (!strcmp(argv[i], "--kind") || !strcmp(argv[i], "--base")) {
			if (i + 1 == argc || !*argv[i + 1])
				return usage_error("%s: missing value", argv[i]);
			*(argv[i][2] == 'k' ? &kind : &base) = argv[i + 1];
			snap_opts = true;
			i++;
		} else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			fputs(ctl_usage, stdout);
			return 0;
		} else if (argv[i][0] == '-' && argv[i][1])
			return usage_error("%s: unknown option", argv[i]);
		else if (nargs == 5)
			return usage_error("'%s': unexpected argument", argv[i]);
		else
			args[nargs++] = argv[i];
	}
	if (nargs < 2)
		return usage_error("missing %s", nargs ? "VERB" : "SOCKET and VERB");
	sock = args[0];
	verb = args[1];
	if (!strcmp(verb, "list") || !strcmp(verb, "family") || !strcmp(verb, "version")) {
		if (nargs > 2)
			return usage_error("'%s': unexpected argument", args[2]);
		method = "GET";
		snprintf(path, sizeof(path), "/%s", !strcmp(verb, "list") ? "vms" : verb);
		goto call;
	}
	if (strcmp(verb, "show") && strcmp(verb, "pause") && strcmp(verb, "resume") &&
	    strcmp(verb, "kill") && strcmp(verb, "clone") && strcmp(verb, "snapshot") &&
	    strcmp(verb, "console"))
		return usage_error("'%s': unknown verb", verb);
	if (nargs < 3 || !is_number(args[2]))
		return usage_error("%s: expected a VM id (0, 1, ...)", verb);
	if (snap_opts && strcmp(verb, "snapshot"))
		return usage_error("%s: --kind, --base and --keep are snapshot options", verb);
	if (!strcmp(verb, "show") || !strcmp(verb, "console"))
		method = "GET";
	if (!strcmp(verb, "show")) {
		if (nargs > 3)
			return usage_error("'%s': unexpected argument", args[3]);
		snprintf(path, sizeof(path), "/vms/%s", args[2]);
	} else if (!strcmp(verb, "console")) {
		if (nargs > 4 || (nargs == 4 && !is_number(args[3])))
			return usage_error("console: LINES: expected a number%s", "");
		snprintf(path, sizeof(path), "/vms/%s/console%s%s", args[2],
			 nargs == 4 ? "?lines=" : "", nargs == 4 ? args[3] : "");
	} else if (!strcmp(verb, "clone")) {
		if (nargs > 4 || (nargs == 4 && !is_number(args[3])))
			return usage_error("clone: COUNT: expected a number%s", "");
		snprintf(path, sizeof(path), "/vms/%s/clone", args[2]);
		j = json_pack("{s:I}", "count", nargs == 4 ? strtoll(args[3], NULL, 10) : 1LL);
		body = j ? json_dumps(j, JSON_COMPACT) : NULL;
		json_decref(j);
	} else if (!strcmp(verb, "snapshot")) {
		if (nargs < 4)
			return usage_error("snapshot: DIR: missing%s", "");
		/* KIND as a last word: the older form of --kind. */
		if (nargs == 5 && kind)
			return usage_error("snapshot: '%s': the kind is given by --kind", args[4]);
		if (nargs == 5)
			kind = args[4];
		snprintf(path, sizeof(path), "/vms/%s/snapshot", args[2]);
		/* What was not given is not sent: the server's defaults apply. */
		j = json_pack("{s:s}", "dir", args[3]);
		if (!j)
			return usage_error("snapshot: DIR '%s' is not UTF-8", args[3]);
		if ((kind && json_object_set_new(j, "kind", json_string(kind))) ||
		    (base && json_object_set_new(j, "base", json_string(base))) ||
		    (keep && json_object_set_new(j, "keep", json_true()))) {
			json_decref(j);
			return usage_error("snapshot: '%s': not UTF-8", kind ? kind : base);
		}
		body = json_dumps(j, JSON_COMPACT);
		json_decref(j);
	} else {
		if (nargs > 3)
			return usage_error("'%s': unexpected argument", args[3]);
		snprintf(path, sizeof(path), "/vms/%s/%s", args[2], verb);
	}
call:
	ret = api_client_call(sock, method, path, body, &status, &resp, &len, err, sizeof(err));
	free(body);
	if (ret) {
		fprintf(stderr, "forkvm ctl: %s\n", err);
		return 1;
	}
	j = json_loadb(resp, len, 0, NULL);
	if (json_out) {
		fwrite(resp, 1, len, stdout);
		if (!len || resp[len - 1] != '\n')
			putchar('\n');
	} else if (status >= 200 && status < 300 && j) {
		print_human(verb, j);
	}
	if (status < 200 || status >= 300) {
		json_t *e = json_object_get(j, "error");

		if (json_is_object(e))
			fprintf(stderr, "forkvm ctl: %s (HTTP %u, %s)\n",
				json_string_value(json_object_get(e, "message")) ?: "?", status,
				json_string_value(json_object_get(e, "code")) ?: "?");
		else
			fprintf(stderr, "forkvm ctl: HTTP %u\n", status);
		ret = 1;
	} else if (!j) {
		fprintf(stderr, "forkvm ctl: the answer is not JSON\n");
		ret = 1;
	}
	json_decref(j);
	free(resp);
	return ret;
}
