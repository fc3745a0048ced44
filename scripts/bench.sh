#!/usr/bin/env bash
# Benchmarks of one release-built booking shard (+ its etcd and PostgreSQL, all on
# this machine) driven by boxoffice-load. Each scenario gets a fresh show.
#
#   scripts/bench.sh [SECONDS] [CONCURRENCY]      # defaults: 10 s, 64 clients
#
# Results: one JSON line per run in target/bench/results.jsonl, a summary on stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
conc=${2:-64}
ETCD_PORT=${ETCD_PORT:-23891}
PG_PORT=${PG_PORT:-25532}
SHARD_PORT=${SHARD_PORT:-8181}

cargo build -q --release -p booking-shard -p boxoffice-load
. scripts/lib/stack.sh
stack_init "$PWD/target/bench-run"
mkdir -p target/bench
results=$PWD/target/bench/results.jsonl
: >"$results"
stack_etcd "$ETCD_PORT"
stack_postgres "$PG_PORT" bench
export BOXOFFICE_JWT_SECRET
BOXOFFICE_JWT_SECRET=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')

# A show file from an example: renamed, without the per-user limit (load users are few).
show_from() {  # EXAMPLE NAME
  sed -e "s/^  name: .*/  name: $2/" -e '/maxSeatsPerUser/d' "examples/shows/$1" >"$work/$2.yaml"
}
# A 20,000-seat arena: 10 sections of rows A-T with 100 seats.
arena() {  # NAME
  {
    printf 'apiVersion: boxoffice.dev/v1alpha1\nkind: Show\nmetadata:\n  name: %s\nspec:\n' "$1"
    printf '  title: Arena\n  startsAt: "2027-06-01T19:00:00Z"\n'
    printf '  categories:\n    - {name: std, price: "50.00", currency: EUR}\n  seating:\n    sections:\n'
    for s in $(seq 1 10); do
      printf '      - name: s%s\n        category: std\n        rows:\n          - {names: "A-T", seats: 100}\n' "$s"
    done
    printf '  holds: {ttl: 10m, maxSeatsPerHold: 8}\n'
  } >"$work/$1.yaml"
}

shard_pid=""
start_shard() {  # SHOW_NAME
  stack_shard target/release/booking-shard "bench-$1" "$SHARD_PORT" "$work/$1.yaml" \
    "http://127.0.0.1:$ETCD_PORT" "postgres://postgres@127.0.0.1:$PG_PORT/bench" \
    --hold-rate 0 --db-pool 32 --log-format json
  shard_pid=${stack_pids[-1]}
  stack_wait_ready "http://127.0.0.1:$SHARD_PORT"
}
stop_shard() {
  kill "$shard_pid" 2>/dev/null || true
  wait "$shard_pid" 2>/dev/null || true
}
load() {  # SHOW SCENARIO [extra args]
  local show=$1 scenario=$2
  shift 2
  target/release/boxoffice-load --url "http://127.0.0.1:$SHARD_PORT" --show "$show" \
    --scenario "$scenario" --duration "$secs" --concurrency "$conc" "$@" >>"$results"
}
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

show_from club.yaml mem-club
start_shard mem-club
club_rss=$(rss_kib "$shard_pid")
stop_shard
show_from stadium.yaml mem-stadium
start_shard mem-stadium
stadium_rss=$(rss_kib "$shard_pid")
stop_shard
echo "{\"scenario\":\"memory\",\"club_rss_kib\":$club_rss,\"stadium_rss_kib\":$stadium_rss,\"bytes_per_seat\":$(( (stadium_rss - club_rss) * 1024 / (80000 - 40) ))}" >>"$results"

show_from stadium.yaml holds-80k;  start_shard holds-80k;  load holds-80k holds;   stop_shard
show_from stadium.yaml hot-80k;    start_shard hot-80k;    load hot-80k hot;       stop_shard
arena war-20k;                     start_shard war-20k;    load war-20k war;       stop_shard
arena map-20k;                     start_shard map-20k;    load map-20k seatmap;   stop_shard
show_from stadium.yaml confirm-80k; start_shard confirm-80k; load confirm-80k confirms --prepare 5000; stop_shard

cat "$results"
