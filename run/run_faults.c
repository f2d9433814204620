/*
 * run/run_faults.c - libkeel-run.so's faults at libc calls: a stress point per call and per
 * program call site, so that an unmodified program's error paths can be failed one by one
 * (docs/keel-run.md, "Faults at libc calls").
 *
 * Each interposed call (the malloc family, open, read, write, fsync, close, rename, mkdir,
 * socket, connect, accept, send, recv and their variants) starts with RUN_FAULT (run.h): unless
 * the program starts with stress options, the load of a flag and a branch not taken.  Past
 * it, the call's origin (the first frame outside the C library, the dynamic linker and keel) has
 * a stress point of its own, named libc.CALL.SITE (SITE: the file and line, "lost_write_c_31",
 * or the object and offset without debug information), registered with libkeel's stress points
 * the first time the site is seen, with the program's file, line and function: its fires are
 * reported there, counted per site, listed by stress.json and swept by `keel-stress sweep`.
 * A fire fails the call with the call's errno (run_calls.h; `--errno` changes it) or makes a
 * read, write, send or recv transfer half of what was asked (`short`).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "run.h"

#define SLOTS       4096u /* distinct (call, site) pairs known at once */
#define PROBES      64u
#define ARENA_CHUNK (1u << 16)

typedef struct fault_slot {
    uintptr_t key; /* the origin's pc ^ call, 0 empty */
    keel__stress_site *site;
} fault_slot;

static fault_slot slots[SLOTS];
static int errs[RUN_F_COUNT]; /* the errno of a fire, per call */
static int faults_lock;
static int faults_ready; /* 1 from the constructor on (the origins' code ranges known) */
int keel__run_faults_on;
static char *arena;
static size_t arena_left;

