#!/usr/bin/env bash
# Run every test of the workspace — what `cargo test --workspace` runs: each crate's unit
# tests, every integration test binary and the doc tests — but several test binaries at
# once instead of one after another. scripts/test.sh runs this; by hand:
#
#   scripts/run-tests.sh [TEST-ARGS...]      e.g. scripts/run-tests.sh --include-ignored
#
# Why: most of the slow binaries wait rather than compute (a guest booting, a session
# expiring after a minute, schemathesis' fixed budget, Chromium), so running a CPU-light
# binary beside them costs little. TEST-ARGS go to every binary (libtest's own options,
# e.g. --include-ignored; a name filter would skip tests, so CI passes none).
#
# - UVMM_TEST_JOBS (default 3) binaries run at the same time; 1 runs them one by one.
# - ALONE binaries run first, by themselves (timing-sensitive). Then the slowest binaries
#   start first (SLOW below, measured: see docs/operations.md), so
#   that the run does not end with one long binary alone; every other binary follows in
#   cargo's order. A binary that is not in SLOW still runs: the list only orders.
# - Each binary's output is printed in one piece when it ends, headed by its name, result
#   and wall time; a table of all of them (slowest first) and the machine's CPU use
#   follow at the end.
# - The run goes on after a failure and exits non-zero at the end, naming every failed
#   binary. A binary that exits 0 without libtest's "test result: ok." line (it never
#   got to run its tests) counts as failed too.
# - UVMM_TEST_BINARIES=REGEX runs only the binaries whose label (e.g. "uvmm-daemon/api",
#   "uvmm-model/uvmm_model (unit)", "doc-tests") matches: for developers; the run says
#   how many it left out. CI never sets it.
#
# Binaries that share something fixed must not overlap; the harnesses keep them apart
# (docs/operations.md, "How CI runs the tests"): VNC port ranges per system libvirtd,
# a machine-wide lock around useradd & co., unique names and free ports everywhere else.
# EXCLUSIVE below lists what must still never run at the same time as anything of its
# group.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

jobs=${UVMM_TEST_JOBS:-3}
[[ "$jobs" =~ ^[1-9][0-9]*$ ]] || die "UVMM_TEST_JOBS=$jobs: give a number of binaries (1 or more)"
test_args=("$@")

# The slowest binaries, slowest first (seconds of one CI run with UVMM_TEST_JOBS=1).
SLOW=(
    uvmm-daemon/moving_vms
    uvmm-daemon/schemathesis
    uvmm-libvirt/migration
    uvmm-daemon/attacks
    uvmm-daemon/web_ui
    uvmm-daemon/qemu_real
    uvmm-daemon/console
    uvmm-libvirt/snapshots
    uvmm-libvirt/devices
    uvmm-daemon/tasks
    uvmm-daemon/external_changes
    uvmm-daemon/pool_freshness
    uvmm-daemon/real_outcomes
    uvmm-daemon/storage
    uvmm-daemon/fault_injection
    uvmm-daemon/directory
)
# GROUP:binary...: binaries of one group never run at the same time. The binaries that
# boot QEMU guests with two libvirtds each (crates/uvmm-libvirt/tests/support/hosts.rs)
# keep two cores busy by themselves (its HOSTS_LOCK serialises them within a binary for
# the same reason); two of them at once only slow each other down.
EXCLUSIVE=(
    "tcg-hosts:uvmm-daemon/moving_vms uvmm-libvirt/migration uvmm-libvirt/snapshots uvmm-libvirt/devices"
)

# Binaries that run by themselves, before all others: the PAM test compares the medians
# of two kinds of failed logins within 100 ms, and a real password check (pam_unix,
# yescrypt) slows down under load — on this machine it failed alone at a load average
# of 13 from other work, and would more often beside the QEMU binaries.
ALONE=(
    uvmm-auth/pam
)

