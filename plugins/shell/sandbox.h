/*
 * sandbox.h — inside the shell plugin: starting one command confined to
 * its workspace.
 *
 * sandbox_spawn forks the command's process into new PID, network, mount
 * and IPC namespaces where the kernel allows it (directly, or inside a new
 * user namespace), and there, before exec'ing /bin/sh -c COMMAND:
 *
 *   - Landlock (required, any ABI): reads and execution only of the system
 *     directories (/usr, /bin, /sbin, /lib*, /etc, /opt, /proc, /sys),
 *     writes only beneath the workspace, a private /tmp (when a mount
 *     namespace was made and the workspace is not itself under /tmp) and a
 *     few harmless devices (/dev/null, /dev/zero, /dev/full, /dev/random,
 *     /dev/urandom). With Landlock ABI >= 4 TCP bind and connect are denied;
 *     with ABI >= 6 signals to and abstract sockets of processes outside
 *     the sandbox are too. Of /dev only the listing and the devices above
 *     (no disks).
 *   - No network: the new network namespace has no interface but a down
 *     loopback; where none could be made, Landlock ABI >= 4 is required.
 *     On top, seccomp refuses socket() altogether, so neither UDP nor Unix
 *     sockets (the D-Bus session bus, hearthd's own socket) are reachable.
 *   - seccomp also refuses namespace creation, io_uring, ptrace, the kernel
 *     keyring, bpf, perf and the like; no capabilities (bounding set
 *     emptied: a root hearthd runs the command without privileges); no new
 *     privileges (setuid binaries do not elevate); no core dumps.
 *   - Environment: PATH, HOME (the workspace) and LANG only; stdin
 *     /dev/null; stdout and stderr the same pipe; every other descriptor
 *     closed; its own process group.
 *
 * Any step that fails makes the child report the step and exit before the
 * command runs: the command never runs with less confinement than this.
 */
#ifndef HEARTH_PLUGINS_SHELL_SANDBOX_H
#define HEARTH_PLUGINS_SHELL_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct sandbox_child {
    pid_t pid;    /* in the plugin's PID namespace */
    int pidfd;    /* readable when it exits; owned */
    int out;      /* read end of its stdout+stderr pipe; owned */
    bool pid_ns;  /* it is PID 1 of its own namespace: its exit kills the rest */
};

/* The Landlock ABI version of the running kernel, or 0 when Landlock is
 * missing or disabled. */
int sandbox_landlock_abi(void);

/* Starts `command` under /bin/sh -c in the workspace (`workspace_fd`,
 * `workspace` its path), confined as above. Returns 0 and fills *child,
 * or a negative errno with a one-line reason in why[cap] (the command did
 * not run). */
int sandbox_spawn(const char *command, int workspace_fd, const char *workspace, const char *lang,
                  struct sandbox_child *child, char *why, size_t cap);

#endif
