#!/usr/bin/env bash
# scripts/demo.sh OUT   (what `make demo` runs)
#
# What forkvm does, in one command:
#   1. the memory manager alone, on the host: OUT/bench/mm_demo (if built);
#   2. boot the test guest under KVM (hello on 2 vCPUs);
#   3. boot memcheck and clone it live 4 times in the middle of its run: every
#      VM must end with the checksum of an unforked run; then the memory table.
# Parts 2 and 3 need KVM: where /dev/kvm is usable they run here, elsewhere the
# script runs them inside a nested QEMU/KVM guest through scripts/in-kvm (one
# line says so; that path is slower, about a minute).
# Exit status: 0 iff every part worked.
set -euo pipefail

OUT=${1:?usage: scripts/demo.sh OUT}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
case "$OUT" in /*) ;; *) OUT=$ROOT/$OUT ;; esac
FORKVM=$OUT/forkvm
export FORKVM_GUEST=$OUT/guest/test.elf
CLONES=${FORKVM_DEMO_CLONES:-4}

heading() { printf '\n== %s\n' "$*"; }
say() { printf '   %s\n' "$*"; }

# ---- parts 2 and 3: the VMs (run where KVM is usable) ------------------------
vm_part() {
	local out ref rc counts ok n

	heading "2/3  Boot the test guest under KVM: 'hello' on 2 vCPUs"
	say "forkvm run --guest test --workload hello --cpus 2"
	rc=0
	"$FORKVM" run --guest test --workload hello --cpus 2 --mem 64M --timeout 120 || rc=$?
	say "-> exit status $rc (the guest's own exit code)"
	[ "$rc" -eq 0 ] || { say "FAILED: hello"; return 1; }

	heading "3/3  Live clone: memcheck, cloned $CLONES times in the middle of its run"
	say "memcheck writes a pattern over all free guest RAM, then each pass re-reads"
	say "it and writes the next one; its checksum does not depend on timing."
	say "First a reference run, without clones:"
	out=$("$FORKVM" run --guest test --workload memcheck --args passes=3 --mem 64M \
		--cpus 2 --timeout 300 2>&1) || { echo "$out"; say "FAILED: reference run"; return 1; }
	ref=$(echo "$out" | awk '$1 == "result:" { r = $2 } END { print r }')
	[ -n "$ref" ] || { echo "$out"; say "FAILED: no checksum in the reference run"; return 1; }
	say "reference checksum: $ref"
	echo
	say "Now the same guest, cloned $CLONES times right after 'pass 1/3 ok' (console line 2):"
	say "forkvm run --guest test --workload memcheck --args passes=3 --mem 64M --cpus 2 \\"
	say "           --clones $CLONES --clone-at-line 2"
	echo
	set +e
	out=$("$FORKVM" run --guest test --workload memcheck --args passes=3 --mem 64M \
		--cpus 2 --clones "$CLONES" --clone-at-line 2 --timeout 300 2>&1)
	rc=$?
	set -e
	# The guests' consoles interleave: show each VM's last lines, then the report.
	echo "$out" | grep -E '^\[(parent|clone [0-9]+)\] (memcheck: [0-9]+ MiB|guest: exit)' || true
	echo "$out" | grep -E '^forkvm: ' | sed 's/^forkvm: /   /'
	echo
	# Table rows: "forkvm: parent  EXIT  RESULT ..." and "forkvm: clone I  EXIT  RESULT ...".
	counts=$(echo "$out" | awk -v ref="$ref" '
		$1 == "forkvm:" && $2 == "parent" && $3 ~ /^[0-9]+$/ { n++; ok += ($3 == 0 && $4 == ref) }
		$1 == "forkvm:" && $2 == "clone" && $3 ~ /^[0-9]+$/ && $4 ~ /^[0-9]+$/ {
			n++; ok += ($4 == 0 && $5 == ref) }
		END { print ok + 0, n + 0 }')
	ok=${counts% *} n=${counts#* }
	if [ "$rc" -eq 0 ] && [ "$ok" -eq $((CLONES + 1)) ] && [ "$n" -eq "$ok" ]; then
		say "OK: all $ok VMs (parent + $CLONES clones) exited 0 with the reference checksum $ref."
		say "Each clone got a copy-on-write fork of the parent's memory and its vCPU,"
		say "irqchip, PIT and clock state.  Right after cloning the VMs share one copy"
		say "of the RAM; memcheck then rewrites all of it in every pass, so by the end"
		say "each VM owns its frames: copy-on-write copied exactly what was written."
		return 0
	fi
	say "FAILED: forkvm exited $rc; $ok of $n VMs (of $((CLONES + 1))) exited 0 with $ref."
	echo "$out" | tail -n 40
	return 1
}

if [ "${FORKVM_DEMO_INSIDE:-}" = 1 ]; then
	vm_part
	exit $?
fi

if [ ! -x "$FORKVM" ] || [ ! -f "$FORKVM_GUEST" ]; then
	echo "demo: $FORKVM or $FORKVM_GUEST missing: run 'make OUT=$OUT all' first" >&2
	exit 2
fi
status=0
t0=$SECONDS

echo "forkvm demo: fork running KVM guests, copy-on-write guest memory"

# ---- part 1: the memory manager alone, on this host ---------------------------
heading "1/3  Memory manager alone (host, no KVM): many forks of one guest space"
if [ -x "$OUT/bench/mm_demo" ]; then
	"$OUT/bench/mm_demo" || { say "FAILED: mm_demo exited $?"; status=1; }
else
	say "skipped: $OUT/bench/mm_demo is not built"
fi

# ---- parts 2 and 3: here, or inside a nested KVM guest -------------------------
if [ -r /dev/kvm ] && [ -w /dev/kvm ] && [ "${FORKVM_KVM:-}" != nested ]; then
	vm_part || status=1
else
	why="no /dev/kvm"
	[ -e /dev/kvm ] && why="/dev/kvm is not usable by $(id -un)"
	[ "${FORKVM_KVM:-}" = nested ] && why="FORKVM_KVM=nested"
	echo
	echo "demo: $why here, so parts 2 and 3 run inside a nested QEMU guest with KVM" \
		"(scripts/in-kvm): TCG-emulated, 10-50x slower, about a minute."
	FORKVM_DEMO_INSIDE=1 FORKVM_DEMO_CLONES=$CLONES FORKVM_OUT=$OUT \
		"$ROOT/scripts/in-kvm" "$ROOT/scripts/demo.sh" "$OUT" 2> >(grep -v '^in-kvm: \(initramfs\|nested guest has\)' >&2) || status=1
fi

echo
if [ "$status" -eq 0 ]; then
	echo "demo: done in $((SECONDS - t0)) s, everything as expected."
else
	echo "demo: done in $((SECONDS - t0)) s, SOMETHING FAILED (see above)."
fi
exit "$status"
