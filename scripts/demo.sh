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

bin=$(scripts/tools.sh)
cargo build -q -p booking-shard --bins
work=$PWD/target/demo
rm -rf "$work"
mkdir -p "$work"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { $smoke || echo "$@"; }

# etcd
"$bin/etcd" --name demo --data-dir "$work/etcd" \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
  --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
  --initial-cluster "demo=http://127.0.0.1:$((ETCD_PORT + 1))" --log-level warn >"$work/etcd.log" 2>&1 &
pids+=($!)

# PostgreSQL (as the postgres user when run as root: it refuses to run as root)
pgbin=$(pg_config --bindir 2>/dev/null || ls -d /usr/lib/postgresql/*/bin | tail -n 1)
as_pg=()
if [ "$(id -u)" = 0 ]; then
  chown postgres "$work"
  as_pg=(setpriv --reuid=postgres --regid=postgres --init-groups --)
fi
"${as_pg[@]}" "$pgbin/initdb" -D "$work/pg" -U postgres --auth=trust --no-sync >"$work/initdb.log" 2>&1
"${as_pg[@]}" "$pgbin/postgres" -D "$work/pg" -p "$PG_PORT" -k "$work" \
  -c listen_addresses=127.0.0.1 >"$work/postgres.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  "$pgbin/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" && break
  sleep 0.1
done
"$pgbin/psql" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -c "CREATE DATABASE boxoffice" >/dev/null

secret=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
urls=()
i=0
for port in $SHARD_PORTS; do
  BOXOFFICE_JWT_SECRET=$secret target/debug/booking-shard \
    --show "$SHOW_FILE" --etcd "http://127.0.0.1:$ETCD_PORT" \
    --database-url "postgres://postgres@127.0.0.1:$PG_PORT/boxoffice" \
    --listen "127.0.0.1:$port" --pod-name "shard-$i" >"$work/shard-$i.log" 2>&1 &
  pids+=($!)
  urls+=("http://127.0.0.1:$port")
  i=$((i + 1))
done

show=$(sed -n 's/^  name: *//p' "$SHOW_FILE" | head -n 1)
for url in "${urls[@]}"; do
  for _ in $(seq 100); do
    curl -fs "$url/readyz" >/dev/null 2>&1 && break
    sleep 0.1
  done
done
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
