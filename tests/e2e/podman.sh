#!/usr/bin/env bash
# End to end: Debian's podman and buildah with layerfs as the overlay driver's mount_program.
#   tests/e2e/podman.sh LAYERFS_BINARY
# An image is imported from a tar made of Debian's busybox-static; podman build runs a
# Containerfile whose RUN steps create, modify, delete, chmod and rename files in lower layers;
# podman run reads, writes, deletes and renames across layers; podman diff must see each change
# (whiteouts included); buildah commits a container. Every container's rootfs must be a
# fuse.layerfs mount. Then the same as an unprivileged user (rootless podman, layerfs mounting
# inside podman's user namespace). All configuration is in files of the test's own
# (storage.conf, containers.conf, in a scratch directory); of the machine's, only /dev/fuse is
# made usable by every user for the rootless part (as Debian's udev rule has it) and restored.
# Exit 77: the machine lacks root or a package, and the reason is printed.
set -euo pipefail
LAYERFS=$(realpath "${1:?usage: podman.sh LAYERFS_BINARY}")

skip() { echo "SKIPPED: $*"; exit 77; }
fail() { echo "FAILED: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || skip "needs root"
for tool in podman buildah runc; do command -v "$tool" >/dev/null || skip "no $tool (apt-get install podman buildah runc)"; done
[ -x /bin/busybox ] || skip "no /bin/busybox (apt-get install busybox-static)"
[ -c /dev/fuse ] || skip "no /dev/fuse"

T=$(mktemp -d /var/tmp/layerfs-podman-XXXXXX)
chmod 0755 "$T"
export CONTAINERS_STORAGE_CONF=$T/storage.conf CONTAINERS_CONF=$T/containers.conf
USER_NAME=layerfs-test
FUSE_MODE=$(stat -c %a /dev/fuse)
as_user() {  # as_user COMMAND...: rootless podman's environment, all under $T/home
  setpriv --reuid="$USER_NAME" --regid="$USER_NAME" --clear-groups \
    env HOME="$T/home" XDG_RUNTIME_DIR="$T/home/xdg" CONTAINERS_STORAGE_CONF="$T/home/storage.conf" \
    CONTAINERS_CONF="$T/containers.conf" "$@"
}
cleanup() {
  set +e
  if [ -d "$T/home" ]; then
    as_user podman rm -af -t 0 >/dev/null 2>&1
    as_user podman system reset -f >/dev/null 2>&1
    pause=$(cat "$T/home/xdg/libpod/tmp/pause.pid" 2>/dev/null)
    [ -n "$pause" ] && kill "$pause" 2>/dev/null
  fi
  chmod "$FUSE_MODE" /dev/fuse
  podman rm -af -t 0 >/dev/null 2>&1
  buildah rm -a >/dev/null 2>&1
  podman system reset -f >/dev/null 2>&1
  # Whatever containers-storage left mounted under the scratch directory, and the daemons
  # serving it (started for this test by podman), go too.
  grep " $T/" /proc/mounts | awk '{ print $2 }' | sort -r | while read -r m; do umount -l "$m"; done
  for pid in $(pgrep -f "^$LAYERFS .*$T/"); do kill "$pid"; done
  rm -rf "$T"
}
trap cleanup EXIT

cat > "$T/storage.conf" <<EOF
[storage]
driver = "overlay"
runroot = "$T/run"
graphroot = "$T/graph"
[storage.options.overlay]
mount_program = "$LAYERFS"
mountopt = "nodev"
EOF
. "$(dirname "$0")/podman-env.sh"
write_containers_conf "$T/containers.conf"

expect() {  # expect NAME WANT GOT
  [ "$2" = "$3" ] || fail "$1: expected [$2], got [$3]"
  echo "ok: $1"
}

# A busybox image, one layer.
mkdir -p "$T/rootfs/bin" "$T/rootfs/data" "$T/rootfs/tmp" "$T/rootfs/etc"
cp /bin/busybox "$T/rootfs/bin/busybox"
for c in sh ls cat echo rm mv chmod stat mkdir touch test sleep sort; do ln -s busybox "$T/rootfs/bin/$c"; done
echo "base data" > "$T/rootfs/data/f"
echo "base g" > "$T/rootfs/data/g"
tar -C "$T/rootfs" -cf "$T/bb.tar" .
podman import -q "$T/bb.tar" localhost/bb:latest >/dev/null

# Every container's root is a layerfs mount.
id=$(podman run -d "${LIMITS[@]}" localhost/bb sleep 30)
root=$(podman inspect --format '{{.GraphDriver.Data.MergedDir}}' "$id")
fstype=$(awk -v m="$root" '$2 == m { print $3 }' /proc/mounts)
podman rm -f -t 0 "$id" >/dev/null
expect "the container's root is mounted by layerfs" "fuse.layerfs" "$fstype"

# podman build: each RUN works on the layers the earlier steps made.
mkdir -p "$T/ctx"
cat > "$T/ctx/Containerfile" <<'EOF'
FROM localhost/bb:latest
RUN mkdir -p /app/sub && echo one > /app/a && echo two > /app/sub/b && echo gone > /app/c && echo keep > /app/d
RUN echo changed >> /app/a && rm /app/c && chmod 600 /app/d && mv /app/sub /app/moved && rm /data/f
RUN test ! -e /app/c && cat /app/a /app/moved/b > /app/summary
EOF
podman build -q "${LIMITS[@]}" -t localhost/built "$T/ctx" >/dev/null
got=$(podman run --rm "${LIMITS[@]}" localhost/built sh -c \
  'cat /app/summary; ls /app | sort | tr "\n" " "; stat -c %a /app/d; ls /data; test -e /app/c || echo no-c; test -e /app/sub || echo no-sub')
expect "podman build layers" "one
changed
two
a d moved summary 600
g
no-c
no-sub" "$got"

# podman run: read, write, delete and rename across the image's layers.
id=$(podman create "${LIMITS[@]}" localhost/built sh -c \
  'cat /data/g && echo more >> /app/moved/b && rm /app/summary && mv /app/d /app/e && mv /app/moved /app/renamed && echo new > /tmp/n && cat /app/renamed/b /app/e')
got=$(podman start -a "$id")
expect "podman run across layers" "base g
two
more
keep" "$got"
got=$(podman diff "$id" | sort | tr '\n' ' ')
# (/etc changes too: podman writes the container's hosts and resolv.conf there.)
expect "podman diff sees every change" "A /app/e A /app/renamed A /app/renamed/b A /tmp/n C /app C /etc C /tmp D /app/d D /app/moved D /app/summary " "$got"
podman rm "$id" >/dev/null

# buildah: a working container, a change, a commit.
ctr=$(buildah from "${LIMITS[@]}" localhost/built)
buildah run "$ctr" -- sh -c 'echo via-buildah > /app/new && rm /app/a' >/dev/null
buildah commit -q "$ctr" localhost/bah >/dev/null
buildah rm "$ctr" >/dev/null
got=$(podman run --rm "${LIMITS[@]}" localhost/bah sh -c 'cat /app/new; ls /app | sort | tr "\n" " "')
expect "buildah commit" "via-buildah
d moved new summary " "$got"

# Rootless: an unprivileged user's podman, layerfs started by it inside its user namespace.
id -u "$USER_NAME" >/dev/null 2>&1 ||
  useradd --system --no-create-home --user-group --shell /usr/sbin/nologin "$USER_NAME" ||
  skip "cannot create the user $USER_NAME"
# The lock the other tests that widen /dev/fuse hold, so that no test restores its mode under
# another (ctest -j).
exec 9>/tmp/layerfs-test-dev-fuse.lock
flock 9
chmod 0666 /dev/fuse
mkdir -p "$T/home/xdg"
sed "s|$T/run|$T/home/run|; s|$T/graph|$T/home/graph|" "$T/storage.conf" > "$T/home/storage.conf"
chown -R "$USER_NAME:$USER_NAME" "$T/home"
chmod 0644 "$T/bb.tar" "$T/ctx/Containerfile"
chmod 0755 "$T/ctx"
as_user podman import -q "$T/bb.tar" localhost/bb:latest >/dev/null 2>&1
id=$(as_user podman run -d "${LIMITS[@]}" localhost/bb sleep 30 2>/dev/null)
daemons=$(pgrep -u "$USER_NAME" -f "^$LAYERFS " | wc -l)
as_user podman rm -f -t 0 "$id" >/dev/null 2>&1
[ "$daemons" -ge 1 ] || fail "rootless: no layerfs daemon of $USER_NAME served the container"
echo "ok: rootless podman mounts with layerfs as the user ($daemons daemon)"
as_user podman build -q "${LIMITS[@]}" -t localhost/built "$T/ctx" >/dev/null 2>&1 ||
  fail "rootless podman build"
got=$(as_user podman run --rm "${LIMITS[@]}" localhost/built sh -c \
  'cat /app/summary; echo x > /app/new && rm /app/d && mv /app/moved /app/m2 && ls /app | sort | tr "\n" " "' 2>/dev/null)
expect "rootless podman build and run" "one
changed
two
a m2 new summary " "$got"

podman rm -af -t 0 >/dev/null
left=$(awk -v t="$T/" '$3 == "fuse.layerfs" && index($2, t) == 1' /proc/mounts | wc -l)
expect "no layerfs mounts left once the containers are gone" "0" "$left"
echo "podman end to end: all passed"
