#!/usr/bin/env bash
# Build the test control plane (kube-apiserver, kube-controller-manager,
# kubectl, etcd, helm), the kstatus checker and Alertmanager from Go modules
# with the machine's Go toolchain, cache the binaries outside the work tree
# keyed by what each one is built from (its module's go.mod, go.sum and Go
# files, package and ldflags), and link them into ./bin/.
#
# Everything comes from the Go module proxy: no release downloads, no images,
# only a Go toolchain.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache="${ALERT_CONTACTS_CACHE:-$HOME/.cache/alert-contacts}"
mkdir -p "$repo/bin" "$cache/bin" "$cache/src"
# Several checkouts of the project may build at once: one build at a time.
exec 9>"$cache/build.lock"
flock 9

# Read a module's pinned version from a go.mod (the single place versions live).
version_of() { # <go.mod> <module path>
    awk -v m="$2" '$1 == m && $2 ~ /^v/ { print $2; exit } $1 == "require" && $2 == m { print $3; exit }' "$1"
}

k8s="$(version_of "$here/kube/go.mod" k8s.io/kubernetes)"
etcd="$(version_of "$here/etcd/go.mod" go.etcd.io/etcd/server/v3)"
helm="$(version_of "$here/helm/go.mod" helm.sh/helm/v3)"
alertmanager="$(version_of "$here/alertmanager/go.mod" github.com/prometheus/alertmanager)"
kstatus="$(version_of "$here/kstatus/go.mod" sigs.k8s.io/cli-utils)"
k8s_minor="$(echo "$k8s" | cut -d. -f2)"

# /version must report the real release, so set the same ldflags that the
# Kubernetes build scripts (hack/lib/version.sh) set.
k8s_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    k8s_ldflags+=" -X $pkg.gitVersion=$k8s -X $pkg.gitMajor=1 -X $pkg.gitMinor=$k8s_minor"
    k8s_ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
helm_ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$helm -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
# As helm's Makefile does: the default Kubernetes version for `helm template`
# and `helm lint` (.Capabilities.KubeVersion) is that of its client-go.
helm_k8s_minor="$(version_of "$here/helm/go.mod" k8s.io/client-go | cut -d. -f2)"
for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
    helm_ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$helm_k8s_minor"
done

# As Prometheus' promu does: version and build information for /api/v2/status.
am_ldflags="-s -w"
for kv in "Version=${alertmanager#v}" Revision=unknown Branch=HEAD BuildUser=alert-contacts BuildDate=19700101-00:00:00; do
    am_ldflags+=" -X github.com/prometheus/common/version.$kv"
done

# build <module dir> <binary name> <version> <ldflags> <package> [go build flags...]
build() {
    local dir="$1" name="$2" version="$3" ldflags="$4" pkg="$5"
    shift 5
    local key
    key="$( (cat "$dir/go.mod" "$dir/go.sum" "$dir"/*.go 2>/dev/null; echo "$name $version $ldflags $pkg") \
        | sha256sum | cut -c1-12)"
    local out="$cache/bin/$name-$version-$key"
    if [[ ! -x "$out" ]]; then
        echo "building $name $version (cached as $out)" >&2
        (cd "$dir" && go build -trimpath -ldflags "$ldflags" "$@" -o "$out.tmp.$$" "$pkg")
        mv "$out.tmp.$$" "$out"
    fi
    ln -sf "$out" "$repo/bin/$name"
}

export GOFLAGS="${GOFLAGS:--buildvcs=false} -mod=readonly"
build "$here/kube" kube-apiserver "$k8s" "$k8s_ldflags" k8s.io/kubernetes/cmd/kube-apiserver
build "$here/kube" kube-controller-manager "$k8s" "$k8s_ldflags" \
    k8s.io/kubernetes/cmd/kube-controller-manager
build "$here/kube" kubectl "$k8s" "$k8s_ldflags" k8s.io/kubernetes/cmd/kubectl
build "$here/etcd" etcd "$etcd" "-s -w" .
build "$here/helm" helm "$helm" "$helm_ldflags" helm.sh/helm/v3/cmd/helm
build "$here/kstatus" kstatus "$kstatus" "-s -w" .
# Alertmanager embeds its web UI from ui/app/dist, which its release pipeline
# builds with npm and which the module zip leaves out. The tests use only its
# API: build from a copy of the module with a one-page stand-in for the UI.
am_src="$cache/src/alertmanager-$alertmanager"
if [[ ! -d "$am_src" ]]; then
    am_mod="$(cd "$here/alertmanager" && go mod download -json github.com/prometheus/alertmanager \
        | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
    [[ -f "$am_mod/go.mod" ]] || { echo "build.sh: alertmanager module not found" >&2; exit 1; }
    rm -rf "$am_src.tmp"
    cp -r "$am_mod" "$am_src.tmp"
    chmod -R u+w "$am_src.tmp"
    for ui in elm mantine; do
        mkdir -p "$am_src.tmp/ui/app/dist/$ui"
        echo '<!doctype html><title>Alertmanager</title><p>API only: /api/v2/' \
            > "$am_src.tmp/ui/app/dist/$ui/index.html"
    done
    mv "$am_src.tmp" "$am_src"
fi
am_modfile="$(mktemp -d)"
trap 'rm -rf "$am_modfile"' EXIT
cp "$here/alertmanager/go.mod" "$here/alertmanager/go.sum" "$am_modfile/"
(cd "$here/alertmanager" && go mod edit -modfile="$am_modfile/go.mod" \
    -replace="github.com/prometheus/alertmanager=$am_src")
build "$here/alertmanager" alertmanager "$alertmanager" "$am_ldflags" \
    github.com/prometheus/alertmanager/cmd/alertmanager -modfile="$am_modfile/go.mod"
echo "tools: kube-apiserver/kube-controller-manager/kubectl $k8s, etcd $etcd, helm $helm," \
    "kstatus (cli-utils) $kstatus, alertmanager $alertmanager in $repo/bin" >&2
