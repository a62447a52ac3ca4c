#!/usr/bin/env bash
# The README's first command: take a fresh Debian 12 machine (as root) to a running uvmmd
# that manages three demo hosts (libvirt test-driver hosts with a dozen VMs) and serves the
# web UI.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
install_build_deps
build_web

echo "==> cargo build --release"
cargo build --release --locked --bins -q
install -m 0755 target/release/uvmmd target/release/uvmm target/release/uvmm-restore \
    target/release/check_uvmm /usr/local/bin/
ln -sf uvmm-restore /usr/local/bin/univention-virtual-machine-manager-restore

# Restart a demo daemon started earlier by this script.
if [ -f /run/uvmm/uvmmd.pid ] && kill -0 "$(cat /run/uvmm/uvmmd.pid)" 2>/dev/null; then
    echo "==> stopping the running uvmmd"
    kill "$(cat /run/uvmm/uvmmd.pid)"
    for _ in $(seq 50); do [ -e /run/uvmm/uvmm.sock ] || break; sleep 0.1; done
fi

hosts=()
for f in "$PWD"/demo/hosts/*.xml; do hosts+=("test://$f"); done
# The demo hosts start afresh with every start, and so does what the demo remembers of
# them: hosts added or removed at runtime (hosts.json) and the backups of their VMs (kept
# apart from a real installation's in /var/backups/uvmm). The API token stays.
demo_backups=/var/lib/uvmm-demo/backups
rm -f /var/lib/uvmm/hosts.json
rm -rf "$demo_backups"
echo "==> starting uvmmd on ${#hosts[@]} demo hosts"
# Plain HTTP on loopback for the demo (a real installation serves HTTPS: README, "Remote
# access").
uvmmd -d -b "" -s 127.0.0.1:2106 --plain-http --backup-dir "$demo_backups" "${hosts[@]}"
# The daemon answers at once; give the hosts a moment to finish connecting.
for _ in $(seq 50); do uvmm host list --json | grep -q '"connecting"' || break; sleep 0.1; done

# A demo login for the web UI: a local account (no home, no shell) in the group
# uvmm-admin, which uvmmd maps to the admin role by default ([auth.unix_groups]), with a
# random password kept root-only in /var/lib/uvmm/demo-password. PAM logins need uvmmd's
# PAM service file, which the package installs; install it here if it is missing.
demo_user=uvmm-demo
demo_pw_file=/var/lib/uvmm/demo-password
[ -e /etc/pam.d/uvmm ] || install -m 0644 packaging/debian/uvmm-daemon.uvmm.pam /etc/pam.d/uvmm
getent group uvmm-admin >/dev/null || groupadd --system uvmm-admin
id "$demo_user" >/dev/null 2>&1 ||
    useradd --system --no-create-home --shell /usr/sbin/nologin --groups uvmm-admin "$demo_user"
if [ ! -s "$demo_pw_file" ]; then
    (umask 077; head -c 12 /dev/urandom | base64 | tr -d '/+=' >"$demo_pw_file")
fi
echo "$demo_user:$(cat "$demo_pw_file")" | chpasswd

uvmm host list
echo
uvmm vm list
cat <<MSG

uvmmd is running (pid $(cat /run/uvmm/uvmmd.pid)).
  Web UI:   http://127.0.0.1:2106/   log in as $demo_user with the password
            $(cat "$demo_pw_file")   (the demo account; remove it with: userdel $demo_user)
  API:      UNIX socket /run/uvmm/uvmm.sock (root), and http://127.0.0.1:2106/api/v1/
            with the API token in /var/lib/uvmm/api-token (root-only; see docs/security.md)
  Log:      /var/log/uvmm/uvmmd.log
  Try:      uvmm vm start build-old      (in another terminal first: uvmm events)
            uvmm vm show web-01 --host demo-kvm2
            uvmm --url http://127.0.0.1:2106 vm list --state running
            curl -s -H "Authorization: Bearer \$(cat /var/lib/uvmm/api-token)" \\
                 'http://127.0.0.1:2106/api/v1/vms?state=running'
  Stop:     kill \$(cat /run/uvmm/uvmmd.pid)
The demo hosts are libvirt test-driver hosts: every restart starts them afresh.
MSG
