#!/bin/sh
# Build the tiny test guest: a Debian kernel (vmlinuz) and an initramfs made of
# busybox-static, the virtio block modules of that kernel and an init that
#   - prints "uvmm-guest: booted" on the serial console (ttyS0),
#   - prints "uvmm-guest: disk /dev/vdX <first 64 printable bytes>" for every virtio disk
#     (so a test sees that a clone's or a migrated guest's disk is attached and readable),
#   - with `uvmm.dirty=N` on the kernel command line keeps rewriting N MiB of random data
#     in a tmpfs (a guest that dirties memory, for slow migrations),
#   - prints "uvmm-guest: tick N" every ~100 ms forever (a migration test proves the guest
#     kept running by reading the counter from the target's serial log).
# Output: OUT/vmlinuz and OUT/initrd.img; built once, reused while OUT/stamp matches this
# script. Needs busybox-static, gzip and apt-get (the kernel package is downloaded
# with `apt-get download`, nothing is installed).
set -eu
# Absolute: the script changes directory before it writes there.
mkdir -p "$1"
OUT=$(cd "$1" && pwd)
SELF=$(readlink -f "$0")
STAMP=$(sha256sum "$SELF" | cut -d' ' -f1)
if [ -f "$OUT/stamp" ] && [ "$(cat "$OUT/stamp")" = "$STAMP" ] && [ -f "$OUT/vmlinuz" ] && [ -f "$OUT/initrd.img" ]; then
    exit 0
fi
command -v busybox >/dev/null || { echo "busybox-static is not installed" >&2; exit 1; }
file -L "$(command -v busybox)" 2>/dev/null | grep -q dynamically && { echo "busybox is not the static build (install busybox-static)" >&2; exit 1; }
mkdir -p "$OUT"
WORK=$(mktemp -d "$OUT/build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
# The kernel package the metapackage points at (linux-image-amd64 itself has no files).
PKG=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
[ -n "$PKG" ] || { echo "apt-cache knows no linux-image-amd64 (run apt-get update)" >&2; exit 1; }
if ! ls "$OUT"/"$PKG"_*.deb >/dev/null 2>&1; then
    (cd "$OUT" && apt-get download -q "$PKG" >/dev/null 2>&1) || { echo "apt-get download $PKG failed" >&2; exit 1; }
fi
DEB=$(ls "$OUT"/"$PKG"_*.deb | head -n1)
mkdir k
dpkg-deb --fsys-tarfile "$DEB" | tar -x -C k --wildcards './boot/vmlinuz-*' \
    './lib/modules/*/kernel/drivers/virtio/*' './lib/modules/*/kernel/drivers/block/virtio_blk.ko'
mkdir -p root/bin root/proc root/sys root/dev root/tmp root/lib/modules
cp "$(command -v busybox)" root/bin/busybox
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci; do
    cp k/lib/modules/*/kernel/drivers/virtio/$m.ko root/lib/modules/
done
cp k/lib/modules/*/kernel/drivers/block/virtio_blk.ko root/lib/modules/
cat > root/init <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
c=/dev/ttyS0
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk; do
    insmod /lib/modules/$m.ko 2>/dev/null
done
echo "uvmm-guest: booted" > $c
# Disks appear asynchronously after the driver loads.
n=0
while [ $n -lt 10 ] && ! ls /dev/vd? >/dev/null 2>&1; do usleep 100000; n=$((n+1)); done
for d in /dev/vd?; do
    [ -b "$d" ] || continue
    echo "uvmm-guest: disk $d $(head -c 64 $d | tr -cd 'a-zA-Z0-9:_.=-')" > $c
done
dirty=$(sed -n 's/.*uvmm\.dirty=\([0-9]*\).*/\1/p' /proc/cmdline)
if [ -n "$dirty" ]; then
    mount -t tmpfs -o size=$((dirty + 8))m tmpfs /tmp
    (while true; do dd if=/dev/urandom of=/tmp/dirty bs=1M count=$dirty 2>/dev/null; done) &
fi
i=0
while true; do
    echo "uvmm-guest: tick $i" > $c
    i=$((i+1))
    usleep 100000
done
INIT
chmod +x root/init
cp k/boot/vmlinuz-* "$WORK/vmlinuz"
# busybox's own cpio: no cpio package needed.
(cd root && find . | busybox cpio -o -H newc 2>/dev/null) > "$WORK/initrd.cpio"
[ -s "$WORK/initrd.cpio" ] || { echo "cpio archive failed" >&2; exit 1; }
gzip -1 -c "$WORK/initrd.cpio" > "$WORK/initrd.img"
mv "$WORK/vmlinuz" "$OUT/vmlinuz"
mv "$WORK/initrd.img" "$OUT/initrd.img"
echo "$STAMP" > "$OUT/stamp"
