#!/usr/bin/env bash
# Memory per host and per cached VM (issue 18), split between uvmm and libvirt's
# in-process test driver: uvmmd's RSS with no host, with HOSTS hosts of 0 VMs and with
# HOSTS hosts of VMS VMs (the node files of bench/scale.sh), each after its start-up
# backup check; then a process that only opens the same test:/// URIs through
# uvmm-libvirt and reads each host's domains once (`uvmm-bench --driver-rss`), for what
# the driver costs by itself. uvmm's part is the difference. Prints a Markdown table.
# Usage: bench/memory.sh [HOSTS] [VMS] [UVMMD] [UVMM_BENCH]
set -euo pipefail
cd "$(dirname "$0")/.."
HOSTS=${1:-500}
VMS=${2:-10}
UVMMD=${3:-target/release/uvmmd}
BENCH=${4:-target/release/uvmm-bench}
W=$(mktemp -d /tmp/uvmm-memory.XXXXXX)
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$W"' EXIT
la() { cut -d' ' -f1 /proc/loadavg; }
rss() { awk '/^VmRSS/{print $2}' "/proc/$1/status"; }

# $1: directory with a `uris` file (may be empty); prints "RSS_KIB RSS_AFTER_LIST_ALL_KIB".
uvmmd_rss() {
    local d=$1 n uris=()
    mapfile -t uris <"$d/uris"
    n=${#uris[@]}
    UVMM_LOG=info "$UVMMD" -b "" -u "$d/s.sock" -c "$d/state" --backup-dir "$d/bk" \
        --config /dev/null "${uris[@]}" >"$d/uvmmd.log" 2>&1 &
    pid=$!
    local t=0
    until [ -S "$d/s.sock" ] \
        && [ "$(grep -c 'host connected and synchronised' "$d/uvmmd.log")" -ge "$n" ] \
        && [ "$(grep -c 'backups checked against' "$d/uvmmd.log")" -ge "$n" ]; do
        sleep 0.5
        t=$((t + 1))
        (( t > 1800 )) && { echo "uvmmd did not get warm: $d/uvmmd.log" >&2; exit 1; }
    done
    sleep 3
    local before after
    before=$(rss "$pid")
    curl -s -o /dev/null --unix-socket "$d/s.sock" http://x/api/v1/vms
    curl -s -o /dev/null --unix-socket "$d/s.sock" 'http://x/api/v1/vms?q=*vm-1*&limit=50'
    sleep 1
    after=$(rss "$pid")
    kill "$pid"; wait "$pid" || true
    pid=""
    echo "$before $after"
}

for vms in 0 "$VMS"; do
    python3 bench/scale-nodes.py "$W/$vms" "$HOSTS" "$vms"
    for f in "$W/$vms"/hosts/*.xml; do echo "test://$f"; done >"$W/$vms/uris"
done
mkdir -p "$W/none" && : >"$W/none/uris"

read -r none _ < <(uvmmd_rss "$W/none")
read -r empty _ < <(uvmmd_rss "$W/0")
la0=$(la)
read -r full full_listed < <(uvmmd_rss "$W/$VMS")
la1=$(la)
read -r _ d_before d_empty < <("$BENCH" --driver-rss "$W/0/uris")
read -r d_vms _ d_full < <("$BENCH" --driver-rss "$W/$VMS/uris")
n=$((HOSTS * VMS))
per() { echo $(( ($1) * 1024 / ($2) )); }
echo "## Memory: $HOSTS in-process test-driver hosts, 0 and $VMS VMs each ($(git rev-parse --short HEAD))"
echo
echo "| figure | KiB | per host / per VM |"
echo "|---|---|---|"
echo "| uvmmd, no host | $none | |"
echo "| uvmmd, $HOSTS hosts × 0 VMs (load $la0) | $empty | $(per "empty - none" "$HOSTS") B per host |"
echo "| uvmmd, $HOSTS hosts × $VMS VMs (load $la1) | $full | $(per "full - empty" "$n") B per VM |"
echo "| … after one list-all and one page (the kept render) | $full_listed | +$((full_listed - full)) KiB |"
echo "| driver alone: process before opening | $d_before | |"
echo "| driver alone: $HOSTS hosts × 0 VMs open | $d_empty | $(per "d_empty - d_before" "$HOSTS") B per host |"
echo "| driver alone: $HOSTS hosts × $VMS VMs open ($d_vms domains read) | $d_full | $(per "d_full - d_empty" "$n") B per VM |"
echo "| uvmm's part per host (uvmmd − driver) | | $(( $(per "empty - none" "$HOSTS") - $(per "d_empty - d_before" "$HOSTS") )) B |"
echo "| uvmm's part per VM (uvmmd − driver) | | $(( $(per "full - empty" "$n") - $(per "d_full - d_empty" "$n") )) B |"
