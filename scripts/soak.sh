#!/usr/bin/env bash
# The soak (docs/reliability.md, "Selling for weeks"): the 80,000-seat stadium on an
# etcd with a 64 MiB quota and the project's compaction settings (etcd's periodic
# auto-compaction, the leader's maintenance at its defaults), driven by hold, release,
# expiry and a trickle of confirms until well over a million holds. Not part of
# scripts/test.sh: it runs for ten minutes and wants the machine to itself.
#
#   scripts/soak.sh [SECONDS] [MIN_HOLDS]    # defaults: 600 s, 1,000,000 holds
#
# Every 5 s it samples the shard's metrics (holds, etcd file size and in-use bytes,
# quota, NOSPACE alarm), its RSS and /availability into target/soak/samples.tsv, and at
# the end checks, failing loudly:
#   - at least MIN_HOLDS holds granted; no 5xx, no transport error, no NOSPACE alarm,
#     no `storage_full` answer;
#   - available + held + sold == 80,000 in every sample;
#   - RSS flat after warm-up (the first fifth of the run): within 10 %;
#   - holds/s over the last minute >= 90 % of the first minute after warm-up;
#   - once every hold has expired: no seat or hold key left in etcd, and the seats
#     sold in the shard equal the seats of confirmed bookings in PostgreSQL.
# Then it plots etcd's size and the hold rate (target/soak/soak.png).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-600}
min_holds=${2:-1000000}
cargo build -q --release -p booking-shard -p boxoffice-load
. scripts/lib/stack.sh
export STACK_ETCD_QUOTA_BYTES=$((64 * 1024 * 1024))
export BOXOFFICE_JWT_SECRET
BOXOFFICE_JWT_SECRET=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
ETCD_PORT=${ETCD_PORT:-24991}
PG_PORT=${PG_PORT:-26632}
SHARD_PORT=${SHARD_PORT:-8391}
TTL=${TTL:-5}
metrics=$((SHARD_PORT + 1000))
show=cup-final
total=80000

stack_init "$PWD/target/soak"
stack_etcd "$ETCD_PORT"
stack_postgres "$PG_PORT" soak
stack_shard target/release/booking-shard soak "$SHARD_PORT" examples/shows/stadium.yaml \
  "http://127.0.0.1:$ETCD_PORT" "postgres://postgres@127.0.0.1:$PG_PORT/soak" \
  --hold-rate 0 --hold-ttl-seconds "$TTL"
shard_pid=${stack_pids[-1]}
stack_wait_ready "http://127.0.0.1:$SHARD_PORT"
base="http://127.0.0.1:$SHARD_PORT/v1/shows/$show"
samples="$work/samples.tsv"

