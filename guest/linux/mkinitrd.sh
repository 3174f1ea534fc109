#!/usr/bin/env bash
# guest/linux/mkinitrd.sh DIR OUTPUT
#
# The Linux guest's initramfs (newc cpio): guest/linux/init as /init, the
# static busybox (Debian busybox-static) with its applets linked at boot,
# DIR/forkvm-fork, and the virtio modules DIR/mod/*.ko of the kernel
# fetched by fetch-kernel.sh, under /lib/forkvm/.
set -euo pipefail

DIR=${1:?usage: guest/linux/mkinitrd.sh DIR OUTPUT}
OUTPUT=${2:?usage: guest/linux/mkinitrd.sh DIR OUTPUT}
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BUSYBOX=/bin/busybox
die() { echo "linux-guest: FAILED: $*" >&2; exit 1; }

[ -x "$BUSYBOX" ] || die "no $BUSYBOX (Debian package busybox-static)"
ldd "$BUSYBOX" >/dev/null 2>&1 && die "$BUSYBOX is dynamically linked; install busybox-static"
command -v cpio >/dev/null || die "no cpio (Debian package cpio)"

st=$(mktemp -d "${OUTPUT}.root.XXXXXX")
trap 'rm -rf "$st"' EXIT
mkdir -p "$st"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,etc,lib/forkvm}
cp "$BUSYBOX" "$st/bin/busybox"
cp "$DIR/forkvm-fork" "$st/bin/forkvm-fork"
cp "$DIR"/mod/*.ko "$st/lib/forkvm/"
cp "$SRC/init" "$st/init"
chmod 755 "$st/init" "$st/bin/forkvm-fork"
echo "root:x:0:0:root:/tmp:/bin/sh" >"$st/etc/passwd"
echo "root:x:0:" >"$st/etc/group"
(cd "$st" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) >"$OUTPUT.tmp"
mv "$OUTPUT.tmp" "$OUTPUT"