/* faults_lock held: size bytes aligned to 8 that live as long as the process (NULL: none). */
static void *arena_take(size_t size)
{
    size = (size + 7u) & ~(size_t)7u;
    if (arena == NULL || size > arena_left) {
        void *p =
            mmap(NULL, ARENA_CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            return NULL;
        arena = (char *)p;
        arena_left = ARENA_CHUNK;
    }
    void *p = arena;
    arena += size;
    arena_left -= size;
    return p;
}

/* "libc.write.lost_write_c_31": the call, then the site's file (or object+offset) and line. */
static void point_name(char *out, size_t size, run_call call, const keel__lock_site *s)
{
    int n = snprintf(out, size, "libc.%s.", run_calls()[call].name);
    size_t at = n > 0 && (size_t)n < size ? (size_t)n : 0;
    for (const char *c = s->file; *c != '\0' && at + 1 < size; c++) {
        bool word = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                    (*c >= '0' && *c <= '9') || *c == '_';
        if (word)
            out[at++] = *c;
        else if (at > 0 && out[at - 1] != '_')
            out[at++] = '_';
    }
    out[at] = '\0';
    if (s->line > 0)
        (void)snprintf(out + at, size - at, "_%d", s->line);
}

static unsigned slot_of(uintptr_t key)
{
    return (unsigned)(((unsigned long long)key * 0x9e3779b97f4a7c15ull) >> 40) & (SLOTS - 1u);
}

/* Guard set: the stress point of call at the program's pc, made and registered when new. */
static keel__stress_site *site_for(run_call call, const void *pc)
{
    uintptr_t key = (uintptr_t)pc ^ (uintptr_t)call;
    unsigned i = slot_of(key);
    for (unsigned p = 0; p < PROBES; p++, i = (i + 1u) & (SLOTS - 1u)) {
        uintptr_t k = __atomic_load_n(&slots[i].key, __ATOMIC_ACQUIRE);
        if (k == key)
            return __atomic_load_n(&slots[i].site, __ATOMIC_ACQUIRE);
        if (k == 0)
            break;
    }
    const keel__lock_site *where = keel__run_site(pc);
    char name[200];
    point_name(name, sizeof(name), call, where);
    run_spin_acquire(&faults_lock);
    keel__stress_site *site = (keel__stress_site *)arena_take(sizeof(*site));
    char *copy = (char *)arena_take(strlen(name) + 1);
    bool placed = false;
    if (site != NULL && copy != NULL) {
        memcpy(copy, name, strlen(name) + 1);
        memset(site, 0, sizeof(*site));
        site->magic = KEEL__STRESS_MAGIC;
        site->name = copy;
        site->file = where->file;
        site->func = where->func;
        site->line = where->line;
        i = slot_of(key);
        for (unsigned p = 0; p < PROBES && !placed; p++, i = (i + 1u) & (SLOTS - 1u)) {
            uintptr_t k = slots[i].key;
            if (k == key) { /* another thread's, made meanwhile */
                run_spin_release(&faults_lock);
                return slots[i].site;
            }
            if (k == 0) {
                __atomic_store_n(&slots[i].site, site, __ATOMIC_RELEASE);
                __atomic_store_n(&slots[i].key, key, __ATOMIC_RELEASE);
                placed = true;
            }
        }
    }
    run_spin_release(&faults_lock);
    if (!placed)
        return NULL; /* the table is full or no memory: this site never fails */
    keel__stress_register(site, site + 1);
    return site;
}

void keel__run_faults_fork(int phase)
{
    if (phase == 0)
        run_spin_acquire(&faults_lock);
    else
        run_spin_release(&faults_lock);
}

int keel__run_fault(run_call call, const void *ra)
{
    if (keel__run_inside != 0 || !__atomic_load_n(&faults_ready, __ATOMIC_ACQUIRE))
        return 0; /* keel's own call, or one before keel-run is ready */
    keel__run_inside++;
    int result = 0;
    const void *pc = keel__run_origin(ra);
    if (pc != NULL && pc != (const void *)1) {
        keel__stress_site *site = site_for(call, pc);
        if (site != NULL && keel__stress_eval(site))
            result = errs[call];
    }
    keel__run_inside--;
    return result;
}

/*
 * The program keel-run started (KEEL_RUN_PID: the launcher's pid, which its exec kept) does not
 * run with a malformed KEEL_OPTIONS, of which nothing would apply: it is keel-run's usage error,
 * exit status 2, before the program's main.  Another process (a child that execs) reports it
 * at the first use of keel, as libkeel does.  From the preload's start (run_locks.c), before
 * anything of it reads the options.
 */
void keel__run_refuse_malformed_options(void)
{
    const char *launcher = getenv("KEEL_RUN_PID");
    char *end = NULL;
    long pid = launcher != NULL ? strtol(launcher, &end, 10) : 0;
    if (launcher == NULL || end == launcher || *end != '\0' || pid != (long)getpid())
        return;
    keel_status s = keel_init();
    if (keel_ok(s))
        return;
    (void)fprintf(stderr, "keel-run: '%s' not run, its keel options are malformed: %s\n",
                  program_invocation_short_name, keel_status_message(s));
    keel_status_free(s);
    _exit(2);
}

/* KEEL_RUN_ERRNO: `--errno`, checked by the launcher (here, a bad list is ignored whole). */
__attribute__((constructor(102))) static void faults_start(void)
{
    int want[RUN_F_COUNT];
    for (int c = 0; c < RUN_F_COUNT; c++)
        want[c] = errs[c] = run_calls()[c].err;
    const char *spec = getenv("KEEL_RUN_ERRNO");
    char why[512];
    if (spec != NULL && run_errno_parse(spec, want, why, sizeof(why)))
        memcpy(errs, want, sizeof(errs));
    __atomic_store_n(&faults_ready, 1, __ATOMIC_RELEASE);
    keel__run_inside++;
    keel__lazy_init(); /* KEEL_OPTIONS read: the stress entries and counting known */
    char entries[2];
    bool on = keel_stress_spec(entries, sizeof(entries)) > 0 ||
              __atomic_load_n(&keel__stress_active, __ATOMIC_ACQUIRE) != 0;
    keel__run_inside--;
    if (on)
        __atomic_store_n(&keel__run_faults_on, 1, __ATOMIC_RELEASE);
}

/* ---- the calls ------------------------------------------------------------------------------ */

#define RA() __builtin_return_address(0)

/* A failing call: -1 with errno e. */
static int fail_with(int e)
{
    errno = run_fail(e);
    return -1;
}

size_t keel__run_short(size_t n)
{
    return n > 1 ? n / 2 : n;
}

/* open's mode argument: present with O_CREAT or O_TMPFILE. */
#define OPEN_MODE(flags, last, mode)                                      \
    do {                                                                  \
        if (((flags)&O_CREAT) != 0 || ((flags)&O_TMPFILE) == O_TMPFILE) { \
            va_list ap;                                                   \
            va_start(ap, last);                                           \
            (mode) = va_arg(ap, mode_t);                                  \
            va_end(ap);                                                   \
        }                                                                 \
    } while (0)

KEEL_RUN_EXPORT int open(const char *path, int flags, ...)
{
    mode_t mode = 0;
    OPEN_MODE(flags, flags, mode);
    int f = RUN_FAULT(RUN_F_OPEN, RA());
    return KEEL_UNLIKELY(f != 0) ? fail_with(f) : RUN_REAL(open)(path, flags, mode);
}

KEEL_RUN_EXPORT int open64(const char *path, int flags, ...)
{
    mode_t mode = 0;
    OPEN_MODE(flags, flags, mode);
    int f = RUN_FAULT(RUN_F_OPEN, RA());
    return KEEL_UNLIKELY(f != 0) ? fail_with(f) : RUN_REAL(open64)(path, flags, mode);
}

KEEL_RUN_EXPORT int openat(int dir, const char *path, int flags, ...)
{
    mode_t mode = 0;
    OPEN_MODE(flags, flags, mode);
    int f = RUN_FAULT(RUN_F_OPEN, RA());
    return KEEL_UNLIKELY(f != 0) ? fail_with(f) : RUN_REAL(openat)(dir, path, flags, mode);
}

KEEL_RUN_EXPORT int openat64(int dir, const char *path, int flags, ...)
{
    mode_t mode = 0;
    OPEN_MODE(flags, flags, mode);
    int f = RUN_FAULT(RUN_F_OPEN, RA());
    return KEEL_UNLIKELY(f != 0) ? fail_with(f) : RUN_REAL(openat64)(dir, path, flags, mode);
}

KEEL_RUN_EXPORT int fsync(int fd)
{
    int f = RUN_FAULT(RUN_F_FSYNC, RA());
    return KEEL_UNLIKELY(f != 0) ? fail_with(f) : RUN_REAL(fsync)(fd);
}

KEEL_RUN_EXPORT int fdatasync(int fd)
{
    int f = RUN_FAULT(RUN_F_FSYNC, RA());
    return KEEL_UNLIKELY(f != 0) ? fail_with(f) : RUN_REAL(fdatasync)(fd);
}

/* A failed close still closes the descriptor, as Linux's does (EIO, EINTR: it is gone). */
KEEL_RUN_EXPORT int close(int fd)
{
    int f = RUN_FAULT(RUN_F_CLOSE, RA());
    int rc = RUN_REAL(close)(fd);
    return KEEL_UNLIKELY(f != 0) && rc == 0 ? fail_with(f) : rc;
}

KEEL_RUN_EXPORT int rename(const char *from, const char *to)
{
    int f = RUN_FAULT(RUN_F_RENAME, RA());
    return KEEL_UNLIKELY(f != 0) ? fail_with(f) : RUN_REAL(rename)(from, to);
}

KEEL_RUN_EXPORT int mkdir(const char *path, mode_t mode)
{
    int f = RUN_FAULT(RUN_F_MKDIR, RA());
    return KEEL_UNLIKELY(f != 0) ? fail_with(f) : RUN_REAL(mkdir)(path, mode);
}

KEEL_RUN_EXPORT int socket(int domain, int type, int protocol)
{
    int f = RUN_FAULT(RUN_F_SOCKET, RA());
    return KEEL_UNLIKELY(f != 0) ? fail_with(f) : RUN_REAL(socket)(domain, type, protocol);
}

KEEL_RUN_EXPORT int connect(int fd, __CONST_SOCKADDR_ARG addr, socklen_t len)
{
    int f = RUN_FAULT(RUN_F_CONNECT, RA());
    if (KEEL_UNLIKELY(f != 0))
        return fail_with(f);
    RUN_FD_CALL(int, "connect", fd, false, RA(), RUN_REAL(connect)(fd, addr, len));
}

KEEL_RUN_EXPORT int accept(int fd, __SOCKADDR_ARG addr, socklen_t *len)
{
    int f = RUN_FAULT(RUN_F_ACCEPT, RA());
    if (KEEL_UNLIKELY(f != 0))
        return fail_with(f);
    RUN_FD_CALL(int, "accept", fd, false, RA(), RUN_REAL(accept)(fd, addr, len));
}

KEEL_RUN_EXPORT int accept4(int fd, __SOCKADDR_ARG addr, socklen_t *len, int flags)
{
    int f = RUN_FAULT(RUN_F_ACCEPT, RA());
    if (KEEL_UNLIKELY(f != 0))
        return fail_with(f);
    RUN_FD_CALL(int, "accept4", fd, false, RA(), RUN_REAL(accept4)(fd, addr, len, flags));
}

KEEL_RUN_EXPORT ssize_t send(int fd, const void *buf, size_t n, int flags)
{
    int f = RUN_FAULT(RUN_F_SEND, RA());
    if (KEEL_UNLIKELY(f != 0) && (f != RUN_SHORT || n < 2))
        return fail_with(f);
    RUN_FD_CALL(ssize_t, "send", fd, (flags & MSG_DONTWAIT) != 0, RA(),
                RUN_REAL(send)(fd, buf, f != 0 ? keel__run_short(n) : n, flags));
}

KEEL_RUN_EXPORT ssize_t sendto(int fd, const void *buf, size_t n, int flags,
                               __CONST_SOCKADDR_ARG addr, socklen_t len)
{
    int f = RUN_FAULT(RUN_F_SEND, RA());
    if (KEEL_UNLIKELY(f != 0) && (f != RUN_SHORT || n < 2))
        return fail_with(f);
    RUN_FD_CALL(ssize_t, "sendto", fd, (flags & MSG_DONTWAIT) != 0, RA(),
                RUN_REAL(sendto)(fd, buf, f != 0 ? keel__run_short(n) : n, flags, addr, len));
}

KEEL_RUN_EXPORT ssize_t recv(int fd, void *buf, size_t n, int flags)
{
    int f = RUN_FAULT(RUN_F_RECV, RA());
    if (KEEL_UNLIKELY(f != 0) && (f != RUN_SHORT || n < 2))
        return fail_with(f);
    RUN_FD_CALL(ssize_t, "recv", fd, (flags & MSG_DONTWAIT) != 0, RA(),
                RUN_REAL(recv)(fd, buf, f != 0 ? keel__run_short(n) : n, flags));
}

KEEL_RUN_EXPORT ssize_t recvfrom(int fd, void *buf, size_t n, int flags, __SOCKADDR_ARG addr,
                                 socklen_t *len)
{
    int f = RUN_FAULT(RUN_F_RECV, RA());
    if (KEEL_UNLIKELY(f != 0) && (f != RUN_SHORT || n < 2))
        return fail_with(f);
    RUN_FD_CALL(ssize_t, "recvfrom", fd, (flags & MSG_DONTWAIT) != 0, RA(),
                RUN_REAL(recvfrom)(fd, buf, f != 0 ? keel__run_short(n) : n, flags, addr, len));
}

/* ---- positioned and vector transfers -------------------------------------------------------- */

KEEL_RUN_EXPORT ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
    int f = RUN_FAULT(RUN_F_PREAD, RA());
    if (KEEL_UNLIKELY(f != 0) && (f != RUN_SHORT || n < 2))
        return fail_with(f);
    RUN_FD_CALL(ssize_t, "pread", fd, false, RA(),
                RUN_REAL(pread)(fd, buf, f != 0 ? keel__run_short(n) : n, off));
}

