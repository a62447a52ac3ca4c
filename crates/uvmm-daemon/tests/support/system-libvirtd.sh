#!/bin/sh
# Run a real system-mode libvirtd (qemu:///system) isolated in a private mount namespace:
# /run/libvirt, /var/lib/libvirt, /var/cache/libvirt, /var/log/libvirt and /etc/libvirt are
# bind-mounted from DIR, so the test touches nothing of the machine's own libvirt state.
# Its socket is DIR/sock/libvirt-sock: qemu+unix:///system?socket=DIR/sock/libvirt-sock
# Its pid file is DIR/libvirtd.pid, not the system's /run/libvirtd.pid: several of these run
# at once (one per test).
# Its guests' VNC and SPICE ports come from FIRST_PORT..FIRST_PORT+19 (qemu.conf), a range
# the caller holds for it alone (SystemLibvirtd): with libvirt's default 5900 upwards,
# two libvirtds could hand the same port to two guests before either QEMU listens on it.
#
#   system-libvirtd.sh DIR FIRST_PORT
#
# Needs root, libvirt-daemon-system (the libvirt-qemu user) and qemu-system-x86.
set -eu
D=$1 FIRST_PORT=$2
mkdir -p "$D/run" "$D/lib" "$D/cache" "$D/log/qemu" "$D/etc" "$D/sock" "$D/images"
cp -r /etc/libvirt/. "$D/etc/"
cat > "$D/etc/libvirtd.conf" <<CONF
unix_sock_dir = "$D/sock"
unix_sock_rw_perms = "0770"
CONF
# QEMU runs as root without a security driver and logs to files (no virtlogd needed).
cat > "$D/etc/qemu.conf" <<CONF
user = "root"
group = "root"
dynamic_ownership = 0
stdio_handler = "file"
security_driver = "none"
remote_display_port_min = $FIRST_PORT
remote_display_port_max = $((FIRST_PORT + 19))
CONF
mkdir -p /run/libvirt /var/lib/libvirt /var/cache/libvirt /var/log/libvirt
exec unshare --mount --propagation private sh -c "
  mount --bind '$D/run' /run/libvirt &&
  mount --bind '$D/lib' /var/lib/libvirt &&
  mount --bind '$D/cache' /var/cache/libvirt &&
  mount --bind '$D/log' /var/log/libvirt &&
  mount --bind '$D/etc' /etc/libvirt &&
  exec libvirtd --config '$D/etc/libvirtd.conf' --pid-file '$D/libvirtd.pid'
"