work=$(mktemp -d "${TMPDIR:-/tmp}/uvmm-run-tests.XXXXXX")
declare -A label_of=()
cleanup() {
    local p
    for p in "${!label_of[@]}"; do kill -- "-$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "==> building the test binaries"
cargo test --workspace --locked --no-run --message-format=json-render-diagnostics \
    >"$work/build.json"
# One line per test binary: label, package directory, executable. Unit tests of a library
# or a binary are labelled with the target's name and "(unit)".
jq -r 'select(.reason == "compiler-artifact" and .profile.test and .executable != null)
    | (.manifest_path | sub("/Cargo.toml$"; "")) as $dir
    | [($dir | split("/") | last) + "/" + .target.name
        + (if (.target.kind | index("test")) then "" else " (unit)" end),
       $dir, .executable] | @tsv' "$work/build.json" >"$work/binaries.tsv"
declare -A dir_of=() exe_of=()
declare -a order=()
while IFS=$'\t' read -r label dir exe; do
    [ -z "${exe_of[$label]:-}" ] || die "two test binaries are both called $label"
    dir_of[$label]=$dir
    exe_of[$label]=$exe
done <"$work/binaries.tsv"
[ ${#exe_of[@]} -gt 0 ] || die "cargo built no test binary"
declare -a all=()
for label in "${ALONE[@]}" "${SLOW[@]}"; do
    if [ -n "${exe_of[$label]:-}" ]; then all+=("$label"); fi
done
while IFS=$'\t' read -r label _ _; do
    if [[ " ${ALONE[*]} ${SLOW[*]} " != *" $label "* ]]; then all+=("$label"); fi
done <"$work/binaries.tsv"
# The doc tests: cargo compiles and runs them itself.
all+=("doc-tests")
for label in "${all[@]}"; do
    if [[ "$label" =~ ${UVMM_TEST_BINARIES:-.} ]]; then order+=("$label"); fi
done
[ ${#order[@]} -eq ${#all[@]} ] ||
    echo "==> UVMM_TEST_BINARIES='${UVMM_TEST_BINARIES:-}': $((${#all[@]} - ${#order[@]})) of ${#all[@]} test binaries left out"
[ ${#order[@]} -gt 0 ] || die "UVMM_TEST_BINARIES='${UVMM_TEST_BINARIES:-}' matches no test binary"
declare -A group_of=()
for entry in "${EXCLUSIVE[@]}"; do
    for label in ${entry#*:}; do group_of[$label]=${entry%%:*}; done
done

# The machine's CPU use over the run, from /proc/stat: busy and all jiffies.
cpu_now() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8 }' /proc/stat; }
read -r busy0 all0 < <(cpu_now)
run_started=$(date +%s)
echo "==> running ${#order[@]} test binaries, $jobs at a time (load average $(cut -d' ' -f1-3 /proc/loadavg))"

declare -A started_at=() running_group=()
declare -a results=() failed=()
n=0
# Each binary runs in its package directory, as cargo runs it, in a process group of
# its own (set -m) so that an interrupted run can stop it with its children.
set -m
start() {
    local label=$1 log=$work/log.$n
    n=$((n + 1))
    if [ "$label" = doc-tests ]; then
        cargo test --workspace --locked --doc -- "${test_args[@]}" >"$log" 2>&1 &
    else
        (cd "${dir_of[$label]}" &&
            CARGO_MANIFEST_DIR=${dir_of[$label]} exec "${exe_of[$label]}" "${test_args[@]}") \
            >"$log" 2>&1 &
    fi
    local pid=$!
    label_of[$pid]=$label
    started_at[$pid]=$(date +%s)
    echo "$log" >"$work/logname.$pid"
    [ -z "${group_of[$label]:-}" ] || running_group[${group_of[$label]}]=$label
}
finish() {
    local pid=$1 rc=$2
    local label=${label_of[$pid]} secs verdict log
    log=$(cat "$work/logname.$pid")
    secs=$(($(date +%s) - ${started_at[$pid]}))
    verdict=ok
    if [ "$rc" != 0 ]; then
        verdict="FAILED (exit $rc)"
    elif [ "$label" != doc-tests ] && ! grep -q '^test result: ok\.' "$log"; then
        verdict="FAILED (no test result)"
    fi
    echo "==> $label: $verdict, ${secs} s"
    cat "$log"
    results+=("$(printf '%5d s  %s%s' "$secs" "$label" "$([ "$verdict" = ok ] || echo "  $verdict")")")
    [ "$verdict" = ok ] || failed+=("$label")
    [ -z "${group_of[$label]:-}" ] || unset "running_group[${group_of[$label]}]"
    unset "label_of[$pid]"
}

queue=()
for label in "${order[@]}"; do
    if [[ " ${ALONE[*]} " == *" $label "* ]]; then
        start "$label"
        rc=0
        wait -n -p done_pid "${!label_of[@]}" || rc=$?
        finish "$done_pid" "$rc"
    else
        queue+=("$label")
    fi
done
while [ ${#queue[@]} -gt 0 ] || [ ${#label_of[@]} -gt 0 ]; do
    # Start the first waiting binaries whose group is free, up to the limit.
    while [ ${#label_of[@]} -lt "$jobs" ] && [ ${#queue[@]} -gt 0 ]; do
        pick=-1
        for i in "${!queue[@]}"; do
            g=${group_of[${queue[$i]}]:-}
            if [ -z "$g" ] || [ -z "${running_group[$g]:-}" ]; then
                pick=$i
                break
            fi
        done
        [ "$pick" -ge 0 ] || break
        start "${queue[$pick]}"
        unset "queue[$pick]"
        queue=("${queue[@]}")
    done
    rc=0
    wait -n -p done_pid "${!label_of[@]}" || rc=$?
    finish "$done_pid" "$rc"
done
set +m

read -r busy1 all1 < <(cpu_now)
elapsed=$(($(date +%s) - run_started))
echo "==> test binaries by wall time (slowest first)"
printf '%s\n' "${results[@]}" | sort -rn | sed 's/^/    /'
echo "==> ${#results[@]} test binaries in ${elapsed} s, $jobs at a time; CPU busy" \
    "$(((busy1 - busy0) * 100 / (all1 - all0 > 0 ? all1 - all0 : 1)))% of $(nproc) cores," \
    "load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
if [ ${#failed[@]} -gt 0 ]; then
    echo "==> FAILED: ${failed[*]}"
    exit 1
fi