KEEL_RUN_EXPORT ssize_t pread64(int fd, void *buf, size_t n, off64_t off)
{
    int f = RUN_FAULT(RUN_F_PREAD, RA());
    if (KEEL_UNLIKELY(f != 0) && (f != RUN_SHORT || n < 2))
        return fail_with(f);
    RUN_FD_CALL(ssize_t, "pread64", fd, false, RA(),
                RUN_REAL(pread64)(fd, buf, f != 0 ? keel__run_short(n) : n, off));
}

KEEL_RUN_EXPORT ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    int f = RUN_FAULT(RUN_F_PWRITE, RA());
    if (KEEL_UNLIKELY(f != 0) && (f != RUN_SHORT || n < 2))
        return fail_with(f);
    RUN_FD_CALL(ssize_t, "pwrite", fd, false, RA(),
                RUN_REAL(pwrite)(fd, buf, f != 0 ? keel__run_short(n) : n, off));
}

KEEL_RUN_EXPORT ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t off)
{
    int f = RUN_FAULT(RUN_F_PWRITE, RA());
    if (KEEL_UNLIKELY(f != 0) && (f != RUN_SHORT || n < 2))
        return fail_with(f);
    RUN_FD_CALL(ssize_t, "pwrite64", fd, false, RA(),
                RUN_REAL(pwrite64)(fd, buf, f != 0 ? keel__run_short(n) : n, off));
}

