/* keel-run: a heap overflow - one byte written past a 24-byte block, found at its free
 * (the red zone after it) with the program's allocation and free sites (tests/test_run.c). */
#include <stdlib.h>
#include <string.h>

__attribute__((noinline)) static void fill(char *buf, size_t n)
{
    memset(buf, 'x', n + 1); /* one too many */
}

int main(void)
{
    char *buf = malloc(24);
    fill(buf, 24);
    free(buf);
    return 0;
}
