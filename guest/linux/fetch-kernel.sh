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
newest() {
	apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64-unsigned$' 2>/dev/null |
		awk '{print $1}' | sort -V | tail -n 1
}
if [ -z "$pkg" ]; then
	pkg=$(newest)
	if [ -z "$pkg" ] && [ "$(id -u)" -eq 0 ]; then
		# A fresh machine may have no package lists yet (as in scripts/in-kvm).
		say "apt knows no linux-image-6.1.0-*-amd64-unsigned; running apt-get update once"
		apt-get update -qq >/dev/null 2>&1 || true
		pkg=$(newest)
	fi
fi
[ -n "$pkg" ] || die "apt knows no linux-image-6.1.0-*-amd64-unsigned (run apt-get update)"

tmp=$DIR/tmp.$$
trap 'rm -rf "$tmp"' EXIT
rm -rf "$tmp"
mkdir -p "$tmp" "$DIR/mod"
say "fetching $pkg with apt-get download (once; cached in $DIR)"
(cd "$tmp" && apt-get download "$pkg" >download.log 2>&1) ||
	die "'apt-get download $pkg' failed: $(grep -E '^(E|W):' "$tmp/download.log" | head -n 1)"
dpkg-deb -x "$tmp"/*.deb "$tmp/x" || die "dpkg-deb -x of $pkg failed"
vmlinuz=$(echo "$tmp"/x/boot/vmlinuz-*)
[ -f "$vmlinuz" ] || die "$pkg has no /boot/vmlinuz-*"
kver=${vmlinuz##*/vmlinuz-}
for m in "${MODS[@]}"; do
	f=$(find "$tmp/x/lib/modules/$kver" -name "$m.ko" -o -name "$m.ko.xz" -o -name "$m.ko.zst" | head -n 1)
	[ -n "$f" ] || die "$pkg has no module $m (built in? then drop it from MODS)"
	case "$f" in
	*.xz) xz -dc "$f" >"$DIR/mod/$m.ko" ;;
	*.zst) zstd -qdc "$f" >"$DIR/mod/$m.ko" ;;
	*) cp "$f" "$DIR/mod/$m.ko" ;;
	esac
done
cp "$tmp/x/boot/config-$kver" "$DIR/config"
cp "$vmlinuz" "$DIR/vmlinuz.tmp"
mv "$DIR/vmlinuz.tmp" "$DIR/vmlinuz"
echo "$pkg" >"$DIR/pkg"
