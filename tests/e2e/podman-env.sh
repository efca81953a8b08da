# Sourced by the e2e scripts: podman's settings for this machine, written into a scratch
# directory (the machine's own configuration is never read or changed).
# This machine: cgroup v1 (crun refuses hybrid hierarchies, so runc), no network for
# containers, and the limits the sandbox allows (podman's defaults raise them beyond it).
write_containers_conf() {  # write_containers_conf FILE
  cat >"$1" <<'CONF'
[containers]
netns = "none"
log_driver = "k8s-file"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
CONF
}
LIMITS=(--ulimit "nofile=1024:1024" --ulimit "nproc=1024:1024")
