#!/usr/bin/env bash
# Installs the Debian packages forkvm's build, tests and nested-KVM path need,
# when they are missing.  Called by the Makefile; safe to run by hand.
set -euo pipefail

PKGS=(build-essential pkg-config libfdt-dev libcriterion-dev liburing-dev
      libmicrohttpd-dev libjansson-dev libseccomp-dev curl
      qemu-system-x86 busybox-static cpio xz-utils clang-format acpica-tools)

# --list: the package names, one a line (scripts/fresh-machine-check.sh).
if [ "${1:-}" = --list ]; then
	printf '%s\n' "${PKGS[@]}"
	exit 0
fi

missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing missing Debian packages: ${missing[*]}"
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
if ! $SUDO apt-get update -qq; then
	echo "deps: 'apt-get update' failed; install by hand: apt-get install ${missing[*]}" >&2
	exit 1
fi
if ! DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
	"${missing[@]}" >/dev/null; then
	echo "deps: 'apt-get install ${missing[*]}' failed" >&2
	exit 1
fi
echo "deps: installed ${missing[*]}"
