/* keel-run: leaks - blocks nothing points to at exit, by allocation site, and blocks still
 * reachable (a global, a list from it, a thread's TLS) that are not leaks (tests/test_run.c). */
#include <stdlib.h>
#include <string.h>

struct item {
    struct item *next;
    char payload[40];
};

static struct item *kept; /* reachable at exit: not leaked */
static __thread void *tls_kept;

char *volatile last; /* overwritten: only the last block stays reachable */

__attribute__((noinline)) static void lose(int n)
{
    for (int i = 0; i < n; i++)
        last = malloc(100);
    last = NULL;
}

int main(void)
{
    for (int i = 0; i < 3; i++) {
        struct item *it = calloc(1, sizeof(*it));
        it->next = kept;
        kept = it;
    }
    tls_kept = malloc(16);
    lose(5);
    last = strdup("lost");
    last = strdup("lost again");
    last = NULL;
    return 0;
}
