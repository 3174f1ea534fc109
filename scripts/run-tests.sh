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

run_unit() {
	local t
	for t in "$OUT"/tests/unit/test_*; do
		[ -x "$t" ] || continue
		echo "== unit: ${t##*/}"
		if "$t" --jobs 2; then
			passed=$((passed + 1))
		else
			failed=$((failed + 1))
			failed_names+=("unit/${t##*/}")
		fi
	done
}

run_integration() {
	echo "== integration tests (KVM)"
	local log rc t0=$SECONDS
	log=$(mktemp)
	FORKVM_OUT="$OUT" scripts/in-kvm scripts/run-integration.sh "$OUT" 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	# Repeat the path and the count at the end, where the summary is read.
	integ_summary=$(grep -a -E '^(in-kvm: path:|integration: [0-9]+ passed)' "$log" | sed 's/^/   /')
	integ_summary+=$'\n'"   integration wall time (incl. any nested boot): $((SECONDS - t0)) s"
	rm -f "$log"
	if [ "$rc" -eq 0 ]; then
		passed=$((passed + 1))
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
[ "$failed" -eq 0 ]
