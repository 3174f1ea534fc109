// SPDX-License-Identifier: MIT
#include <stdbool.h>
#include <stdint.h>

#include "guest/test/fmt.h"

struct fmt_spec {
	bool left;
	bool zero;
	int width;
};

static int emit_padded(fmt_out_fn out, void *ctx, const struct fmt_spec *sp, const char *s, int len,
		       const char *prefix)
{
	int plen = 0, pad, n = 0, i;

	while (prefix && prefix[plen])
		plen++;
	pad = sp->width > len + plen ? sp->width - len - plen : 0;
	if (!sp->left && !sp->zero)
		for (i = 0; i < pad; i++, n++)
			out(' ', ctx);
	for (i = 0; i < plen; i++, n++)
		out(prefix[i], ctx);
	if (!sp->left && sp->zero)
		for (i = 0; i < pad; i++, n++)
			out('0', ctx);
	for (i = 0; i < len; i++, n++)
		out(s[i], ctx);
	if (sp->left)
		for (i = 0; i < pad; i++, n++)
			out(' ', ctx);
	return n;
}

/* Digits of @v in @base into the end of @buf; returns the first digit. */
static char *utoa(uint64_t v, unsigned int base, bool upper, char *end)
{
	const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
	char *p = end;

	do {
		*--p = digits[v % base];
		v /= base;
	} while (v);
	return p;
}

int fmt_vformat(fmt_out_fn out, void *ctx, const char *fmt, va_list ap)
{
	char buf[24], *end = buf + sizeof(buf), *p;
	int n = 0;

	for (; *fmt; fmt++) {
		struct fmt_spec sp = { 0 };
		int lng = 0;
		uint64_t u;
		int64_t s;
		const char *str;
		int len;

		if (*fmt != '%') {
			out(*fmt, ctx);
			n++;
			continue;
		}
		fmt++;
		for (;; fmt++) {
			if (*fmt == '-')
				sp.left = true;
			else if (*fmt == '0')
				sp.zero = true;
			else
				break;
		}
		if (*fmt == '*') {
			sp.width = va_arg(ap, int);
			if (sp.width < 0) {
				sp.left = true;
				sp.width = -sp.width;
			}
			fmt++;
		}
		while (*fmt >= '0' && *fmt <= '9')
			sp.width = sp.width * 10 + (*fmt++ - '0');
		while (*fmt == 'l' || *fmt == 'z') {
			lng++;
			fmt++;
		}
		switch (*fmt) {
		case 'd':
		case 'i':
			s = lng ? va_arg(ap, long) : va_arg(ap, int);
			u = s < 0 ? -(uint64_t)s : (uint64_t)s;
			p = utoa(u, 10, false, end);
			n += emit_padded(out, ctx, &sp, p, end - p, s < 0 ? "-" : NULL);
			break;
		case 'u':
		case 'x':
		case 'X':
			u = lng ? va_arg(ap, unsigned long) : va_arg(ap, unsigned int);
			p = utoa(u, *fmt == 'u' ? 10 : 16, *fmt == 'X', end);
			n += emit_padded(out, ctx, &sp, p, end - p, NULL);
			break;
		case 'p':
			u = (uintptr_t)va_arg(ap, void *);
			p = utoa(u, 16, false, end);
			n += emit_padded(out, ctx, &sp, p, end - p, "0x");
			break;
		case 'c':
			buf[0] = (char)va_arg(ap, int);
			sp.zero = false;
			n += emit_padded(out, ctx, &sp, buf, 1, NULL);
			break;
		case 's':
			str = va_arg(ap, const char *);
			if (!str)
				str = "(null)";
			for (len = 0; str[len]; len++)
				;
			sp.zero = false;
			n += emit_padded(out, ctx, &sp, str, len, NULL);
			break;
		case '%':
			out('%', ctx);
			n++;
			break;
		case '\0':
			return n;
		default:
			/* Unknown conversion: show it as is. */
			out('%', ctx);
			out(*fmt, ctx);
			n += 2;
			break;
		}
	}
	return n;
}

struct sn_buf {
	char *buf;
	size_t size;
	size_t pos;
};

static void sn_out(char c, void *ctx)
{
	struct sn_buf *b = ctx;

	if (b->pos + 1 < b->size)
		b->buf[b->pos] = c;
	b->pos++;
}

int fmt_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
	struct sn_buf b = { buf, size, 0 };
	int n;

	n = fmt_vformat(sn_out, &b, fmt, ap);
	if (size)
		buf[b.pos < size ? b.pos : size - 1] = '\0';
	return n;
}

int fmt_snprintf(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = fmt_vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	return n;
}
