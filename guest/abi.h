/* SPDX-License-Identifier: MIT */
/*
 * The contract between forkvm and its test guest: the VMM's own I/O ports
 * (docs/boot-protocol.md).  One home, included by the VMM (vmm/ports.h) and
 * by the freestanding guest (guest/test/io.h); plain constants only, so both
 * builds can include it.
 */
#ifndef FORKVM_GUEST_ABI_H
#define FORKVM_GUEST_ABI_H

#define PORT_EXIT 0x501 /* out: the guest's exit status; stops the machine */
#define PORT_EXCEPTION 0x502 /* out: a vector, written by the VMM's ring-0 stubs */
#define PORT_RESULT 0x503 /* out: a 32-bit value, printed as a "result: 0x%08x" line */

/*
 * Guest-initiated fork, like fork(2).  `outl FORK_MAGIC, PORT_FORK` asks the
 * VMM to clone the machine at that instruction (the vCPU that wrote it and
 * every other vCPU stop at an instruction boundary); then `inl PORT_FORK`
 * reads the result on each side: the child's id (> 0) in the parent, 0 in
 * the child, FORK_FAILED in the parent when no child could be made (the
 * reason is on the VMM's stderr).  An inl with no fork asked returns
 * FORK_NONE.  Any other value written is ignored.
 */
#define PORT_FORK 0x504
#define FORK_MAGIC 0x464f524bu /* "FORK" */
#define FORK_FAILED 0xffffffffu
#define FORK_NONE 0xfffffffeu

/*
 * in: fresh random bytes from the host (getrandom), any width.  A forked
 * Linux guest's child reseeds its RNG from them (guest/linux/fork.c).
 */
#define PORT_ENTROPY 0x508

#endif /* FORKVM_GUEST_ABI_H */
