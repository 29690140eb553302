#!/usr/bin/env bash
# Finds or makes the envtest binaries (kube-apiserver, etcd, kubectl optional) and prints
# the directory that holds them, for KUBEBUILDER_ASSETS. Progress goes to stderr; the
# directory is the only thing on stdout.
#
# Order: $KUBEBUILDER_ASSETS; bin/k8s/<version>/; the machine-wide cache; setup-envtest
# (online users); else build offline: kube-apiserver from the Go module proxy, etcd from
# Debian's etcd-server or from go.etcd.io/etcd/server/v3/etcdmain.
#
# Usage: hack/envtest-assets.sh [KUBERNETES_VERSION]   (default: from go.mod's k8s.io/api)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
say() { echo "envtest-assets: $*" >&2; }

version=${1:-${ENVTEST_K8S_VERSION:-}}
if [ -z "$version" ]; then
  api=$(awk '{for (i=1;i<NF;i++) if ($i=="k8s.io/api") {print $(i+1); exit}}' "$root/go.mod")
  [ -n "$api" ] || { say "cannot read k8s.io/api from go.mod; pass a version"; exit 1; }
  version="1.${api#v0.}"   # v0.37.2 -> 1.37.2
fi
version=${version#v}
local_dir="$root/bin/k8s/$version"
machine_dir="${ENVTEST_MACHINE_CACHE:-/usr/local/kubebuilder/k8s}/$version"

complete() { [ -x "$1/kube-apiserver" ] && [ -x "$1/etcd" ]; }
link_into_local() {
  mkdir -p "$local_dir"
  for b in kube-apiserver etcd; do ln -sf "$1/$b" "$local_dir/$b"; done
}

if [ -n "${KUBEBUILDER_ASSETS:-}" ] && complete "$KUBEBUILDER_ASSETS"; then
  say "using KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS"; echo "$KUBEBUILDER_ASSETS"; exit 0
fi
if complete "$local_dir"; then echo "$local_dir"; exit 0; fi
if complete "$machine_dir"; then
  say "using the machine-wide cache $machine_dir"; link_into_local "$machine_dir"; echo "$local_dir"; exit 0
fi

# Online users: setup-envtest downloads the release binaries. Offline it fails fast.
setup_envtest="$root/bin/setup-envtest"
if [ ! -x "$setup_envtest" ]; then
  GOBIN="$root/bin" timeout 120 go install sigs.k8s.io/controller-runtime/tools/setup-envtest@v0.25.1 >/dev/null 2>&1 || true
fi
if [ -x "$setup_envtest" ]; then
  say "trying setup-envtest for $version (20 s)"
  if dir=$(timeout 20 "$setup_envtest" use "$version" --bin-dir "$root/bin/k8s/setup-envtest" -p path 2>/dev/null) && complete "$dir"; then
    link_into_local "$dir"; echo "$local_dir"; exit 0
  fi
  say "setup-envtest could not download (offline?); building from source instead"
fi

mkdir -p "$machine_dir" 2>/dev/null || machine_dir="$local_dir"
mkdir -p "$machine_dir"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ ! -x "$machine_dir/kube-apiserver" ]; then
  say "building kube-apiserver v$version from the Go module proxy (first time only: about 7 minutes on 2 idle cores, longer under load)"
  started=$(date +%s)
  mkdir -p "$work/apiserver" && cd "$work/apiserver"
  go mod init envtest-apiserver >/dev/null 2>&1
  go mod edit -require="k8s.io/kubernetes@v$version"
  # k8s.io/kubernetes replaces its staging modules with ./staging paths; point each at
  # its published v0.x twin instead.
  gomod=$(go mod download -json "k8s.io/kubernetes@v$version" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  [ -f "$gomod" ] || { say "could not download k8s.io/kubernetes@v$version"; exit 1; }
  stage="v0.${version#1.}"
  for m in $(awk '/=> \.\/staging\/src\//{print $1}' "$gomod" | sort -u); do
    go mod edit -replace="$m=$m@$stage"
  done
  # Most of the time goes into packages this project compiles too (k8s.io/api,
  # apimachinery, client-go, apiserver, protobuf, grpc...). Selecting this project's
  # versions of the modules both use, and building with the same cgo setting, makes
  # those packages identical to the ones in the Go build cache, so they are compiled
  # once for both. Modules only kube-apiserver uses keep its own versions.
  ours=$(cd "$root" && go list -m -f '{{if not .Main}}{{.Path}} {{.Version}}{{end}}' all 2>/dev/null || true)
  theirs=$(awk '/^require/,/^\)/{print $1}' "$gomod" | sort -u)
  while read -r m v; do
    [ -n "$m" ] && [ -n "$v" ] || continue
    case "$m" in k8s.io/kubernetes) continue ;; esac
    grep -qxF "$m" <<<"$theirs" || continue
    awk -v m="$m" '$1==m && /=> \.\/staging/{f=1} END{exit !f}' "$gomod" && continue
    go mod edit -require="$m@$v"
  done <<<"$ours"
  cat > tools.go <<'GO'
//go:build tools

package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
GO
  say "resolving modules"
  GOFLAGS=-mod=mod go mod tidy >/dev/null 2>&1 || true
  say "compiling (progress is quiet; this is the long part)"
  GOFLAGS=-mod=mod go build -o "$machine_dir/kube-apiserver" \
    -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=v$version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${version#1.}" \
    k8s.io/kubernetes/cmd/kube-apiserver
  say "kube-apiserver built in $(( $(date +%s) - started )) s"
fi

if [ ! -x "$machine_dir/etcd" ]; then
  if [ -x /usr/bin/etcd ]; then
    say "using Debian's etcd-server (/usr/bin/etcd)"
    ln -sf /usr/bin/etcd "$machine_dir/etcd"
  else
    say "building etcd from go.etcd.io/etcd/server/v3/etcdmain"
    mkdir -p "$work/etcd" && cd "$work/etcd"
    go mod init envtest-etcd >/dev/null 2>&1
    cat > main.go <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
    GOFLAGS=-mod=mod go get go.etcd.io/etcd/server/v3@v3.6.16 >/dev/null 2>&1
    GOFLAGS=-mod=mod go mod tidy >/dev/null 2>&1
    CGO_ENABLED=0 go build -o "$machine_dir/etcd" .
  fi
fi

complete "$machine_dir" || { say "failed to make the binaries in $machine_dir"; exit 1; }
[ "$machine_dir" = "$local_dir" ] || link_into_local "$machine_dir"
say "ready: $local_dir"
echo "$local_dir"
