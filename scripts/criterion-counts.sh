# Sourced by run-tests.sh and run-integration.sh.
# criterion_counts LOG: sets crit_passed and crit_failed from the last
# "[====] Synthesis: Tested: N | Passing: P | Failing: F | Crashing: C" line of
# LOG (colours stripped).  Failing already counts crashes.  A log without a
# synthesis line (the binary died first) counts as one failed test.
criterion_counts() {
	local syn
	syn=$(sed 's/\x1b\[[0-9;]*m//g' "$1" | grep -a 'Synthesis: Tested:' | tail -n 1 || true)
	crit_passed=$(echo "$syn" | sed -n 's/.*Passing: *\([0-9]*\).*/\1/p')
	crit_failed=$(echo "$syn" | sed -n 's/.*Failing: *\([0-9]*\).*/\1/p')
	crit_passed=${crit_passed:-0}
	crit_failed=${crit_failed:-1}
}
