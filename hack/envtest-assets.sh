#!/usr/bin/env bash
# Prints a directory holding kube-apiserver, etcd and kubectl for envtest.
#
# Release tarballs cannot be downloaded on our machines, so in order:
#   1. $KUBEBUILDER_ASSETS when it already holds the binaries;
#   2. a cached set under $SIGNET_CACHE (default $XDG_CACHE_HOME/signet);
#   3. a build from the Go module proxy: kube-apiserver (and kubectl when none
#      is installed) from k8s.io/kubernetes with every staging module replaced
#      by its published v0.x, etcd from go.etcd.io/etcd/server/v3.
# All build output goes to stderr; stdout is only the directory.
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-1.37.2}
ETCD_VERSION=${ETCD_VERSION:-3.7.0}
cache_root=${SIGNET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/signet}
dir="$cache_root/envtest/k8s-$K8S_VERSION-etcd-$ETCD_VERSION"

has_all() { [ -x "$1/kube-apiserver" ] && [ -x "$1/etcd" ] && [ -x "$1/kubectl" ]; }

if [ -n "${KUBEBUILDER_ASSETS:-}" ] && has_all "$KUBEBUILDER_ASSETS"; then
  echo "$KUBEBUILDER_ASSETS"; exit 0
fi
if has_all "$dir"; then echo "$dir"; exit 0; fi

mkdir -p "$dir"
work=$(mktemp -d "$cache_root/envtest/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
log() { echo "envtest-assets: $*" >&2; }

build_kube() {
  local mod="$work/kube"
  mkdir -p "$mod" && cd "$mod"
  go mod init signet.dev/envtest-kube >/dev/null 2>&1
  # Every staging module kubernetes replaces with ./staging gets its published v0.x.
  local gomod
  gomod=$(go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  local staging
  staging=$(sed -n 's|^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/.*|\1|p' "$gomod")
  {
    echo "require k8s.io/kubernetes v$K8S_VERSION"
    for m in $staging; do echo "replace $m => $m v0.${K8S_VERSION#1.}"; done
  } >> go.mod
  local stamp="k8s.io/component-base/version"
  local ldflags="-s -w -X $stamp.gitVersion=v$K8S_VERSION -X $stamp.gitMajor=1 -X $stamp.gitMinor=$(echo "$K8S_VERSION" | cut -d. -f2) -X $stamp.gitTreeState=clean"
  local pkgs=(k8s.io/kubernetes/cmd/kube-apiserver)
  [ -x /usr/bin/kubectl ] || command -v kubectl >/dev/null || pkgs+=(k8s.io/kubernetes/cmd/kubectl)
  log "building ${pkgs[*]} v$K8S_VERSION (a few minutes cold)"
  GOFLAGS=-mod=mod go get "${pkgs[@]}" >&2
  GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$dir/" "${pkgs[@]}" >&2
}

build_etcd() {
  local mod="$work/etcd"
  mkdir -p "$mod" && cd "$mod"
  go mod init signet.dev/envtest-etcd >/dev/null 2>&1
  log "building etcd v$ETCD_VERSION"
  GOFLAGS=-mod=mod go get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION" >&2
  GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$dir/etcd" go.etcd.io/etcd/server/v3 >&2
}

[ -x "$dir/kube-apiserver" ] || build_kube
[ -x "$dir/etcd" ] || build_etcd
if [ ! -x "$dir/kubectl" ]; then
  ln -sf "$(command -v kubectl)" "$dir/kubectl"
fi
has_all "$dir" || { log "incomplete asset set in $dir"; exit 1; }
echo "$dir"
