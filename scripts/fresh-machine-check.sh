#!/usr/bin/env bash
# scripts/fresh-machine-check.sh [--keep PKG]... [COMMAND...]
#
# Meets the project the way a new user does, on THIS machine: purges every
# Debian package scripts/deps.sh would install (and what only they pulled
# in), clones HEAD into a temporary folder, and runs COMMAND there (default:
# `make test`) as the first command, as README tells a user.  Reports the
# command's status and time, and keeps its whole output in a log.
#
# It changes the machine (root; apt-get purge, then the command installs the
# packages again), so it is not part of `make test`: run it before you land a
# change to the build (Makefile, *.mk, scripts/deps.sh, scripts/configure.sh).
# Only what is committed is checked: a clone of HEAD, not the work tree.
#   --keep PKG   do not purge PKG (e.g. --keep qemu-system-x86: faster, but
#                then the nested path's install is not checked)
# Exit status: the command's.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
keep=()
while [ $# -gt 0 ]; do
	case "$1" in
	--keep) keep+=("${2:?--keep needs a package name}"); shift 2 ;;
	-h | --help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) break ;;
	esac
done
[ $# -gt 0 ] || set -- make test
[ "$(id -u)" -eq 0 ] || { echo "fresh-machine-check: needs root (apt-get purge)" >&2; exit 2; }

say() { printf 'fresh-machine-check: %s\n' "$*"; }

# Everything deps.sh installs, but the compiler itself: purging the
# build-essential metapackage would leave gcc in place anyway.
purge=()
for p in $("$ROOT/scripts/deps.sh" --list); do
	[ "$p" = build-essential ] && continue
	for k in "${keep[@]}"; do [ "$p" = "$k" ] && continue 2; done
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' && purge+=("$p")
done
if [ ${#purge[@]} -gt 0 ]; then
	say "purging: ${purge[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq "${purge[@]}" >/dev/null ||
		{ say "apt-get purge failed"; exit 2; }
	DEBIAN_FRONTEND=noninteractive apt-get autoremove --purge -y -qq >/dev/null ||
		{ say "apt-get autoremove failed"; exit 2; }
else
	say "none of deps.sh's packages is installed: nothing to purge"
fi
for p in $("$ROOT/scripts/deps.sh" --list); do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' &&
		say "still installed: $p"
done

dir=$(mktemp -d "${TMPDIR:-/tmp}/forkvm-fresh.XXXXXX")
git clone -q "$ROOT" "$dir/forkvm" || { say "git clone failed"; exit 2; }
log=$dir/output.log
say "clone of $(git -C "$ROOT" rev-parse --short HEAD) in $dir/forkvm"
say "running: $*   (output: $log)"
t0=$SECONDS
(cd "$dir/forkvm" && "$@") 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
say "'$*' exited $rc after $((SECONDS - t0)) s, as the first command on a machine without the packages"
grep -a -E '^(deps:|configure:)' "$log" | sed 's/^/    /'
[ "$rc" -eq 0 ] && say "PASSED" || say "FAILED (see $log)"
exit "$rc"
