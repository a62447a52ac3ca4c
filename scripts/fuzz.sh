#!/usr/bin/env bash
# Fuzz uvmm's parsers with cargo-fuzz (libFuzzer + AddressSanitizer): fuzz/fuzz_targets/.
#
#   scripts/fuzz.sh smoke            every target for FUZZ_SECONDS (default 25) — test.sh runs this
#   scripts/fuzz.sh long [SECONDS]   every target for SECONDS (default 900), figures at the end
#   scripts/fuzz.sh run TARGET SECONDS
#   scripts/fuzz.sh build            only build the targets (test.sh does it while the tests
#                                    run; the smoke run's own build then finds nothing to do)
#
# Exits non-zero when a target crashes (the input is kept in fuzz/artifacts/TARGET/ and
# the output says how to reproduce it). cargo-fuzz needs nightly-only compiler flags
# (-Zsanitizer=address, sanitizer coverage) and builds with optimisations plus debug
# assertions and overflow checks (its default); this machine has the stable toolchain only,
# so the build sets RUSTC_BOOTSTRAP=1, which lets stable rustc accept them — for this
# build only, nothing else in the repository depends on unstable features.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

TARGETS=(xml_parse edit_merge api_bodies glob auth_config auth_files)
export RUSTC_BOOTSTRAP=1

run_target() {
    local target=$1 seconds=$2 log
    mkdir -p "fuzz/corpus/$target"
    log=$(mktemp)
    echo "==> fuzz $target for ${seconds}s"
    # The first directory collects new inputs, the seeds are read only. -max_len covers
    # the largest seed definitions; -rss_limit_mb bounds memory as a crash would.
    if ! cargo fuzz run "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
        -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$log" 2>&1; then
        tail -60 "$log"
        rm -f "$log"
        die "fuzz target $target crashed (input in fuzz/artifacts/$target/)"
    fi
    local runs
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    echo "    $target: ${runs:-?} executions, no crash, corpus $(find "fuzz/corpus/$target" -type f | wc -l) inputs"
    rm -f "$log"
}

command -v cargo-fuzz >/dev/null 2>&1 || install_fuzz_deps
cargo fuzz --version >/dev/null 2>&1 || die "cargo-fuzz is not installed and could not be installed"

case "${1:-smoke}" in
    smoke)
        echo "==> building the fuzz targets"
        cargo fuzz build >/dev/null 2>&1 || cargo fuzz build
        for t in "${TARGETS[@]}"; do run_target "$t" "${FUZZ_SECONDS:-25}"; done
        ;;
    long)
        cargo fuzz build
        for t in "${TARGETS[@]}"; do run_target "$t" "${2:-900}"; done
        ;;
    build)
        cargo fuzz build
        ;;
    run)
        [ $# -eq 3 ] || die "usage: scripts/fuzz.sh run TARGET SECONDS"
        run_target "$2" "$3"
        ;;
    *) die "usage: scripts/fuzz.sh smoke | long [SECONDS] | run TARGET SECONDS | build" ;;
esac
