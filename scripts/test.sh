#!/usr/bin/env bash
# The README's second command (and what .ci/run calls): install what the tests need, build
# the web UI, then check formatting and lints and run every test, including the slow ones
# and the browser tests (crates/uvmm-daemon/tests/web_ui.rs).
#
# How it stays well under 30 minutes on a 2-core machine (docs/operations.md, "How CI runs
# the tests", has the figures):
# - scripts/run-tests.sh runs the test binaries UVMM_TEST_JOBS (3) at a time, the slow
#   ones first: most of them wait (guests booting, sessions expiring, fixed budgets).
# - While they run, the release build of the packages and the fuzz targets' build run in
#   the background at the lowest CPU and I/O priority, so they take only what the tests
#   leave idle; the fuzz and packaging phases then find them built.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
# Each phase's wall time, printed at the end: CI must stay well under 30 minutes, and this
# says where the time goes.
phase_start=$(date +%s)
phase_name="install and build the web UI"
declare -a phase_times=()
phase() {
    local now
    now=$(date +%s)
    phase_times+=("$(printf '%-44s %5d s  (load average %s)' "$phase_name" $((now - phase_start)) \
        "$(cut -d' ' -f1-3 /proc/loadavg)")")
    phase_start=$now
    phase_name=$1
    echo "==> $1"
}
install_test_deps
install_browser
build_web
install_package_test_deps
install_fuzz_deps

phase "cargo fmt --check"
cargo fmt --all -- --check
phase "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -q -- -D warnings
phase "cargo test: build the tests"
cargo test --workspace --locked --no-run -q

# The background builds: the packages for packaging/tests/run.sh (build_test_packages)
# and the fuzz targets. nice 19 and the idle-most I/O class: the tests come first.
bg=$(mktemp -d /var/tmp/uvmm-test-bg.XXXXXX)
bg_pid=""
stop_background() {
    [ -z "$bg_pid" ] || kill -- "-$bg_pid" 2>/dev/null || true
    rm -rf "$bg"
}
trap stop_background EXIT
set -m # the background builds get a process group of their own, to stop them with it
(
    # Before anything starts: what it starts inherits both.
    renice -n 19 -p "$BASHPID" >/dev/null
    ionice -c 2 -n 7 -p "$BASHPID"
    started=$(date +%s)
    build_test_packages "$bg/debs"
    packages_done=$(date +%s)
    scripts/fuzz.sh build
    echo "packages $((packages_done - started)) s, fuzz targets $(($(date +%s) - packages_done)) s" \
        >"$bg/times"
) </dev/null >"$bg/log" 2>&1 &
bg_pid=$!
set +m

phase "cargo test: run (all tests, slow ones included; scripts/run-tests.sh)"
scripts/run-tests.sh --include-ignored
phase "wait for the background builds (packages, fuzz targets)"
# Nothing to give way to any more: back to normal priority (at nice 19 beside other work
# on the machine the builds would hardly get a core).
renice -n 0 -g "$bg_pid" >/dev/null 2>&1 || true
ionice -c 2 -n 4 -P "$bg_pid" 2>/dev/null || true
bg_rc=0
wait "$bg_pid" || bg_rc=$?
bg_pid=""
if [ "$bg_rc" != 0 ]; then
    tail -40 "$bg/log"
    die "the background build of the packages or the fuzz targets failed (exit $bg_rc)"
fi
echo "    built in the background: $(cat "$bg/times")"
phase "fuzz smoke run (every cargo-fuzz target for 10 s; fails on a crash)"
FUZZ_SECONDS=10 scripts/fuzz.sh smoke
phase "packaging tests (packages, lintian, man pages, a clean Debian 12 root, systemd)"
UVMM_PKGTEST_DEBS=$bg/debs packaging/tests/run.sh
phase "done"
echo "==> time per phase"
printf '    %s\n' "${phase_times[@]}"
echo "==> all checks passed"
