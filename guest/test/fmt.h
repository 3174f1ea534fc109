/* SPDX-License-Identifier: MIT */
/*
 * A small printf core: %s %c %d %i %u %x %X %p %%, with 'l', 'll' and 'z'
 * length modifiers, '-' and '0' flags and a field width (or '*').
 * Pure C, so the host unit test can check it.
 */
#ifndef FORKVM_GUEST_TEST_FMT_H
#define FORKVM_GUEST_TEST_FMT_H

#include <stdarg.h>
#include <stddef.h>

typedef void (*fmt_out_fn)(char c, void *ctx);

/** fmt_vformat() - format into @out. Return: number of characters produced. */
int fmt_vformat(fmt_out_fn out, void *ctx, const char *fmt, va_list ap);

/** fmt_vsnprintf() - fmt_snprintf() with a va_list. */
int fmt_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/** fmt_snprintf() - like snprintf. Return: the length the full output would have. */
int fmt_snprintf(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif /* FORKVM_GUEST_TEST_FMT_H */
