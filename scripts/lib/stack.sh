# Shared by demo.sh and bench.sh: a private etcd, PostgreSQL and booking shards on
# loopback, with data under $work. Source it, then call the functions; `stack_stop`
# (installed as an EXIT trap by stack_init) stops everything.

stack_init() {  # WORK_DIR
  work=$1
  rm -rf "$work"
  mkdir -p "$work"
  stack_pids=()
  trap stack_stop EXIT
  trap 'exit 130' INT TERM
  bin=$(scripts/tools.sh)
}

stack_stop() {
  for p in "${stack_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}

# etcd keeps every revision until compacted: periodic auto-compaction keeps 5 minutes
# of history, and the quota is explicit (STACK_ETCD_QUOTA_BYTES, default 2 GiB, to try
# a full etcd). The shards' leader defragments and disarms the NOSPACE alarm
# (docs/reliability.md, "etcd space").
stack_etcd() {  # PORT
  local port=$1 peer=$(($1 + 1))
  "$bin/etcd" --name stack --data-dir "$work/etcd" \
    --listen-client-urls "http://127.0.0.1:$port" --advertise-client-urls "http://127.0.0.1:$port" \
    --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --initial-cluster "stack=http://127.0.0.1:$peer" \
    --auto-compaction-mode periodic --auto-compaction-retention 5m \
    --quota-backend-bytes "${STACK_ETCD_QUOTA_BYTES:-2147483648}" \
    --log-level warn >"$work/etcd.log" 2>&1 &
  stack_pids+=($!)
}

stack_postgres() {  # PORT DB — PostgreSQL refuses root: run as postgres when root
  local port=$1 db=$2 pgbin as_pg=()
  pgbin=$(pg_config --bindir 2>/dev/null || ls -d /usr/lib/postgresql/*/bin | tail -n 1)
  if [ "$(id -u)" = 0 ]; then
    chown postgres "$work"
    as_pg=(setpriv --reuid=postgres --regid=postgres --init-groups --)
  fi
  "${as_pg[@]}" "$pgbin/initdb" -D "$work/pg" -U postgres --auth=trust --no-sync >"$work/initdb.log" 2>&1
  "${as_pg[@]}" "$pgbin/postgres" -D "$work/pg" -p "$port" -k "$work" \
    -c listen_addresses=127.0.0.1 -c max_connections=200 >"$work/postgres.log" 2>&1 &
  stack_pids+=($!)
  for _ in $(seq 100); do
    "$pgbin/pg_isready" -q -h 127.0.0.1 -p "$port" && break
    sleep 0.1
  done
  "$pgbin/psql" -q -h 127.0.0.1 -p "$port" -U postgres -c "CREATE DATABASE $db" >/dev/null
}

# /metrics is served on PORT + 1000.
stack_shard() {  # BINARY NAME PORT SHOW_FILE ETCD_URL DATABASE_URL [extra args...]
  local binary=$1 name=$2 port=$3 show=$4 etcd=$5 db=$6
  shift 6
  "$binary" --show "$show" --etcd "$etcd" --database-url "$db" \
    --listen "127.0.0.1:$port" --metrics-listen "127.0.0.1:$((port + 1000))" \
    --pod-name "$name" "$@" >"$work/$name.log" 2>&1 &
  stack_pids+=($!)
}

stack_wait_ready() {  # URL...
  local url
  for url in "$@"; do
    for _ in $(seq 200); do
      curl -fs "$url/readyz" >/dev/null 2>&1 && break
      sleep 0.1
    done
  done
}
