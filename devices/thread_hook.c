// SPDX-License-Identifier: MIT
/* The hook of devices/thread_hook.h. */
#include "devices/thread_hook.h"

void (*devices_thread_start_hook)(const char *kind);