enum { SHORT_IOV = 64 }; /* a short vector transfer keeps at most this many entries */

/*
 * A short vector transfer: the first half of iov's bytes (at least one) as entries in `out`.
 * Their count; 0 when it cannot be short (fewer than 2 bytes, or more than SHORT_IOV entries).
 */
static int short_iov(const struct iovec *iov, size_t cnt, struct iovec *out)
{
    size_t total = 0;
    for (size_t i = 0; i < cnt; i++)
        total += iov[i].iov_len;
    if (total < 2)
        return 0;
    size_t left = keel__run_short(total);
    int n = 0;
    for (size_t i = 0; i < cnt && left > 0; i++) {
        if (n == SHORT_IOV)
            return 0;
        out[n] = iov[i];
        if (out[n].iov_len > left)
            out[n].iov_len = left;
        left -= out[n].iov_len;
        n++;
    }
    return n;
}

/* readv and writev: real is the real call (a reader's vector is the program's, written). */
static ssize_t vector_call(run_call call, ssize_t (*real)(int, const struct iovec *, int), int fd,
                           const struct iovec *iov, int cnt, const void *ra)
{
    int f = RUN_FAULT(call, ra);
    struct iovec cut[SHORT_IOV];
    int n = f == RUN_SHORT && cnt > 0 ? short_iov(iov, (size_t)cnt, cut) : 0;
    if (KEEL_UNLIKELY(f != 0) && n == 0)
        return fail_with(f);
    RUN_FD_CALL(ssize_t, run_calls()[call].name, fd, false, ra,
                f == 0 ? real(fd, iov, cnt) : real(fd, cut, n));
}

