#!/usr/bin/env bash
# Build and test the container image and compose file with podman, without any registry.
#
#   bash scripts/test_container.sh            # prepare, then run tests/dist/test_container*.py
#   bash scripts/test_container.sh prepare    # tools, stand-in base images, project image
#   bash scripts/test_container.sh clean      # remove the project image and test leftovers
#                                             # (the stand-in bases stay cached)
#   bash scripts/test_container.sh purge      # clean, and drop the cached stand-in bases too
#
# The project's packaging/Dockerfile and docker-compose.yml are used unchanged. Their
# registry images are replaced by stand-ins with the same names built from Debian packages:
#   python:3.11-slim   debootstrap --variant=minbase of the Debian release whose python3 is
#                      the FROM line's version, plus pip and the host's CA bundle (pip in a
#                      build step must trust whatever the host trusts), then `podman import`
#   every other image the compose files name (coturn/coturn:4.6; redis and haproxy for
#                      packaging/multinode): Debian's package on that base, from
#                      tests/dist/container/NAME.Containerfile
# A stand-in is built once and kept in podman's storage (labelled with its recipe); an image
# of that name that is not ours (a real pull) is used as it is. The Debian mirror and PyPI
# are the only network sources; builds use the host network.
# Needs root (debootstrap, rootful podman). Installs podman, buildah, debootstrap, runc,
# catatonit, netavark (apt) and podman-compose (pip) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
HERE=tests/dist/container
export CONTAINERS_CONF="$REPO/$HERE/containers.conf"

DOCKERFILE=packaging/Dockerfile
PROJECT_IMAGE=sp2p-server:local  # the name docker-compose.yml gives the image it builds
MULTINODE=packaging/multinode/docker-compose.yml  # built and run when present
DEBIAN_MIRROR=${SP2P_DEBIAN_MIRROR:-http://deb.debian.org/debian}
#: bump to rebuild cached stand-ins when their recipe changes
RECIPE=1

log() { printf '[test_container %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

ensure_tools() {
  local missing=() p
  for p in podman buildah debootstrap runc catatonit uidmap netavark aardvark-dns; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    log "apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  # Debian's podman-compose 1.0.3 mishandles host networking; PyPI's works.
  if ! python3 -c 'import podman_compose' 2>/dev/null; then
    log "pip install podman-compose"
    python3 -m pip install -q 'podman-compose>=1.1'
  fi
}

#: `python:3.11-slim` -> the Debian release whose python3 is 3.11
base_image() { sed -n 's/^FROM \(python:[0-9.]*-slim\).*/\1/p' "$DOCKERFILE" | head -n1; }
debian_suite() {
  case "$1" in
    3.11) echo bookworm ;;
    3.13) echo trixie ;;
    *) die "no Debian release ships Python $1 as python3; add it to debian_suite" ;;
  esac
}

standin_label() { podman image inspect --format '{{ index .Config.Labels "sp2p.standin" }}' "$1" 2>/dev/null || true; }

#: podman image exists and is either not ours or ours at the current recipe
image_current() {
  local label
  podman image exists "$1" || return 1
  label=$(standin_label "$1")
  [ -z "$label" ] || [ "$label" = "$2" ]
}

build_python_base() {
  local name version suite ref tag rootfs
  name=$(base_image); [ -n "$name" ] || die "no 'FROM python:X.Y-slim' in $DOCKERFILE"
  version=${name#python:}; version=${version%-slim}
  suite=$(debian_suite "$version")
  ref="docker.io/library/$name"
  tag="python-$version-$suite-r$RECIPE"
  if image_current "$ref" "$tag"; then log "base $ref: cached"; return; fi
  log "base $ref: debootstrap $suite (minbase) from $DEBIAN_MIRROR"
  rootfs=$(mktemp -d /var/tmp/sp2p-rootfs.XXXXXX)
  # shellcheck disable=SC2064
  trap "rm -rf '$rootfs'" RETURN
  # Two stages so dpkg can be told not to fsync every file it unpacks (a throwaway rootfs
  # need not survive a power cut): 99 s instead of 159-201 s on a loaded 2-core machine.
  debootstrap --foreign --variant=minbase --include=python3,python3-pip,ca-certificates \
    "$suite" "$rootfs" "$DEBIAN_MIRROR" >"$rootfs.log" 2>&1 \
    || { tail -20 "$rootfs.log" >&2; rm -f "$rootfs.log"; die "debootstrap failed"; }
  echo force-unsafe-io >"$rootfs/etc/dpkg/dpkg.cfg.d/sp2p-unsafe-io"
  chroot "$rootfs" /debootstrap/debootstrap --second-stage >"$rootfs.log" 2>&1 \
    || { tail -20 "$rootfs.log" >&2; rm -f "$rootfs.log"; die "debootstrap (second stage) failed"; }
  rm -f "$rootfs.log" "$rootfs/etc/dpkg/dpkg.cfg.d/sp2p-unsafe-io"
  "$rootfs/usr/bin/python3" -c 'import sys; print("%d.%d" % sys.version_info[:2])' \
    | grep -qx "$version" || die "$suite's python3 is not $version"
  # what the official slim image has and Debian's python3 lacks: `python`, pip allowed
  # to install into the system, no docs or package lists
  ln -sf /usr/bin/python3 "$rootfs/usr/local/bin/python"
  rm -f "$rootfs"/usr/lib/python3*/EXTERNALLY-MANAGED
  cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
    "$rootfs"/usr/share/locale/*
  tar -C "$rootfs" -c . | podman import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change "LABEL sp2p.standin=$tag" \
    --change 'CMD ["python3"]' - "$ref" >/dev/null
  log "base $ref: imported ($(podman image inspect --format '{{.Size}}' "$ref") bytes)"
}

#: the registry images the compose files use, besides the project's own
compose_images() {
  local files=(packaging/docker-compose.yml)
  [ ! -f "$MULTINODE" ] || files+=("$MULTINODE")
  sed -n 's/^ *image: *\([^ ]*\).*/\1/p' "${files[@]}" | grep -vx "$PROJECT_IMAGE" | sort -u
}

#: redis:7-alpine -> docker.io/library/redis:7-alpine, as podman names it
full_ref() { case "$1" in */*/*) echo "$1" ;; */*) echo "docker.io/$1" ;; *) echo "docker.io/library/$1" ;; esac; }

