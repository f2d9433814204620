/* keel-run: the positioned and vector calls, each checked by the program (tests/test_run.c).
 * Built with -D_FORTIFY_SOURCE=2 -O2 (tests/CMakeLists.txt): its pread into a buffer of known
 * size is glibc's __pread_chk.  Every call is made even when one fails; the failed ones are
 * named on stderr ("calls: pread readv failed") and the exit status is then 1. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

static char failures[128];

static void check(int ok, const char *call)
{
    if (!ok)
        snprintf(failures + strlen(failures), sizeof(failures) - strlen(failures), "%s ", call);
}

int main(int argc, char **argv)
{
    (void)argv;
    char path[] = "/tmp/keel_run_calls.XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return 2;
    unlink(path);
    char buf[16] = "abcdefgh";
    size_t n = (size_t)argc + 7; /* 8, not a constant: the fortified call checks it */
    check(pwrite(fd, buf, 8, 0) == 8, "pwrite");
    lseek(fd, 8, SEEK_SET);
    check(pread(fd, buf, n, 0) >= 0, "pread"); /* __pread_chk */
    struct iovec v[2] = {{buf, 4}, {buf + 4, 4}};
    check(writev(fd, v, 2) == 8, "writev");
    lseek(fd, 0, SEEK_SET);
    check(readv(fd, v, 2) == 8, "readv");
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        return 2;
    struct msghdr m;
    memset(&m, 0, sizeof(m));
    m.msg_iov = v;
    m.msg_iovlen = 2;
    struct iovec whole = {buf, 8};
    check(send(sv[0], "12345678", 8, 0) == 8, "send");
    check(sendmsg(sv[0], &m, 0) == 8, "sendmsg");
    m.msg_iov = &whole;
    m.msg_iovlen = 1;
    check(recvmsg(sv[1], &m, 0) == 8, "recvmsg");
    if (failures[0] == '\0')
        return 0;
    fprintf(stderr, "calls: %sfailed\n", failures);
    return 1;
}
