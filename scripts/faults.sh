#!/usr/bin/env bash
# The fault campaign (docs/reliability.md).
#   scripts/faults.sh              the short campaign and the broken-build check (as in test.sh)
#   scripts/faults.sh --long [N]   rounds of 90 s until at least N faults (default 200)
# BOXOFFICE_CAMPAIGN_SEEDS=7,8 replays chosen seeds.
set -euo pipefail
cd "$(dirname "$0")/.."
BOXOFFICE_TOOLS_BIN=$(scripts/tools.sh)
export BOXOFFICE_TOOLS_BIN

cargo build -p booking-shard --features test-switches
if [[ "${1:-}" == "--long" ]]; then
  export BOXOFFICE_CAMPAIGN_FAULTS="${2:-200}"
  # Run a copy of the shard so a rebuild during the campaign does not swap it.
  bin_dir="target/campaign/bin"
  mkdir -p "$bin_dir"
  cp target/debug/booking-shard "$bin_dir/booking-shard"
  export BOXOFFICE_SHARD_BIN="$PWD/$bin_dir/booking-shard"
  exec cargo test -p boxoffice-e2e --test faults -- --ignored --nocapture long_campaign
fi
exec cargo test -p boxoffice-e2e --test faults -- --nocapture --test-threads 1