KEEL_RUN_EXPORT ssize_t readv(int fd, const struct iovec *iov, int cnt)
{
    return vector_call(RUN_F_READV, RUN_REAL(readv), fd, iov, cnt, RA());
}

KEEL_RUN_EXPORT ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
    return vector_call(RUN_F_WRITEV, RUN_REAL(writev), fd, iov, cnt, RA());
}

/* sendmsg and recvmsg: a short transfer moves half the bytes of msg's vector, its ancillary data
 * whole. */
KEEL_RUN_EXPORT ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
    int f = RUN_FAULT(RUN_F_SENDMSG, RA());
    if (KEEL_LIKELY(f == 0))
        RUN_FD_CALL(ssize_t, "sendmsg", fd, (flags & MSG_DONTWAIT) != 0, RA(),
                    RUN_REAL(sendmsg)(fd, msg, flags));
    struct iovec cut[SHORT_IOV];
    int n = f == RUN_SHORT && msg != NULL ? short_iov(msg->msg_iov, msg->msg_iovlen, cut) : 0;
    if (n == 0)
        return fail_with(f);
    struct msghdr shorter = *msg;
    shorter.msg_iov = cut;
    shorter.msg_iovlen = (size_t)n;
    RUN_FD_CALL(ssize_t, "sendmsg", fd, (flags & MSG_DONTWAIT) != 0, RA(),
                RUN_REAL(sendmsg)(fd, &shorter, flags));
}

KEEL_RUN_EXPORT ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
    int f = RUN_FAULT(RUN_F_RECVMSG, RA());
    if (KEEL_LIKELY(f == 0))
        RUN_FD_CALL(ssize_t, "recvmsg", fd, (flags & MSG_DONTWAIT) != 0, RA(),
                    RUN_REAL(recvmsg)(fd, msg, flags));
    struct iovec cut[SHORT_IOV];
    int n = f == RUN_SHORT && msg != NULL ? short_iov(msg->msg_iov, msg->msg_iovlen, cut) : 0;
    if (n == 0)
        return fail_with(f);
    struct iovec *whole = msg->msg_iov;
    size_t count = msg->msg_iovlen;
    msg->msg_iov = cut;
    msg->msg_iovlen = (size_t)n;
    run_fd_enter("recvmsg", fd, (flags & MSG_DONTWAIT) != 0, RA());
    ssize_t rc = RUN_REAL(recvmsg)(fd, msg, flags);
    run_in_leave();
    msg->msg_iov = whole; /* (the program's vector back; the kernel wrote the others' fields) */
    msg->msg_iovlen = count;
    return rc;
}

/* ---- the _FORTIFY_SOURCE variants: the same points, then glibc's checking call ---------------- */

/* (glibc declares them only to programs built with _FORTIFY_SOURCE) */
int __open_2(const char *path, int flags);
int __open64_2(const char *path, int flags);
int __openat_2(int dir, const char *path, int flags);
int __openat64_2(int dir, const char *path, int flags);
ssize_t __read_chk(int fd, void *buf, size_t n, size_t size);
ssize_t __recv_chk(int fd, void *buf, size_t n, size_t size, int flags);
ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t size, int flags, __SOCKADDR_ARG addr,
                       socklen_t *len);
