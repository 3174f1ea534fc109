// SPDX-License-Identifier: MIT
/* hello: one line, exit 0. */
#include "guest/test/console.h"
#include "guest/test/guest.h"

static int hello_run(const struct wl_ctx *ctx)
{
	con_printf("hello from forkvm test guest, %u vCPUs\n", ctx->ncpus);
	return 0;
}

const struct workload wl_hello = { "hello", false, hello_run };
