#!/usr/bin/env bash
# End to end: layerdu on images podman builds and saves, from Debian's busybox-static.
#   tests/e2e/layerdu.sh LAYERDIFF_BINARY LAYERDU_BINARY
# - A stack with known answers, as directories and as the image podman loads and saves
#   (docker-archive and oci-archive): the same totals and the same top list.
# - An image podman builds (a 2 MiB file written, then chmodded; a file removed): layerdu's
#   per-layer blob size is `podman history`'s SIZE and its created_by is CREATED BY. Both are
#   the uncompressed layer tar, headers included, as podman stores it; layerdu's own `bytes`
#   (content only) is smaller by the headers. The chmod shows as a 2 MiB metadata-only copy.
# Exit 77: the machine lacks root or a package, and the reason is printed.
set -euo pipefail
LD=$(realpath "${1:?usage: layerdu.sh LAYERDIFF LAYERDU}")
DU=$(realpath "${2:?usage: layerdu.sh LAYERDIFF LAYERDU}")

skip() { echo "SKIPPED: $*"; exit 77; }
fail() { echo "FAILED: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || skip "needs root"
for tool in podman runc skopeo jq; do command -v "$tool" >/dev/null || skip "no $tool (./dev installs it)"; done
[ -x /bin/busybox ] || skip "no /bin/busybox (apt-get install busybox-static)"

unset CI  # CI=true means --ci to layerdu, as to dive: these runs want the analysis alone

T=$(mktemp -d /var/tmp/layerdu-e2e-XXXXXX)
chmod 0755 "$T"
export CONTAINERS_STORAGE_CONF=$T/storage.conf CONTAINERS_CONF=$T/containers.conf
cleanup() {
  set +e
  podman rm -af -t 0 >/dev/null 2>&1
  podman system reset -f >/dev/null 2>&1
  grep " $T/" /proc/mounts | awk '{ print $2 }' | sort -r | while read -r m; do umount -l "$m"; done
  rm -rf "$T"
}
trap cleanup EXIT
. "$(dirname "$0")/podman-env.sh"
write_containers_conf "$T/containers.conf"
cat > "$T/storage.conf" <<EOF
[storage]
driver = "overlay"
runroot = "$T/run"
graphroot = "$T/graph"
EOF

# The known stack (as tests/tools/layerdu_test.cc, smaller).
mkdir -p "$T"/L0/d "$T"/L0/o "$T"/L1/o "$T"/L2
head -c 1048576 /dev/urandom >"$T/L0/big"
for i in $(seq 1 200); do echo "$i" >"$T/L0/d/f$i"; done
head -c 1000 /dev/urandom >"$T/L0/o/a"
head -c 5000 /dev/urandom >"$T/L0/dup1"
head -c 3000 /dev/urandom >"$T/L0/h1"; ln "$T/L0/h1" "$T/L0/h2"
head -c 1000 /dev/urandom >"$T/L0/r"
cp -p "$T/L0/big" "$T/L1/big"; chmod 600 "$T/L1/big"
touch "$T/L1/.wh.d" "$T/L1/o/.wh..wh..opq"
head -c 500 /dev/urandom >"$T/L1/o/c"
cp "$T/L0/dup1" "$T/L1/dup2"
head -c 1000 /dev/urandom >"$T/L1/r"
head -c 1000 /dev/urandom >"$T/L2/r"
for l in L0 L1 L2; do
  "$LD" export "$T/$l" -o "$T/$l.tar.gz" --into "oci:$T/img:du" >/dev/null
done
summary() { jq -S '{totals: (.totals | del(.allocated_bytes)), top: .top}'; }
"$DU" --json --no-files "layers:$T/L0,$T/L1,$T/L2" | summary >"$T/want"
skopeo copy -q "oci:$T/img:du" containers-storage:localhost/du:latest >/dev/null
podman save -q --format docker-archive -o "$T/du-docker.tar" localhost/du:latest
podman save -q --format oci-archive -o "$T/du-oci.tar" localhost/du:latest
for src in "docker-archive:$T/du-docker.tar" "oci-archive:$T/du-oci.tar" "oci:$T/img:du"; do
  "$DU" --json --no-files "$src" | summary >"$T/got"
  diff -u "$T/want" "$T/got" || fail "layerdu of $src differs from the directories"
  echo "ok: $src gives the directories' numbers"
done
[ "$(jq '.totals.metadata_copy_bytes' "$T/want")" = 1048576 ] || fail "the chmod copy is not 1 MiB"
[ "$(jq -r '.top[0].path' "$T/want")" = /big ] || fail "/big is not first in the top list"

# An image podman builds.
mkdir -p "$T/rootfs/bin" "$T/ctx"
cp /bin/busybox "$T/rootfs/bin/"
for c in sh rm chmod dd mkdir cp; do ln -s busybox "$T/rootfs/bin/$c"; done
tar -C "$T/rootfs" -cf "$T/bb.tar" .
cat >"$T/ctx/Containerfile" <<'EOF'
FROM localhost/bb:latest
RUN mkdir -p /big && dd if=/dev/zero of=/big/blob bs=1024 count=2048 && dd if=/dev/zero of=/big/other bs=1024 count=100
ENV NOTHING=here
RUN chmod 600 /big/blob && rm /big/other && cp /bin/busybox /bin/bb2
EOF
podman import -q "$T/bb.tar" localhost/bb:latest >/dev/null
podman build -q "${LIMITS[@]}" -t localhost/built "$T/ctx" >/dev/null
podman save -q --format docker-archive -o "$T/built.tar" localhost/built
"$DU" --json --no-files "docker-archive:$T/built.tar" >"$T/du.json"
# podman history lists newest first, with entries for steps that made no layer (size 0).
podman history --format json localhost/built |
  jq -c '[.[] | select(.size > 0)] | reverse | map({size, created_by: .CreatedBy})' >"$T/history"
jq -c '[.layers[] | {size: .compressed_bytes, created_by}]' "$T/du.json" >"$T/ours"
diff -u "$T/history" "$T/ours" || fail "layer sizes or created_by differ from podman history"
echo "ok: per-layer sizes and created_by = podman history ($(jq length "$T/history") layers)"
jq -e '[.layers[] | .bytes < .compressed_bytes] | all' "$T/du.json" >/dev/null ||
  fail "content bytes are not below the tar sizes"
[ "$(jq '.layers[2].metadata_copy_bytes' "$T/du.json")" = 2097152 ] || fail "chmod of /big/blob is not a 2 MiB metadata-only copy"
[ "$(jq '.layers[1].removed_bytes' "$T/du.json")" = 102400 ] || fail "/big/other is not 100 KiB removed"
jq -e '.top[] | select(.path == "/big/blob") | .reasons | index("metadata-only copy")' "$T/du.json" >/dev/null ||
  fail "/big/blob is not called a metadata-only copy"
echo "ok: the chmod is a metadata-only copy, the rm a removal"
