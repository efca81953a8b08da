#!/usr/bin/env bash
# layerdiff beside the tools people use for the same jobs, in one run, from page cache:
#   reading a 1 GiB layer tar (100 files of 10 MiB, 20,000 small ones): layerdiff (every byte
#     hashed) against tar -tvf (headers only, data skipped), and peak memory;
#   comparing two 100,000-file trees: layerdiff diff against diff -rq;
#   umoci unpack and skopeo copy of an image holding that layer (what they cost beside it).
#   bench/tools.sh [--out FILE] [--dir SCRATCH]     (results appended as a markdown table)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD_DIR:-$PWD/build}
LD=$BUILD/layerdiff
. bench/tools-lib.sh
bench_args tools.sh /var/tmp/layerdiff-bench "$@"
[ -x "$LD" ] || { echo "no $LD (run ./dev build)" >&2; exit 2; }
rm -rf "$DIR"; mkdir -p "$DIR"
trap 'rm -rf "$DIR"' EXIT

say "making the layer"
mkdir -p "$DIR/layer/big" "$DIR/layer/small"
for i in $(seq 1 100); do head -c 10485760 /dev/urandom >"$DIR/layer/big/f$i"; done
for d in $(seq 1 100); do
  mkdir -p "$DIR/layer/small/d$d"
  for f in $(seq 1 200); do echo "$d $f" >"$DIR/layer/small/d$d/f$f"; done
done
tar -C "$DIR/layer" -cf "$DIR/layer.tar" .
cat "$DIR/layer.tar" >/dev/null  # into the page cache
SIZE=$(stat -c %s "$DIR/layer.tar")

say "reading the tar"
read -r t_ld m_ld < <(measure "$LD" diff --layer 0 "$DIR/layer.tar")
read -r t_tar m_tar < <(measure tar -tvf "$DIR/layer.tar")
read -r t_tarp m_tarp < <(measure sh -c "cat '$DIR/layer.tar' | tar -tv")

say "making two 100,000-file trees"
for side in a b; do
  for d in $(seq 1 500); do
    mkdir -p "$DIR/$side/d$d"
    for f in $(seq 1 200); do echo "$d $f" >"$DIR/$side/d$d/f$f"; done
  done
done
# A few hundred differences: changed content, removed and added files.
for d in $(seq 1 100); do echo changed >"$DIR/b/d$d/f1"; rm "$DIR/b/d$d/f2"; echo new >"$DIR/b/d$d/new"; done
say "comparing them"
read -r t_ldd m_ldd < <(measure "$LD" diff --semantic "$DIR/a" "$DIR/b")
read -r t_diff m_diff < <(measure diff -rq "$DIR/a" "$DIR/b")

t_umoci=n/a t_skopeo=n/a
if command -v umoci >/dev/null && command -v skopeo >/dev/null; then
  say "umoci and skopeo"
  "$LD" export "$DIR/layer" -o "$DIR/layer.tar.gz" --into "oci:$DIR/image:big" >/dev/null
  read -r t_umoci _ < <(measure sh -c "rm -rf '$DIR/bundle' && umoci unpack --image '$DIR/image:big' '$DIR/bundle'")
  read -r t_skopeo _ < <(measure sh -c "rm -rf '$DIR/copy' && skopeo copy -q 'oci:$DIR/image:big' 'oci:$DIR/copy:big'")
  read -r t_ldi m_ldi < <(measure "$LD" diff --layer 0 "oci:$DIR/image:big")
fi

rate() { awk -v s="$SIZE" -v t="$1" 'BEGIN{ printf "%.0f MB/s", s / t / 1e6 }'; }
mib() { awk -v k="$1" 'BEGIN{ printf "%.0f MiB", k / 1024 }'; }
{
  echo
  echo "| job | tool | best of 3 | peak RSS | note |"
  echo "|---|---|---|---|---|"
  echo "| read a 1 GiB layer tar (page cache) | layerdiff diff --layer 0 | ${t_ld} s ($(rate "$t_ld")) | $(mib "$m_ld") | every byte hashed (XXH3-128) |"
  echo "| read a 1 GiB layer tar (page cache) | tar -tvf FILE | ${t_tar} s ($(rate "$t_tar")) | $(mib "$m_tar") | headers only: seeks past the data |"
  echo "| read a 1 GiB layer tar (page cache) | cat FILE \| tar -tv | ${t_tarp} s ($(rate "$t_tarp")) | $(mib "$m_tarp") | reads every byte, hashes none |"
  [ "$t_umoci" != n/a ] && echo "| read the same layer, gzip, from an oci: layout | layerdiff diff --layer 0 | ${t_ldi} s | $(mib "$m_ldi") | gunzip + hash |"
  [ "$t_umoci" != n/a ] && echo "| unpack that image | umoci unpack | ${t_umoci} s | | writes the rootfs |"
  [ "$t_umoci" != n/a ] && echo "| copy that image | skopeo copy oci: oci: | ${t_skopeo} s | | |"
  echo "| compare two 100,000-file trees | layerdiff diff --semantic | ${t_ldd} s | $(mib "$m_ldd") | content hashed |"
  echo "| compare two 100,000-file trees | diff -rq | ${t_diff} s | $(mib "$m_diff") | |"
} | tee -a "${OUT:-/dev/null}"
