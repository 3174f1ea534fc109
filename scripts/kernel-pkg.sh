# shellcheck shell=bash
# Sourced, with ROOT set to the checkout, by scripts/in-kvm (the nested
# path's L1 kernel) and guest/linux/fetch-kernel.sh (the Linux guest): the steps both take to get
# Debian 12's stock kernel package without installing it.  Each function
# prints one line on stderr and returns 1 on failure; the caller says what
# failed in its own words and exit status.

# kernel_pkg_newest: the newest linux-image-6.1.0-N-amd64-unsigned apt knows;
# on a fresh machine with no package lists, as root, one apt-get update first.
kernel_pkg_newest() {
	local pkg
	pkg=$(kernel_pkg_search)
	if [ -z "$pkg" ] && [ "$(id -u)" -eq 0 ]; then
		echo "kernel-pkg: apt knows no linux-image-6.1.0-*-amd64-unsigned; running apt-get update once" >&2
		apt-get update -qq >/dev/null 2>&1 || true
		pkg=$(kernel_pkg_search)
	fi
	[ -n "$pkg" ] || { echo "kernel-pkg: apt knows no linux-image-6.1.0-*-amd64-unsigned (run apt-get update)" >&2; return 1; }
	echo "$pkg"
}

kernel_pkg_search() {
	apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64-unsigned$' 2>/dev/null |
		awk '{print $1}' | sort -V | tail -n 1
}

# Where a downloaded package is kept, so that the nested path and the Linux
# guest (each wants the same package) download it once per checkout: in the
# checkout (git ignores /build*/), so a fresh clone starts from nothing.
KERNEL_PKG_CACHE=${FORKVM_KERNEL_PKG_CACHE:-$ROOT/build-cache/debs}

# kernel_pkg_unpack PKG TMPDIR: PKG's .deb (from the cache, or apt-get
# download into TMPDIR and then kept in the cache) unpacked in TMPDIR/x;
# prints the kernel version (TMPDIR/x/boot/vmlinuz-VERSION).
kernel_pkg_unpack() {
	local pkg=$1 tmp=$2 deb f
	deb=$(ls "$KERNEL_PKG_CACHE/${pkg}_"*.deb 2>/dev/null | head -n 1)
	if [ -n "$deb" ] && dpkg-deb --info "$deb" >/dev/null 2>&1; then
		echo "kernel-pkg: $pkg from $KERNEL_PKG_CACHE (downloaded before)" >&2
	else
		(cd "$tmp" && apt-get download "$pkg" >download.log 2>&1) ||
			{ echo "kernel-pkg: 'apt-get download $pkg' failed: $(grep -E '^(E|W):' "$tmp/download.log" | head -n 1)" >&2; return 1; }
		deb=$(echo "$tmp"/*.deb)
		[ -f "$deb" ] || { echo "kernel-pkg: apt-get download $pkg produced no .deb" >&2; return 1; }
		# Kept for the next caller; a cache that cannot be written costs a download.
		mkdir -p "$KERNEL_PKG_CACHE" 2>/dev/null &&
			cp "$deb" "$KERNEL_PKG_CACHE/.${deb##*/}.$$" 2>/dev/null &&
			mv "$KERNEL_PKG_CACHE/.${deb##*/}.$$" "$KERNEL_PKG_CACHE/${deb##*/}" 2>/dev/null ||
			rm -f "$KERNEL_PKG_CACHE/.${deb##*/}.$$"
	fi
	dpkg-deb -x "$deb" "$tmp/x" || { echo "kernel-pkg: dpkg-deb -x $deb failed" >&2; return 1; }
	f=$(echo "$tmp"/x/boot/vmlinuz-*)
	[ -f "$f" ] || { echo "kernel-pkg: $pkg has no /boot/vmlinuz-*" >&2; return 1; }
	echo "${f##*/vmlinuz-}"
}

# kernel_pkg_module TMPDIR KVER NAME DEST: module NAME of the unpacked
# package, uncompressed, to DEST.
kernel_pkg_module() {
	local f
	f=$(find "$1/x/lib/modules/$2" -name "$3.ko" -o -name "$3.ko.xz" -o -name "$3.ko.zst" | head -n 1)
	[ -n "$f" ] || { echo "kernel-pkg: the package has no module $3" >&2; return 1; }
	case "$f" in
	*.xz) xz -dc "$f" >"$4" ;;
	*.zst) zstd -qdc "$f" >"$4" ;;
	*) cp "$f" "$4" ;;
	esac
}
