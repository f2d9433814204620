/* keel-run: a double free, reported at the second free with the block's sites (tests/test_run.c). */
#include <stdlib.h>
#include <string.h>

static char *name;

__attribute__((noinline)) static void forget(void)
{
    free(name);
}

int main(void)
{
    name = strdup("keel");
    forget();
    forget();
    return 0;
}
