#!/usr/bin/env bash
# The 2,500 x 10 scenario of issue 18 (docs/performance.md): HOSTS in-process test-driver
# hosts (`test:///DIR/host-N.xml`, node files written here, VMS domains each) on one
# uvmmd, then a restart with the backup directory the first start left. Prints each
# figure next to its goal and writes bench/results/DATE-HOSTSxVMS-testdriver.md.
# Unlike bench/run.sh there is no libvirtd: libvirt's test driver runs inside uvmmd, so
# host reads cost no RPC. Usage: bench/scale.sh [HOSTS] [VMS] [UVMMD]
set -euo pipefail
cd "$(dirname "$0")/.."
HOSTS=${1:-2500}
VMS=${2:-10}
UVMMD=${3:-target/release/uvmmd}
W=$(mktemp -d /tmp/uvmm-scale.XXXXXX)
OUT=bench/results/$(date -u +%F)-${HOSTS}x${VMS}-testdriver.md
python3 - "$W" "$HOSTS" "$VMS" <<'PY'
import os, sys
w, hosts, vms = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(f"{w}/hosts")
for h in range(hosts):
    doms = []
    for v in range(vms):
        n = h * vms + v
        u = f"5ca1ab1e-{h:04x}-4000-8000-{n:012x}"
        state = "" if v % 2 == 0 else "<test:runstate>5</test:runstate>"
        doms.append(f"""<domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>
<name>vm-{h:04}-{v:02}</name><uuid>{u}</uuid><description>scale VM {n}</description>
<memory unit='MiB'>1024</memory><vcpu>1</vcpu><os><type>hvm</type></os>
<devices><disk type='file' device='disk'><source file='/var/lib/scale/{n}.qcow2'/>
<target dev='vda' bus='virtio'/></disk><interface type='network'><mac address='52:54:00:{(n>>16)&255:02x}:{(n>>8)&255:02x}:{n&255:02x}'/>
<source network='default'/></interface></devices>{state}</domain>""")
    with open(f"{w}/hosts/host-{h:04}.xml", "w") as f:
        f.write("<node>" + "".join(doms) + "<cpu><mhz>2400</mhz><active>8</active><nodes>1</nodes><sockets>1</sockets><cores>8</cores><threads>1</threads></cpu><memory>67108864</memory></node>")
PY
URIS=()
for f in "$W"/hosts/*.xml; do URIS+=("test://$f"); done

pid=""
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
    echo "| $1: cache warm | ${warm:-timeout} s | ≤ 10 s |"
    echo "| $1: every backup checked | ${checked:-timeout} s | ≤ 30 s |"
    echo "| $1: hosts whose check had failures | $failed | 0 |"
    echo "| $1: most threads seen | $max_thr | bounded (not per host) |"
}
pct() { sort -n | awk -v p="$1" '{a[NR]=$1} END{i=int(NR*p/100+0.999); if(i<1)i=1; printf "%.1f", a[i]*1000}'; }
lat() { # $1 URL path, $2 requests, $3 parallel clients
    seq "$2" | xargs -P "$3" -I{} curl -s -o /dev/null -w '%{time_total}\n' \
        --unix-socket "$W/s.sock" "http://x$1"
}
{
echo "## $HOSTS test-driver hosts x $VMS VMs on one uvmmd (in-process test driver, no libvirtd)"
echo
echo "Machine: $(nproc) CPUs, load average at start $(cut -d' ' -f1-3 /proc/loadavg); uvmmd $(git rev-parse --short HEAD)."
echo
echo "| figure | measured | goal |"
echo "|---|---|---|"
start "first start"
sleep 2
rss=$(awk '/^VmRSS/{print $2}' /proc/$pid/status)
echo "| RSS after the checks | $((rss / 1024)) MB ($((rss * 1024 / HOSTS)) B per host, $((rss * 1024 / (HOSTS * VMS))) B per VM, all included) | ≤ 400 MB |"
lat '/api/v1/vms' 3 1 >/dev/null
echo "| list-all body | $(curl -s -o /dev/null -w '%{size_download}' --unix-socket "$W/s.sock" http://x/api/v1/vms) bytes | |"
echo "| list-all p50 / p99 (1 client, 100 requests) | $(lat '/api/v1/vms' 100 1 | pct 50) / $(lat '/api/v1/vms' 100 1 | pct 99) ms | p99 ≤ 50 ms |"
echo "| 50-row filtered page p99, 1 client (300) | $(lat '/api/v1/vms?q=*vm-1*&limit=50' 300 1 | pct 99) ms | ≤ 2 ms |"
echo "| 50-row filtered page p99, 64 clients (2000) | $(lat '/api/v1/vms?q=*vm-1*&limit=50' 2000 64 | pct 99) ms | ≤ 20 ms |"
a=$(awk '{print $14+$15}' /proc/$pid/stat); sleep 30; b=$(awk '{print $14+$15}' /proc/$pid/stat)
echo "| idle CPU over 30 s | $(echo "scale=2; ($b - $a) / 30" | bc) % of a core | ≤ 2 % |"
kill "$pid"; wait "$pid" || true
echo "| backup directory | $(find "$W/bk" -name '*.meta.json' | wc -l) versions | $((HOSTS * VMS)) |"
start "restart with the backups"
echo "| restart: new versions written | $(find "$W/bk" -name '*.meta.json' | wc -l) versions in all | $((HOSTS * VMS)) (none new) |"
kill "$pid"; wait "$pid" || true
echo
echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg). The latencies are curl's time_total (a process per request included)."
} | tee "$OUT"
rm -rf "$W"
echo "results: $OUT" >&2
