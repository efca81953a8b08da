# Sourced by bench/tools.sh, bench/du.sh and bench/run.sh: their arguments, progress lines and timings.
# Sets OUT (a markdown file to append results to, or "") and DIR (the scratch directory,
# default given by the caller), from [--out FILE] [--dir SCRATCH].
bench_args() {  # bench_args NAME DEFAULT_DIR "$@"
  local name=$1
  DIR=$2
  OUT=""
  shift 2
  while [ $# -gt 0 ]; do
    case "$1" in
      --out) OUT=$2; shift ;;
      --dir) DIR=$2; shift ;;
      *) echo "usage: bench/$name [--out FILE] [--dir SCRATCH]" >&2; exit 2 ;;
    esac
    shift
  done
}
say() { printf '== [%4ss] %s\n' "$SECONDS" "$*" >&2; }
measure() {  # best of 3: seconds and peak RSS (KiB), from /usr/bin/time
  local best="" rss=""
  for _ in 1 2 3; do
    /usr/bin/time -q -f "%e %M" -o "$DIR/time" "$@" >/dev/null 2>&1 || true
    read -r t m < <(tail -1 "$DIR/time")
    if [ -z "$best" ] || awk -v a="$t" -v b="$best" 'BEGIN{exit !(a<b)}'; then best=$t; rss=$m; fi
  done
  echo "$best $rss"
}
# A fresh scratch directory DIR, and on exit podman's storage reset, every mount under DIR
# unmounted and DIR removed.
scratch_dir() {
  rm -rf "$DIR"; mkdir -p "$DIR"
  trap scratch_cleanup EXIT
}
scratch_cleanup() {
  set +e
  command -v podman >/dev/null && podman system reset -f >/dev/null 2>&1
  grep " $DIR/" /proc/mounts | awk '{ print $2 }' | sort -r | while read -r m; do umount -l "$m"; done
  rm -rf "$DIR"
}
