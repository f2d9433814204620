/*
 * lost_write.c - a planted libc error-path bug for `keel-stress sweep -- keel-run --`: a journal
 * whose append handles a failed write by printing the journal's last error, which only a failed
 * open sets (NULL here): a crash.  Every other call's failure is handled (exit 1, everything
 * freed and closed).  With an argument, append handles its failure too: "fixed", the sweep is
 * clean; "leaky", a failed fsync returns without freeing (a leak).  Compiled without keel.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct journal {
    int fd;
    const char *why; /* the reason of a failed open (never here: NULL) */
} journal;

__attribute__((noinline)) static int append(journal *j, const char *rec, int fixed)
{
    size_t len = strlen(rec);
    if (write(j->fd, rec, len) != (ssize_t)len) { /* the swept site */
        if (fixed)
            (void)fprintf(stderr, "lost_write: append failed\n");
        else /* the planted bug: why is NULL */
            (void)fprintf(stderr, "lost_write: append failed (%zu)\n", strlen(j->why));
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    int fixed = argc > 1; /* "fixed" or "leaky" */
    char path[] = "/tmp/keel_lost_write.XXXXXX";
    journal j = {mkstemp(path), NULL};
    if (j.fd < 0)
        return 1;
    (void)unlink(path);
    char *rec = (char *)malloc(64);
    if (rec == NULL) {
        (void)close(j.fd);
        return 1;
    }
    static const char header[] = "journal v1\n";
    int rc = write(j.fd, header, sizeof(header) - 1) == (ssize_t)(sizeof(header) - 1) ? 0 : 1;
    for (int i = 0; rc == 0 && i < 3; i++) {
        (void)snprintf(rec, 64, "record %d\n", i);
        rc = append(&j, rec, fixed) == 0 ? 0 : 1;
    }
    if (rc == 0 && fsync(j.fd) != 0) {
        if (argc > 1 && strcmp(argv[1], "leaky") == 0)
            return 1; /* the planted leak: rec (and the descriptor) */
        rc = 1;
    }
    free(rec);
    if (close(j.fd) != 0)
        rc = 1;
    return rc;
}
