#!/usr/bin/env bash
# Build the operator image with podman, from a Debian + python3 base made here.
#
#   bash tests/image/build.sh            # or: make image
#
# The Dockerfile's default base, python:3.11-slim from Docker Hub, needs a
# registry. Without one (air-gapped machines, CI here) the base is a Debian
# root filesystem made with debootstrap from Debian's package archive, trimmed,
# cached outside the work tree by Debian release and by this script's content,
# imported with `podman import`, and passed as the PYTHON_IMAGE build argument.
#
# Settings (environment):
#   IMAGE            the tag to build (default localhost/alert-contacts-operator:dev)
#   DEBIAN_RELEASE   Debian release of the base (default bookworm: python3 is 3.11)
#   DEBIAN_MIRROR    the archive debootstrap reads (default http://deb.debian.org/debian)
#   EXTRA_CA         a PEM file of CA certificates that pip inside the build must trust
#                    too (a TLS-intercepting proxy); given to the build as a secret,
#                    never stored in the image. Default: the bundle the host's pip is
#                    told to trust ($PIP_CERT), if any; EXTRA_CA= for pip's own only.
#   PYTHON_IMAGE     build on this image instead (e.g. python:3.11-slim): no debootstrap
#
# podman runs with runc and with rlimits within the machine's own: crun fails on
# hybrid cgroup v1 hosts, and podman's default nofile/nproc can exceed the hard limits.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache="${ALERT_CONTACTS_CACHE:-$HOME/.cache/alert-contacts}/images"
image="${IMAGE:-localhost/alert-contacts-operator:dev}"
release="${DEBIAN_RELEASE:-bookworm}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
extra_ca="${EXTRA_CA-${PIP_CERT:-}}"
podman_flags=(--runtime runc --ulimit nofile=1024:1024 --ulimit nproc=1024:1024)

for tool in podman runc; do
    command -v "$tool" >/dev/null || {
        echo "image: $tool is missing (Debian: apt-get install podman runc debootstrap)" >&2
        exit 1
    }
done

# The base: Debian minbase + python3 (+ venv, for the build stage), trimmed of
# what no Python program reads: apt's package lists and downloads, manuals,
# documentation and translations, glibc's iconv modules (Python's codecs are its
# own). dpkg keeps excluding them if a debugging session installs a package.
# The key changes with this function's text: a change to the recipe makes a new
# base, other edits of this script do not.
make_base() {
    local key tag tarball rootfs
    key="$( (echo "$release $mirror"; declare -f make_base) | sha256sum | cut -c1-12)"
    tag="localhost/alert-contacts-base:$release-$key"
    tarball="$cache/debian-$release-python3-$key.tar"
    if podman image exists "$tag"; then
        echo "$tag"
        return
    fi
    if [[ ! -s "$tarball" ]]; then
        command -v debootstrap >/dev/null || {
            echo "image: debootstrap is missing (Debian: apt-get install debootstrap)" >&2
            exit 1
        }
        mkdir -p "$cache"
        rootfs="$(mktemp -d "$cache/rootfs.XXXXXX")"
        # shellcheck disable=SC2064
        trap "rm -rf '$rootfs'" EXIT
        echo "image: debootstrap $release (once per release, about a minute or two)" >&2
        debootstrap --variant=minbase --include=python3,python3-venv \
            "$release" "$rootfs" "$mirror" >"$rootfs.log" 2>&1 \
            || { tail -20 "$rootfs.log" >&2; exit 1; }
        rm -f "$rootfs.log"
        cat >"$rootfs/etc/dpkg/dpkg.cfg.d/excludes" <<'EOF'
# Documentation, manuals and translations are left out of this image.
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/lib/*/gconv/*
EOF
        find "$rootfs/usr/share/doc" -mindepth 2 ! -name copyright ! -type d -delete
        find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
        rm -rf "$rootfs"/usr/share/{man,info,locale}/* "$rootfs"/usr/lib/*-linux-gnu/gconv \
            "$rootfs"/var/lib/apt/lists/* \
            "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
            "$rootfs"/var/cache/debconf/*-old "$rootfs"/var/log/* "$rootfs"/tmp/*
        tar --numeric-owner --xattrs -C "$rootfs" -cf "$tarball.tmp" .
        mv "$tarball.tmp" "$tarball"
        rm -rf "$rootfs"
        trap - EXIT
    fi
    podman import --quiet \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' \
        "$tarball" "$tag" >/dev/null
    echo "$tag"
}

base="${PYTHON_IMAGE:-$(make_base)}"

build_flags=(--build-arg "PYTHON_IMAGE=$base" --network host --tag "$image")
if [[ -n "$extra_ca" ]]; then
    [[ -r "$extra_ca" ]] || { echo "image: EXTRA_CA=$extra_ca is not readable" >&2; exit 1; }
    build_flags+=(--secret "id=extra-ca,src=$extra_ca")
fi
echo "image: building $image on $base" >&2
previous="$(podman image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)"
podman build --quiet "${podman_flags[@]}" "${build_flags[@]}" "$repo" >/dev/null
# The image this tag named before, unless something else still uses it.
if [[ -n "$previous" && "$previous" != "$(podman image inspect --format '{{.Id}}' "$image")" ]]; then
    podman image rm "$previous" >/dev/null 2>&1 || true
fi
size="$(podman image inspect --format '{{.Size}}' "$image")"
echo "image: $image, $(( size / 1000000 )) MB ($size bytes) on $base" >&2
