/*
 * sandbox.c — the confinement of run_shell's commands (see sandbox.h).
 *
 * The child is made with a raw clone3() so that it can start in new
 * namespaces and hand back a pidfd in one step. Between clone and exec it
 * runs only system calls and snprintf (the tool host is single-threaded,
 * so no lock can be held by a thread that did not come along). Every step
 * that fails is reported through a close-on-exec pipe: end of file there
 * means exec succeeded, anything else is the reason the command did not
 * run.
 *
 * Kernel interfaces newer than this system's headers (Landlock ABI 3+,
 * clone3's struct) are spelled out here; the values are kernel ABI and
 * never change.
 */
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/landlock.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- kernel ABI this system's headers may lack ------------------------------------------ */

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef LANDLOCK_ACCESS_FS_REFER
#define LANDLOCK_ACCESS_FS_REFER (1ULL << 13)
#endif
#define LL_FS_TRUNCATE (1ULL << 14)      /* ABI 3 */
#define LL_FS_IOCTL_DEV (1ULL << 15)     /* ABI 5 */
#define LL_NET_BIND_TCP (1ULL << 0)      /* ABI 4 */
#define LL_NET_CONNECT_TCP (1ULL << 1)   /* ABI 4 */
#define LL_SCOPE_ABSTRACT_UNIX (1ULL << 0) /* ABI 6 */
#define LL_SCOPE_SIGNAL (1ULL << 1)        /* ABI 6 */

/* struct landlock_ruleset_attr as of ABI 6; the kernel takes a prefix. */
struct ll_ruleset_attr {
    uint64_t handled_access_fs;
    uint64_t handled_access_net;
    uint64_t scoped;
};

/* struct clone_args, version 0 (64 bytes). */
struct clone_args_v0 {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
};

#define FS_READ (LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR)
/* rights that apply to a file (not a directory) */
#define FS_FILE_RIGHTS                                                                             \
    (LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_READ_FILE |   \
     LL_FS_TRUNCATE | LL_FS_IOCTL_DEV)

int sandbox_landlock_abi(void)
{
    long v = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
    return v > 0 ? (int)v : 0;
}

/* Every filesystem right the kernel's ABI knows: all of them are handled
 * (denied unless a rule grants them). */
static uint64_t fs_rights(int abi)
{
    uint64_t r = (1ULL << 13) - 1; /* ABI 1: EXECUTE .. MAKE_SYM */
    if (abi >= 2)
        r |= LANDLOCK_ACCESS_FS_REFER;
    if (abi >= 3)
        r |= LL_FS_TRUNCATE;
    if (abi >= 5)
        r |= LL_FS_IOCTL_DEV;
    return r;
}

/* ---- the child's steps (between clone and exec) ------------------------------------------- */

struct child_ctx {
    const char *command, *workspace, *lang;
    int workspace_fd, out_w, err_w, lifeline_r;
    uid_t uid;
    gid_t gid;
    bool user_ns, other_ns;
    const char *fault; /* $HEARTH_SANDBOX_FAULT: a step to fail, for tests */
};

static void __attribute__((noreturn)) child_fail(const struct child_ctx *x, const char *step,
                                                 int err)
{
    char msg[300];
    int n = snprintf(msg, sizeof msg, "%s: %s", step, strerror(err));
    if (n > 0 && write(x->err_w, msg, (size_t)n) < 0) {
        /* nothing left to tell anyone */
    }
    _exit(127);
}

/* Fault injection (SQLite-style): HEARTH_SANDBOX_FAULT=STEP makes that
 * step fail as if the kernel had refused it, so tests can see that a
 * command never runs when its sandbox is incomplete. It can only make
 * things fail, never weaken them. */
static void fault_point(const struct child_ctx *x, const char *step)
{
    if (x->fault && strcmp(x->fault, step) == 0)
        child_fail(x, step, ENOTRECOVERABLE);
}

static int write_text(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = write(fd, text, strlen(text));
    int rc = n == (ssize_t)strlen(text) ? 0 : -errno;
    close(fd);
    return rc;
}

static void map_ids(const struct child_ctx *x)
{
    char line[64];
    int rc = write_text("/proc/self/setgroups", "deny");
    if (rc < 0 && rc != -ENOENT)
        child_fail(x, "user namespace: setgroups", -rc);
    snprintf(line, sizeof line, "%u %u 1", (unsigned)x->uid, (unsigned)x->uid);
    if ((rc = write_text("/proc/self/uid_map", line)) < 0)
        child_fail(x, "user namespace: uid_map", -rc);
    snprintf(line, sizeof line, "%u %u 1", (unsigned)x->gid, (unsigned)x->gid);
    if ((rc = write_text("/proc/self/gid_map", line)) < 0)
        child_fail(x, "user namespace: gid_map", -rc);
}

