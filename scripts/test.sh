#!/usr/bin/env bash
# THE test command (README, CI): builds or finds the test toolchain, then checks
# formatting, lints, and runs every test of the workspace against real servers
# (etcd, PostgreSQL, kube-apiserver, kube-controller-manager, kube-scheduler, headless
# Chromium through chromedriver).
set -euo pipefail
cd "$(dirname "$0")/.."

start=$(date +%s)
BOXOFFICE_TOOLS_BIN=$(scripts/tools.sh)
export BOXOFFICE_TOOLS_BIN
echo "test.sh: toolchain in $BOXOFFICE_TOOLS_BIN ($(($(date +%s) - start))s)"

command -v kubectl >/dev/null || { echo "test.sh: kubectl is required on PATH" >&2; exit 1; }

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The shard without its default Kafka sink (what scripts/demo.sh builds) lints too.
cargo clippy -p booking-shard --lib --locked --no-default-features -- -D warnings
# Binaries first: e2e tests run the shard and operator as processes. The fault
# campaign's switches (fencing off, delayed writes) exist only with `test-switches`,
# which the shard's dev-dependency on itself turns on in any build that includes tests:
# `--tests` gives the binaries exactly the features `cargo test` builds them with
# (`--features booking-shard/test-switches` next to `--workspace` is silently ignored).
cargo build --workspace --bins --tests --locked
cargo test --workspace --locked "$@"

# The demo starts, and the README's booking API examples run as written against it
# (through the standby). With the binaries built above (the dev profile), not the
# demo's own quickstart build: the same code, unoptimized, without the Kafka sink
# (linted above).
BOXOFFICE_DEMO_PROFILE=dev bash scripts/demo.sh --check

echo "test.sh: all checks passed in $(($(date +%s) - start))s"
