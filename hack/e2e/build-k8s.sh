#!/usr/bin/env bash
# Builds Kubernetes binaries (kubelet, kube-scheduler, kube-controller-manager, ...) of one
# version from the Go module proxy, the way hack/envtest-assets.sh builds kube-apiserver:
# a throwaway module that requires k8s.io/kubernetes and points every staging module
# (k8s.io/api, client-go, ...) at its published v0.x twin. The binaries go into a
# machine-wide cache, E2E_MACHINE_CACHE/<version>/ (default /usr/local/kubebuilder/k8s),
# so a later run, or another clone, finds them at once. Progress goes to stderr; the
# directory is the only thing on stdout.
#
# Usage: hack/e2e/build-k8s.sh VERSION CMD...   e.g. hack/e2e/build-k8s.sh 1.34.4 kubelet
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
say() { echo "build-k8s: $*" >&2; }
[ $# -ge 2 ] || { say "usage: $0 VERSION CMD..."; exit 2; }
version=${1#v}; shift
machine_dir="${E2E_MACHINE_CACHE:-/usr/local/kubebuilder/k8s}/$version"
mkdir -p "$machine_dir" 2>/dev/null || machine_dir="$root/bin/k8s/$version"
mkdir -p "$machine_dir"

missing=()
for c in "$@"; do [ -x "$machine_dir/$c" ] || missing+=("$c"); done
if [ ${#missing[@]} -eq 0 ]; then echo "$machine_dir"; exit 0; fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
started=$(date +%s)
say "building ${missing[*]} v$version from the Go module proxy (first time only: 10 to 20 minutes each on 2 loaded cores)"
cd "$work"
go mod init e2e-k8s >/dev/null 2>&1
go mod edit -require="k8s.io/kubernetes@v$version"
gomod=$(go mod download -json "k8s.io/kubernetes@v$version" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
[ -f "$gomod" ] || { say "could not download k8s.io/kubernetes@v$version"; exit 1; }
stage="v0.${version#1.}"
for m in $(awk '/=> \.\/staging\/src\//{print $1}' "$gomod" | sort -u); do
  go mod edit -replace="$m=$m@$stage"
done
# When the version is the project's own (go.mod's k8s.io/api), select the project's
# versions of the modules both use, so packages compiled for the project (and for
# kube-apiserver by hack/envtest-assets.sh) come from the Go build cache.
api=$(awk '{for (i=1;i<NF;i++) if ($i=="k8s.io/api") {print $(i+1); exit}}' "$root/go.mod")
if [ "$api" = "$stage" ]; then
  ours=$(cd "$root" && go list -m -f '{{if not .Main}}{{.Path}} {{.Version}}{{end}}' all 2>/dev/null || true)
  theirs=$(awk '/^require/,/^\)/{print $1}' "$gomod" | sort -u)
  while read -r m v; do
    [ -n "$m" ] && [ -n "$v" ] || continue
    case "$m" in k8s.io/kubernetes) continue ;; esac
    grep -qxF "$m" <<<"$theirs" || continue
    awk -v m="$m" '$1==m && /=> \.\/staging/{f=1} END{exit !f}' "$gomod" && continue
    go mod edit -require="$m@$v"
  done <<<"$ours"
fi
{
  echo '//go:build tools'
  echo
  echo 'package tools'
  echo
  for c in "${missing[@]}"; do echo "import _ \"k8s.io/kubernetes/cmd/$c\""; done
} > tools.go
say "resolving modules"
GOFLAGS=-mod=mod go mod tidy >/dev/null 2>&1 || true
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=v$version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$(cut -d. -f2 <<<"$version")"
for c in "${missing[@]}"; do
  say "compiling $c (quiet; the long part)"
  t=$(date +%s)
  GOFLAGS=-mod=mod go build -o "$machine_dir/$c.tmp" -ldflags "$ldflags" "k8s.io/kubernetes/cmd/$c"
  mv "$machine_dir/$c.tmp" "$machine_dir/$c"
  say "$c built in $(( $(date +%s) - t )) s"
done
say "done in $(( $(date +%s) - started )) s: $machine_dir"
echo "$machine_dir"