static bool under_tmp(const char *path)
{
    return strcmp(path, "/tmp") == 0 || strncmp(path, "/tmp/", 5) == 0;
}

/* In the new mount namespace: nothing propagates back, a private /tmp, a
 * /proc showing only the sandbox's processes. Returns whether /tmp is
 * private (and so may be writable). */
static bool set_up_mounts(const struct child_ctx *x)
{
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        child_fail(x, "making the mounts private", errno);
    bool tmp = false;
    /* A workspace under /tmp would be hidden by the new /tmp. */
    if (!under_tmp(x->workspace))
        tmp = mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV,
                    "size=256m,nr_inodes=65536,mode=1777") == 0;
    /* optional: the old /proc still works, Landlock keeps others' entries
     * out of reach (ptrace scoping) */
    (void)!mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    return tmp;
}

/* The workspace descriptor was opened in the tool host's mount namespace:
 * as a working directory it would be unreachable from this namespace's
 * root (getcwd() fails). Opens the same directory again by path here,
 * refusing anything but the very same inode (a path swapped meanwhile). */
static void reopen_workspace(struct child_ctx *x)
{
    struct stat want, got;
    int fd = open(x->workspace, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        child_fail(x, "opening the workspace in the sandbox", errno);
    if (fstat(x->workspace_fd, &want) < 0 || fstat(fd, &got) < 0 || want.st_dev != got.st_dev ||
        want.st_ino != got.st_ino)
        child_fail(x, "the workspace path no longer leads to the workspace", ESTALE);
    x->workspace_fd = fd;
}

static void add_rule(const struct child_ctx *x, int ruleset, const char *path, int dirfd,
                     uint64_t rights, uint64_t handled)
{
    int fd = dirfd;
    if (fd < 0) {
        fd = open(path, O_PATH | O_CLOEXEC);
        if (fd < 0)
            return; /* not on this system (/lib32, /opt): nothing to allow */
    }
    struct stat st;
    if (fstat(fd, &st) == 0 && !S_ISDIR(st.st_mode))
        rights &= FS_FILE_RIGHTS;
    struct landlock_path_beneath_attr pb = {.allowed_access = rights & handled, .parent_fd = fd};
    if (syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &pb, 0) < 0) {
        int e = errno;
        char step[200];
        snprintf(step, sizeof step, "Landlock rule for %s", path);
        child_fail(x, step, e);
    }
    if (fd != dirfd)
        close(fd);
}

static void landlock(const struct child_ctx *x, bool private_tmp)
{
    int abi = sandbox_landlock_abi();
    fault_point(x, "landlock");
    if (abi < 1)
        child_fail(x, "Landlock is not available on this kernel (needed to confine commands)",
                   EOPNOTSUPP);
    if (!x->other_ns && abi < 4)
        child_fail(x, "cannot deny network access (no network namespace, Landlock ABI < 4)",
                   EOPNOTSUPP);
    uint64_t fs = fs_rights(abi);
    struct ll_ruleset_attr attr = {.handled_access_fs = fs};
    size_t size = sizeof attr.handled_access_fs;
    if (abi >= 4) {
        attr.handled_access_net = LL_NET_BIND_TCP | LL_NET_CONNECT_TCP; /* no rule: all denied */
        size = offsetof(struct ll_ruleset_attr, scoped);
    }
    if (abi >= 6) {
        attr.scoped = LL_SCOPE_ABSTRACT_UNIX | LL_SCOPE_SIGNAL;
        size = sizeof attr;
    }
    int rs = (int)syscall(SYS_landlock_create_ruleset, &attr, size, 0);
    if (rs < 0)
        child_fail(x, "creating the Landlock ruleset", errno);
    static const char *const read_dirs[] = {"/usr",   "/bin",    "/sbin", "/lib",
                                            "/lib32", "/lib64", "/libx32", "/etc",
                                            "/opt",   "/proc",  "/sys"};
    for (size_t i = 0; i < sizeof read_dirs / sizeof read_dirs[0]; i++)
        add_rule(x, rs, read_dirs[i], -1, FS_READ, fs);
    /* /dev only listed: its device files (disks!) stay closed but for the
     * harmless ones below */
    add_rule(x, rs, "/dev", -1, LANDLOCK_ACCESS_FS_READ_DIR, fs);
    static const char *const devices[] = {"/dev/null", "/dev/zero", "/dev/full", "/dev/random",
                                          "/dev/urandom"};
    for (size_t i = 0; i < sizeof devices / sizeof devices[0]; i++)
        add_rule(x, rs, devices[i], -1,
                 LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_WRITE_FILE | LL_FS_TRUNCATE |
                     LL_FS_IOCTL_DEV,
                 fs);
    add_rule(x, rs, x->workspace, x->workspace_fd, fs, fs);
    if (private_tmp)
        add_rule(x, rs, "/tmp", -1, fs, fs);
    if (syscall(SYS_landlock_restrict_self, rs, 0) < 0)
        child_fail(x, "entering the Landlock domain", errno);
    close(rs);
}

