#!/usr/bin/env bash
# The 2,500 x 10 scenario of issue 18 (docs/performance.md): HOSTS in-process test-driver
# hosts (`test:///DIR/host-N.xml`, node files written here, VMS domains each) on one
# uvmmd, then a restart with the backup directory the first start left. Prints each
# figure next to its goal and writes bench/results/DATE-HOSTSxVMS-testdriver.md.
# Unlike bench/run.sh there is no libvirtd: libvirt's test driver runs inside uvmmd, so
# host reads cost no RPC. Latencies come from uvmm-bench's load client (keep-alive
# connections in one process); the peers' loops run on a sample of the hosts and are
# extrapolated (marked so). Every figure has the load average beside it (the machine is
# shared). Usage: bench/scale.sh [HOSTS] [VMS] [UVMMD] [UVMM_BENCH]
# CHECK_ONLY=1: only the start-up figures (first start, restart), no requests, idle or
# peers: a before/after comparison of the backup check takes a minute or two per binary.
set -euo pipefail
cd "$(dirname "$0")/.."
HOSTS=${1:-2500}
VMS=${2:-10}
UVMMD=${3:-target/release/uvmmd}
BENCH=${4:-target/release/uvmm-bench}
SAMPLE=${SAMPLE:-25}
W=$(mktemp -d /tmp/uvmm-scale.XXXXXX)
OUT=bench/results/$(date -u +%F)-${HOSTS}x${VMS}-testdriver${CHECK_ONLY:+-check}.md
# A second run on the same day keeps the first one's file.
[ -e "$OUT" ] && OUT=${OUT%.md}-$(date -u +%H%M).md
python3 bench/scale-nodes.py "$W" "$HOSTS" "$VMS"
URIS=()
for f in "$W"/hosts/*.xml; do URIS+=("test://$f"); done
printf '%s\n' "${URIS[@]}" >"$W/uris"
la() { cut -d' ' -f1 /proc/loadavg; }

pid=""
# Whatever ends the script, uvmmd and the work directory go with it.
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$W"' EXIT
start() { # $1: label
    : >"$W/uvmmd.log"
    UVMM_LOG=info "$UVMMD" -b "" -u "$W/s.sock" -c "$W/state" --backup-dir "$W/bk" \
        --config /dev/null "${URIS[@]}" >"$W/uvmmd.log" 2>&1 &
    pid=$!
    local t0 max_thr=0 warm="" checked="" now thr
    t0=$(date +%s.%N)
    while :; do
        now=$(date +%s.%N)
        thr=$(awk '/^Threads/{print $2}' /proc/$pid/status 2>/dev/null || echo 0)
        (( thr > max_thr )) && max_thr=$thr
        if [ -z "$warm" ] && [ "$(grep -c 'host connected and synchronised' "$W/uvmmd.log")" -ge "$HOSTS" ]; then
            warm=$(echo "$now - $t0" | bc)
        fi
        if [ -z "$checked" ] && [ "$(grep -c 'backups checked against' "$W/uvmmd.log")" -ge "$HOSTS" ]; then
            checked=$(echo "$now - $t0" | bc)
        fi
        [ -n "$warm" ] && [ -n "$checked" ] && break
        if (( $(echo "$now - $t0 > 900" | bc) )); then break; fi
        sleep 0.5
    done
    local failed
    failed=$(grep -o 'failed=[0-9]*' "$W/uvmmd.log" | grep -vc 'failed=0' || true)
    echo "| $1: cache warm | ${warm:-timeout} s | ≤ 10 s | $(la) |"
    echo "| $1: every backup checked | ${checked:-timeout} s | ≤ 30 s | $(la) |"
    echo "| $1: hosts whose check had failures | $failed | 0 | |"
    echo "| $1: most threads seen | $max_thr | bounded (not per host) | |"
}
load() { # $1 path, $2 clients, $3 requests: "p50 p99" in ms from the in-process client
    "$BENCH" --load "$W/s.sock" --load-path "$1" --load-clients "$2" --requests "$3"
}
{
echo "## $HOSTS test-driver hosts x $VMS VMs on one uvmmd (in-process test driver, no libvirtd)"
echo
echo "Machine: $(nproc) CPUs, load average at start $(cut -d' ' -f1-3 /proc/loadavg); uvmmd $(git rev-parse --short HEAD)."
echo
echo "| figure | measured | goal | load (1 min) |"
echo "|---|---|---|---|"
start "first start"
if [ -z "${CHECK_ONLY:-}" ]; then
sleep 2
rss=$(awk '/^VmRSS/{print $2}' /proc/$pid/status)
echo "| RSS after the checks | $((rss / 1024)) MB ($((rss * 1024 / HOSTS)) B per host, $((rss * 1024 / (HOSTS * VMS))) B per VM, all included) | ≤ 400 MB | $(la) |"
echo "| threads after the checks | $(awk '/^Threads/{print $2}' /proc/$pid/status) | bounded | |"
curl_size() { curl -s -o /dev/null -w '%{size_download}' --unix-socket "$W/s.sock" "$@" http://x/api/v1/vms; }
echo "| list-all body: plain / gzip | $(curl_size) / $(curl_size -H 'Accept-Encoding: gzip') bytes | | |"
tag=$(curl -s -D - -o /dev/null --unix-socket "$W/s.sock" http://x/api/v1/vms | awk -F': ' 'tolower($1)=="etag"{print $2}' | tr -d '\r')
echo "| list-all with the current ETag | HTTP $(curl -s -o /dev/null -w '%{http_code}' -H "If-None-Match: $tag" --unix-socket "$W/s.sock" http://x/api/v1/vms) | 304 | |"
read -r p50 p99 < <(load /api/v1/vms 1 100)
echo "| list-all p50 / p99 (1 client, 100 requests) | $p50 / $p99 ms | p99 ≤ 50 ms | $(la) |"
read -r p50 p99 < <(load '/api/v1/vms?q=*vm-1*&limit=50' 1 1000)
echo "| 50-row filtered page p50 / p99, 1 client (1,000) | $p50 / $p99 ms | p99 ≤ 2 ms | $(la) |"
read -r p50 p99 < <(load '/api/v1/vms?q=*vm-1*&limit=50' 64 4000)
echo "| 50-row filtered page p50 / p99, 64 clients (4,000) | $p50 / $p99 ms | p99 ≤ 20 ms | $(la) |"
a=$(awk '{print $14+$15}' /proc/$pid/stat); sleep 10; b=$(awk '{print $14+$15}' /proc/$pid/stat)
echo "| CPU in the 10 s after the requests (statistics at the watched rate) | $(echo "scale=2; ($b - $a) / 10" | bc) % of a core | | $(la) |"
sleep 10
a=$(awk '{print $14+$15}' /proc/$pid/stat); sleep 30; b=$(awk '{print $14+$15}' /proc/$pid/stat)
echo "| idle CPU over 30 s (nobody watching) | $(echo "scale=2; ($b - $a) / 30" | bc) % of a core | ≤ 2 % | $(la) |"
if read -r n all raw virsh < <("$BENCH" --peers "$W/uris" --virsh-hosts "$SAMPLE"); then
    echo "| peer: raw libvirt loop (ListAllDomains + GetInfo), $n hosts measured | $raw s; all $all hosts EXTRAPOLATED: $(echo "scale=1; $raw * $all / $n" | bc) s | | $(la) |"
    echo "| peer: virsh loop (list --all + dominfo per VM), $n hosts measured | $virsh s; all $all hosts EXTRAPOLATED: $(echo "scale=1; $virsh * $all / $n" | bc) s | | $(la) |"
fi
fi
kill "$pid"; wait "$pid" || true
echo "| backup directory | $(find "$W/bk" -name '*.meta.json' | wc -l) versions | $((HOSTS * VMS)) | |"
start "restart with the backups"
echo "| restart: new versions written | $(find "$W/bk" -name '*.meta.json' | wc -l) versions in all | $((HOSTS * VMS)) (none new) | |"
kill "$pid"; wait "$pid" || true
echo
echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg). Latencies: uvmm-bench --load (keep-alive connections in one process, after a warm-up round)."
} | tee "$OUT"
rm -rf "$W"
echo "results: $OUT" >&2
