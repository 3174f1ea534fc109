/* SPDX-License-Identifier: MIT */
/*
 * `forkvm run --clones N`: run the guest, clone it live N times, run every VM
 * to its end, report each VM's exit code and the family's memory use.
 */
#ifndef FORKVM_VMM_FAMILY_H
#define FORKVM_VMM_FAMILY_H

struct cli;

/**
 * family_run() - run @cli's machine and its clones (cli->clones >= 1).
 * Return: the process exit status: the parent's if non-zero, else the first
 * non-zero one of a clone, else 1 if a clone could not be made, else 0.
 */
int family_run(const struct cli *cli);

#endif /* FORKVM_VMM_FAMILY_H */