ssize_t __pread_chk(int fd, void *buf, size_t n, off_t off, size_t size);
ssize_t __pread64_chk(int fd, void *buf, size_t n, off64_t off, size_t size);

KEEL_RUN_EXPORT int __open_2(const char *path, int flags)
{
    int f = RUN_FAULT(RUN_F_OPEN, RA());
    return KEEL_UNLIKELY(f != 0) ? fail_with(f) : RUN_REAL(open_2)(path, flags);
}

KEEL_RUN_EXPORT int __open64_2(const char *path, int flags)
{
    int f = RUN_FAULT(RUN_F_OPEN, RA());
    return KEEL_UNLIKELY(f != 0) ? fail_with(f) : RUN_REAL(open64_2)(path, flags);
}

KEEL_RUN_EXPORT int __openat_2(int dir, const char *path, int flags)
{
    int f = RUN_FAULT(RUN_F_OPEN, RA());
    return KEEL_UNLIKELY(f != 0) ? fail_with(f) : RUN_REAL(openat_2)(dir, path, flags);
}

KEEL_RUN_EXPORT int __openat64_2(int dir, const char *path, int flags)
{
    int f = RUN_FAULT(RUN_F_OPEN, RA());
    return KEEL_UNLIKELY(f != 0) ? fail_with(f) : RUN_REAL(openat64_2)(dir, path, flags);
}

/* A short transfer of a checked call: n halved, the buffer's size left to glibc's check. */
KEEL_RUN_EXPORT ssize_t __read_chk(int fd, void *buf, size_t n, size_t size)
{
    int f = RUN_FAULT(RUN_F_READ, RA());
    if (KEEL_UNLIKELY(f != 0) && (f != RUN_SHORT || n < 2))
        return fail_with(f);
    RUN_FD_CALL(ssize_t, "read", fd, false, RA(),
                RUN_REAL(read_chk)(fd, buf, f != 0 ? keel__run_short(n) : n, size));
}

KEEL_RUN_EXPORT ssize_t __recv_chk(int fd, void *buf, size_t n, size_t size, int flags)
{
    int f = RUN_FAULT(RUN_F_RECV, RA());
    if (KEEL_UNLIKELY(f != 0) && (f != RUN_SHORT || n < 2))
        return fail_with(f);
    RUN_FD_CALL(ssize_t, "recv", fd, (flags & MSG_DONTWAIT) != 0, RA(),
                RUN_REAL(recv_chk)(fd, buf, f != 0 ? keel__run_short(n) : n, size, flags));
}

KEEL_RUN_EXPORT ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t size, int flags,
                                       __SOCKADDR_ARG addr, socklen_t *len)
{
    int f = RUN_FAULT(RUN_F_RECV, RA());
    if (KEEL_UNLIKELY(f != 0) && (f != RUN_SHORT || n < 2))
        return fail_with(f);
    RUN_FD_CALL(
        ssize_t, "recvfrom", fd, (flags & MSG_DONTWAIT) != 0, RA(),
        RUN_REAL(recvfrom_chk)(fd, buf, f != 0 ? keel__run_short(n) : n, size, flags, addr, len));
}

KEEL_RUN_EXPORT ssize_t __pread_chk(int fd, void *buf, size_t n, off_t off, size_t size)
{
    int f = RUN_FAULT(RUN_F_PREAD, RA());
    if (KEEL_UNLIKELY(f != 0) && (f != RUN_SHORT || n < 2))
        return fail_with(f);
    RUN_FD_CALL(ssize_t, "pread", fd, false, RA(),
                RUN_REAL(pread_chk)(fd, buf, f != 0 ? keel__run_short(n) : n, off, size));
}

KEEL_RUN_EXPORT ssize_t __pread64_chk(int fd, void *buf, size_t n, off64_t off, size_t size)
{
    int f = RUN_FAULT(RUN_F_PREAD, RA());
    if (KEEL_UNLIKELY(f != 0) && (f != RUN_SHORT || n < 2))
        return fail_with(f);
    RUN_FD_CALL(ssize_t, "pread64", fd, false, RA(),
                RUN_REAL(pread64_chk)(fd, buf, f != 0 ? keel__run_short(n) : n, off, size));
}
