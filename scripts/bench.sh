#!/usr/bin/env bash
# Benchmarks (docs/benchmarks.md): a release-built booking shard with its etcd and
# PostgreSQL, all on this machine, driven by boxoffice-load; the same workloads against
# the baseline designs (PostgreSQL SELECT ... FOR UPDATE; Redis SET NX EX); a failover
# run with three replicas; then PNG plots.
#
#   scripts/bench.sh [SECONDS] [CONCURRENCY]      # defaults: 10 s, 64 clients
#   BENCH_SHARD_BIN=path scripts/bench.sh         # another shard build (before/after)
#   BENCH_PARTS="failover" scripts/bench.sh         # only some of: memory shard rate
#                                                  # baselines sweep failover gateway
#                                                  # events (default all);
#                                                  # shard = holds hot war seatmap confirms
#
# Results: one JSON line per run in target/bench/results.jsonl, a summary on stderr,
# plots in docs/bench/ (target/bench/plots/ when BENCH_PARTS is set). Installs
# redis-server and fonts-dejavu-core with apt if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
conc=${2:-64}
ETCD_PORT=${ETCD_PORT:-23891}
PG_PORT=${PG_PORT:-25532}
REDIS_PORT=${REDIS_PORT:-26379}
SHARD_PORT=${SHARD_PORT:-8181}

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
if [ "${#need[@]}" -gt 0 ]; then
  echo "bench.sh: installing ${need[*]} with apt-get" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

cargo build -q --release -p booking-shard -p boxoffice-load
. scripts/lib/stack.sh
stack_init "$PWD/target/bench-run"
mkdir -p target/bench
results=$PWD/target/bench/results.jsonl
: >"$results"
parts=" ${BENCH_PARTS:-memory shard rate baselines sweep failover gateway events} "
part() { [[ "$parts" == *" $1 "* ]]; }
stack_etcd "$ETCD_PORT"
stack_postgres "$PG_PORT" bench
pgbin=$(pg_config --bindir 2>/dev/null || ls -d /usr/lib/postgresql/*/bin | tail -n 1)
"$pgbin/psql" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -c "CREATE DATABASE baseline" >/dev/null
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
  >"$work/redis.log" 2>&1 &
stack_pids+=($!)
export BOXOFFICE_JWT_SECRET
BOXOFFICE_JWT_SECRET=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
DB="postgres://postgres@127.0.0.1:$PG_PORT/bench"
BASELINE_DB="postgres://postgres@127.0.0.1:$PG_PORT/baseline"

# A show file from an example: renamed, per-user limit lifted (load users are few).
show_from() {  # EXAMPLE NAME
  sed -e "s/^  name: .*/  name: $2/" -e 's/maxSeatsPerUser: .*/maxSeatsPerUser: 10000/' "examples/shows/$1" >"$work/$2.yaml"
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
    printf '  holds: {ttl: 10m, maxSeatsPerHold: 8, maxSeatsPerUser: 10000}\n'
  } >"$work/$1.yaml"
}

