/*
 * sandbox-action step helper: the first process of every Dockerfile build step on ConTree.
 *
 * The spawn API can place files and run one command, but it cannot create a directory with an
 * owner, make a symlink, give files to a user whose name only the image knows, remove a mount's
 * files after the command, switch to a user without su/setpriv in the image, or run anything in an
 * image without a shell. This program does all of that in the step's own spawn, needing nothing from
 * the image: static, no libc, raw Linux syscalls (x86_64).
 *
 * It runs as root with cwd "/", reads its operations from the file named by argv[1] (NUL-separated
 * tokens, written by the action), applies them in order, removes itself, its operations file and its
 * staging directory, and then execs the step's command as the step's user (setgroups, setgid,
 * setuid) in the step's working directory. When the step has mounts (cache, tmpfs, bind, secret,
 * heredoc scripts) it forks instead, waits for the command, removes what the mounts placed, puts back
 * what they hid, and exits the way the command did. Nothing of it is left in the image.
 *
 * Operations (every field a NUL-terminated token; numbers decimal, modes octal):
 *   d PATH MODE UID GID              mkdir -p; only created directories get MODE and UID:GID
 *   D PATH MODE UID GID PUID PGID    a copied directory: parents as `d` 0755 PUID:PGID; the directory
 *                                    itself created, or its mode and owner set when it exists
 *   F SRC DEST MODE UID GID PUID PGID INTO
 *                                    move the staged file SRC to DEST (parents as `D`); when INTO is
 *                                    not empty and DEST is an existing directory, to DEST/INTO
 *   L TARGET PATH UID GID PUID PGID  a symlink (replacing a non-directory at PATH)
 *   m PATH MODE UID GID              mount point: hide what is at PATH, create an empty directory
 *   M PATH                           mount file/tree at PATH, created by the following operations:
 *                                    hide what is there now; remove it again after the command
 *   s VAR PATH MODE UID GID          secret file: PATH gets the value of env VAR (then removed)
 *   e VAR NAME                       secret env: the command sees env VAR's value as NAME
 *   u UID GID N G1..GN               the command's user, group and supplementary groups
 *   c DIR                            the command's working directory (created 0755 root if missing)
 *   x N ARG1..ARGN                   the command (PATH searched when ARG1 has no '/')
 * Environment variables named SANDBOX_ACTION_* are never passed to the command.
 */

typedef unsigned long size_t;
typedef long ssize_t;

#define SYS_read 0
#define SYS_write 1
#define SYS_close 3
#define SYS_mmap 9
#define SYS_getpid 39
#define SYS_fork 57
#define SYS_execve 59
#define SYS_exit_group 231
#define SYS_wait4 61
#define SYS_kill 62
#define SYS_chdir 80
#define SYS_setuid 105
#define SYS_setgid 106
#define SYS_setgroups 116
#define SYS_getdents64 217
#define SYS_openat 257
#define SYS_mkdirat 258
#define SYS_fchownat 260
#define SYS_newfstatat 262
#define SYS_unlinkat 263
#define SYS_renameat 264
#define SYS_symlinkat 266
#define SYS_fchmodat 268
#define SYS_rt_sigaction 13

#define AT_FDCWD -100
#define AT_SYMLINK_NOFOLLOW 0x100
#define AT_REMOVEDIR 0x200
#define O_RDONLY 0
#define O_WRONLY 1
#define O_CREAT 0100
#define O_TRUNC 01000
#define O_EXCL 0200
#define O_NOFOLLOW 0400000
#define O_DIRECTORY 0200000
#define O_CLOEXEC 02000000
#define S_IFMT 0170000
#define S_IFDIR 0040000
#define EEXIST 17
#define ENOENT 2
#define EXDEV 18
#define PATH_MAX 4096
#define MAX_MOUNTS 64

static long sys6(long n, long a, long b, long c, long d, long e, long f) {
    long ret;
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    __asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9) : "rcx", "r11", "memory");
    return ret;
}
#define sys(n, a, b, c) sys6((n), (long)(a), (long)(b), (long)(c), 0, 0, 0)

__asm__(".text\n.global _start\n_start:\n xor %rbp,%rbp\n mov %rsp,%rdi\n and $-16,%rsp\n call start_c\n hlt\n");

void *memset(void *d, int c, size_t n) {
    unsigned char *p = d;
    while (n--) *p++ = (unsigned char)c;
    return d;
}
void *memcpy(void *d, const void *s, size_t n) {
    unsigned char *p = d;
    const unsigned char *q = s;
    while (n--) *p++ = *q++;
    return d;
}

