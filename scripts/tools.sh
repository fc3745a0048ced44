#!/usr/bin/env bash
# Makes the test toolchain available and prints the directory that holds it.
#
#   bin=$(scripts/tools.sh)        # etcd, kube-apiserver, kube-controller-manager,
#                                  # kube-scheduler, helm, st (schemathesis),
#                                  # openapi-python-client, kafka-libs (the Kafka
#                                  # broker's jars); chromium and chromedriver
#                                  # (Debian packages) for the browser test
#   bin=$(scripts/tools.sh etcd)   # etcd only (what scripts/demo.sh needs)
#   bin=$(scripts/tools.sh traefik)  # Traefik and the Gateway API CRDs only
#   bin=$(scripts/tools.sh kafka)  # the Kafka broker's jars only (scripts/bench.sh)
#
# `all` also builds Traefik (the gateway of the routing tests, from its Go module plus
# the pinned patch in scripts/tools/traefik/) and copies the Gateway API CRDs (standard
# channel, from the module pinned in scripts/tools/gateway-api/) to
# <bin>/gateway-api-crds/.
#
# Versions are pinned below and by the Go modules under scripts/tools/*/ (go.mod and
# go.sum are committed, so every build resolves the same sources). Binaries are taken
# from KUBEBUILDER_ASSETS or PATH when their versions match; otherwise they are built
# from their Go modules through the module proxy into a cache outside the repository
# (BOXOFFICE_TOOLS_CACHE, default ~/.cache/boxoffice/tools) and reused on later runs.
# Quiet on success: the only output is the bin directory on stdout.
set -euo pipefail

KUBE_VERSION=v1.33.13
ETCD_VERSION=v3.6.16
HELM_VERSION=v3.19.5
SCHEMATHESIS_VERSION=4.32.5
OPENAPI_PYTHON_CLIENT_VERSION=0.29.1
TRAEFIK_VERSION=v3.7.13
KAFKA_VERSION=4.4.0

only=${1:-all}
case "$only" in
  all) tools=(kube-apiserver kube-controller-manager kube-scheduler etcd helm traefik) ;;
  etcd) tools=(etcd) ;;
  traefik) tools=(traefik) ;;
  kafka) tools=() ;;
  *) echo "usage: scripts/tools.sh [etcd|traefik|kafka]" >&2; exit 2 ;;
esac

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${BOXOFFICE_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/boxoffice/tools}
bin="$cache/bin-k8s-$KUBE_VERSION-etcd-$ETCD_VERSION-helm-$HELM_VERSION"
log="$cache/build.log"
mkdir -p "$bin"
: >"$log"

fail() {
  echo "tools.sh: $*" >&2
  if [ -s "$log" ]; then
    echo "tools.sh: last lines of $log:" >&2
    tail -n 30 "$log" >&2
  fi
  exit 1
}

command -v go >/dev/null 2>&1 || fail "Go is required to build the test toolchain (go not found on PATH)"

# Debian packages: protoc (etcd-client compiles etcd's protobuf definitions at build
# time), ip (the e2e pod runner gives each pod an address on lo) and wget (the chart's
# `helm test` pod runs it on the host in the e2e harness).
missing=()
command -v protoc >/dev/null 2>&1 || missing+=(protobuf-compiler)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v wget >/dev/null 2>&1 || missing+=(wget)
# jq: the README's API examples (run by `scripts/demo.sh --check`) read answers with it.
command -v jq >/dev/null 2>&1 || missing+=(jq)
# The seat-map page's browser test drives Debian's Chromium through chromedriver.
if [ "$only" = all ] || [ "$only" = kafka ]; then
  # The event tests' Kafka broker runs on Java; Maven fetches its jars.
  command -v java >/dev/null 2>&1 || missing+=(default-jre-headless)
  command -v mvn >/dev/null 2>&1 || missing+=(maven)
fi
if [ "$only" = all ]; then
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
fi
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "tools.sh: installing ${missing[*]} with apt-get" >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; } \
      >>"$log.apt" 2>&1 || fail "apt-get install ${missing[*]} failed (see $log.apt)"
  else
    fail "missing ${missing[*]}: install them (Debian/Ubuntu package names)"
  fi
fi

# version_of NAME PATH: the version a binary reports, normalised to vX.Y.Z.
version_of() {
  local out
  case "$1" in
    etcd) out=$("$2" --version 2>/dev/null | sed -n 's/^etcd Version: \(.*\)$/v\1/p') ;;
    helm) out=$("$2" version --template '{{.Version}}' 2>/dev/null) ;;
    traefik)
      # The patch is part of a build here: one built with another patch is stale (a
      # linked, adopted binary is an upstream build and has no patch).
      { [ -L "$2" ] || [ "$(cat "$2.patch-sha256" 2>/dev/null)" = "$(traefik_patch_sum)" ]; } &&
        out=$("$2" version 2>/dev/null | sed -n 's/^Version: *\(v[0-9.]*\)$/\1/p')
      ;;
    *) out=$("$2" --version 2>/dev/null | sed -n 's/^Kubernetes \(v[0-9.]*\).*$/\1/p') ;;
  esac
  echo "${out:-none}"
}

