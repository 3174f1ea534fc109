/* SPDX-License-Identifier: MIT */
/*
 * `forkvm ctl SOCKET VERB [ARGS] [--json]`: a thin client of the control API
 * (docs/api.md), and the one-request HTTP client under it.
 */
#ifndef FORKVM_VMM_API_CTL_H
#define FORKVM_VMM_API_CTL_H

#include <stddef.h>

#define CTL_TIMEOUT_MS 60000 /* a whole request; a clone of many VMs takes a while */

/**
 * api_client_call() - send one request to the API at @sock and read the
 * whole answer (the connection is closed after it).
 * @method, @path: the request line ("GET", "/vms?x=1"); no spaces or CR/LF.
 * @body: a JSON body, or NULL for none.
 * @status: the answer's HTTP status.
 * @resp: its body, malloc'd and NUL-terminated (free it); @len its length.
 * Return: 0, or -errno with @err (cannot connect, timeout, not HTTP).
 */
int api_client_call(const char *sock, const char *method, const char *path, const char *body,
		    unsigned int *status, char **resp, size_t *len, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/**
 * ctl_main() - the ctl command; @argv[0] is "ctl".
 * Return: the exit status: 0, 1 (an error answer, or no server), 2 (usage).
 */
int ctl_main(int argc, char **argv);

#endif /* FORKVM_VMM_API_CTL_H */