shard_pids=()
start_shards() {  # SHOW_NAME [REPLICAS]
  local n=${2:-1} i urls=()
  shard_pids=()
  for i in $(seq 0 $((n - 1))); do
    stack_shard "${BENCH_SHARD_BIN:-target/release/booking-shard}" "bench-$1-$i" $((SHARD_PORT + i)) "$work/$1.yaml" \
      "http://127.0.0.1:$ETCD_PORT" "$DB" --hold-rate 0 --db-pool 32 --log-format json
    shard_pids+=("${stack_pids[-1]}")
    urls+=("http://127.0.0.1:$((SHARD_PORT + i))")
  done
  stack_wait_ready "${urls[@]}"
}
stop_shards() {
  for p in "${shard_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${shard_pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
load() {  # SHOW SCENARIO [extra args]
  local show=$1 scenario=$2
  shift 2
  # CPU per attempt of each process over the measured window (after any --prepare).
  target/release/boxoffice-load --url "http://127.0.0.1:$SHARD_PORT" --show "$show" \
    --scenario "$scenario" --duration "$secs" --concurrency "$conc" \
    --cpu-of "shard=${shard_pids[0]}" --cpu-of "etcd=${stack_pids[0]}" --cpu-of "postgres=${stack_pids[1]}" \
    "$@" >>"$results"
}
baseline() {  # TARGET SHOW_FILE SCENARIO [extra args]
  local target=$1 file=$2 scenario=$3
  shift 3
  target/release/boxoffice-load --target "$target" --show "$(basename "$file" .yaml)" \
    --show-file "$work/$file" --pg-url "$BASELINE_DB" --redis-url "redis://127.0.0.1:$REDIS_PORT" \
    --scenario "$scenario" --duration "$secs" --concurrency "$conc" \
    --cpu-of "postgres=${stack_pids[1]}" --cpu-of "redis=${stack_pids[2]}" "$@" >>"$results"
}
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

# Memory: RSS with the 80,000-seat stadium against the 40-seat club.
if part memory; then
show_from club.yaml mem-club
start_shards mem-club
club_rss=$(rss_kib "${shard_pids[0]}")
stop_shards
show_from stadium.yaml mem-stadium
start_shards mem-stadium
stadium_rss=$(rss_kib "${shard_pids[0]}")
stop_shards
echo "{\"scenario\":\"memory\",\"club_rss_kib\":$club_rss,\"stadium_rss_kib\":$stadium_rss,\"bytes_per_seat\":$(( (stadium_rss - club_rss) * 1024 / (80000 - 40) ))}" >>"$results"
fi

# boxoffice, every scenario ("shard" = all five; or name some: holds hot war seatmap
# confirms).
one() { part shard || part "$1"; }
if one holds; then
show_from stadium.yaml holds-80k;   start_shards holds-80k;   load holds-80k holds --label cdf --stop-at-fill 0.25; stop_shards
fi
if one hot; then
show_from stadium.yaml hot-80k;     start_shards hot-80k;     load hot-80k hot --label cdf;     stop_shards
fi
if one war; then
arena war-20k;                      start_shards war-20k
load war-20k war --then-confirm --database-url "$DB"
stop_shards
fi
if one seatmap; then
arena map-20k;                      start_shards map-20k;     load map-20k seatmap;             stop_shards
fi
if one confirms; then
show_from stadium.yaml confirm-80k; start_shards confirm-80k
load confirm-80k confirms --prepare 20000 --database-url "$DB"
stop_shards
fi
# Open loop: hold latency at fixed rates (up to 10,000 attempts/s).
part rate && for r in 2500 5000 10000; do
  show_from stadium.yaml "rate-$r"; start_shards "rate-$r"
  load "rate-$r" holds --rate "$r" --concurrency 2000 --label rate --stop-at-fill 0.5
  stop_shards
done

# Baselines, same workloads.
if part baselines; then
show_from stadium.yaml bl-holds; show_from stadium.yaml bl-hot; arena bl-war; arena bl-map
show_from stadium.yaml bl-confirm
for t in postgres redis; do
  baseline "$t" bl-holds.yaml holds --label cdf --stop-at-fill 0.25
  baseline "$t" bl-hot.yaml hot
  baseline "$t" bl-map.yaml seatmap
  baseline "$t" bl-confirm.yaml confirms --prepare 20000
done
baseline postgres bl-war.yaml war --then-confirm
fi

# Throughput against concurrency (uncontended holds), every design.
part sweep && for c in 8 16 32 64 128; do
  show_from stadium.yaml "sweep-$c"; start_shards "sweep-$c"
  load "sweep-$c" holds --concurrency "$c" --label sweep --stop-at-fill 0.25
  stop_shards
  baseline postgres "sweep-$c.yaml" holds --concurrency "$c" --label sweep --stop-at-fill 0.25
  baseline redis "sweep-$c.yaml" holds --concurrency "$c" --label sweep --stop-at-fill 0.25
done

# Failover under load: three replicas, kill -9 the leader, later SIGTERM the next one.
leader_pid() {
  local i
  for i in 0 1 2; do
    if [ "$(curl -fs "http://127.0.0.1:$((SHARD_PORT + i))/readyz" 2>/dev/null)" = leader ]; then
      echo "${shard_pids[$i]}"
      return
    fi
  done
}
if part failover; then
show_from stadium.yaml failover; start_shards failover 3
urls="http://127.0.0.1:$SHARD_PORT,http://127.0.0.1:$((SHARD_PORT + 1)),http://127.0.0.1:$((SHARD_PORT + 2))"
now() { date +%s.%N; }
target/release/boxoffice-load --url "$urls" --show failover --scenario holds --duration 24 \
  --concurrency 32 --timeline-ms 100 --label failover >"$work/failover.json" &
load_pid=$!
t0=$(now)
sleep 8
kill -9 "$(leader_pid)"
kill_at=$(awk "BEGIN { print $(now) - $t0 }")
sleep 1
for _ in $(seq 100); do [ -n "$(leader_pid)" ] && break; sleep 0.1; done
sleep 4
kill -TERM "$(leader_pid)"
term_at=$(awk "BEGIN { print $(now) - $t0 }")
wait "$load_pid"
stop_shards
python3 - "$work/failover.json" "$kill_at" "$term_at" >>"$results" <<'EOF'
import json, sys
run = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
kill_at, term_at = float(sys.argv[2]), float(sys.argv[3])
t = run["timeline"]; b = t["bucket_ms"] / 1000.0; ok = t["ok"]
def gap(after, until):
    # The longest run of buckets without one successful answer, from `after`.
    best = cur = 0
    for i, n in enumerate(ok):
        if i * b < after - b or i * b > until:
            continue
        cur = cur + 1 if n == 0 else 0
        best = max(best, cur)
    return round(best * b, 2)
run["kill_at_s"], run["term_at_s"] = kill_at, term_at
run["kill_gap_s"] = gap(kill_at, term_at - 1)
run["term_gap_s"] = gap(term_at, len(ok) * b)
print(json.dumps(run))
EOF
fi

# Through a gateway: the same hold attempts straight to the shard and through Traefik
# (the gateway the routing tests run; here with its file provider, so no cluster is
# needed: the proxying path is the same), each on a fresh shard, as a ratio.
if part gateway; then
traefik_bin=$(scripts/tools.sh traefik)/traefik
GATEWAY_PORT=${GATEWAY_PORT:-8190}
cat >"$work/traefik.yaml" <<EOF
entryPoints:
  web:
    address: "127.0.0.1:$GATEWAY_PORT"
    transport: {respondingTimeouts: {readTimeout: 0s}}
providers:
  file: {filename: "$work/traefik-routes.yaml"}
log: {level: ERROR}
EOF
cat >"$work/traefik-routes.yaml" <<EOF
http:
  routers:
    show: {entryPoints: [web], rule: "PathPrefix(\`/v1/shows/gw-80k\`)", service: shard}
  services:
    shard: {loadBalancer: {servers: [{url: "http://127.0.0.1:$SHARD_PORT"}]}}
EOF
"$traefik_bin" --configfile="$work/traefik.yaml" >"$work/traefik.log" 2>&1 &
stack_pids+=($!)
show_from stadium.yaml direct-80k; start_shards direct-80k
load direct-80k holds --label direct --stop-at-fill 0.25
stop_shards
show_from stadium.yaml gw-80k; start_shards gw-80k
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$GATEWAY_PORT/v1/shows/gw-80k" >/dev/null && break
  sleep 0.1
done
target/release/boxoffice-load --url "http://127.0.0.1:$GATEWAY_PORT" --show gw-80k --scenario holds \
  --duration "$secs" --concurrency "$conc" --label gateway --stop-at-fill 0.25 >"$work/gateway.json"
stop_shards
python3 - "$results" "$work/gateway.json" >>"$results" <<'EOF'
import json, sys
direct = [r for r in map(json.loads, open(sys.argv[1])) if r.get("label") == "direct"][-1]
gw = json.loads(open(sys.argv[2]).read().strip().splitlines()[-1])
gw["vs_direct"] = {
    "attempts_per_s_ratio": round(gw["attempts_per_s"] / direct["attempts_per_s"], 3),
    "p99_ratio": round(gw["latency_ms"]["p99"] / direct["latency_ms"]["p99"], 3),
    "direct_attempts_per_s": direct["attempts_per_s"],
    "direct_p99_ms": direct["latency_ms"]["p99"],
}
print(json.dumps(gw))
EOF
fi

# Events: confirms at full speed with the relay delivering every booking's event to
# a signed webhook and to Kafka (a real broker, KRaft, one node); boxoffice-sink
# verifies each delivery and measures commit-to-receipt lag and events/s per sink.
if part events; then
kafka_libs=$(scripts/tools.sh kafka)/kafka-libs
KAFKA_PORT=${KAFKA_PORT:-29092}
SINK_PORT=${SINK_PORT:-8199}
kdir=$work/kafka
mkdir -p "$kdir"
cat >"$kdir/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$((KAFKA_PORT + 1))
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$((KAFKA_PORT + 1))
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$kdir/data
num.partitions=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
EOF
cluster_id=$(java -cp "$kafka_libs/*" kafka.tools.StorageTool random-uuid)
java -cp "$kafka_libs/*" kafka.tools.StorageTool format -t "$cluster_id" -c "$kdir/server.properties" \
  >"$kdir/format.log" 2>&1 || stack_fail "formatting Kafka's storage failed" "$kdir/format.log"
java -Xmx512m -XX:+UseSerialGC -cp "$kafka_libs/*" kafka.Kafka "$kdir/server.properties" >"$kdir/kafka.log" 2>&1 &
stack_pids+=($!)
for _ in $(seq 300); do stack_port_taken "$KAFKA_PORT" && break; sleep 0.2; done
stack_port_taken "$KAFKA_PORT" || stack_fail "the Kafka broker did not listen" "$kdir/kafka.log"
printf 'whsec_%s' "$(head -c 32 /dev/urandom | base64 -w0)" >"$work/webhook-secret"
# The same confirms without sinks first: what relaying costs the booking path.
show_from stadium.yaml quiet-80k; start_shards quiet-80k
load quiet-80k confirms --prepare 20000 --database-url "$DB" --label events-none
stop_shards
show_from stadium.yaml events-80k
target/release/boxoffice-sink --webhook-listen "127.0.0.1:$SINK_PORT" --secret-file "$work/webhook-secret" \
  --kafka-brokers "127.0.0.1:$KAFKA_PORT" --kafka-topic bench.bookings --expect 1 --idle 5 \
  >"$work/sink.json" 2>"$work/sink.log" &
sink_pid=$!
BOXOFFICE_EVENTS_WEBHOOK_URLS=http://127.0.0.1:$SINK_PORT/hook \
BOXOFFICE_EVENTS_WEBHOOK_SECRET_FILE=$work/webhook-secret \
BOXOFFICE_EVENTS_KAFKA_BROKERS=127.0.0.1:$KAFKA_PORT BOXOFFICE_EVENTS_KAFKA_TOPIC=bench.bookings \
  start_shards events-80k
load events-80k confirms --prepare 20000 --database-url "$DB" --label events
wait "$sink_pid" || stack_fail "boxoffice-sink failed" "$work/sink.log"
stop_shards
python3 - "$results" "$work/sink.json" >>"$results" <<'EOF'
import json, sys
runs = list(map(json.loads, open(sys.argv[1])))
confirms = [r for r in runs if r.get("label") == "events"][-1]
quiet = [r for r in runs if r.get("label") == "events-none"][-1]
for line in open(sys.argv[2]):
    r = json.loads(line)
    r["confirms_per_s"] = confirms["ok_per_s"]
    r["confirms_per_s_without_sinks"] = quiet["ok_per_s"]
    r["bookings"] = confirms.get("bookings_in_db")
    print(json.dumps(r))
EOF
fi

# A partial run must not replace the committed plots of a full one.
plots=docs/bench
[ -n "${BENCH_PARTS:-}" ] && plots=target/bench/plots && mkdir -p "$plots"
target/release/boxoffice-plot "$results" "$plots"
python3 - "$results" <<'EOF' >&2
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["scenario"] == "memory":
        print(f"memory: {r['bytes_per_seat']} bytes/seat (stadium {r['stadium_rss_kib']} KiB)"); continue
    if r["scenario"] == "events":
        l = r["lag_ms"]
        print(f"events to {r['sink']}: {r['events']} events ({r['copies']} copies, {r['refused']} refused), "
              f"{r['events_per_s']:.0f}/s beside {r['confirms_per_s']:.0f} confirms/s "
              f"({r['confirms_per_s_without_sinks']:.0f}/s without sinks); "
              f"commit-to-receipt p50 {l['p50']:.1f} p99 {l['p99']:.1f} max {l['max']:.1f} ms"); continue
    l = r["latency_ms"]
    extra = f" kill-9 gap {r['kill_gap_s']} s, SIGTERM gap {r['term_gap_s']} s" if r.get("label") == "failover" else ""
    if "vs_direct" in r:
        v = r["vs_direct"]
        extra = f" vs direct: attempts/s x{v['attempts_per_s_ratio']}, p99 x{v['p99_ratio']}"
    if "cpu_us_per_attempt" in r:
        c = r["cpu_us_per_attempt"]
        extra += " cpu us/attempt: " + " ".join(f"{k} {v}" for k, v in c.items())
    print(f"{r['target']:9} {r['scenario']:8} c={r['concurrency']:<4} rate={r['rate']:<5} {r['attempts_per_s']:>9.0f} att/s "
          f"{r['ok_per_s']:>8.0f} ok/s p50 {l['p50']:.2f} p99 {l['p99']:.2f} ms twice={r['seats_held_twice']} "
          f"db={r.get('bookings_in_db')} {r.get('label','')}{extra}")
EOF
