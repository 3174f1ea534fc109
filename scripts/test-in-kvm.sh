#!/usr/bin/env bash
# shellcheck disable=SC2016 # the single-quoted $ strings are meant literally
# scripts/test-in-kvm.sh: checks scripts/in-kvm itself (not part of make test;
# run it after changing in-kvm).  Two nested boots and two that never start:
#   - the command's status, cwd, arguments with spaces and quotes, passed
#     environment, a last line without a newline, /dev/kvm present inside;
#   - the run timeout gives 124 and the console tail;
#   - no QEMU and no KVM gives 77;
#   - a bad FORKVM_KVM gives 2.
# Prints "test-in-kvm: N passed, M failed"; exit 0 iff all passed.
set -euo pipefail
cd "$(dirname "$0")/.."
passed=0
failed=0
out=$(mktemp)
trap 'rm -f "$out"' EXIT

check() { # NAME CONDITION...
	local name=$1
	shift
	if "$@"; then
		passed=$((passed + 1))
		echo "test-in-kvm: ok   $name"
	else
		failed=$((failed + 1))
		echo "test-in-kvm: FAIL $name"
	fi
}

rc=0
(cd scripts && FORKVM_KVM=nested FORKVM_T1='a b$c"d' OTHER_T1=x FORKVM_NESTED_ENV=OTHER_T1 \
	./in-kvm bash -c 'echo "cwd=$PWD"; echo "a1=[$1] a2=[$2]"; echo "env=[$FORKVM_T1][$OTHER_T1]";
		[ -c /dev/kvm ] && echo kvm=yes; echo "path=$FORKVM_KVM_PATH"; printf tail; exit 42' \
	arg0 'x y' "q'z") >"$out" 2>&1 || rc=$?
check "exit status passes through" [ "$rc" -eq 42 ]
check "cwd is the caller's" grep -qx "cwd=$PWD/scripts" "$out"
check "arguments keep spaces and quotes" grep -qxF "a1=[x y] a2=[q'z]" "$out"
check "FORKVM_* and FORKVM_NESTED_ENV names pass in" grep -qxF 'env=[a b$c"d][x]' "$out"
check "/dev/kvm exists inside" grep -qx 'kvm=yes' "$out"
check "FORKVM_KVM_PATH=nested inside" grep -qx 'path=nested' "$out"
check "a last line without newline is shown" grep -qx 'tail' "$out"
check "the boot time is reported" grep -q 'nested guest has /dev/kvm after' "$out"

rc=0
FORKVM_KVM=nested FORKVM_NESTED_TIMEOUT=15 scripts/in-kvm sh -c 'echo hanging; sleep 600' >"$out" 2>&1 || rc=$?
check "a run over FORKVM_NESTED_TIMEOUT exits 124" [ "$rc" -eq 124 ]
check "the timeout shows the console tail" grep -q '^hanging' "$out"
check "the timeout says what failed" grep -q 'FAILED: nested run timed out' "$out"

rc=0
FORKVM_KVM=nested FORKVM_QEMU=no-such-qemu scripts/in-kvm true >"$out" 2>&1 || rc=$?
check "no KVM and no QEMU exits 77" [ "$rc" -eq 77 ]

rc=0
FORKVM_KVM=sideways scripts/in-kvm true >"$out" 2>&1 || rc=$?
check "a bad FORKVM_KVM exits 2" [ "$rc" -eq 2 ]

echo "test-in-kvm: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
