#!/usr/bin/env bash
# The end-to-end scenario on a real kind cluster, for machines with Docker and kind
# (the development machines of this project have neither; there the same scenario runs
# against the harness's control plane in `cargo test`).
#
#   tests/kind/run.sh            # create a cluster, install, book, fail over, clean up
#   KEEP=1 tests/kind/run.sh     # keep the cluster afterwards
set -euo pipefail
cd "$(dirname "$0")/../.."
cluster=${CLUSTER:-boxoffice-e2e}
ns=shows

for tool in docker kind kubectl helm curl; do
  command -v "$tool" >/dev/null || { echo "kind/run.sh: $tool is required" >&2; exit 1; }
done

kind create cluster --name "$cluster" --wait 120s
[ -n "${KEEP:-}" ] || trap 'kind delete cluster --name "$cluster"' EXIT

for bin in booking-shard boxoffice-operator; do
  docker build -f docker/Dockerfile --build-arg BIN=$bin -t boxoffice/$bin:dev .
  kind load docker-image --name "$cluster" boxoffice/$bin:dev
done

helm install boxoffice charts/boxoffice -n boxoffice-system --create-namespace --wait \
  --set image.repository=boxoffice/boxoffice-operator --set image.tag=dev --set image.pullPolicy=Never \
  --set shard.image=boxoffice/booking-shard:dev \
  --set dev.enabled=true \
  --set 'shard.etcdEndpoints={http://boxoffice-dev-etcd.boxoffice-system:2379}'
helm test boxoffice -n boxoffice-system

kubectl create namespace "$ns"
secret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
kubectl -n "$ns" create secret generic boxoffice-database \
  --from-literal=url=postgres://boxoffice:boxoffice@boxoffice-dev-postgres.boxoffice-system:5432/boxoffice
kubectl -n "$ns" create secret generic boxoffice-jwt --from-literal=secret="$secret"
kubectl -n "$ns" apply -f examples/shows/club.yaml
kubectl -n "$ns" wait show/club-night --for=condition=Ready --timeout=180s
kubectl -n "$ns" get shows

kubectl -n "$ns" port-forward svc/club-night 18080:80 >/dev/null 2>&1 &
pf=$!
trap 'kill $pf 2>/dev/null || true; [ -n "${KEEP:-}" ] || kind delete cluster --name "$cluster"' EXIT
sleep 2
cargo build -q -p booking-shard --bin mint-token
token=$(target/debug/mint-token --secret "$secret" --sub kind-user)
api=http://127.0.0.1:18080/v1/shows/club-night
book() {
  local hold id
  hold=$(curl -fsS -X POST "$api/holds" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' -d '{"best": {"quantity": 2}}')
  id=$(echo "$hold" | sed -n 's/.*"id":"\([0-9a-f]*\)".*/\1/p')
  curl -fsS -X POST "$api/holds/$id/confirm" -H "Authorization: Bearer $token" \
    -H 'Content-Type: application/json' -d '{"paymentReference": "kind"}' | sed -n 's/.*"reference":"\([^"]*\)".*/\1/p'
}
first=$(book)
echo "booked $first"

leader=$(kubectl -n "$ns" get show club-night -o jsonpath='{.status.leader}')
kubectl -n "$ns" delete pod "$leader" --wait=false
for _ in $(seq 60); do
  now=$(kubectl -n "$ns" get show club-night -o jsonpath='{.status.leader}')
  [ -n "$now" ] && [ "$now" != "$leader" ] && break
  sleep 1
done
echo "leader $leader -> $now"
# A port-forward is pinned to one pod: start it again after the failover.
kill $pf 2>/dev/null || true
kubectl -n "$ns" port-forward svc/club-night 18080:80 >/dev/null 2>&1 &
pf=$!
sleep 2
second=$(book)
echo "booked $second after the failover"
curl -fsS "$api/bookings/$first" -H "Authorization: Bearer $token" | grep -q '"status":"confirmed"'
echo "kind e2e: 1 passed, 0 failed"
