#!/usr/bin/env bash
# Builds kube-apiserver, kube-scheduler, kubectl, etcd and kwok from Go modules (versions pinned in
# versions.env, dependencies pinned by go.mod/go.sum here and in etcd/ and kwok/) into a cache dir:
#   ${CMG_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cilium-migration-guard/tools}/<kube>-<etcd>-<kwok>/
#     bin/{kube-apiserver,kube-scheduler,kubectl,etcd,kwok}   kwok-stages.yaml   versions.env
# Idempotent: a binary is rebuilt only when its stamp does not match the current inputs.
# Progress goes to stderr; the LAST line of stdout is the directory.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
: "${KUBE_VERSION:?}" "${ETCD_VERSION:?}" "${KWOK_VERSION:?}"

# Bump when the way binaries are built changes (flags, layout) to invalidate existing caches.
RECIPE=1
cache_root="${CMG_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cilium-migration-guard/tools}"
dir="$cache_root/${KUBE_VERSION}-${ETCD_VERSION}-${KWOK_VERSION}"
bins=(kube-apiserver kube-scheduler kube-controller-manager kubectl etcd kwok)
stages_file="$dir/kwok-stages.yaml"

log() { printf '[tools/build.sh] %s\n' "$*" >&2; }

# Everything that determines the binaries' content.
fingerprint="$( { echo "recipe=$RECIPE"; cat "$here/versions.env" "$here/go.mod" "$here/go.sum" \
  "$here/etcd/go.mod" "$here/etcd/go.sum" "$here/kwok/go.mod" "$here/kwok/go.sum"; } | sha256sum | cut -d' ' -f1)"

up_to_date() { # $1 = artifact path; its stamp holds the fingerprint it was built from
  [[ -s "$1" && -f "$1.stamp" && "$(cat "$1.stamp")" == "$fingerprint" ]]
}
all_done() {
  local b
  for b in "${bins[@]}"; do up_to_date "$dir/bin/$b" || return 1; done
  up_to_date "$stages_file" && [[ -f "$dir/.complete" && "$(cat "$dir/.complete")" == "$fingerprint" ]]
}

if all_done; then echo "$dir"; exit 0; fi

mkdir -p "$dir/bin"
# Serialize concurrent builds of the same key (several test processes may call this at once).
if command -v flock >/dev/null; then
  exec 9>"$dir/.lock"
  log "waiting for build lock $dir/.lock"
  flock 9
  if all_done; then echo "$dir"; exit 0; fi
fi
rm -f "$dir/.complete"

command -v go >/dev/null || { log "go is not installed (need go >= 1.26.2 for Kubernetes ${KUBE_VERSION})"; exit 1; }
export GOWORK=off GOFLAGS=-mod=readonly CGO_ENABLED=0
# Keep the machine usable: low priority, and let Go use the cores it finds (GOMAXPROCS default).
nice_cmd=(nice -n 10)

kube_minor="${KUBE_VERSION#v1.}"; kube_minor="${kube_minor%%.*}"
kube_ldflags="-X k8s.io/component-base/version.gitVersion=${KUBE_VERSION}"
kube_ldflags+=" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${kube_minor}"
kube_ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean"
kube_ldflags+=" -X k8s.io/component-base/version.buildDate=1970-01-01T00:00:00Z"
kube_ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=${KUBE_VERSION}"
kube_ldflags+=" -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=${kube_minor}"
kwok_ldflags="-X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v} -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=${KUBE_VERSION#v}"

build() { # name module-dir package ldflags
  local name="$1" moddir="$2" pkg="$3" ldflags="$4" out="$dir/bin/$1" start
  if up_to_date "$out"; then log "$name: up to date"; return; fi
  start=$SECONDS
  log "$name: building $pkg (module ${moddir#"$(dirname "$here")"/})"
  rm -f "$out.stamp"
  local tmp="$dir/bin/.$name.tmp.$$"
  trap "rm -f '$tmp'" EXIT
  (cd "$moddir" && "${nice_cmd[@]}" go build -trimpath -ldflags="-s -w $ldflags" -o "$tmp" "$pkg")
  mv -f "$tmp" "$out"
  echo "$fingerprint" >"$out.stamp"
  log "$name: done in $((SECONDS - start))s"
}

total_start=$SECONDS
build kube-apiserver "$here" k8s.io/kubernetes/cmd/kube-apiserver "$kube_ldflags"
build kube-scheduler "$here" k8s.io/kubernetes/cmd/kube-scheduler "$kube_ldflags"
build kube-controller-manager "$here" k8s.io/kubernetes/cmd/kube-controller-manager "$kube_ldflags"
build kubectl "$here" k8s.io/kubernetes/cmd/kubectl "$kube_ldflags"
build etcd "$here/etcd" go.etcd.io/etcd/server/v3 ""
build kwok "$here/kwok" sigs.k8s.io/kwok/cmd/kwok "$kwok_ldflags"

# kwok's default stages ship in its module; the standalone binary has none built in.
if ! up_to_date "$stages_file"; then
  kwok_dir="$(cd "$here/kwok" && go mod download -json sigs.k8s.io/kwok | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  [[ -d "$kwok_dir/kustomize/stage" ]] || { log "kwok module dir not found ($kwok_dir)"; exit 1; }
  tmp="$stages_file.tmp.$$"
  {
    echo "# kwok ${KWOK_VERSION} default stages, joined from sigs.k8s.io/kwok/kustomize/stage by build.sh"
    first=1
    for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
             pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
      [[ $first == 1 ]] || echo "---"
      first=0
      echo "# kustomize/stage/$f"
      sed '/^---[[:space:]]*$/d' "$kwok_dir/kustomize/stage/$f"
    done
  } >"$tmp"
  mv -f "$tmp" "$stages_file"
  echo "$fingerprint" >"$stages_file.stamp"
fi
cp "$here/versions.env" "$dir/versions.env"
echo "$fingerprint" >"$dir/.complete"
log "all tools ready in $((SECONDS - total_start))s"
echo "$dir"
