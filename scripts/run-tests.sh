#!/usr/bin/env bash
# make test: the Criterion unit tests on the host, then the KVM integration
# tests through scripts/in-kvm (directly, or all in one nested-guest boot).
# Usage: scripts/run-tests.sh OUT unit|integration|all
set -uo pipefail
OUT=${1:-build}
WHAT=${2:-all}
passed=0
failed=0
failed_names=()
tests_passed=0
tests_failed=0

# shellcheck source=scripts/criterion-counts.sh
. "$(dirname "$0")/criterion-counts.sh"

# Adds a Criterion log's counts to the totals.
count_synthesis() {
	criterion_counts "$1"
	tests_passed=$((tests_passed + crit_passed))
	tests_failed=$((tests_failed + crit_failed))
}

run_unit() {
	local t log rc
	log=$(mktemp)
	for t in "$OUT"/tests/unit/test_*; do
		[ -x "$t" ] || continue
		echo "== unit: ${t##*/}"
		"$t" --jobs 2 2>&1 | tee "$log"
		rc=${PIPESTATUS[0]}
		count_synthesis "$log"
		if [ "$rc" -eq 0 ]; then
			passed=$((passed + 1))
		else
			failed=$((failed + 1))
			failed_names+=("unit/${t##*/}")
		fi
	done
	rm -f "$log"
}

run_integration() {
	echo "== integration tests (KVM)"
	local log rc t0=$SECONDS
	log=$(mktemp)
	# The whole suite is one nested run: it needs more than in-kvm's default
	# 600 s on a loaded 2-core machine (Linux guests boot inside it).
	FORKVM_NESTED_TIMEOUT=${FORKVM_NESTED_TIMEOUT:-1500} FORKVM_OUT="$OUT" \
		scripts/in-kvm scripts/run-integration.sh "$OUT" 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	# Repeat the path and the count at the end, where the summary is read.
	integ_summary=$(grep -a -E '^(in-kvm: path:|integration: [0-9]+ passed)' "$log" | sed 's/^/   /')
	[ -z "$integ_summary" ] || integ_summary+=$'\n'
	integ_summary+="   integration wall time (incl. any nested boot): $((SECONDS - t0)) s"
	local line
	line=$(grep -a -E '^integration: [0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1 || true)
	if [ -n "$line" ]; then
		tests_passed=$((tests_passed + $(echo "$line" | sed 's/^integration: \([0-9]*\) passed.*/\1/')))
		tests_failed=$((tests_failed + $(echo "$line" | sed 's/.* \([0-9]*\) failed.*/\1/')))
	fi
	rm -f "$log"
	if [ "$rc" -eq 0 ]; then
		passed=$((passed + 1))
	elif [ "$rc" -eq 77 ] && [ "${CI:-}" = true ]; then
		# scripts/deps.sh installs QEMU: in CI a skip means the setup is broken.
		echo "!! integration tests could not run (in-kvm: 77, no KVM and no QEMU) and CI=true: FAILED"
		failed=$((failed + 1))
		failed_names+=("integration (skipped in CI)")
	elif [ "$rc" -eq 77 ]; then
		echo "!! integration tests SKIPPED: no usable KVM and no way to run the nested guest (see above)"
	else
		failed=$((failed + 1))
		failed_names+=("integration")
	fi
}

case "$WHAT" in
unit) run_unit ;;
integration) run_integration ;;
all) run_unit; run_integration ;;
*) echo "usage: $0 OUT unit|integration|all" >&2; exit 2 ;;
esac

[ -z "${integ_summary:-}" ] || echo "$integ_summary"
[ ${#failed_names[@]} -eq 0 ] || echo "failed suites: ${failed_names[*]}"
echo "suites: $passed passed, $failed failed"
echo "tests: $tests_passed passed, $tests_failed failed"
[ "$failed" -eq 0 ]
