// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdlib.h>

#include "devices/mm_guest_mem.h"
#include "mm/mm.h"

static int gm_read(void *opaque, uint64_t gpa, void *buf, size_t len)
{
	return space_read(opaque, gpa, buf, len);
}

static int gm_write(void *opaque, uint64_t gpa, const void *buf, size_t len)
{
	return space_write(opaque, gpa, buf, len);
}

static int gm_pin(void *opaque, uint64_t gpa, uint64_t len, bool write, struct dma_buf *out)
{
	struct mm_pin *pin = calloc(1, sizeof(*pin));
	int ret;

	if (!pin)
		return -ENOMEM;
	ret = space_pin(opaque, gpa, len, write ? MM_PIN_WRITE : 0, pin);
	if (ret) {
		free(pin);
		return ret;
	}
	out->niov = pin->niov;
	out->iov = pin->iov;
	out->priv = pin;
	return 0;
}

static void gm_unpin(void *opaque, struct dma_buf *buf)
{
	struct mm_pin *pin = buf->priv;

	if (!pin)
		return;
	space_unpin(pin);
	free(pin);
	buf->priv = NULL;
	buf->iov = NULL;
	buf->niov = 0;
}

static int gm_check(void *opaque, uint64_t gpa, uint64_t len)
{
	const struct space_range *r;
	unsigned int n, i;
	uint64_t end;

	if (len == 0 || __builtin_add_overflow(gpa, len, &end))
		return -EINVAL;
	r = space_ranges(opaque, &n);
	/* Ranges are sorted and do not overlap; a buffer lies in one (two
	 * adjacent ranges would be one range). */
	for (i = 0; i < n; i++)
		if (gpa >= r[i].gpa && end <= r[i].gpa + r[i].size)
			return 0;
	return -EFAULT;
}

void mm_guest_mem_init(struct guest_mem *gm, struct space *space)
{
	*gm = (struct guest_mem){
		.read = gm_read,
		.write = gm_write,
		.pin = gm_pin,
		.unpin = gm_unpin,
		.check = gm_check,
		.opaque = space,
	};
}
