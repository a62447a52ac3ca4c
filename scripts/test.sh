#!/usr/bin/env bash
# The README's second command (and what .ci/run calls): install what the tests need, build
# the web UI, then check formatting and lints and run every test, including the slow ones
# and the browser tests (crates/uvmm-daemon/tests/web_ui.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
install_test_deps
install_browser
build_web
install_package_test_deps
install_fuzz_deps

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -q -- -D warnings
echo "==> cargo test (all tests, slow ones included)"
cargo test --workspace --locked -- --include-ignored
echo "==> fuzz smoke run (every cargo-fuzz target for 10 s; fails on a crash)"
FUZZ_SECONDS=10 scripts/fuzz.sh smoke
echo "==> packaging tests (packages, lintian, man pages, a clean Debian 12 root, systemd)"
packaging/tests/run.sh
echo "==> all checks passed"
