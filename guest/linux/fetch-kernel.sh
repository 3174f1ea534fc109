#!/usr/bin/env bash
# guest/linux/fetch-kernel.sh DIR
#
# Debian 12's stock kernel for the Linux guest: the same package scripts/in-kvm
# boots (linux-image-6.1.0-N-amd64-unsigned, fetched with apt-get download,
# never installed), here kept whole: DIR/vmlinuz (the bzImage forkvm boots),
# DIR/config, and DIR/mod/*.ko, the virtio modules the initramfs loads.
# Cached: a second run, or another build dir of this repo that has it, costs
# no download.  FORKVM_LINUX_KERNEL_PKG=P picks the package.
set -euo pipefail

DIR=${1:?usage: guest/linux/fetch-kernel.sh DIR}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
MODS=(virtio virtio_ring virtio_mmio virtio_blk)
# shellcheck source=scripts/kernel-pkg.sh
. "$ROOT/scripts/kernel-pkg.sh"
say() { echo "linux-guest: $*" >&2; }
die() { echo "linux-guest: FAILED: $*" >&2; exit 1; }

ready() { [ -s "$1/vmlinuz" ] && [ -s "$1/pkg" ]; }

mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
ready "$DIR" && { touch "$DIR/vmlinuz"; exit 0; }

# Another build dir of this repo may have it: share it (hard links).
for d in "$ROOT"/*/linux; do
	[ "$d" != "$DIR" ] && ready "$d" || continue
	if [ -z "${FORKVM_LINUX_KERNEL_PKG:-}" ] || [ "$(cat "$d/pkg")" = "$FORKVM_LINUX_KERNEL_PKG" ]; then
		mkdir -p "$DIR/mod"
		for f in vmlinuz config pkg; do cp -l "$d/$f" "$DIR/$f.tmp" 2>/dev/null || cp "$d/$f" "$DIR/$f.tmp"; done
		for m in "${MODS[@]}"; do cp "$d/mod/$m.ko" "$DIR/mod/$m.ko"; done
		mv "$DIR/config.tmp" "$DIR/config"
		mv "$DIR/vmlinuz.tmp" "$DIR/vmlinuz"
		mv "$DIR/pkg.tmp" "$DIR/pkg"
		say "using the kernel of ${d#"$ROOT"/} ($(cat "$DIR/pkg"))"
		exit 0
	fi
done

for t in apt-get:apt apt-cache:apt dpkg-deb:dpkg; do
	command -v "${t%%:*}" >/dev/null || die "no ${t%%:*} here (Debian package ${t#*:})"
done
pkg=${FORKVM_LINUX_KERNEL_PKG:-}
if [ -z "$pkg" ]; then
	# The one in-kvm's cache holds, if any: both paths then boot one kernel.
	for k in "$ROOT"/*/nested/kernel/*; do
		[ -e "$k/ok" ] && pkg=${k##*/}
	done
fi
[ -n "$pkg" ] || pkg=$(kernel_pkg_newest) || die "no kernel package to fetch"

tmp=$DIR/tmp.$$
trap 'rm -rf "$tmp"' EXIT
rm -rf "$tmp"
mkdir -p "$tmp" "$DIR/mod"
say "fetching $pkg with apt-get download (once; cached in $DIR)"
kver=$(kernel_pkg_unpack "$pkg" "$tmp") || die "$pkg could not be unpacked"
vmlinuz=$tmp/x/boot/vmlinuz-$kver
for m in "${MODS[@]}"; do
	kernel_pkg_module "$tmp" "$kver" "$m" "$DIR/mod/$m.ko" ||
		die "$pkg has no module $m (built in? then drop it from MODS)"
done
cp "$tmp/x/boot/config-$kver" "$DIR/config"
cp "$vmlinuz" "$DIR/vmlinuz.tmp"
mv "$DIR/vmlinuz.tmp" "$DIR/vmlinuz"
echo "$pkg" >"$DIR/pkg"
