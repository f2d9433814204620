/* keel-run planted bug: the transfers beyond read and write made while holding a spinlock
 * (tests/test_run.c): on a blocking socket each is reported, with MSG_DONTWAIT, on a
 * non-blocking socket or (pread, pwrite) on a regular file or a socket none is; and every
 * sleeping and waiting call.  Exit status 0 when every call did what it does without keel-run. */
#define _GNU_SOURCE 1
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <fcntl.h>
#include <time.h>

/* the _FORTIFY_SOURCE calls, called as a program built with it calls them */
ssize_t __read_chk(int fd, void *buf, size_t n, size_t size);
ssize_t __recv_chk(int fd, void *buf, size_t n, size_t size, int flags);
ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t size, int flags, struct sockaddr *addr,
                       socklen_t *len);
ssize_t __pread_chk(int fd, void *buf, size_t n, off_t off, size_t size);

static pthread_spinlock_t spin;
static pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static pthread_rwlock_t rwlock = PTHREAD_RWLOCK_INITIALIZER;

static void *nothing(void *arg)
{
    return arg;
}

/* The other waits under a spinlock, each returning at once or within 1 ms (a signal pending, a
 * child that has exited, a posted semaphore); a zero timeout and WNOHANG: not reported. */
static int waits(int ep)
{
    int status = 0;
    struct timespec ms = {0, 1000000}, zero = {0, 0};
    struct pollfd none = {-1, 0, 0};
    struct epoll_event ev;
    sem_t sem;
    sigset_t set;
    int sig = 0;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    pid_t child = fork();
    if (child == 0)
        _exit(0);
    if (child < 0 || sem_init(&sem, 0, 2) != 0)
        return 1;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 1;
    pthread_spin_lock(&spin);
    status |= ppoll(&none, 1, &ms, NULL) != 0;
    status |= ppoll(&none, 1, &zero, NULL) != 0; /* not reported */
    status |= pselect(0, NULL, NULL, NULL, &ms, NULL) != 0;
    status |= epoll_pwait(ep, &ev, 1, 1, NULL) != 0;
    status |= sem_wait(&sem) != 0;
    status |= sem_timedwait(&sem, &until) != 0;
    siginfo_t info;
    status |= waitid(P_PID, (id_t)child, &info, WEXITED | WNOHANG | WNOWAIT) != 0; /* not */
    status |= waitpid(child, NULL, 0) != child;
    (void)raise(SIGUSR2); /* blocked: it returns; sigtimedwait takes it, not reported */
    status |= sigtimedwait(&set, NULL, &zero) != SIGUSR2; // cppcheck-suppress unreachableCode
    (void)raise(SIGUSR2);
    status |= sigwait(&set, &sig) != 0 || sig != SIGUSR2; // cppcheck-suppress unreachableCode
    pthread_spin_unlock(&spin);
    sem_destroy(&sem);
    return status;
}

/* The sleeping and waiting calls under a spinlock (each returns at once or within 1 ms). */
static int sleeps(void)
{
    int status = 0;
    struct timespec ms = {0, 1000000};
    pthread_t t;
    if (pthread_create(&t, NULL, nothing, NULL) != 0)
        return 1;
    int ep = epoll_create1(0);
    struct pollfd none = {-1, 0, 0};
    struct timeval tv = {0, 1000};
    pthread_mutex_lock(&mutex);
    pthread_spin_lock(&spin);
    status |= nanosleep(&ms, NULL) != 0;
    status |= clock_nanosleep(CLOCK_MONOTONIC, 0, &ms, NULL) != 0;
    status |= sleep(0) != 0;
    status |= poll(&none, 1, 1) != 0;
    status |= poll(&none, 1, 0) != 0; /* a zero timeout: does not block, not reported */
    status |= select(0, NULL, NULL, NULL, &tv) != 0;
    struct epoll_event ev;
    status |= epoll_wait(ep, &ev, 1, 1) != 0;
    status |= pthread_join(t, NULL) != 0;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    status |= pthread_cond_timedwait(&cond, &mutex, &until) == 0;
    status |= pthread_rwlock_rdlock(&rwlock) != 0;
    pthread_rwlock_unlock(&rwlock);
    pthread_spin_unlock(&spin);
    pthread_mutex_unlock(&mutex);
    status |= waits(ep);
    close(ep);
    return status;
}

int main(void)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        return 1;
    char c[8] = "abcdefg";
    struct iovec iov = {c, 1};
    struct msghdr msg;
    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    int status = 0;
    pthread_spin_init(&spin, PTHREAD_PROCESS_PRIVATE);
    pthread_spin_lock(&spin);
    status |= send(sv[0], c, 1, 0) != 1;
    status |= recv(sv[1], c, 1, 0) != 1;
    status |= sendto(sv[0], c, 1, 0, NULL, 0) != 1;
    status |= recvfrom(sv[1], c, 1, 0, NULL, NULL) != 1;
    status |= sendmsg(sv[0], &msg, 0) != 1;
    status |= recvmsg(sv[1], &msg, 0) != 1;
    status |= writev(sv[0], &iov, 1) != 1;
    status |= readv(sv[1], &iov, 1) != 1;
    status |= write(sv[0], c, 4) != 4;
    status |= __read_chk(sv[1], c, 1, sizeof(c)) != 1;
    status |= __recv_chk(sv[1], c, 1, sizeof(c), 0) != 1;
    status |= __recvfrom_chk(sv[1], c, 1, sizeof(c), 0, NULL, NULL) != 1;
    status |= pread(sv[1], c, 1, 0) != -1; /* a socket: ESPIPE at once, not reported */
    status |= __pread_chk(sv[1], c, 1, 0, sizeof(c)) != -1; /* the same */
    status |= send(sv[0], c, 1, MSG_DONTWAIT) != 1;         /* does not wait: not reported */
    status |= recv(sv[1], c, 1, MSG_DONTWAIT) != 1;         /* the same */
    pthread_spin_unlock(&spin);
    /* a listening socket with a connection waiting: connect and accept return at once */
    int server = socket(AF_UNIX, SOCK_STREAM, 0);
    int client = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof(addr));
    addr.sun_family = AF_UNIX;
    (void)snprintf(addr.sun_path + 1, sizeof(addr.sun_path) - 1, "keel-spin-calls-%d", getpid());
    socklen_t len =
        (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(addr.sun_path + 1));
    if (server < 0 || client < 0 || bind(server, (struct sockaddr *)&addr, len) != 0 ||
        listen(server, 1) != 0)
        return 1;
    pthread_spin_lock(&spin);
    status |= connect(client, (struct sockaddr *)&addr, len) != 0;
    int conn = accept(server, NULL, NULL);
    pthread_spin_unlock(&spin);
    status |= conn < 0;
    FILE *file = tmpfile();
    if (file == NULL)
        return 1;
    (void)fcntl(sv[0], F_SETFL, O_NONBLOCK);
    pthread_spin_lock(&spin);
    status |= pwrite(fileno(file), c, 1, 0) != 1; /* a regular file: never blocks */
    status |= pread(fileno(file), c, 1, 0) != 1;
    status |= send(sv[0], c, 1, 0) != 1; /* a non-blocking socket */
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    status |= null < 0;
    status |= write(null, c, 1) != 1; /* a memory device (/dev/null): never blocks */
    status |= read(null, c, 1) != 0;
    pthread_spin_unlock(&spin);
    (void)close(null);
    status |= sleeps() << 1;
    pthread_spin_destroy(&spin);
    return status;
}
