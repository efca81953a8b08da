#!/usr/bin/env bash
# Builds the fuzz targets with clang (libFuzzer, ASan, UBSan) over the readers' own sources and
# runs each for a bounded time: no crash, no leak, no sanitizer report.
#   tests/fuzz/run.sh SOURCE_DIR BUILD_DIR [SECONDS_EACH]
# Exit 77: clang or its libFuzzer runtime is missing (./dev installs them).
set -euo pipefail
SRC=$1 OUT=$2/fuzz SECONDS_EACH=${3:-30}
command -v clang++ >/dev/null || { echo "SKIPPED: no clang++"; exit 77; }
mkdir -p "$OUT"
echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' >"$OUT/probe.cc"
clang++ -fsanitize=fuzzer "$OUT/probe.cc" -o "$OUT/probe" 2>/dev/null ||
  { echo "SKIPPED: clang++ has no libFuzzer runtime (apt-get install libclang-rt-14-dev)"; exit 77; }
FLAGS=(-std=c++20 -O1 -g -D_GNU_SOURCE -I"$SRC" -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined)
LIBS=(-larchive -lxxhash -lcrypto)
COMMON=("$SRC"/layers/archive.cc "$SRC"/layers/entry.cc "$SRC"/layers/tree.cc "$SRC"/layers/whiteout.cc
        "$SRC"/layers/sys/fs.cc "$SRC"/layers/sys/xattr.cc "$SRC"/layers/sys/process.cc "$SRC"/layers/base/log.cc)
build() {  # build NAME SOURCES...
  local name=$1; shift
  local newest
  newest=$(ls -t "$@" | head -1)
  [ "$OUT/$name" -nt "$newest" ] && return 0
  clang++ "${FLAGS[@]}" "$@" "${LIBS[@]}" -o "$OUT/$name"
}
build fuzz_layer_tar "$SRC/tests/fuzz/fuzz_layer_tar.cc" "${COMMON[@]}"
build fuzz_image_index "$SRC/tests/fuzz/fuzz_image_index.cc" "$SRC/layers/image.cc" "$SRC/layers/digest.cc" "${COMMON[@]}"
# Seeds: inputs that once crashed a reader (tests/fuzz/regressions-*), a small layer tar in each compression, and index and manifest documents.
mkdir -p "$OUT/seed-tar" "$OUT/seed-index" "$OUT/corpus-tar" "$OUT/corpus-index"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
mkdir -p "$T/l/d"; echo x >"$T/l/d/f"; : >"$T/l/.wh.gone"; : >"$T/l/d/.wh..wh..opq"; ln -s f "$T/l/d/s"
tar -C "$T/l" -cf "$OUT/seed-tar/plain.tar" .
tar -C "$T/l" -czf "$OUT/seed-tar/gzip.tar" .
tar -C "$T/l" --zstd -cf "$OUT/seed-tar/zstd.tar" . 2>/dev/null || true
cat >"$OUT/seed-index/index.json" <<'JSON'
{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:00","size":1,"annotations":{"org.opencontainers.image.ref.name":"latest"}}],"layers":[{"digest":"sha256:11","mediaType":"application/vnd.oci.image.layer.v1.tar","size":3}],"config":{"digest":"sha256:22"},"rootfs":{"diff_ids":["sha256:33"]},"history":[{"created_by":"x"},{"empty_layer":true}]}
JSON
cat >"$OUT/seed-index/manifest.json" <<'JSON'
[{"Config":"blobs/sha256/22","RepoTags":["a:b"],"Layers":["blobs/sha256/11","x/layer.tar"],"LayerSources":{"sha256:33":{"mediaType":"m","size":4}}}]
JSON
for t in tar index; do
  name=$([ $t = tar ] && echo fuzz_layer_tar || echo fuzz_image_index)
  echo "== $name, ${SECONDS_EACH}s"
  rm -rf "$OUT/artifacts-$t"; mkdir -p "$OUT/artifacts-$t"
  rc=0
  "$OUT/$name" -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
    -artifact_prefix="$OUT/artifacts-$t/" "$OUT/corpus-$t" "$OUT/seed-$t" \
    $([ -d "$SRC/tests/fuzz/regressions-$t" ] && echo "$SRC/tests/fuzz/regressions-$t") \
    >"$OUT/$name.log" 2>&1 || rc=$?
  grep -E "^#[0-9]+.*DONE|stat::number_of_executed_units|ERROR|SUMMARY" "$OUT/$name.log" || true
  # A crash, leak, timeout or sanitizer report: libFuzzer exits non-zero and saves the input.
  if [ "$rc" -ne 0 ] || [ -n "$(ls -A "$OUT/artifacts-$t")" ]; then
    tail -40 "$OUT/$name.log"
    echo "FAILED: $name (exit $rc); inputs in $OUT/artifacts-$t"
    exit 1
  fi
done