static size_t len(const char *s) {
    size_t n = 0;
    while (s[n]) n++;
    return n;
}
static int eq(const char *a, const char *b) {
    while (*a && *a == *b) a++, b++;
    return *a == *b;
}
static int starts(const char *s, const char *prefix) {
    while (*prefix) if (*s++ != *prefix++) return 0;
    return 1;
}
static void out(const char *s) { sys(SYS_write, 2, s, len(s)); }
static void out_num(long v) {
    char buf[24];
    int i = 23;
    int neg = v < 0;
    if (neg) v = -v;
    buf[i] = 0;
    do buf[--i] = (char)('0' + v % 10), v /= 10; while (v);
    if (neg) buf[--i] = '-';
    out(buf + i);
}
static void die(const char *what, const char *path, long err) {
    out("sandbox-action step helper: ");
    out(what);
    out(" ");
    out(path);
    out(": error ");
    out_num(-err);
    out("\n");
    sys(SYS_exit_group, 125, 0, 0);
    for (;;) {}
}
static void *alloc(size_t size) {
    long p = sys6(SYS_mmap, 0, (long)size, 3 /* RW */, 0x22 /* PRIVATE|ANON */, -1, 0);
    if (p < 0 && p > -4096) die("mmap", "", p);
    return (void *)p;
}
static long number(const char *s) {
    long v = 0;
    while (*s >= '0' && *s <= '9') v = v * 10 + (*s++ - '0');
    return v;
}
static long octal(const char *s) {
    long v = 0;
    while (*s >= '0' && *s <= '7') v = v * 8 + (*s++ - '0');
    return v;
}

/* st_mode of PATH without following a final symlink; -1 when it does not exist. */
static long mode_of(const char *path) {
    unsigned long st[18];
    long r = sys6(SYS_newfstatat, AT_FDCWD, (long)path, (long)st, AT_SYMLINK_NOFOLLOW, 0, 0);
    if (r < 0) return -1;
    return (long)(unsigned int)(st[3] & 0xffffffff); /* st_mode: offset 24 */
}
static int is_dir(const char *path) {
    long m = mode_of(path);
    return m >= 0 && (m & S_IFMT) == S_IFDIR;
}
static void set_owner_mode(const char *path, long mode, long uid, long gid, int link) {
    long r = sys6(SYS_fchownat, AT_FDCWD, (long)path, uid, gid, AT_SYMLINK_NOFOLLOW, 0);
    if (r < 0) die("chown", path, r);
    if (!link) {
        r = sys6(SYS_fchmodat, AT_FDCWD, (long)path, mode, 0, 0, 0);
        if (r < 0) die("chmod", path, r);
    }
}

/* Directories created for mount points, removed again after the command (BuildKit removes its mount stubs). */
static char (*stubs)[PATH_MAX];
static int stub_count;
static int recording;

/* mkdir -p: every directory created gets MODE and UID:GID; existing ones are left alone. */
static void mkdirs(const char *path, long mode, long uid, long gid) {
    char buf[PATH_MAX];
    size_t n = len(path);
    if (n >= PATH_MAX) die("path too long", path, -36);
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != 0) continue;
        char saved = buf[i];
        buf[i] = 0;
        if (!is_dir(buf)) {
            long r = sys(SYS_mkdirat, AT_FDCWD, buf, 0700);
            if (r < 0 && r != -EEXIST) die("mkdir", buf, r);
            if (r == 0) set_owner_mode(buf, mode, uid, gid, 0);
            if (r == 0 && recording && stub_count < MAX_MOUNTS * 8) memcpy(stubs[stub_count++], buf, i + 1);
        }
        buf[i] = saved;
    }
}
static void parent_of(const char *path, char *buf) {
    size_t n = len(path);
    memcpy(buf, path, n + 1);
    while (n > 1 && buf[n - 1] != '/') n--;
    buf[n > 1 ? n - 1 : 1] = 0;
}
static void mkparents(const char *path, long uid, long gid) {
    char parent[PATH_MAX];
    parent_of(path, parent);
    mkdirs(parent, 0755, uid, gid);
}

