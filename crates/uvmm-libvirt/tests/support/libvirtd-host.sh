#!/bin/sh
# One test "host": a real system-mode libvirtd (qemu:///system) isolated in a private mount
# namespace. /run/libvirt, /var/lib/libvirt, /var/cache/libvirt, /var/log/libvirt and
# /etc/libvirt are bind-mounted from DIR, so several of these run side by side (each is a
# host of its own, with its own guests, pools and /var/lib/libvirt/images) and none touches
# the machine's own libvirt state. Everything else (e.g. a test's temporary directory) is
# seen by all of them at the same path: that is the "shared storage" of the tests.
#
#   libvirtd-host.sh DIR TCP_PORT HOST_UUID MIGRATION_PORT_MIN [CAPS_DIR]
#
# UNIX socket: DIR/sock/libvirt-sock; TCP without authentication on 127.0.0.1:TCP_PORT
# (qemu+tcp://127.0.0.1:TCP_PORT/system), which is what a source libvirtd connects to for
# a peer-to-peer migration. HOST_UUID must differ between hosts: libvirt refuses to migrate
# a guest to a host with its own UUID. Incoming migrations listen from
# MIGRATION_PORT_MIN (16 ports), so hosts never compete for a port.
# CAPS_DIR: QEMU capabilities cache files to start from (libvirt probes QEMU for ~12 s
# without them, and re-probes by itself when they do not match this machine).
# Needs root, libvirt-daemon-system and qemu-system-x86. The pid file is DIR/libvirtd.pid;
# the process started is libvirtd itself (exec), so killing the child kills the host.
set -eu
D=$1 PORT=$2 HOST_UUID=$3 MIG=$4 CAPS=${5:-}
mkdir -p "$D/run" "$D/lib/images" "$D/cache/qemu/capabilities" "$D/log/qemu" "$D/etc" "$D/sock"
cp -r /etc/libvirt/. "$D/etc/"
if [ -n "$CAPS" ] && [ -d "$CAPS" ]; then
    cp "$CAPS"/*.xml "$D/cache/qemu/capabilities/" 2>/dev/null || true
fi
cat > "$D/etc/libvirtd.conf" <<CONF
unix_sock_dir = "$D/sock"
unix_sock_rw_perms = "0770"
listen_tls = 0
listen_tcp = 1
listen_addr = "127.0.0.1"
tcp_port = "$PORT"
auth_tcp = "none"
host_uuid = "$HOST_UUID"
CONF
# QEMU runs as root without a security driver and logs to files (no virtlogd needed).
cat > "$D/etc/qemu.conf" <<CONF
user = "root"
group = "root"
dynamic_ownership = 0
stdio_handler = "file"
security_driver = "none"
migration_port_min = $MIG
migration_port_max = $((MIG + 15))
CONF
mkdir -p /run/libvirt /var/lib/libvirt /var/cache/libvirt /var/log/libvirt
exec unshare --mount --propagation private sh -c "
  mount --bind '$D/run' /run/libvirt &&
  mount --bind '$D/lib' /var/lib/libvirt &&
  mount --bind '$D/cache' /var/cache/libvirt &&
  mount --bind '$D/log' /var/log/libvirt &&
  mount --bind '$D/etc' /etc/libvirt &&
  exec libvirtd --listen --config '$D/etc/libvirtd.conf' --pid-file '$D/libvirtd.pid'
"
