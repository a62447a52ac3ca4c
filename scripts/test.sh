#!/usr/bin/env bash
# The README's second command (and what .ci/run calls): install what the tests need, build
# the web UI, then check formatting and lints and run every test, including the slow ones
# and the browser tests (crates/uvmm-daemon/tests/web_ui.rs).
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
    phase_times+=("$(printf '%-44s %5d s' "$phase_name" $((now - phase_start)))")
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
phase "cargo test: run (all tests, slow ones included)"
cargo test --workspace --locked -- --include-ignored
phase "fuzz smoke run (every cargo-fuzz target for 10 s; fails on a crash)"
FUZZ_SECONDS=10 scripts/fuzz.sh smoke
phase "packaging tests (packages, lintian, man pages, a clean Debian 12 root, systemd)"
packaging/tests/run.sh
phase "done"
echo "==> time per phase"
printf '    %s\n' "${phase_times[@]}"
echo "==> all checks passed"