metric() {  # TEXT NAME
  awk -v n="$2" '$1 == n {print $2; exit}' <<<"$1"
}
sample() {  # SECONDS_SINCE_START
  local m a
  m=$(curl -s "http://127.0.0.1:$metrics/metrics")
  a=$(curl -s "$base/availability" | python3 -c 'import json, sys
c = json.load(sys.stdin)["inventory"]
print(c["available"], c["held"], c["sold"])' 2>/dev/null || echo "0 0 0")
  local avail held sold
  read -r avail held sold <<<"$a"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" \
    "$(metric "$m" boxoffice_holds_total)" \
    "$(metric "$m" boxoffice_etcd_db_size_bytes)" \
    "$(metric "$m" boxoffice_etcd_db_size_in_use_bytes)" \
    "$(metric "$m" boxoffice_etcd_quota_bytes)" \
    "$(metric "$m" boxoffice_etcd_nospace_alarm)" \
    "$(awk '/^VmRSS/ {print $2}' "/proc/$shard_pid/status")" \
    "${avail:-0}" "${held:-0}" "${sold:-0}"
}

echo "== soak: $show ($total seats), etcd quota 64 MiB, ${secs}s of churn (holds of ${TTL}s)"
printf 't\tholds\tdb_size\tin_use\tquota\talarm\trss_kb\tavailable\theld\tsold\n' >"$samples"
start=$(date +%s)
(
  while sleep 5; do
    sample $(($(date +%s) - start)) >>"$samples"
  done
) &
sampler=$!
target/release/boxoffice-load --url "http://127.0.0.1:$SHARD_PORT" --show "$show" \
  --scenario churn --release-fraction 0.5 --confirm-fraction 0.002 \
  --duration "$secs" --concurrency 32 --users 20000 \
  >"$work/load.json" 2>"$work/load.err" || true
kill "$sampler" 2>/dev/null || true
wait "$sampler" 2>/dev/null || true
grep -m1 '^Boxoffice' "$work/load.err" || cat "$work/load.err"

# Let every hold left behind expire (the expiry loop runs every second).
sleep $((TTL + 5))
sample $(($(date +%s) - start)) >"$work/final.tsv"

fail=0
check() {  # OK? MESSAGE
  if [ "$1" = 1 ]; then echo "ok    $2"; else echo "FAIL  $2"; fail=1; fi
}
num() { grep -o "\"$1\":[0-9]*" "$work/load.json" | head -n1 | cut -d: -f2; }
holds=$(awk -F'\t' 'END {print $2}' "$work/final.tsv")
check "$([ "${holds:-0}" -ge "$min_holds" ] && echo 1)" "holds granted: $holds (>= $min_holds)"
bad=$(($(num server_errors) + $(num transport_errors) + $(num followups_failed)))
check "$([ "$bad" = 0 ] && echo 1)" "5xx, transport errors and failed releases/confirms: $bad"
alarms=$(awk -F'\t' 'NR > 1 && $6 != 0' "$samples" | wc -l)
check "$([ "$alarms" = 0 ] && echo 1)" "samples with the NOSPACE alarm raised: $alarms"
full=$(grep -Ec 'storage_full|StorageFull' "$work/soak.log" || true)
check "$([ "$full" = 0 ] && echo 1)" "storage_full answers in the shard log: $full"
broken=$(awk -F'\t' -v t=$total 'NR > 1 && $8 + $9 + $10 != t' "$samples" "$work/final.tsv" | wc -l)
check "$([ "$broken" = 0 ] && echo 1)" "samples where available + held + sold != $total: $broken"
read -r warm_rss max_rss end_rss < <(awk -F'\t' 'NR > 1 {r[++n] = $7}
  END {w = int(n / 5) + 1; m = 0; for (i = w; i <= n; i++) if (r[i] > m) m = r[i];
       print r[w], m, r[n]}' "$samples")
check "$(awk -v w="$warm_rss" -v m="$max_rss" 'BEGIN {print (m <= w * 1.1) ? 1 : 0}')" \
  "shard RSS after warm-up ${warm_rss} kB, highest ${max_rss} kB, at the end ${end_rss} kB (within 10 %)"
read -r first_rate last_rate < <(awk -F'\t' 'NR > 1 {t[++n] = $1; h[n] = $2}
  END {w = int(n / 5) + 1; a = w; while (a < n && t[a] - t[w] < 60) a++;
       b = n; while (b > 1 && t[n] - t[b] < 60) b--;
       printf "%.0f %.0f\n", (h[a] - h[w]) / (t[a] - t[w]), (h[n] - h[b]) / (t[n] - t[b])}' "$samples")
check "$(awk -v f="$first_rate" -v l="$last_rate" 'BEGIN {print (l >= 0.9 * f) ? 1 : 0}')" \
  "holds/s: first minute after warm-up $first_rate, last minute $last_rate (>= 90 %)"

etcd_count() {  # PREFIX
  local from to
  from=$(printf '%s' "$1" | base64 -w0)
  to=$(printf '%s' "${1%/}0" | base64 -w0)  # the prefix with its last '/' bumped to '0'
  curl -s "http://127.0.0.1:$ETCD_PORT/v3/kv/range" \
    -d "{\"key\":\"$from\",\"range_end\":\"$to\",\"count_only\":true}" |
    grep -o '"count":"[0-9]*"' | grep -o '[0-9]*' || echo 0
}
keys=$(($(etcd_count "/boxoffice/default/$show/seats/") + $(etcd_count "/boxoffice/default/$show/holds/")))
held_end=$(awk -F'\t' 'END {print $9}' "$work/final.tsv")
check "$([ "$keys" = 0 ] && [ "$held_end" = 0 ] && echo 1)" \
  "after expiry: seats held in the shard $held_end, seat and hold keys in etcd $keys"
pgbin=$(pg_config --bindir 2>/dev/null || ls -d /usr/lib/postgresql/*/bin | tail -n 1)
pg_sold=$("$pgbin/psql" -tA -h 127.0.0.1 -p "$PG_PORT" -U postgres soak -c \
  "SELECT count(*) FROM booking_seats WHERE status = 'confirmed'" 2>&1)
sold_end=$(awk -F'\t' 'END {print $10}' "$work/final.tsv")
check "$([ "$pg_sold" = "$sold_end" ] && echo 1)" \
  "seats sold: shard $sold_end, PostgreSQL confirmed bookings $pg_sold"

cargo run -q --release -p boxoffice-load --bin boxoffice-plot -- "$samples" "$work"
echo "samples: $samples; plot: $work/soak.png"
exit "$fail"
