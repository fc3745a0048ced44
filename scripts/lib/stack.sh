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
  bin=$(scripts/tools.sh etcd)
}

# stack_fail MESSAGE [LOG]: says what went wrong (with the log's last lines) and exits.
stack_fail() {
  echo "$(basename "$0"): $1" >&2
  if [ -n "${2:-}" ] && [ -s "$2" ]; then
    echo "--- last lines of $2 ---" >&2
    tail -n 20 "$2" >&2
  fi
  exit 1
}

# stack_port_taken PORT: true when something on this machine accepts connections there.
stack_port_taken() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# stack_check_ports PORT...: refuses to go on when one of them is taken (a server
# already listening there would answer in place of ours).
stack_check_ports() {
  local port
  for port in "$@"; do
    if stack_port_taken "$port"; then
      stack_fail "port $port is already in use (another demo still running, or another server); stop it or choose other ports (ETCD_PORT, PG_PORT, SHARD_PORTS)"
    fi
  done
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
  "${as_pg[@]}" "$pgbin/initdb" -D "$work/pg" -U postgres --auth=trust --no-sync >"$work/initdb.log" 2>&1 ||
    stack_fail "initdb failed$([ "$(id -u)" = 0 ] && echo " (run as root, PostgreSQL runs as the postgres user: every directory above $work must be searchable by it)")" "$work/initdb.log"
  "${as_pg[@]}" "$pgbin/postgres" -D "$work/pg" -p "$port" -k "$work" \
    -c listen_addresses=127.0.0.1 -c max_connections=200 >"$work/postgres.log" 2>&1 &
  stack_pids+=($!)
  for _ in $(seq 100); do
    "$pgbin/pg_isready" -q -h 127.0.0.1 -p "$port" && break
    kill -0 "${stack_pids[-1]}" 2>/dev/null || stack_fail "PostgreSQL exited at start" "$work/postgres.log"
    sleep 0.1
  done
  "$pgbin/psql" -q -h 127.0.0.1 -p "$port" -U postgres -c "CREATE DATABASE $db" >/dev/null ||
    stack_fail "PostgreSQL did not start" "$work/postgres.log"
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

# Waits until every URL's /readyz answers; fails after 30 s.
stack_wait_ready() {  # URL...
  local url
  for url in "$@"; do
    for i in $(seq 300); do
      curl -fs "$url/readyz" >/dev/null 2>&1 && break
      [ "$i" = 300 ] && stack_fail "$url did not become ready within 30 s (logs in $work)"
      sleep 0.1
    done
  done
}

# Waits until a shard process serves (/readyz answers leader or standby); fails at once,
# with its log, when the process exits (a port taken, a bad flag, etcd unreachable).
stack_wait_shard() {  # NAME PID URL
  local name=$1 pid=$2 url=$3
  for i in $(seq 300); do
    kill -0 "$pid" 2>/dev/null || stack_fail "replica $name exited at start" "$work/$name.log"
    curl -fs "$url/readyz" >/dev/null 2>&1 && return 0
    [ "$i" = 300 ] && stack_fail "replica $name did not become ready within 30 s" "$work/$name.log"
    sleep 0.1
  done
}
