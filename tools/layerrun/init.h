// pid 1 of the container. It starts the command (a new session, rlimits, its identity, its
// capabilities, no_new_privs, no inherited fd above 2, its environment and working
// directory), forwards SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 to it, reaps
// every process that ends (orphans are re-parented to it), and returns the command's status
// once the command has ended: its exit code, 128+N when signal N ended it; 126 when it could
// not be executed, 127 when it was not found, 125 when the set-up failed (podman's codes).
#pragma once

#include <csignal>

#include "tools/layerrun/capabilities.h"
#include "tools/layerrun/spec.h"

namespace layerfs::run {

// The signals the launcher and the init forward to the command.
inline constexpr int kForwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};

// Exit codes of the launcher itself.
inline constexpr int kLauncherError = 125;
inline constexpr int kCannotExecute = 126;
inline constexpr int kNotFound = 127;

// Runs the command as the spec says and waits for it; the exit code.
int run_init(const Spec& spec, const CapabilitySets& caps);

// The exit code for a wait status (128+N for a signal).
int exit_code(int wait_status);

}  // namespace layerfs::run
