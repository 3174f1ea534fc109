#!/usr/bin/env bash
# make bench: every bench/ program, each printing `name: value` lines and ratios
# against a baseline measured in the same run.  The KVM benches go through
# scripts/in-kvm (directly, or in the nested guest).
# Usage: scripts/run-bench.sh OUT
set -uo pipefail
OUT=${1:-build}
rc=0

run() {
	echo "== bench: $*"
	"$@" || { echo "!! bench failed: $*"; rc=1; }
	echo
}

run "$OUT/bench/clone_vs_fork"
run "$OUT/bench/cow_fault_vs_host"
run "$OUT/bench/fork10"
run "$OUT/bench/serverless"
run "$OUT/bench/disk_layers"
run "$OUT/bench/api_latency"
run "$OUT/bench/seccomp_cost"
# The KVM benches, each through scripts/in-kvm (one nested boot each there).
run_kvm() {
	[ -x "$OUT/bench/$1" ] || return 0
	echo "== bench: $1 (through scripts/in-kvm)"
	scripts/in-kvm "$OUT/bench/$1" || { echo "!! bench failed: $1"; rc=1; }
	echo
}
run_kvm kvm_costs
run_kvm clone_pause_inflight
run_kvm clone_vm_vs_fork
run_kvm snapshot
run_kvm snapshot_restore
# linux_boot also boots QEMU inside, which needs its binary and firmware.
FORKVM_NESTED_FILES="${FORKVM_NESTED_FILES:-/usr/bin/qemu-system-x86_64 /usr/share/seabios/bios-256k.bin /usr/share/qemu/linuxboot_dma.bin /usr/share/qemu/kvmvapic.bin}" \
	run_kvm linux_boot
exit $rc