want_version() {
  case "$1" in
    etcd) echo "$ETCD_VERSION" ;;
    helm) echo "$HELM_VERSION" ;;
    traefik) echo "$TRAEFIK_VERSION" ;;
    *) echo "$KUBE_VERSION" ;;
  esac
}

# adopt NAME: link a matching binary from KUBEBUILDER_ASSETS or PATH into the cache.
adopt() {
  local name=$1 candidate
  for candidate in "${KUBEBUILDER_ASSETS:+$KUBEBUILDER_ASSETS/$name}" "$(command -v "$name" 2>/dev/null || true)"; do
    [ -n "$candidate" ] && [ -x "$candidate" ] || continue
    [ "$(readlink -f "$candidate")" = "$(readlink -f "$bin/$name" 2>/dev/null || true)" ] && continue
    if [ "$(version_of "$name" "$candidate")" = "$(want_version "$name")" ]; then
      ln -sf "$(readlink -f "$candidate")" "$bin/$name"
      return 0
    fi
  done
  return 1
}

# build MODULE_DIR OUTPUT PACKAGE [LDFLAGS]: go build one tool from a pinned module.
build() {
  local dir=$1 out=$2 pkg=$3 ldflags=${4:-}
  (
    cd "$here/tools/$dir"
    CGO_ENABLED=0 GOFLAGS=-mod=readonly GOTOOLCHAIN=local \
      go build -trimpath -ldflags "-s -w $ldflags" -o "$bin/$out.tmp" "$pkg"
  ) >>"$log" 2>&1 || fail "building $out from $pkg failed"
  mv "$bin/$out.tmp" "$bin/$out"
}

traefik_patch() { echo "$here/tools/traefik/traefik-$TRAEFIK_VERSION.patch"; }
traefik_patch_sum() { sha256sum "$(traefik_patch)" | cut -d' ' -f1; }

