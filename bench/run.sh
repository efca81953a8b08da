#!/usr/bin/env bash
# layerrun's start-to-exec-and-back time (/bin/true), beside bwrap on the same rootfs and
# `podman run --rm` of the same image, in one run, as root:
#   layerrun --rootfs DIR; layerrun on a 3-layer lower (layerfs started in-process), read-only
#   and with an upper; bwrap with the options that mean what layerrun does; podman run --rm.
#   bench/run.sh [--out FILE] [--dir SCRATCH] [--runs N]   (results appended as a markdown table)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD_DIR:-$PWD/build}
LR=$BUILD/layerrun
RUNS=50
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) RUNS=$2; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
. bench/tools-lib.sh
. tests/e2e/podman-env.sh
bench_args run.sh /var/tmp/layerrun-bench "${args[@]}"
[ -x "$LR" ] || { echo "no $LR (run ./dev build)" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "bench/run.sh: run as root (podman and bwrap beside it)" >&2; exit 2; }
scratch_dir
export CONTAINERS_STORAGE_CONF=$DIR/storage.conf CONTAINERS_CONF=$DIR/containers.conf

say "making a busybox-static root and three layers"
mkdir -p "$DIR"/{root,l1,l2,l3,upper,work}
for d in bin proc dev sys tmp etc root; do mkdir -p "$DIR/root/$d"; done
cp /bin/busybox "$DIR/root/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$DIR/root/bin/$a"; done
cp -a "$DIR/root/." "$DIR/l1/"
mkdir -p "$DIR/l2/etc" "$DIR/l3/etc"; echo two >"$DIR/l2/etc/two"; echo three >"$DIR/l3/etc/three"
LOWERS=(--lower "$DIR/l1" --lower "$DIR/l2" --lower "$DIR/l3")
BWRAP=(bwrap --unshare-all --die-with-parent --new-session --cap-drop ALL --ro-bind "$DIR/root" /
       --proc /proc --dev /dev --mqueue /dev/mqueue --ro-bind /sys /sys)

# Mean wall time per run, in milliseconds, over RUNS runs (after one warm-up run).
per_run() {
  "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; echo n/a; return; }
  local start end
  start=$(date +%s%N)
  for _ in $(seq "$RUNS"); do "$@" >/dev/null 2>&1; done
  end=$(date +%s%N)
  awk -v s="$start" -v e="$end" -v n="$RUNS" 'BEGIN{ printf "%.2f", (e - s) / n / 1e6 }'
}

say "layerrun --rootfs ($RUNS runs)"
t_rootfs=$(per_run "$LR" --rootfs "$DIR/root" -- /bin/true)
say "layerrun, 3-layer lower"
t_lower=$(per_run "$LR" "${LOWERS[@]}" -- /bin/true)
say "layerrun, 3-layer lower and an upper"
t_upper=$(per_run "$LR" "${LOWERS[@]}" --upper "$DIR/upper" --work "$DIR/work" -- /bin/true)
t_bwrap=n/a
if command -v bwrap >/dev/null; then
  say "bwrap"
  t_bwrap=$(per_run "${BWRAP[@]}" /bin/true)
fi
t_podman=n/a
if command -v podman >/dev/null; then
  say "podman run --rm (image imported from the same root)"
  printf '[storage]\ndriver = "overlay"\nrunroot = "%s/run"\ngraphroot = "%s/graph"\n' "$DIR" "$DIR" >"$DIR/storage.conf"
  write_containers_conf "$DIR/containers.conf"
  tar -C "$DIR/root" -cf "$DIR/root.tar" .
  podman import -q "$DIR/root.tar" localhost/bb:latest >/dev/null
  OLD=$RUNS; RUNS=$(( RUNS / 5 > 3 ? RUNS / 5 : 3 ))
  t_podman=$(per_run podman run --rm "${LIMITS[@]}" localhost/bb:latest /bin/true)
  RUNS=$OLD
fi
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a == "n/a" || b == "n/a") print "n/a"; else printf "%.2f", a / b }'; }
{
  echo
  echo "| start to exec and back (/bin/true) | ms per run | vs bwrap | vs podman run |"
  echo "|---|---|---|---|"
  echo "| layerrun --rootfs | $t_rootfs | $(ratio "$t_rootfs" "$t_bwrap") | $(ratio "$t_rootfs" "$t_podman") |"
  echo "| layerrun, 3-layer lower (layerfs in-process) | $t_lower | $(ratio "$t_lower" "$t_bwrap") | $(ratio "$t_lower" "$t_podman") |"
  echo "| layerrun, 3-layer lower + upper | $t_upper | $(ratio "$t_upper" "$t_bwrap") | $(ratio "$t_upper" "$t_podman") |"
  echo "| bwrap (same root, same isolation) | $t_bwrap | 1.00 | $(ratio "$t_bwrap" "$t_podman") |"
  echo "| podman run --rm (runc, overlay) | $t_podman | $(ratio "$t_podman" "$t_bwrap") | 1.00 |"
} | tee -a "${OUT:-/dev/null}"
