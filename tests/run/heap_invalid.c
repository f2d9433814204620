/* keel-run planted bugs: an invalid free (a pointer into a block, not its start), or with the
 * argument `guard` an overflow that runs onto a guard page (run with heap.guard-sample=1)
 * (tests/test_run.c). */
#include <stdlib.h>
#include <string.h>

static volatile char sink;
static char *volatile inside; /* (hidden from the compiler, which would refuse the free) */

int main(int argc, char **argv)
{
    char *block = malloc(100);
    if (block == NULL)
        return 1;
    memset(block, 'k', 100);
    if (argc > 1 && strcmp(argv[1], "guard") == 0) {
        for (int i = 0; i < 8192; i++)
            sink = block[i]; // cppcheck-suppress arrayIndexOutOfBounds ; on to the guard page
        return 0;
    }
    inside = block + 16;
    free(inside); /* not a block's start */
    free(block);
    return 0;
}