static void remove_tree(const char *path) {
    if (!is_dir(path)) {
        long r = sys(SYS_unlinkat, AT_FDCWD, path, 0);
        if (r < 0 && r != -ENOENT) die("unlink", path, r);
        return;
    }
    long fd = sys(SYS_openat, AT_FDCWD, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) die("open", path, fd);
    char entries[4096];
    char child[PATH_MAX];
    for (;;) {
        long n = sys(SYS_getdents64, fd, entries, sizeof entries);
        if (n < 0) die("getdents", path, n);
        if (n == 0) break;
        for (long off = 0; off < n;) {
            unsigned short reclen = *(unsigned short *)(entries + off + 16);
            const char *name = entries + off + 19;
            off += reclen;
            if (eq(name, ".") || eq(name, "..")) continue;
            size_t a = len(path), b = len(name);
            if (a + b + 2 >= PATH_MAX) die("path too long", path, -36);
            memcpy(child, path, a);
            child[a] = '/';
            memcpy(child + a + 1, name, b + 1);
            remove_tree(child);
        }
    }
    sys(SYS_close, fd, 0, 0);
    long r = sys(SYS_unlinkat, AT_FDCWD, path, AT_REMOVEDIR);
    if (r < 0) die("rmdir", path, r);
}

static void copy_file(const char *src, const char *dest) {
    long in = sys(SYS_openat, AT_FDCWD, src, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (in < 0) die("open", src, in);
    long outfd = sys6(SYS_openat, AT_FDCWD, (long)dest, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600, 0, 0);
    if (outfd < 0) die("create", dest, outfd);
    char buf[65536];
    for (;;) {
        long n = sys(SYS_read, in, buf, sizeof buf);
        if (n < 0) die("read", src, n);
        if (n == 0) break;
        for (long done = 0; done < n;) {
            long w = sys(SYS_write, outfd, buf + done, n - done);
            if (w < 0) die("write", dest, w);
            done += w;
        }
    }
    sys(SYS_close, in, 0, 0);
    sys(SYS_close, outfd, 0, 0);
    sys(SYS_unlinkat, AT_FDCWD, src, 0);
}
static void move_file(const char *src, const char *dest) {
    if (is_dir(dest)) die("a directory is in the way of", dest, -21);
    long r = sys6(SYS_renameat, AT_FDCWD, (long)src, AT_FDCWD, (long)dest, 0, 0);
    if (r == -EXDEV) copy_file(src, dest);
    else if (r < 0) die("rename", dest, r);
}

/* What a mount hid (moved aside) and must put back. */
struct mount { char path[PATH_MAX]; char aside[PATH_MAX]; int hid; };
static struct mount *mounts;
static int mount_count;

static void hide(const char *path) {
    if (mount_count >= MAX_MOUNTS) die("too many mounts at", path, -7);
    struct mount *m = &mounts[mount_count++];
    size_t n = len(path);
    memcpy(m->path, path, n + 1);
    memcpy(m->aside, path, n);
    memcpy(m->aside + n, ".sandbox-action-hidden", 23);
    m->hid = 0;
    if (mode_of(path) >= 0) {
        long r = sys6(SYS_renameat, AT_FDCWD, (long)path, AT_FDCWD, (long)m->aside, 0, 0);
        if (r < 0) die("hide", path, r);
        m->hid = 1;
    }
}
static void unmount_all(void) {
    for (int i = mount_count - 1; i >= 0; i--) {
        struct mount *m = &mounts[i];
        if (mode_of(m->path) >= 0) remove_tree(m->path);
        if (m->hid) {
            long r = sys6(SYS_renameat, AT_FDCWD, (long)m->aside, AT_FDCWD, (long)m->path, 0, 0);
            if (r < 0) die("restore", m->path, r);
        }
    }
    /* Deepest first; a stub the command filled is kept, as BuildKit keeps it. */
    for (int i = stub_count - 1; i >= 0; i--) sys(SYS_unlinkat, AT_FDCWD, stubs[i], AT_REMOVEDIR);
}
static void mount_parents(const char *path) {
    recording = 1;
    mkparents(path, 0, 0);
    recording = 0;
}

static const char *env_value(char **envp, const char *name) {
    size_t n = len(name);
    for (char **e = envp; *e; e++)
        if (starts(*e, name) && (*e)[n] == '=') return *e + n + 1;
    return 0;
}

static void write_secret(const char *path, const char *value, long mode, long uid, long gid) {
    long fd = sys6(SYS_openat, AT_FDCWD, (long)path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600, 0, 0);
    if (fd < 0) die("create", path, fd);
    size_t n = value ? len(value) : 0;
    for (size_t done = 0; done < n;) {
        long w = sys(SYS_write, fd, value + done, n - done);
        if (w < 0) die("write", path, w);
        done += (size_t)w;
    }
    sys(SYS_close, fd, 0, 0);
    set_owner_mode(path, mode, uid, gid, 0);
}

static void run(char **argv, char **envp) {
    const char *cmd = argv[0];
    for (const char *p = cmd; *p; p++) {
        if (*p == '/') {
            long r = sys(SYS_execve, cmd, argv, envp);
            die("exec", cmd, r);
        }
    }
    const char *path = env_value(envp, "PATH");
    if (!path) path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    char full[PATH_MAX];
    long last = -ENOENT;
    while (*path) {
        const char *end = path;
        while (*end && *end != ':') end++;
        size_t a = (size_t)(end - path), b = len(cmd);
        if (a + b + 2 < PATH_MAX) {
            memcpy(full, path, a);
            full[a] = '/';
            memcpy(full + a + 1, cmd, b + 1);
            long r = sys(SYS_execve, full, argv, envp);
            if (r != -ENOENT && r != -20 /* ENOTDIR */) last = r;
        }
        path = *end ? end + 1 : end;
    }
    out("sandbox-action step helper: ");
    out(cmd);
    out(last == -ENOENT ? ": not found\n" : ": cannot be executed\n");
    sys(SYS_exit_group, last == -ENOENT ? 127 : 126, 0, 0);
}

void start_c(long *sp) {
    long argc = sp[0];
    char **argv = (char **)(sp + 1);
    char **envp = argv + argc + 1;
    if (argc < 2) die("usage", "helper OPERATIONS-FILE", -22);

    long fd = sys(SYS_openat, AT_FDCWD, argv[1], O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) die("open", argv[1], fd);
    size_t cap = 1 << 16, size = 0;
    char *ops = alloc(cap);
    for (;;) {
        if (size + 1 >= cap) {
            char *bigger = alloc(cap * 2);
            memcpy(bigger, ops, size);
            ops = bigger;
            cap *= 2;
        }
        long n = sys(SYS_read, fd, ops + size, cap - size - 1);
        if (n < 0) die("read", argv[1], n);
        if (n == 0) break;
        size += (size_t)n;
    }
    sys(SYS_close, fd, 0, 0);
    ops[size] = 0;

    mounts = alloc(sizeof(struct mount) * MAX_MOUNTS);
    stubs = alloc((size_t)PATH_MAX * MAX_MOUNTS * 8);
    size_t envc = 0;
    while (envp[envc]) envc++;
    char **env = alloc(sizeof(char *) * (envc + MAX_MOUNTS + 1));
    size_t envn = 0;
    for (size_t i = 0; i < envc; i++) if (!starts(envp[i], "SANDBOX_ACTION_")) env[envn++] = envp[i];
    env[envn] = 0;

    long uid = 0, gid = 0, ngroups = 0;
    long *groups = alloc(sizeof(long) * 65536);
    char **command = 0;
    const char *cwd = "/";

    char *p = ops, *end = ops + size;
#define NEXT() ({ char *t_ = p; p += len(p) + 1; if (p > end + 1) die("truncated operations", argv[1], -22); t_; })
    while (p < end) {
        char *op = NEXT();
        if (eq(op, "d")) {
            char *path = NEXT(); long mode = octal(NEXT()); long u = number(NEXT()); long g = number(NEXT());
            mkdirs(path, mode, u, g);
        } else if (eq(op, "D")) {
            char *path = NEXT(); long mode = octal(NEXT()); long u = number(NEXT()); long g = number(NEXT());
            long pu = number(NEXT()); long pg = number(NEXT());
            mkparents(path, pu, pg);
            if (!is_dir(path)) {
                if (mode_of(path) >= 0) remove_tree(path);
                long r = sys(SYS_mkdirat, AT_FDCWD, path, 0700);
                if (r < 0) die("mkdir", path, r);
            }
            set_owner_mode(path, mode, u, g, 0);
        } else if (eq(op, "F")) {
            char *src = NEXT(); char *dest = NEXT(); long mode = octal(NEXT()); long u = number(NEXT()); long g = number(NEXT());
            long pu = number(NEXT()); long pg = number(NEXT()); char *into = NEXT();
            char target[PATH_MAX];
            size_t a = len(dest), b = len(into);
            if (a + b + 2 >= PATH_MAX) die("path too long", dest, -36);
            memcpy(target, dest, a + 1);
            if (b > 0 && is_dir(dest)) {
                target[a] = '/';
                memcpy(target + a + 1, into, b + 1);
            } else {
                mkparents(dest, pu, pg);
            }
            move_file(src, target);
            set_owner_mode(target, mode, u, g, 0);
        } else if (eq(op, "L")) {
            char *target = NEXT(); char *path = NEXT(); long u = number(NEXT()); long g = number(NEXT());
            long pu = number(NEXT()); long pg = number(NEXT());
            mkparents(path, pu, pg);
            if (mode_of(path) >= 0) {
                if (is_dir(path)) die("a directory is in the way of", path, -21);
                sys(SYS_unlinkat, AT_FDCWD, path, 0);
            }
            long r = sys(SYS_symlinkat, target, AT_FDCWD, path);
            if (r < 0) die("symlink", path, r);
            set_owner_mode(path, 0, u, g, 1);
        } else if (eq(op, "m")) {
            char *path = NEXT(); long mode = octal(NEXT()); long u = number(NEXT()); long g = number(NEXT());
            mount_parents(path);
            hide(path);
            long r = sys(SYS_mkdirat, AT_FDCWD, path, 0700);
            if (r < 0) die("mkdir", path, r);
            set_owner_mode(path, mode, u, g, 0);
        } else if (eq(op, "M")) {
            char *path = NEXT();
            mount_parents(path);
            hide(path);
        } else if (eq(op, "s")) {
            char *var = NEXT(); char *path = NEXT(); long mode = octal(NEXT()); long u = number(NEXT()); long g = number(NEXT());
            mount_parents(path);
            hide(path);
            write_secret(path, env_value(envp, var), mode, u, g);
        } else if (eq(op, "e")) {
            char *var = NEXT(); char *name = NEXT();
            const char *value = env_value(envp, var);
            size_t a = len(name), b = value ? len(value) : 0;
            char *entry = alloc(a + b + 2);
            memcpy(entry, name, a);
            entry[a] = '=';
            if (value) memcpy(entry + a + 1, value, b + 1);
            env[envn++] = entry;
            env[envn] = 0;
        } else if (eq(op, "u")) {
            uid = number(NEXT()); gid = number(NEXT()); ngroups = number(NEXT());
            if (ngroups > 65536) die("too many groups", "", -22);
            for (long i = 0; i < ngroups; i++) groups[i] = number(NEXT());
        } else if (eq(op, "c")) {
            cwd = NEXT();
        } else if (eq(op, "x")) {
            long n = number(NEXT());
            command = alloc(sizeof(char *) * (size_t)(n + 1));
            for (long i = 0; i < n; i++) command[i] = NEXT();
            command[n] = 0;
        } else {
            die("unknown operation", op, -22);
        }
    }

    /* Leave nothing of ourselves in the image. */
    char staging[PATH_MAX];
    parent_of(argv[1], staging);
    sys(SYS_unlinkat, AT_FDCWD, argv[1], 0);
    sys(SYS_unlinkat, AT_FDCWD, argv[0], 0);
    long r = sys(SYS_unlinkat, AT_FDCWD, staging, AT_REMOVEDIR);
    if (r < 0 && r != -ENOENT) die("rmdir", staging, r);
    if (!command) sys(SYS_exit_group, 0, 0, 0);

    if (!is_dir(cwd)) mkdirs(cwd, 0755, 0, 0);
    long pid = mount_count > 0 ? sys(SYS_fork, 0, 0, 0) : 0;
    if (pid < 0) die("fork", "", pid);
    if (pid == 0) {
        /* The groups array is 32-bit gid_t on Linux. */
        unsigned int *gids = (unsigned int *)groups;
        for (long i = 0; i < ngroups; i++) gids[i] = (unsigned int)groups[i];
        r = sys(SYS_setgroups, ngroups, gids, 0);
        if (r < 0) die("setgroups", "", r);
        r = sys(SYS_setgid, gid, 0, 0);
        if (r < 0) die("setgid", "", r);
        r = sys(SYS_setuid, uid, 0, 0);
        if (r < 0) die("setuid", "", r);
        r = sys(SYS_chdir, cwd, 0, 0);
        if (r < 0) die("chdir", cwd, r);
        run(command, env);
    }
    int status = 0;
    for (;;) {
        r = sys6(SYS_wait4, pid, (long)&status, 0, 0, 0, 0);
        if (r == pid) break;
        if (r != -4 /* EINTR */) die("wait", "", r);
    }
    unmount_all();
    if ((status & 0x7f) == 0) sys(SYS_exit_group, (status >> 8) & 0xff, 0, 0);
    /* Killed by a signal: die the same way, so the service reports the same outcome. */
    long sig = status & 0x7f;
    long dfl[4] = {0, 0, 0, 0};
    sys6(SYS_rt_sigaction, sig, (long)dfl, 0, 8, 0, 0);
    sys(SYS_kill, sys(SYS_getpid, 0, 0, 0), sig, 0);
    sys(SYS_exit_group, 128 + sig, 0, 0);
}