#: coturn/coturn:4.6 -> tests/dist/container/coturn.Containerfile (Debian's package on the base)
build_standin() {
  local image=$1 ref name recipe tag
  ref=$(full_ref "$image")
  name=${image%%:*}; name=${name##*/}
  recipe="$HERE/$name.Containerfile"
  [ -f "$recipe" ] || die "no stand-in recipe for $image: add $recipe"
  tag="$name-$(sha256sum "$recipe" | cut -c1-12)"
  if image_current "$ref" "$tag"; then log "stand-in $ref: cached"; return; fi
  log "stand-in $ref: building from Debian's package ($recipe)"
  podman build -q --network host --format docker --label "sp2p.standin=$tag" \
    -f "$recipe" -t "$ref" "$HERE" >/dev/null
}

build_standins() {
  local image pids=() pid
  for image in $(compose_images); do
    build_standin "$image" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || die "a stand-in build failed"; done
}

build_project() {
  local start=$SECONDS
  log "project $PROJECT_IMAGE: podman build -f $DOCKERFILE (unchanged)"
  # --format docker keeps HEALTHCHECK (OCI images have no such field). --no-cache: buildah
  # 1.28 reuses a cached `RUN --mount=from=build` layer even when the build stage's wheels
  # changed, so a cached build could test yesterday's code.
  podman build -q --no-cache --network host --format docker -f "$DOCKERFILE" \
    -t "$PROJECT_IMAGE" . >/dev/null
  log "project $PROJECT_IMAGE: built in $((SECONDS - start)) s," \
    "$(podman image inspect --format '{{.Size}}' "$PROJECT_IMAGE") bytes"
}

prepare() {
  local start=$SECONDS
  [ "$(id -u)" -eq 0 ] || die "run as root (debootstrap and rootful podman)"
  ensure_tools
  build_python_base
  # the rest stands on the base alone: build side by side (network-bound steps overlap)
  build_standins &
  local standins=$!
  build_project
  wait "$standins" || die "stand-in builds failed"
  log "prepared in $((SECONDS - start)) s"
}

clean() {
  # containers and pods of test runs (their names start with sp2ptest), then the image
  local ids
  ids=$(podman ps -a --filter name='^sp2ptest' --format '{{.ID}}')
  # shellcheck disable=SC2086 # one word per id
  [ -z "$ids" ] || podman rm -f -v -t 0 $ids >/dev/null
  ids=$(podman pod ps --filter name='^pod_sp2ptest' --format '{{.ID}}' 2>/dev/null || true)
  # shellcheck disable=SC2086
  [ -z "$ids" ] || podman pod rm -f $ids >/dev/null
  ids=$(podman network ls --format '{{.Name}}' | { grep '^sp2ptest' || true; })
  # shellcheck disable=SC2086
  [ -z "$ids" ] || podman network rm -f $ids >/dev/null
  ids=$(podman volume ls --format '{{.Name}}' | { grep '^sp2ptest' || true; })
  # shellcheck disable=SC2086
  [ -z "$ids" ] || podman volume rm -f $ids >/dev/null
  podman image rm -f "$PROJECT_IMAGE" >/dev/null 2>&1 || true
  podman image prune -f >/dev/null
}

case "${1:-all}" in
  prepare) prepare ;;
  clean) clean ;;
  purge)
    clean
    for ref in $(compose_images | while read -r i; do full_ref "$i"; done) \
               "docker.io/library/$(base_image)"; do  # the base last: the rest stand on it
      [ -z "$(standin_label "$ref")" ] || podman image rm -f "$ref" >/dev/null
    done
    ;;
  all)
    start=$SECONDS
    prepare
    set +e
    # the tests clean up after themselves (containers, then the project image)
    SP2P_CONTAINER_PREPARED=1 python3 -b -m pytest -p no:cacheprovider -q tests/dist/test_container*.py
    rc=$?
    set -e
    log "total $((SECONDS - start)) s"
    exit "$rc"
    ;;
  *) die "usage: $0 [prepare|clean|purge]" ;;
esac