static void drop_capabilities(const struct child_ctx *x)
{
    fault_point(x, "capabilities");
    for (int cap = 0; cap < 64; cap++) {
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
            if (errno == EINVAL)
                break; /* past the last capability */
            if (errno != EPERM)
                child_fail(x, "dropping capabilities", errno);
            /* EPERM: we hold no CAP_SETPCAP, so there is nothing to drop;
             * the check below confirms it */
            break;
        }
    }
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
    struct __user_cap_data_struct data[2] = {{0}};
    if (syscall(SYS_capset, &hdr, data) < 0)
        child_fail(x, "clearing capabilities", errno);
    memset(data, 0xff, sizeof data);
    if (syscall(SYS_capget, &hdr, data) < 0)
        child_fail(x, "reading capabilities", errno);
    for (int i = 0; i < 2; i++)
        if (data[i].effective || data[i].permitted || data[i].inheritable)
            child_fail(x, "capabilities remain after dropping them", EPERM);
}

#define NS_FLAGS                                                                                   \
    (CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS |     \
     CLONE_NEWCGROUP)

static void seccomp(const struct child_ctx *x)
{
#if defined(__x86_64__)
#define SB_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define SB_ARCH AUDIT_ARCH_AARCH64
#else
    child_fail(x, "seccomp filter: unsupported architecture", EOPNOTSUPP);
#endif
#ifdef SB_ARCH
#define DENY(nr, err)                                                                              \
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1),                                               \
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((err) & SECCOMP_RET_DATA))
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SB_ARCH, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
#ifdef __x86_64__
        /* the x32 ABI numbers the same calls differently: none of it */
        BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
#endif
        /* clone with a namespace flag: no new namespaces (flags: low word) */
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone, 0, 3),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])),
        BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, NS_FLAGS, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        /* clone3's flags are in memory seccomp cannot read: ENOSYS makes
         * libc fall back to clone */
        DENY(SYS_clone3, ENOSYS),
        DENY(SYS_socket, EACCES),
        DENY(SYS_unshare, EPERM),
        DENY(SYS_setns, EPERM),
        DENY(SYS_mount, EPERM),
        DENY(SYS_umount2, EPERM),
        DENY(SYS_pivot_root, EPERM),
        DENY(SYS_chroot, EPERM),
        DENY(SYS_ptrace, EPERM),
        DENY(SYS_process_vm_readv, EPERM),
        DENY(SYS_process_vm_writev, EPERM),
        DENY(SYS_io_uring_setup, ENOSYS),
        DENY(SYS_io_uring_enter, ENOSYS),
        DENY(SYS_io_uring_register, ENOSYS),
        DENY(SYS_keyctl, EPERM),
        DENY(SYS_add_key, EPERM),
        DENY(SYS_request_key, EPERM),
        DENY(SYS_bpf, EPERM),
        DENY(SYS_perf_event_open, EPERM),
        DENY(SYS_userfaultfd, EPERM),
        DENY(SYS_init_module, EPERM),
        DENY(SYS_finit_module, EPERM),
        DENY(SYS_kexec_load, EPERM),
        DENY(SYS_open_by_handle_at, EPERM),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
#undef DENY
    struct sock_fprog prog = {.len = (unsigned short)(sizeof f / sizeof f[0]), .filter = f};
    fault_point(x, "seccomp");
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) < 0)
        child_fail(x, "installing the seccomp filter", errno);
#endif
}

