// SPDX-License-Identifier: MIT
/* The hook of mm/thread_hook.h. */
#include "mm/thread_hook.h"

void (*mm_thread_start_hook)(const char *kind);
