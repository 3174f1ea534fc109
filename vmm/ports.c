// SPDX-License-Identifier: MIT
/* Ports 0x501-0x504 and 0x508: exit, exception reports, results, fork, entropy. */
#include "vmm/ports.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "vmm/cpus.h"
#include "vmm/vcpu.h"

static const char *const exception_names[32] = {
	"#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "CSO", "#TS",
	"#NP", "#SS", "#GP", "#PF", "",	   "#MF", "#AC", "#MC", "#XM", "#VE", "#CP",
};

const char *ports_exception_name(uint32_t vector)
{
	if (vector < 32 && exception_names[vector])
		return exception_names[vector];
	return "";
}

static void exception_word(struct vcpu *v, uint32_t value)
{
	char msg[256];
	uint64_t rip;

	v->exc[v->nexc++] = value;
	if (v->nexc < 4)
		return;
	v->nexc = 0;
	rip = (uint64_t)v->exc[3] << 32 | v->exc[2];
	snprintf(msg, sizeof(msg),
		 "guest exception on vCPU %u: vector %u %s, error code 0x%x, RIP 0x%llx", v->index,
		 v->exc[0], ports_exception_name(v->exc[0]), v->exc[1], (unsigned long long)rip);
	cpus_stop(v->cpus, CPUS_STATUS_GUEST_CRASH, msg);
}

bool ports_out(struct vcpu *v, uint16_t port, uint32_t value)
{
	switch (port) {
	case PORT_EXIT:
		/* Guest value: the protocol says 0-255; anything larger still fails. */
		cpus_stop(v->cpus, value > 255 ? 255 : (int)value, NULL);
		return true;
	case PORT_EXCEPTION:
		exception_word(v, value);
		return true;
	case PORT_RESULT:
		cpus_add_result(v->cpus, value);
		return true;
	case PORT_FORK:
		/* Guest value: only the magic asks; anything else is ignored. */
		if (value == FORK_MAGIC)
			cpus_fork_request(v->cpus, v);
		return true;
	default:
		return false;
	}
}

bool ports_in(struct vcpu *v, uint16_t port, void *data, unsigned int size)
{
	uint32_t value;

	if (port == PORT_ENTROPY) {
		/* size <= 4: getrandom never returns short for that. */
		if (getrandom(data, size, 0) != (ssize_t)size)
			memset(data, 0xff, size);
		return true;
	}
	if (port != PORT_FORK)
		return false;
	value = __atomic_load_n(&v->cpus->fork_result, __ATOMIC_SEQ_CST);
	/* size is 1, 2 or 4 (checked by the caller): the low bytes, as a PC. */
	memcpy(data, &value, size);
	return true;
}
