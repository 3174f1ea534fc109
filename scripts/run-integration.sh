#!/usr/bin/env bash
# scripts/run-integration.sh OUT
#
# Runs every $OUT/tests/integration/test_* (Criterion programs) one after the
# other, each with --jobs 1 (the nested guest has one single-threaded TCG vCPU),
# with FORKVM_BIN and FORKVM_GUEST pointing into OUT.  Meant to run under
# scripts/in-kvm, so that the whole suite takes one nested boot:
#     scripts/in-kvm scripts/run-integration.sh build
# Prints one line per binary and, last, exactly
#     integration: N passed, M failed
# where N and M count Criterion tests (from each binary's "Synthesis" line); a
# binary that dies before its synthesis counts as one failed test.  Exit 0 iff
# every test passed.  Skipped tests are reported on their own line.  A binary
# running over FORKVM_TEST_TIMEOUT seconds (default 240) is killed and fails.
set -euo pipefail

OUT=${1:?usage: scripts/run-integration.sh OUT}
[ -d "$OUT" ] || { echo "integration: FAILED: build directory '$OUT' does not exist" >&2; exit 2; }
OUT=$(cd "$OUT" && pwd)
export FORKVM_BIN=$OUT/forkvm
export FORKVM_GUEST=$OUT/guest/test.elf
path=${FORKVM_KVM_PATH:-unknown (not started by scripts/in-kvm)}
# Per binary: a hung test costs this much, not the whole nested run.
TEST_TIMEOUT=${FORKVM_TEST_TIMEOUT:-240}

passed=0
failed=0
skipped=0
nbins=0
failed_bins=()
log=$(mktemp "${TMPDIR:-/tmp}/integration.XXXXXX")
trap 'rm -f "$log"' EXIT

# shellcheck source=scripts/criterion-counts.sh
. "$(dirname "$0")/criterion-counts.sh"

now_us() { local t=${EPOCHREALTIME/[.,]/}; echo "$t"; }

# In the nested guest the kernel is Debian's 6.1, the oldest userfaultfd mm
# must serve (no cross-VMA write-protect): run mm's own suite there too.
extra=()
if [ "${FORKVM_KVM_PATH:-}" = nested ] && [ -x "$OUT/tests/unit/test_mm" ]; then
	echo "integration: also running mm's unit tests on the guest kernel ($(uname -r))"
	extra=("$OUT/tests/unit/test_mm")
fi

t_all=$(now_us)
for t in "$OUT"/tests/integration/test_* "${extra[@]}"; do
	if [ ! -f "$t" ] || [ ! -x "$t" ]; then continue; fi
	name=${t##*/}
	nbins=$((nbins + 1))
	echo "== integration: $name"
	t0=$(now_us)
	rc=0
	timeout -s TERM "$TEST_TIMEOUT" "$t" --jobs 1 --verbose 2>&1 | tee "$log" || rc=${PIPESTATUS[0]}
	dt=$((($(now_us) - t0) / 100000))
	# By the clock: coreutils' timeout says 124, busybox's passes on what
	# Criterion does with the TERM.
	if [ "$rc" -ne 0 ] && [ $((dt / 10)) -ge "$TEST_TIMEOUT" ]; then
		echo "integration: $name: TIMED OUT after $TEST_TIMEOUT s (FORKVM_TEST_TIMEOUT), killed"
	fi
	criterion_counts "$log"
	p=$crit_passed f=$crit_failed
	s=$(sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -ac '^\[SKIP\]' || true)
	# A binary that fails without a failing test (crash after the synthesis,
	# exit from a fixture) still counts as a failure.
	[ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1
	passed=$((passed + p))
	failed=$((failed + f))
	skipped=$((skipped + s))
	[ "$f" -eq 0 ] || failed_bins+=("$name")
	printf 'integration: %s: %s passed, %s failed, %s skipped (exit %s, %d.%d s)\n' \
		"$name" "$p" "$f" "$s" "$rc" $((dt / 10)) $((dt % 10))
done

dt=$((($(now_us) - t_all) / 100000))
[ "$nbins" -gt 0 ] || echo "integration: no test binaries in $OUT/tests/integration (did 'make all' run?)"
[ ${#failed_bins[@]} -eq 0 ] || echo "integration: failing binaries: ${failed_bins[*]}"
[ "$skipped" -eq 0 ] || echo "integration: $skipped test(s) SKIPPED (see [SKIP] lines above)"
echo "integration: $nbins binaries on the $path KVM path in $((dt / 10)).$((dt % 10)) s"
echo "integration: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$nbins" -gt 0 ]
