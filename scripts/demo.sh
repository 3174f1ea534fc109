#!/usr/bin/env bash
# scripts/demo.sh OUT   (what `make demo` runs)
#
# What forkvm does, in one command:
#   1. the memory manager alone, on the host: OUT/bench/mm_demo (if built);
#   2. boot the test guest under KVM (hello on 2 vCPUs);
#   3. issue 10's demo: the test guest with a disk runs dmastress and forks
#      itself 20 times (port 0x504) while reads are in flight into its memory;
#      every VM checks every buffer; a table per VM (requests in flight at its
#      fork, the parent's pause, private and shared frames, lost and misplaced
#      device writes), the family's memory against 21 x the guest, and the
#      line `lost device writes: N` (0 expected);
#   4. the policy matrix: the same scenario under mm's pagecount (0 lost),
#      nopin and mapcount (losses: the harness sees the bug).
# Parts 2-4 need KVM: where /dev/kvm is usable they run here, elsewhere the
# script runs them inside a nested QEMU/KVM guest through scripts/in-kvm (one
# line says so; that path is slower, a few minutes).
# Exit status: 0 iff every part worked.
set -euo pipefail

OUT=${1:?usage: scripts/demo.sh OUT}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
case "$OUT" in /*) ;; *) OUT=$ROOT/$OUT ;; esac
FORKVM=$OUT/forkvm
export FORKVM_GUEST=$OUT/guest/test.elf
FORKS=${FORKVM_DEMO_FORKS:-20}
# Each request held this long at the device: above a clone's pause, so reads
# are still in flight at every fork (the nested path pauses up to ~200 ms).
LATENCY=${FORKVM_DEMO_LATENCY:-300ms}
MATRIX_LATENCY=${FORKVM_DEMO_MATRIX_LATENCY:-400ms}

heading() { printf '\n== %s\n' "$*"; }
say() { printf '   %s\n' "$*"; }

# ---- parts 2-4: the VMs (run where KVM is usable) -----------------------------
vm_part() {
	local rc

	# make policy-matrix: part 4 alone.
	if [ "${FORKVM_DEMO_ONLY:-}" = matrix ]; then
		matrix_part
		return
	fi
	heading "2/4  Boot the test guest under KVM: 'hello' on 2 vCPUs"
	say "forkvm run --guest test --workload hello --cpus 2"
	rc=0
	"$FORKVM" run --guest test --workload hello --cpus 2 --mem 64M --timeout 120 || rc=$?
	say "-> exit status $rc (the guest's own exit code)"
	[ "$rc" -eq 0 ] || { say "FAILED: hello"; return 1; }

	dma_part || return 1
	matrix_part || return 1
	return 0
}

# ---- part 3: forks from inside the guest while its disk writes into it -------
# Per VM: requests in flight at its fork, the parent's pause, private and shared
# frames (forkvm's report), lost and misplaced device writes (dmastress's own
# checks in that VM).  Last line: lost device writes: N.
dma_part() {
	local out rc dir disk f name
	dir=$(mktemp -d "${TMPDIR:-/tmp}/forkvm-demo.XXXXXX")
	disk=$dir/disk.img

	heading "3/4  The guest forks itself $FORKS times while its disk writes into it"
	say "dmastress keeps 32 reads in flight into pages whose other bytes the CPU writes,"
	say "forks (port 0x504) with them in flight, and every VM checks every buffer."
	say "forkvm run --guest test --workload dmastress --args forks=$FORKS --mem 32M \\"
	say "           --disk disk.img,latency=$LATENCY --console console.txt"
	"$FORKVM" mkdisk "$disk" 4M >/dev/null || { say "FAILED: mkdisk"; return 1; }
	set +e
	out=$("$FORKVM" run --guest test --workload dmastress --args "forks=$FORKS" --mem 32M \
		--disk "$disk,latency=$LATENCY" --console "$dir/console.txt" --timeout 600 2>&1)
	rc=$?
	set -e
	# Each VM's dmastress result line, from its own console (clone I: console.txt.I).
	for f in "$dir"/console.txt*; do
		name=parent
		case $f in *.txt.*) name="clone ${f##*.}" ;; esac
		grep -h 'dmastress: vm=[0-9.]* lost=' "$f" | sed -e 's/^\[[^]]*\] //' -e "s/^/$name|/" || true
	done >"$dir/results"
	{ cat "$dir/results"; echo "$out"; } | awk -F'\n' '
		# "NAME|dmastress: vm=... lost=L misplaced=M ..."
		index($0, "|dmastress: vm=") {
			name = substr($0, 1, index($0, "|") - 1)
			n2 = split($0, w, " ")
			for (i = 1; i <= n2; i++) {
				if (w[i] ~ /^lost=/) lost[name] = substr(w[i], 6)
				if (w[i] ~ /^misplaced=/) mis[name] = substr(w[i], 11)
			}
			next
		}
		# forkvm report rows: "forkvm: NAME EXIT RESULT PRESENT SHARED VMAS [FROM INFLIGHT PAUSE]"
		{ nf = split($0, w, " ") }
		w[1] == "forkvm:" && w[2] == "parent" && w[3] ~ /^[0-9]+$/ {
			order[n++] = "parent"; ex["parent"] = w[3]; pres["parent"] = w[5]; sh["parent"] = w[6]
		}
		w[1] == "forkvm:" && w[2] == "clone" && w[4] ~ /^[0-9]+$/ && nf >= 11 {
			nm = "clone " w[3]; order[n++] = nm; ex[nm] = w[4]; pres[nm] = w[6]; sh[nm] = w[7]
			inf[nm] = w[10]; pause[nm] = w[11]
		}
		/live at the end/ { live = $0 }
		/full copies/ { full = $0 }
		/COW faults/ { cow = $0 }
		END {
			printf "   %-9s %5s %10s %9s %8s %7s %5s %9s\n", "VM", "exit", "in flight",
			       "pause ms", "private", "shared", "lost", "misplaced"
			for (i = 0; i < n; i++) {
				nm = order[i]
				printf "   %-9s %5s %10s %9s %8d %7d %5s %9s\n", nm, ex[nm],
				       (nm in inf) ? inf[nm] : "-", (nm in pause) ? pause[nm] : "-",
				       pres[nm] - sh[nm], sh[nm], (nm in lost) ? lost[nm] : "?",
				       (nm in mis) ? mis[nm] : "?"
				tl += lost[nm]; tm += mis[nm]; if (!(nm in lost)) unk++
			}
			sub(/^forkvm: +/, "", full); sub(/^forkvm: +/, "", live); sub(/^forkvm: +/, "", cow)
			print "   family memory (frames of 4 KiB; private + shared per VM above):"
			print "     " full
			print "     " live
			print "     " cow
			if (unk) print "   " unk " VM(s) printed no dmastress result line"
			print "   misplaced device writes: " tm
			print "lost device writes: " tl
		}'
	rm -rf "$dir"
	if [ "$rc" -ne 0 ]; then
		say "FAILED: forkvm exited $rc"
		echo "$out" | grep -E 'FAIL|forkvm: .*(failed|stopped)' | head -20
		return 1
	fi
	return 0
}

# ---- part 4: the same scenario under each mm policy ---------------------------
matrix_part() {
	local p out lost rc inflight copies want disk=${TMPDIR:-/tmp}/forkvm-demo-disk.img ok=0

	heading "4/4  The policy matrix: the harness must see the bug when the rule is off"
	for p in pagecount nopin mapcount; do
		"$FORKVM" mkdisk "$disk" 4M >/dev/null || return 1
		set +e
		# --restore-after-parent-line (hidden, like --mm-policy): each clone is
		# restored once its parent has written its pinned pages, the order in
		# which Linux's legacy rules lost writes (docs/vmm.md).
		out=$("$FORKVM" run --guest test --workload dmastress --args forks=3 --mem 32M \
			--disk "$disk,latency=$MATRIX_LATENCY" --mm-policy "$p" \
			--restore-after-parent-line --timeout 600 2>&1)
		rc=$?
		set -e
		lost=$(echo "$out" | awk '/dmastress: vm=[0-9.]+ lost=/ { for (i = 1; i <= NF; i++) if ($i ~ /^lost=/) t += substr($i, 6) } END { print t + 0 }')
		inflight=$(echo "$out" | awk '$1 == "forkvm:" && $2 == "clone" && NF >= 11 { if (min == "" || $10 < min) min = $10 } END { print min + 0 }')
		copies=$(echo "$out" | sed -n 's/.*fork copies \([0-9]*\).*/\1/p' | tail -1)
		case $p in
		pagecount) want="0 (pinned frames copied at fork)"; [ "$lost" -eq 0 ] && [ "$rc" -eq 0 ] && ok=$((ok + 1)) ;;
		nopin) want="> 0 (fork shares pinned frames)"; [ "$lost" -gt 0 ] && ok=$((ok + 1)) ;;
		mapcount) want="> 0 (Linux before 5.9: fork shares pinned frames, reuse by mapcount)"; [ "$lost" -gt 0 ] && ok=$((ok + 1)) ;;
		esac
		printf '   %-9s lost device writes: %4s  (fewest in flight at a fork: %s; expected %s)\n' \
			"$p" "$lost" "$inflight" "$want"
	done
	[ "$ok" -eq 3 ] || { say "FAILED: the matrix is not as expected"; return 1; }
	return 0
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
heading "1/4  Memory manager alone (host, no KVM): many forks of one guest space"
if [ "${FORKVM_DEMO_ONLY:-}" = matrix ]; then
	say "skipped: FORKVM_DEMO_ONLY=matrix (make policy-matrix)"