# build_traefik: Traefik's module source (from the module proxy), copied to a build
# directory and patched so that it builds from served modules alone (see
# scripts/tools/traefik/README.md).
build_traefik() {
  local src work="$cache/build/traefik-$TRAEFIK_VERSION" mod=github.com/traefik/traefik/v3
  src=$(cd "$cache" && GOFLAGS=-mod=mod GOTOOLCHAIN=local \
    go mod download -json "$mod@$TRAEFIK_VERSION" 2>>"$log" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  [ -n "$src" ] && [ -d "$src" ] || fail "go mod download $mod@$TRAEFIK_VERSION failed"
  rm -rf "$work"
  mkdir -p "$(dirname "$work")"
  cp -r "$src" "$work"
  chmod -R u+w "$work"
  (cd "$work" && git apply -p1 "$(traefik_patch)") >>"$log" 2>&1 ||
    fail "the Traefik patch does not apply to $mod@$TRAEFIK_VERSION"
  (
    cd "$work"
    CGO_ENABLED=0 GOFLAGS=-mod=readonly GOTOOLCHAIN=local go build -trimpath \
      -ldflags "-s -w -X $mod/pkg/version.Version=$TRAEFIK_VERSION -X $mod/pkg/version.BuildDate=pinned" \
      -o "$bin/traefik.tmp" ./cmd/traefik
  ) >>"$log" 2>&1 || fail "building traefik $TRAEFIK_VERSION failed"
  traefik_patch_sum >"$bin/traefik.patch-sha256"
  mv "$bin/traefik.tmp" "$bin/traefik"
  rm -rf "$work"
}

# gateway_api_crds: the standard channel's CRDs of the pinned sigs.k8s.io/gateway-api,
# copied to <bin>/gateway-api-crds/ (with a VERSION file) for the harness to apply.
gateway_api_crds() {
  local dir="$bin/gateway-api-crds" version src
  version=$(sed -n 's/^require sigs.k8s.io\/gateway-api \(v[0-9.]*\)$/\1/p' "$here/tools/gateway-api/go.mod")
  [ -n "$version" ] || fail "scripts/tools/gateway-api/go.mod pins no sigs.k8s.io/gateway-api version"
  [ "$(cat "$dir/VERSION" 2>/dev/null)" = "$version" ] && return 0
  src=$(cd "$here/tools/gateway-api" && GOFLAGS=-mod=readonly GOTOOLCHAIN=local \
    go mod download -json sigs.k8s.io/gateway-api 2>>"$log" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  [ -n "$src" ] && [ -d "$src/config/crd/standard" ] || fail "go mod download sigs.k8s.io/gateway-api@$version failed"
  rm -rf "$dir"
  mkdir -p "$dir"
  local f
  for f in "$src"/config/crd/standard/*.yaml; do
    grep -q '^kind: CustomResourceDefinition$' "$f" && cp "$f" "$dir/"
  done
  chmod -R u+w "$dir"
  echo "$version" >"$dir/VERSION"
}

kube_ldflags() {
  local v=${KUBE_VERSION#v} major minor
  major=${v%%.*}
  minor=${v#*.}
  minor=${minor%%.*}
  local p
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    printf -- '-X %s.gitVersion=%s -X %s.gitMajor=%s -X %s.gitMinor=%s -X %s.gitTreeState=clean ' \
      "$p" "$KUBE_VERSION" "$p" "$major" "$p" "$minor" "$p"
  done
}

for name in "${tools[@]}"; do
  if [ -x "$bin/$name" ] && [ "$(version_of "$name" "$bin/$name")" = "$(want_version "$name")" ]; then
    continue
  fi
  adopt "$name" && continue
  echo "tools.sh: building $name $(want_version "$name") (first run only; a few minutes)" >&2
  case "$name" in
    kube-*) build kubernetes "$name" "k8s.io/kubernetes/cmd/$name" "$(kube_ldflags)" ;;
    etcd) build etcd etcd go.etcd.io/etcd/server/v3 \
      "-X go.etcd.io/etcd/api/v3/version.Version=${ETCD_VERSION#v}" ;;
    helm) build helm helm helm.sh/helm/v3/cmd/helm \
      "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.metadata=" ;;
    traefik) build_traefik ;;
  esac
  got=$(version_of "$name" "$bin/$name")
  [ "$got" = "$(want_version "$name")" ] || fail "$name reports version $got, expected $(want_version "$name")"
done

# Apache Kafka for the event tests' broker (KRaft, one node): the broker artifact and
# its runtime dependencies from Maven Central, copied by Maven (scripts/tools/kafka/
# pom.xml) into the cache and linked as kafka-libs; the harness runs them with java.
kafka_libs() {
  kafka="$cache/kafka-$KAFKA_VERSION"
  if [ ! -f "$kafka/libs/kafka_2.13-$KAFKA_VERSION.jar" ]; then
    echo "tools.sh: fetching the Kafka $KAFKA_VERSION broker's jars (first run only)" >&2
    rm -rf "$kafka.tmp"
    mvn -q -B -f "$here/tools/kafka/pom.xml" -Dkafka.version="$KAFKA_VERSION" \
      dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$kafka.tmp/libs" \
      >>"$log" 2>&1 || fail "mvn dependency:copy-dependencies for kafka_2.13 $KAFKA_VERSION failed"
    rm -rf "$kafka"
    mv "$kafka.tmp" "$kafka"
  fi
  ln -sfn "$kafka/libs" "$bin/kafka-libs"
}

if [ "$only" = kafka ]; then
  kafka_libs
elif [ "$only" != etcd ]; then
  gateway_api_crds
fi
if [ "$only" != all ]; then
  echo "$bin"
  exit 0
fi

# schemathesis (PyPI) checks the served OpenAPI document against the running shard:
# a virtualenv in the cache, its `st` linked into the bin directory.
venv="$cache/schemathesis-$SCHEMATHESIS_VERSION"
if [ ! -x "$venv/bin/st" ] || [ "$("$venv/bin/st" --version 2>/dev/null | grep -o '[0-9][0-9.]*' | head -1)" != "$SCHEMATHESIS_VERSION" ]; then
  command -v python3 >/dev/null 2>&1 || fail "Python 3 is required for schemathesis (python3 not found)"
  echo "tools.sh: installing schemathesis $SCHEMATHESIS_VERSION (first run only)" >&2
  rm -rf "$venv"
  python3 -m venv "$venv" >>"$log" 2>&1 || fail "python3 -m venv failed (Debian: apt-get install python3-venv)"
  "$venv/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION" >>"$log" 2>&1 ||
    fail "pip install schemathesis==$SCHEMATHESIS_VERSION failed"
fi
ln -sf "$venv/bin/st" "$bin/st"

# openapi-python-client (PyPI) generates a client from booking-shard/openapi.json for
# the generated-client test; the generated code runs with this virtualenv's Python
# (httpx, attrs), found next to the linked executable.
venv="$cache/openapi-python-client-$OPENAPI_PYTHON_CLIENT_VERSION"
if [ ! -x "$venv/bin/openapi-python-client" ] || ! "$venv/bin/openapi-python-client" --version 2>/dev/null | grep -q "$OPENAPI_PYTHON_CLIENT_VERSION"; then
  echo "tools.sh: installing openapi-python-client $OPENAPI_PYTHON_CLIENT_VERSION (first run only)" >&2
  rm -rf "$venv"
  python3 -m venv "$venv" >>"$log" 2>&1 || fail "python3 -m venv failed (Debian: apt-get install python3-venv)"
  "$venv/bin/pip" install -q "openapi-python-client==$OPENAPI_PYTHON_CLIENT_VERSION" >>"$log" 2>&1 ||
    fail "pip install openapi-python-client==$OPENAPI_PYTHON_CLIENT_VERSION failed"
fi
ln -sf "$venv/bin/openapi-python-client" "$bin/openapi-python-client"

kafka_libs


echo "$bin"
