#!/usr/bin/env bash
# Runs boxoffice locally: a private etcd and PostgreSQL (data under target/demo), and
# two booking-shard replicas for examples/demo/club-night.yaml (reserved rows and a
# standing area), and one for examples/demo/jazz-gala.yaml (a paid show: payments by a
# provider, played by the simulator pay-sim). Prints the URLs, the seat-map page and
# demo tokens; Ctrl-C stops everything.
#
#   scripts/demo.sh                        # run until Ctrl-C
#   scripts/demo.sh token USER [ROLES]     # another token for the running demo
#                                          # (ROLES: comma-separated, e.g. staff)
#   scripts/demo.sh pay                    # the paid show step by step: hold,
#                                          # checkout, the provider's payment, booking
#   scripts/demo.sh --check                # start, run the README's API examples
#                                          # (the block marked for it) through the
#                                          # standby and the paid walk-through,
#                                          # stop; non-zero on any failure
#
# Ports (override with env): ETCD_PORT=23791 (and +1 for its peers), PG_PORT=25432,
# SHARD_PORTS="8081 8082", PAID_PORT=8083 (metrics on each + 1000).
set -euo pipefail
cd "$(dirname "$0")/.."

ETCD_PORT=${ETCD_PORT:-23791}
PG_PORT=${PG_PORT:-25432}
SHARD_PORTS=${SHARD_PORTS:-"8081 8082"}
SHOW_FILE=${SHOW_FILE:-examples/demo/club-night.yaml}
PAID_PORT=${PAID_PORT:-8083}
PAID_SHOW_FILE=examples/demo/jazz-gala.yaml
target=${CARGO_TARGET_DIR:-$PWD/target}
work=$target/demo
# The demo's binaries: the quickstart profile (unoptimized, no debug info: the fastest
# cold build; without the Kafka sink), or BOXOFFICE_DEMO_PROFILE=dev to use what
# `cargo build` (scripts/test.sh) already built.
profile=${BOXOFFICE_DEMO_PROFILE:-quickstart}
case "$profile" in
  quickstart) build=(--profile quickstart --no-default-features) ;;
  dev) build=() ;;
  *) echo "demo: BOXOFFICE_DEMO_PROFILE is quickstart or dev" >&2; exit 2 ;;
esac
[ "$profile" = dev ] && out=$target/debug || out=$target/$profile

mode=run
case "${1:-}" in
  "") ;;
  --check) mode=check ;;
  token)
    [ -n "${2:-}" ] || { echo "usage: scripts/demo.sh token USER [ROLES]" >&2; exit 2; }
    [ -s "$work/jwt-secret" ] || { echo "demo: no demo has run here (start scripts/demo.sh first)" >&2; exit 1; }
    [ -x "$out/mint-token" ] || cargo build -q "${build[@]}" -p booking-shard --bin mint-token
    exec "$out/mint-token" --secret-file "$work/jwt-secret" --sub "$2" ${3:+--roles "$3"} --ttl 3600
    ;;
  pay)
    [ -s "$work/payment-secret" ] || { echo "demo: no demo has run here (start scripts/demo.sh first)" >&2; exit 1; }
    exec bash scripts/lib/demo-pay.sh "$out" "$work" "http://127.0.0.1:$PAID_PORT/v1/shows/jazz-gala"
    ;;
  *) echo "usage: scripts/demo.sh [--check | token USER [ROLES] | pay]" >&2; exit 2 ;;
esac

. scripts/lib/stack.sh
ports=("$ETCD_PORT" "$((ETCD_PORT + 1))" "$PG_PORT" "$PAID_PORT" "$((PAID_PORT + 1000))")
for port in $SHARD_PORTS; do ports+=("$port" "$((port + 1000))"); done
stack_check_ports "${ports[@]}"

# etcd (the only tool the demo needs) builds beside the shard on a first run; then
# only the shard and mint-token (not the operator), with cargo's own progress.
etcd_log=$(mktemp)
scripts/tools.sh etcd >/dev/null 2>"$etcd_log" &
etcd_build=$!
echo "demo: building booking-shard (the first build compiles a few hundred crates: several minutes) and etcd beside it" >&2
cargo build "${build[@]}" -p booking-shard --bins
if ! wait "$etcd_build"; then
  cat "$etcd_log" >&2
  echo "demo: building etcd failed (above)" >&2
  exit 1
fi
rm -f "$etcd_log"
echo "demo: starting etcd, PostgreSQL and $(echo $SHARD_PORTS | wc -w) replicas" >&2
stack_init "$work"
stack_etcd "$ETCD_PORT"
stack_postgres "$PG_PORT" boxoffice