static void __attribute__((noreturn)) child_main(struct child_ctx *x)
{
    /* die with the tool host; and if it died already, before prctl, the
     * lifeline pipe (whose write end only it holds) has hung up */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    struct pollfd pfd = {.fd = x->lifeline_r, .events = POLLIN};
    if (poll(&pfd, 1, 0) > 0 && (pfd.revents & (POLLHUP | POLLERR)))
        _exit(127);
    fault_point(x, "namespaces");
    if (x->user_ns)
        map_ids(x);
    bool private_tmp = x->other_ns ? set_up_mounts(x) : false;
    if (setpgid(0, 0) < 0)
        child_fail(x, "setpgid", errno);

    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    for (int s = 1; s < NSIG; s++)
        signal(s, SIG_DFL); /* SIGPIPE above all: the tool host ignores it */

    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null < 0 || dup2(null, 0) < 0 || dup2(x->out_w, 1) < 0 || dup2(x->out_w, 2) < 0)
        child_fail(x, "setting up standard input and output", errno);
    if (x->other_ns)
        reopen_workspace(x);
    if (fchdir(x->workspace_fd) < 0)
        child_fail(x, "entering the workspace", errno);
    struct rlimit core = {0, 0};
    setrlimit(RLIMIT_CORE, &core);

    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        child_fail(x, "no_new_privs", errno);
    landlock(x, private_tmp);
    drop_capabilities(x);
    seccomp(x);

    /* every descriptor but 0-2 (and the error pipe, until exec succeeds) */
    if (syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
        for (int fd = 3; fd < 4096; fd++)
            fcntl(fd, F_SETFD, FD_CLOEXEC);

    char home[4200], lang[128];
    snprintf(home, sizeof home, "HOME=%s", x->workspace);
    snprintf(lang, sizeof lang, "LANG=%s", x->lang);
    char *const envp[] = {"PATH=/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin",
                          home, lang, NULL};
    char *const argv[] = {"sh", "-c", (char *)x->command, NULL};
    execve("/bin/sh", argv, envp);
    child_fail(x, "running /bin/sh", errno);
}

/* ---- the parent's side ----------------------------------------------------------------------- */

static pid_t clone_into(uint64_t flags, int *pidfd)
{
    struct clone_args_v0 a = {.flags = flags | CLONE_PIDFD,
                              .pidfd = (uint64_t)(uintptr_t)pidfd,
                              .exit_signal = SIGCHLD};
    return (pid_t)syscall(SYS_clone3, &a, sizeof a);
}

int sandbox_spawn(const char *command, int workspace_fd, const char *workspace, const char *lang,
                  struct sandbox_child *child, char *why, size_t cap)
{
    int out[2] = {-1, -1}, err[2] = {-1, -1}, life[2] = {-1, -1}, pidfd = -1;
    if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0 || pipe2(life, O_CLOEXEC) < 0) {
        int e = errno;
        snprintf(why, cap, "pipe: %s", strerror(e));
        for (int i = 0; i < 2; i++) {
            if (out[i] >= 0)
                close(out[i]);
            if (err[i] >= 0)
                close(err[i]);
            if (life[i] >= 0)
                close(life[i]);
        }
        return -e;
    }
    struct child_ctx x = {.command = command,
                          .workspace = workspace,
                          .lang = lang,
                          .workspace_fd = workspace_fd,
                          .out_w = out[1],
                          .err_w = err[1],
                          .lifeline_r = life[0],
                          .uid = getuid(),
                          .gid = getgid(),
                          .fault = getenv("HEARTH_SANDBOX_FAULT")};
    /* Namespaces where we may make them: directly (root), else inside a
     * new user namespace, else none (Landlock must then deny the network). */
    const uint64_t ns = CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWIPC;
    pid_t pid = clone_into(ns, &pidfd);
    x.other_ns = true;
    if (pid < 0 && errno != ENOSYS) {
        pid = clone_into(ns | CLONE_NEWUSER, &pidfd);
        x.user_ns = true;
    }
    if (pid < 0 && errno != ENOSYS) {
        pid = clone_into(0, &pidfd);
        x.user_ns = x.other_ns = false;
    }
    if (pid < 0 && errno == ENOSYS) {
        /* no clone3 (Linux < 5.3): a plain fork, no namespaces */
        x.user_ns = x.other_ns = false;
        pid = fork();
        if (pid > 0)
            pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    }
    if (pid == 0) {
        close(life[1]);
        close(out[0]);
        close(err[0]);
        child_main(&x);
    }
    int e = errno;
    close(out[1]);
    close(err[1]);
    close(life[0]);
    if (pid < 0) {
        snprintf(why, cap, "cannot start a process: %s", strerror(e));
        close(out[0]);
        close(err[0]);
        close(life[1]);
        return -e;
    }
    /* end of file: exec succeeded; text: the step that failed */
    char msg[300];
    ssize_t n;
    do
        n = read(err[0], msg, sizeof msg - 1);
    while (n < 0 && errno == EINTR);
    close(err[0]);
    /* From here the child no longer needs the lifeline: the parent death
     * signal covers it, and closing keeps descriptors from piling up. */
    close(life[1]);
    if (n > 0) {
        msg[n] = 0;
        snprintf(why, cap, "%s", msg);
        waitpid(pid, NULL, 0);
        if (pidfd >= 0)
            close(pidfd);
        close(out[0]);
        return -EPERM;
    }
    if (pidfd < 0) {
        /* cannot watch it: do not let it run unwatched */
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        close(out[0]);
        snprintf(why, cap, "cannot watch the process (pidfd)");
        return -ENOSYS;
    }
    *child = (struct sandbox_child){.pid = pid, .pidfd = pidfd, .out = out[0],
                                    .pid_ns = x.other_ns};
    return 0;
}
