#!/usr/bin/env bash
# layerdu beside du -sb and podman save, in one run, from page cache:
#   a 1 GiB directory layer (100 files of 10 MiB) and the same as an uncompressed layer tar:
#     layerdu (every byte hashed, both cores) against du -sb (metadata only);
#   a 200,000-entry layer (small files): time and peak memory, per entry;
#   the same layer as an image: podman save (what dive pays before it reads anything).
#   bench/du.sh [--out FILE] [--dir SCRATCH]     (results appended as a markdown table)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD_DIR:-$PWD/build}
DU=$BUILD/layerdu LD=$BUILD/layerdiff
. bench/tools-lib.sh
bench_args du.sh /var/tmp/layerdu-bench "$@"
[ -x "$DU" ] || { echo "no $DU (run ./dev build)" >&2; exit 2; }
scratch_dir
export CONTAINERS_STORAGE_CONF=$DIR/storage.conf
say "making the layers"
mkdir -p "$DIR/big" "$DIR/many"
for i in $(seq 1 100); do head -c 10485760 /dev/urandom >"$DIR/big/f$i"; done
for d in $(seq 1 1000); do
  mkdir -p "$DIR/many/d$d"
  for f in $(seq 1 199); do echo "$d $f" >"$DIR/many/d$d/f$f"; done
done
tar -C "$DIR/big" -cf "$DIR/big.tar" .
cat "$DIR/big.tar" >/dev/null; du -sb "$DIR/big" "$DIR/many" >/dev/null
SIZE=$(stat -c %s "$DIR/big.tar")
say "1 GiB directory and tar"
read -r t_dir m_dir < <(measure "$DU" --json "$DIR/big")
read -r t_tar m_tar < <(measure "$DU" --json "$DIR/big.tar")
read -r t_du _ < <(measure du -sb "$DIR/big")
say "200,000 entries"
read -r t_many m_many < <(measure "$DU" --json --no-files "$DIR/many")
read -r t_dum _ < <(measure du -sb "$DIR/many")
t_save=n/a
if command -v podman >/dev/null && [ "$(id -u)" -eq 0 ]; then
  say "podman save"
  printf '[storage]\ndriver = "overlay"\nrunroot = "%s/run"\ngraphroot = "%s/graph"\n' "$DIR" "$DIR" >"$DIR/storage.conf"
  "$LD" export "$DIR/big" -o "$DIR/big.tar.gz" --into "oci:$DIR/img:big" >/dev/null
  skopeo copy -q "oci:$DIR/img:big" containers-storage:localhost/big:latest >/dev/null
  read -r t_save _ < <(measure sh -c "rm -f '$DIR/saved.tar' && podman save -q -o '$DIR/saved.tar' localhost/big:latest")
  read -r t_saved m_saved < <(measure "$DU" --json --no-files "docker-archive:$DIR/saved.tar")
fi
rate() { awk -v s="$SIZE" -v t="$1" 'BEGIN{ printf "%.2f GB/s", s / t / 1e9 }'; }
mib() { awk -v k="$1" 'BEGIN{ printf "%.0f MiB", k / 1024 }'; }
{
  echo
  echo "| job | tool | best of 3 | peak RSS | note |"
  echo "|---|---|---|---|---|"
  echo "| 1 GiB directory layer | layerdu --json | ${t_dir} s ($(rate "$t_dir")) | $(mib "$m_dir") | every byte hashed |"
  echo "| 1 GiB directory layer | du -sb | ${t_du} s | | sizes only |"
  echo "| 1 GiB uncompressed layer tar | layerdu --json | ${t_tar} s ($(rate "$t_tar")) | $(mib "$m_tar") | every byte hashed |"
  echo "| 200,000-entry directory | layerdu --json --no-files | ${t_many} s | $(mib "$m_many") | $(awk -v k="$m_many" 'BEGIN{printf "%.0f", k*1024/200000}') bytes per entry |"
  echo "| 200,000-entry directory | du -sb | ${t_dum} s | | |"
  if [ "$t_save" != n/a ]; then
    echo "| the 1 GiB layer as an image | podman save | ${t_save} s | | what dive runs first |"
    echo "| its docker-archive | layerdu --json --no-files | ${t_saved} s | $(mib "$m_saved") | |"
  fi
} | tee -a "${OUT:-/dev/null}"