head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/jwt-secret"
chmod 600 "$work/jwt-secret"
export BOXOFFICE_JWT_SECRET_FILE=$work/jwt-secret
urls=()
pids=()
for port in $SHARD_PORTS; do
  stack_shard "$out/booking-shard" "shard-${#urls[@]}" "$port" "$SHOW_FILE" \
    "http://127.0.0.1:$ETCD_PORT" "postgres://postgres@127.0.0.1:$PG_PORT/boxoffice"
  pids+=("${stack_pids[-1]}")
  urls+=("http://127.0.0.1:$port")
done
# The paid show's provider secret: the simulator signs with it, the shard verifies.
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/payment-secret"
chmod 600 "$work/payment-secret"
stack_shard "$out/booking-shard" paid-0 "$PAID_PORT" "$PAID_SHOW_FILE" \
  "http://127.0.0.1:$ETCD_PORT" "postgres://postgres@127.0.0.1:$PG_PORT/boxoffice" \
  --payment-secret-file "$work/payment-secret"
paid_pid=${stack_pids[-1]}
paid_api=http://127.0.0.1:$PAID_PORT/v1/shows/jazz-gala
for i in "${!urls[@]}"; do stack_wait_shard "shard-$i" "${pids[$i]}" "${urls[$i]}"; done
stack_wait_shard paid-0 "$paid_pid" "http://127.0.0.1:$PAID_PORT"
kill -0 "${stack_pids[0]}" 2>/dev/null || stack_fail "etcd exited" "$work/etcd.log"

show=$(sed -n 's/^  name: *//p' "$SHOW_FILE" | head -n 1)
mint() { "$out/mint-token" --secret-file "$work/jwt-secret" --sub "$1" ${2:+--roles "$2"}; }
token=$(mint demo-user)
staff=$(mint demo-usher staff)
roles=()
standby=""
for url in "${urls[@]}"; do
  role=$(curl -fs "$url/readyz" || echo "not ready")
  roles+=("$url ($role)")
  [ "$role" = standby ] && standby=$url
done

if [ "$mode" = check ]; then
  # The block after the marker line in README.md, run as written with the demo's
  # variables; the curl wrapper fails the run on any HTTP error answer.
  [ -n "$standby" ] || stack_fail "no standby replica"
  block=$(awk '/<!-- demo.sh --check runs the next block -->/ {m=1; next}
               m && /^```/ {if (in_block) exit; in_block=1; next}
               in_block {print}' README.md)
  [ -n "$block" ] || stack_fail "README.md has no block marked for the check"
  log=$work/readme-check.log
  if API=$standby/v1/shows/$show TOKEN=$token STAFF=$staff bash -c '
      set -euo pipefail
      curl() { command curl --fail-with-body --show-error --max-time 10 "$@"; }
      set -x
      '"$block" >"$log" 2>&1; then
    echo "demo check: the README's API examples ran through the standby ($(grep -c '^+* *command curl' "$log") requests)"
  else
    stack_fail "the README's API examples failed" "$log"
  fi
  pay_log=$work/pay-check.log
  bash scripts/lib/demo-pay.sh "$out" "$work" "$paid_api" >"$pay_log" 2>&1 ||
    stack_fail "the paid walk-through (scripts/demo.sh pay) failed" "$pay_log"
  echo "demo check: the paid walk-through confirmed $(grep -o 'booking [A-Z0-9-]*' "$pay_log" | tail -n 1) on the provider's callback"
  echo "demo check: 2 passed, 0 failed"
  exit 0
fi

cat <<MSG
boxoffice demo: show "$show" from $SHOW_FILE
  shards:     ${roles[*]}
              (either one answers; the standby forwards to the leader)
  seat map:   ${urls[0]}/seatmap#token=$token
              (a live page: click a seat to hold it; the token after # stays in the tab)
  etcd:       http://127.0.0.1:$ETCD_PORT
  PostgreSQL: postgres://postgres@127.0.0.1:$PG_PORT/boxoffice
  logs:       $work/*.log

  export TOKEN=$token
  export STAFF=$staff
  export API=${urls[0]}/v1/shows/$show

  More tokens (valid 1 h), any user and roles:  scripts/demo.sh token alice
                                                scripts/demo.sh token bob staff
  The README's "booking API" examples run as written with these variables.

  paid show:  $paid_api
              (payments by a provider, played by pay-sim; walk through hold,
               checkout, payment and booking with:  scripts/demo.sh pay)

  curl -s \$API/availability
  curl -s -X POST \$API/holds -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' -d '{"best": {"quantity": 2}}'
  curl -N \$API/events

Ctrl-C stops everything.
MSG
wait
