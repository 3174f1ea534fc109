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
if [ -x "$OUT/bench/kvm_costs" ]; then
	echo "== bench: kvm_costs (through scripts/in-kvm)"
	scripts/in-kvm "$OUT/bench/kvm_costs" || { echo "!! bench failed: kvm_costs"; rc=1; }
fi
exit $rc
