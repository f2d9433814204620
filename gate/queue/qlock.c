/*
 * qlock.c - one gatekeeper per queue (qlock.h).
 */
#define _GNU_SOURCE      1
#define KEEL_MODULE_NAME "gate"
#include "qlock.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "heaps.h"

#define QLOCK_HEAP KEEL_MODULE_REF(gate)

struct gate_qlock {
    int fd;
};

/* The holder's line "pid host since" (false when it is not one). */
static bool read_holder(int fd, long long *pid, char *host, size_t size, long long *since)
{
    char line[512];
    ssize_t n = pread(fd, line, sizeof(line) - 1, 0);
    line[n > 0 ? n : 0] = '\0';
    char *end = NULL;
    *pid = strtoll(line, &end, 10);
    if (end == line || *end != ' ' || *pid <= 0)
        return false;
    const char *h = end + 1, *sp = strchr(h, ' ');
    if (sp == NULL || sp == h || (size_t)(sp - h) >= size)
        return false;
    (void)snprintf(host, size, "%.*s", (int)(sp - h), h);
    *since = strtoll(sp + 1, &end, 10);
    return end != sp + 1;
}

/*
 * Does the holder it names still run here?  A gate killed while it was
 * starting a job leaves the lock with that job's process for the instant
 * before it executes (its descriptors are a copy of the gate's until then).
 */
static bool holder_gone(int fd)
{
    long long pid = 0, since = 0;
    char host[256], here[256] = "";
    if (!read_holder(fd, &pid, host, sizeof(host), &since))
        return false;
    if (gethostname(here, sizeof(here) - 1) != 0 || strncmp(here, host, strlen(host)) != 0)
        return false; /* another host's (a shared file system): it cannot be asked */
    return kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

/* The holder's line ("pid host since") read back into a status's message and details. */
static keel_status held_by(int fd, const char *path)
{
    long long pid = 0, since = 0;
    char host[256] = "";
    if (!read_holder(fd, &pid, host, sizeof(host), &since))
        return keel_status_with_str(
            KEEL_ERR(KEEL_E_BUSY,
                     "another keel-gate is running this queue (lock '%s'; it is starting and has "
                     "not said who it is yet)",
                     path),
            "lock", path);
    char when[64] = "?";
    time_t t = (time_t)since;
    struct tm tm;
    if (gmtime_r(&t, &tm) != NULL)
        (void)strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
    keel_status s = KEEL_ERR(KEEL_E_BUSY,
                             "another keel-gate is running this queue: pid %lld on host '%s', "
                             "since %s (lock '%s'); stop it first, or guard another target",
                             pid, host, when, path);
    s = keel_status_with_int(s, "pid", pid);
    s = keel_status_with_str(s, "host", host);
    s = keel_status_with_int(s, "since", since);
    return keel_status_with_str(s, "lock", path);
}

keel_status gate_qlock_take(const char *path, gate_qlock **out)
{
    KEEL_ASSERT(path != NULL && out != NULL);
    *out = NULL;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return KEEL_ERR_SYS(errno, "cannot open the queue's lock '%s'", path);
    struct flock fl;
    memset(&fl, 0, sizeof(fl));
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET; /* the whole file */
    int tries = 0;
    while (fcntl(fd, F_OFD_SETLK, &fl) != 0 && (errno == EAGAIN || errno == EACCES) &&
           tries++ < 100 && holder_gone(fd)) {
        struct timespec step = {0, 50000000L}; /* up to 5 s for a dead holder's lock to go */
        (void)nanosleep(&step, NULL);
    }
    if (fcntl(fd, F_OFD_SETLK, &fl) != 0) {
        int e = errno;
        keel_status s = e == EAGAIN || e == EACCES
                            ? held_by(fd, path)
                            : KEEL_ERR_SYS(e, "cannot lock the queue's lock '%s'", path);
        (void)close(fd);
        return s;
    }
    char host[256] = "?";
    if (gethostname(host, sizeof(host) - 1) != 0)
        (void)snprintf(host, sizeof(host), "?");
    host[sizeof(host) - 1] = '\0';
    for (char *p = host; *p != '\0'; p++)
        if (*p <= ' ' || *p == 0x7f)
            *p = '_'; /* one word, whatever the host is called */
    char line[384];
    int n = snprintf(line, sizeof(line), "%lld %s %lld\n", (long long)getpid(), host,
                     (long long)time(NULL));
    if (n <= 0 || (size_t)n >= sizeof(line) || ftruncate(fd, 0) != 0 ||
        pwrite(fd, line, (size_t)n, 0) != (ssize_t)n) {
        /* the lock is held all the same: only the next one's message is poorer */
        (void)ftruncate(fd, 0);
    }
    void *mem = NULL;
    keel_status s = keel_heap_alloc(QLOCK_HEAP, sizeof(gate_qlock), &mem);
    if (!keel_ok(s)) {
        (void)close(fd);
        return KEEL_CONTEXT(s, "locking the queue");
    }
    gate_qlock *lk = (gate_qlock *)mem;
    lk->fd = fd;
    *out = lk;
    return KEEL_OK;
}

keel_status gate_qlock_probe(const char *path, gate_qlock_holder *out)
{
    KEEL_ASSERT(path != NULL && out != NULL);
    memset(out, 0, sizeof(*out));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? KEEL_OK
                               : KEEL_ERR_SYS(errno, "cannot open the queue's lock '%s'", path);
    struct flock fl;
    memset(&fl, 0, sizeof(fl));
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    keel_status s = KEEL_OK;
    if (fcntl(fd, F_OFD_GETLK, &fl) != 0)
        s = KEEL_ERR_SYS(errno, "cannot look at the queue's lock '%s'", path);
    else if (fl.l_type != F_UNLCK) {
        out->held = true;
        if (!read_holder(fd, &out->pid, out->host, sizeof(out->host), &out->since)) {
            out->pid = out->since = 0;
            out->host[0] = '\0';
        }
    }
    (void)close(fd);
    return s;
}

void gate_qlock_release(gate_qlock *lk)
{
    if (lk == NULL)
        return;
    (void)close(lk->fd); /* drops the lock; the file stays, meaning nothing */
    keel_heap_free(QLOCK_HEAP, lk);
}
