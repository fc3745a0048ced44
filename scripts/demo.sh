#!/usr/bin/env bash
# Runs boxoffice locally: a private etcd and PostgreSQL (data under target/demo), and
# two booking-shard replicas for examples/shows/club.yaml. Prints the URLs and a demo
# token; Ctrl-C stops everything.
#
#   scripts/demo.sh            # run until Ctrl-C
#   scripts/demo.sh --smoke    # start, hold and confirm two seats through the standby, stop
#
# Ports (override with env): ETCD_PORT=23791, PG_PORT=25432, SHARD_PORTS="8081 8082".
set -euo pipefail
cd "$(dirname "$0")/.."

smoke=false
[ "${1:-}" = "--smoke" ] && smoke=true

ETCD_PORT=${ETCD_PORT:-23791}
PG_PORT=${PG_PORT:-25432}
SHARD_PORTS=${SHARD_PORTS:-"8081 8082"}
SHOW_FILE=${SHOW_FILE:-examples/shows/club.yaml}

# The whole workspace, as test.sh builds it: the same feature resolution, so no rebuild.
cargo build -q --workspace --bins
. scripts/lib/stack.sh
stack_init "$PWD/target/demo"
stack_etcd "$ETCD_PORT"
stack_postgres "$PG_PORT" boxoffice

secret=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
export BOXOFFICE_JWT_SECRET=$secret
urls=()
i=0
for port in $SHARD_PORTS; do
  stack_shard target/debug/booking-shard "shard-$i" "$port" "$SHOW_FILE" \
    "http://127.0.0.1:$ETCD_PORT" "postgres://postgres@127.0.0.1:$PG_PORT/boxoffice"
  urls+=("http://127.0.0.1:$port")
  i=$((i + 1))
done

show=$(sed -n 's/^  name: *//p' "$SHOW_FILE" | head -n 1)
stack_wait_ready "${urls[@]}"
token=$(target/debug/mint-token --secret "$secret" --sub demo-user)
staff=$(target/debug/mint-token --secret "$secret" --sub demo-usher --roles staff)

if $smoke; then
  standby=""
  for url in "${urls[@]}"; do
    [ "$(curl -fs "$url/readyz")" = standby ] && standby=$url
  done
  [ -n "$standby" ] || { echo "demo: no standby replica" >&2; exit 1; }
  hold=$(curl -fsS -X POST "$standby/v1/shows/$show/holds" -H "Authorization: Bearer $token" \
    -H 'Content-Type: application/json' -d '{"best": {"quantity": 2}}')
  id=$(echo "$hold" | sed -n 's/.*"id":"\([0-9a-f]*\)".*/\1/p')
  booking=$(curl -fsS -X POST "$standby/v1/shows/$show/holds/$id/confirm" \
    -H "Authorization: Bearer $token" -H 'Content-Type: application/json' -d '{"paymentReference": "demo"}')
  echo "$booking" | grep -q '"status":"confirmed"' || { echo "demo: confirm failed: $booking" >&2; exit 1; }
  echo "demo smoke: 1 passed, 0 failed"
  exit 0
fi

cat <<MSG
boxoffice demo: show "$show" from $SHOW_FILE
  shards:     ${urls[*]}   (either one answers; the standby forwards to the leader)
  etcd:       http://127.0.0.1:$ETCD_PORT
  PostgreSQL: postgres://postgres@127.0.0.1:$PG_PORT/boxoffice
  logs:       $work/*.log

  export TOKEN=$token
  export STAFF=$staff
  export API=${urls[0]}/v1/shows/$show

  curl -s \$API/availability | head -c 400; echo
  curl -s -X POST \$API/holds -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' -d '{"best": {"quantity": 2}}'
  curl -s -X POST \$API/holds/<hold-id>/confirm -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' -d '{"paymentReference": "pay-1"}'
  curl -N \$API/events

Ctrl-C stops everything.
MSG
wait
