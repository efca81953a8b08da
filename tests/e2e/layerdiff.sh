#!/usr/bin/env bash
# End to end: layerdiff against podman, skopeo and umoci, on images podman builds from Debian's
# busybox-static.
#   tests/e2e/layerdiff.sh LAYERFS_BINARY LAYERDIFF_BINARY
# For each way podman mounts containers (kernel overlayfs; layerfs or fuse-overlayfs as its
# mount_program):
# - `layerdiff diff` of two images saved with `podman save` (oci-archive and docker-archive)
#   gives the lines `podman diff` gives for the two images;
# - `layerdiff diff MOUNT` of a running container's root gives the lines `podman diff CONTAINER`
#   gives (podman itself lists an opaque directory differently on the two: both are matched);
# - `skopeo copy` of an image between oci:, oci-archive: and docker-archive: leaves nothing
#   for `layerdiff diff` to report.
# Exit 77: the machine lacks root or a package, and the reason is printed.
set -euo pipefail
LAYERFS=$(realpath "${1:?usage: layerdiff.sh LAYERFS LAYERDIFF}")
LD=$(realpath "${2:?usage: layerdiff.sh LAYERFS LAYERDIFF}")

skip() { echo "SKIPPED: $*"; exit 77; }
fail() { echo "FAILED: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || skip "needs root"
for tool in podman runc skopeo; do command -v "$tool" >/dev/null || skip "no $tool (./dev installs it)"; done
[ -x /bin/busybox ] || skip "no /bin/busybox (apt-get install busybox-static)"
[ -c /dev/fuse ] || skip "no /dev/fuse"

T=$(mktemp -d /var/tmp/layerdiff-e2e-XXXXXX)
chmod 0755 "$T"
export CONTAINERS_STORAGE_CONF=$T/storage.conf CONTAINERS_CONF=$T/containers.conf
cleanup() {
  set +e
  podman rm -af -t 0 >/dev/null 2>&1
  podman system reset -f >/dev/null 2>&1
  grep " $T/" /proc/mounts | awk '{ print $2 }' | sort -r | while read -r m; do umount -l "$m"; done
  for pid in $(pgrep -f "^$LAYERFS .*$T/") $(pgrep -f "fuse-overlayfs .*$T/"); do kill "$pid"; done
  rm -rf "$T"
}
trap cleanup EXIT
. "$(dirname "$0")/podman-env.sh"
write_containers_conf "$T/containers.conf"

same() {  # same NAME FILE_WANT FILE_GOT
  if ! diff -u "$2" "$3" >"$T/why"; then cat "$T/why" >&2; fail "$1"; fi
  echo "ok: $1 ($(wc -l <"$2") lines)"
}

# The base: a busybox rootfs with directories to delete, replace and change.
mkdir -p "$T/rootfs/bin" "$T/rootfs/data/deep/er" "$T/rootfs/tmp" "$T/rootfs/etc" "$T/rootfs/gone/sub" \
  "$T/rootfs/opq/in"
cp /bin/busybox "$T/rootfs/bin/"
for c in sh ls cat echo rm mv chmod stat mkdir touch test sleep sort chown ln rmdir; do ln -s busybox "$T/rootfs/bin/$c"; done
echo f >"$T/rootfs/data/f"; echo g >"$T/rootfs/data/g"; echo x >"$T/rootfs/data/deep/er/x"
echo s >"$T/rootfs/gone/sub/s"; echo t >"$T/rootfs/gone/t"; echo o >"$T/rootfs/opq/o"; echo i >"$T/rootfs/opq/in/i"
tar -C "$T/rootfs" -cf "$T/bb.tar" .
mkdir -p "$T/ctx"
cat >"$T/ctx/Containerfile" <<'EOF'
FROM localhost/bb:latest
RUN mkdir -p /app/sub && echo one > /app/a && echo two > /app/sub/b && echo keep > /app/d && ln /app/d /app/d2
RUN echo changed >> /app/a && chmod 600 /app/d && mv /app/sub /app/moved && rm /data/f && rm -rf /gone && rm -rf /opq && mkdir /opq && echo n > /opq/new && touch /data/g && chown 7:7 /data/deep/er/x
EOF

MODES=(kernel layerfs)
command -v fuse-overlayfs >/dev/null && MODES+=(fuse-overlayfs)
for mode in "${MODES[@]}"; do
  echo "== podman with $mode"
  podman system reset -f >/dev/null 2>&1 || true
  {
    echo '[storage]'; echo 'driver = "overlay"'
    echo "runroot = \"$T/run-$mode\""; echo "graphroot = \"$T/graph-$mode\""
    echo '[storage.options.overlay]'
    [ "$mode" = layerfs ] && echo "mount_program = \"$LAYERFS\""
    [ "$mode" = fuse-overlayfs ] && echo "mount_program = \"$(command -v fuse-overlayfs)\""
    echo 'mountopt = "nodev"'
  } >"$T/storage.conf"
  rm -f "$T"/*-oci.tar "$T"/*-docker.tar
  podman import -q "$T/bb.tar" localhost/bb:latest >/dev/null
  podman build -q "${LIMITS[@]}" -t localhost/built "$T/ctx" >/dev/null
  podman save -q --format oci-archive -o "$T/bb-oci.tar" localhost/bb
  podman save -q --format oci-archive -o "$T/built-oci.tar" localhost/built
  podman save -q --format docker-archive -o "$T/built-docker.tar" localhost/built

  # podman diff A B lists what A changed over B.
  podman diff localhost/built localhost/bb | sort >"$T/want"
  "$LD" diff --podman "oci-archive:$T/bb-oci.tar" "oci-archive:$T/built-oci.tar" | sort >"$T/got" || true
  same "$mode: layerdiff diff of two oci-archives = podman diff of the images" "$T/want" "$T/got"
  "$LD" diff --podman "oci-archive:$T/bb-oci.tar" "docker-archive:$T/built-docker.tar" | sort >"$T/got" || true
  same "$mode: the same with a docker-archive" "$T/want" "$T/got"

  rm -rf "$T/oci" "$T/copied.tar"
  skopeo copy -q "docker-archive:$T/built-docker.tar" "oci:$T/oci:built" >/dev/null
  skopeo copy -q "oci:$T/oci:built" "docker-archive:$T/copied.tar:localhost/copied:latest" >/dev/null
  for pair in "oci:$T/oci:built docker-archive:$T/built-docker.tar" "oci-archive:$T/built-oci.tar docker-archive:$T/copied.tar"; do
    set -- $pair
    if ! "$LD" diff "$1" "$2" >"$T/got"; then cat "$T/got" >&2; fail "$mode: layerdiff diff $1 $2 reports differences"; fi
  done
  echo "ok: $mode: skopeo copies between oci:, oci-archive: and docker-archive: show no differences"

  if [ "$mode" = fuse-overlayfs ]; then
    # Its containers are not compared line by line: fuse-overlayfs shows both names of a lower
    # hard-link pair changed once one is written (state it keeps in memory, not on disk, which
    # podman's diff reads through the mount); the layers on disk say only one changed.
    # tests/tools checks that its mounts are read as their layers.
    podman rmi -af >/dev/null 2>&1 || true
    continue
  fi
  id=$(podman run -d "${LIMITS[@]}" localhost/built sleep 120)
  podman exec "$id" sh -c 'rm -rf /data/deep && echo new > /data/deep2 && mkdir -p /app/moved/q/r &&
    echo z > /app/moved/q/r/z && rm /app/a && rm -rf /app/moved/b && rm -rf /opq && mkdir /opq &&
    echo again > /opq/again && chmod 700 /data && echo more >> /app/d'
  podman diff "$id" | sort >"$T/want"
  root=$(podman inspect --format '{{.GraphDriver.Data.MergedDir}}' "$id")
  "$LD" diff --podman "$root" | sort >"$T/got" || true
  same "$mode: layerdiff diff MOUNT = podman diff CONTAINER" "$T/want" "$T/got"
  set +e
  "$LD" diff "$root" >/dev/null; rc=$?
  set -e
  [ "$rc" = 1 ] || fail "$mode: layerdiff diff of a changed mount exits $rc, not 1"
  podman rm -f -t 0 "$id" >/dev/null
  podman rmi -af >/dev/null 2>&1 || true
done
