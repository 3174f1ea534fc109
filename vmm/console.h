/* SPDX-License-Identifier: MIT */
/*
 * A console tap: a pipe between a guest's serial port and the real output,
 * with a thread that writes each line prefixed (so that the consoles of a
 * parent and its clones can be told apart on one terminal) and counts lines
 * (so that the VMM can wait for the guest's first line).
 */
#ifndef FORKVM_VMM_CONSOLE_H
#define FORKVM_VMM_CONSOLE_H

struct console_tap;

/**
 * console_tap_create() - a tap that writes "@prefix<line>" to @out_fd (not
 * owned) for every line written into console_tap_fd().
 * Return: 0 or -errno.
 */
int console_tap_create(int out_fd, const char *prefix, struct console_tap **out)
    __attribute__((warn_unused_result));

/** console_tap_fd() - the write end, for the serial port. */
int console_tap_fd(const struct console_tap *t);

/**
 * console_tap_wait_lines() - wait until @n lines went through, at most
 * @timeout_ms.  Return: 0, or -ETIMEDOUT.
 */
int console_tap_wait_lines(struct console_tap *t, unsigned long n, unsigned int timeout_ms);

/** console_tap_lines() - the lines that went through so far. */
unsigned long console_tap_lines(struct console_tap *t);

/**
 * console_tap_destroy() - close the write end (nothing may write to it any
 * more: destroy the serial port first), write out what is left, join the
 * thread.  NULL is a no-op.
 */
void console_tap_destroy(struct console_tap *t);

#endif /* FORKVM_VMM_CONSOLE_H */
