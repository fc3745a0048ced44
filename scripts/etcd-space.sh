#!/usr/bin/env bash
# etcd space under sustained holds (docs/reliability.md, "etcd space"): a 20,000-seat
# arena, holds that expire after 5 s, 32 clients, an etcd with a 16 MiB quota; run once
# with the shard's etcd maintenance off and once on (every 2 s). Prints etcd's size,
# alarm and the maintenance counters every 5 s, then the load summary.
#
#   scripts/etcd-space.sh [SECONDS]          # default 60 s per run
#   PROFILE=debug scripts/etcd-space.sh      # use debug builds (default: release)
#
# The load generator's "seats granted to two holds" check assumes holds outlive the
# run; with 5 s holds every seat is held many times, so its complaint is ignored here.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
profile=${PROFILE:-release}
if [ "$profile" = release ]; then
  cargo build -q --release -p booking-shard -p boxoffice-load
else
  cargo build -q -p booking-shard -p boxoffice-load
fi
. scripts/lib/stack.sh
export STACK_ETCD_QUOTA_BYTES=$((16 * 1024 * 1024))
export BOXOFFICE_JWT_SECRET
BOXOFFICE_JWT_SECRET=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
ETCD_PORT=${ETCD_PORT:-23991}
PG_PORT=${PG_PORT:-25632}
SHARD_PORT=${SHARD_PORT:-8291}

run() {  # MODE INTERVAL
  local mode=$1 interval=$2 metrics=$((SHARD_PORT + 1000))
  stack_init "$PWD/target/etcd-space-$mode"
  stack_etcd "$ETCD_PORT"
  stack_postgres "$PG_PORT" space
  {
    printf 'apiVersion: boxoffice.dev/v1alpha1\nkind: Show\nmetadata:\n  name: arena\nspec:\n'
    printf '  title: Arena\n  startsAt: "2027-06-01T19:00:00Z"\n'
    printf '  categories:\n    - {name: std, price: "50.00", currency: EUR}\n  seating:\n    sections:\n'
    for s in $(seq 1 10); do
      printf '      - name: s%s\n        category: std\n        rows:\n          - {names: "A-T", seats: 100}\n' "$s"
    done
    printf '  holds: {ttl: 10m, maxSeatsPerHold: 8, maxSeatsPerUser: 10000}\n'
  } >"$work/arena.yaml"
  stack_shard "target/$profile/booking-shard" "space-$mode" "$SHARD_PORT" "$work/arena.yaml" \
    "http://127.0.0.1:$ETCD_PORT" "postgres://postgres@127.0.0.1:$PG_PORT/space" \
    --hold-rate 0 --hold-ttl-seconds 5 --etcd-maintenance "$mode" \
    --etcd-maintenance-interval "$interval"
  stack_wait_ready "http://127.0.0.1:$SHARD_PORT"
  echo "== etcd maintenance $mode (every ${interval}s), 16 MiB quota, ${secs}s of holds"
  (
    while sleep 5; do
      curl -s "http://127.0.0.1:$metrics/metrics" |
        grep -E '^boxoffice_(holds_total|leader_terms_total|etcd_db_size_bytes|etcd_db_size_in_use_bytes|etcd_nospace_alarm|etcd_compactions_total|etcd_defragmentations_total|etcd_alarms_disarmed_total) ' |
        sed -e 's/^boxoffice_//' -e 's/_total / /' | awk '{printf "%s=%s ", $1, $2} END {print ""}'
    done
  ) &
  local poller=$!
  "target/$profile/boxoffice-load" --url "http://127.0.0.1:$SHARD_PORT" --show arena \
    --scenario holds --duration "$secs" --concurrency 32 >"$work/load.json" 2>"$work/load.err" || true
  kill "$poller" 2>/dev/null || true
  grep -m1 '^Boxoffice' "$work/load.err" || cat "$work/load.err"
  echo "hold errors by code:"
  sed 's/\x1b\[[0-9;]*m//g' "$work/space-$mode.log" | grep -ao 'code=[A-Za-z]*' | sort | uniq -c || true
  stack_stop
}

run off 2
run auto 2