elif [ -x "$OUT/bench/mm_demo" ]; then
	"$OUT/bench/mm_demo" || { say "FAILED: mm_demo exited $?"; status=1; }
else
	say "skipped: $OUT/bench/mm_demo is not built"
fi

# ---- parts 2-4: here, or inside a nested KVM guest -----------------------------
if [ -r /dev/kvm ] && [ -w /dev/kvm ] && [ "${FORKVM_KVM:-}" != nested ]; then
	vm_part || status=1
else
	why="no /dev/kvm"
	[ -e /dev/kvm ] && why="/dev/kvm is not usable by $(id -un)"
	[ "${FORKVM_KVM:-}" = nested ] && why="FORKVM_KVM=nested"
	echo
	echo "demo: $why here, so parts 2-4 run inside a nested QEMU guest with KVM" \
		"(scripts/in-kvm): TCG-emulated, 10-50x slower, a few minutes."
	FORKVM_DEMO_INSIDE=1 FORKVM_DEMO_FORKS=$FORKS FORKVM_DEMO_LATENCY=$LATENCY \
		FORKVM_DEMO_MATRIX_LATENCY=$MATRIX_LATENCY FORKVM_OUT=$OUT \
		"$ROOT/scripts/in-kvm" "$ROOT/scripts/demo.sh" "$OUT" 2> >(grep -v '^in-kvm: \(initramfs\|nested guest has\)' >&2) || status=1
fi

echo
if [ "$status" -eq 0 ]; then
	echo "demo: done in $((SECONDS - t0)) s, everything as expected."
else
	echo "demo: done in $((SECONDS - t0)) s, SOMETHING FAILED (see above)."
fi
exit "$status"
