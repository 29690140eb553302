#!/usr/bin/env bash
# Builds kube-router of one version from the Go module proxy (it is a Go module,
# github.com/cloudnativelabs/kube-router/v2) into a machine-wide cache,
# E2E_KUBE_ROUTER_CACHE/<version>/kube-router (default /usr/local/kubebuilder/kube-router),
# beside the Kubernetes binaries of hack/e2e/build-k8s.sh, so a later run, or another
# clone, finds it at once. The e2e cluster runs only its network-policy firewall
# (iptables and ipset; no routing, no service proxy). Progress goes to stderr; the
# directory is the only thing on stdout.
#
# Usage: hack/e2e/build-kube-router.sh VERSION   e.g. hack/e2e/build-kube-router.sh 2.1.0
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
say() { echo "build-kube-router: $*" >&2; }
[ $# -eq 1 ] || { say "usage: $0 VERSION"; exit 2; }
version=${1#v}
machine_dir="${E2E_KUBE_ROUTER_CACHE:-/usr/local/kubebuilder/kube-router}/$version"
mkdir -p "$machine_dir" 2>/dev/null || machine_dir="$root/bin/kube-router/$version"
mkdir -p "$machine_dir"
if [ -x "$machine_dir/kube-router" ]; then echo "$machine_dir"; exit 0; fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
started=$(date +%s)
say "building kube-router v$version from the Go module proxy (first time only: about 5 minutes on 2 loaded cores)"
cd "$work"
# go install pkg@version builds the module with its own go.mod and go.sum, outside any
# module of ours; the version string is what kube-router's own Makefile sets.
GOFLAGS= CGO_ENABLED=0 GOBIN="$work" go install -trimpath \
  -ldflags "-s -w -X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=v$version" \
  "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router@v$version"
mv "$work/kube-router" "$machine_dir/kube-router.tmp"
mv "$machine_dir/kube-router.tmp" "$machine_dir/kube-router"
say "done in $(( $(date +%s) - started )) s: $machine_dir"
echo "$machine_dir"
