#!/usr/bin/env bash
# The scale benchmark in one command (docs/performance.md): installs what it needs, builds
# release binaries and runs uvmm-bench. Arguments go to uvmm-bench; without any it runs the
# full configuration (200 hosts x 50 VMs, virsh baseline over every host) and writes
# bench/results/DATE-200x50.{json,md}. Needs root: it starts libvirtd instances as nobody
# and raises fs.inotify.max_user_instances. Takes about 15 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
install_build_deps
apt_install libvirt-daemon libvirt-clients
cargo build --release --locked -p uvmm-daemon -p uvmm-bench
if [ $# -eq 0 ]; then
    set -- --hosts 200 --vms 50 --requests 500 --events 200 --idle-secs 60
fi
exec ./target/release/uvmm-bench "$@"
