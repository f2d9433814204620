/* keel-run: a use after free - a write into a freed block, found in the quarantine at exit
 * (its poison changed) with the block's allocation and free sites (tests/test_run.c). */
#include <stdlib.h>

struct node {
    int value;
    struct node *next;
};

__attribute__((noinline)) static void update(struct node *n)
{
    n->value = 42;
}

struct node *volatile list; /* (keeps the compiler from removing the block) */

int main(void)
{
    struct node *n = calloc(1, sizeof(*n));
    list = n;
    free(n);
    update(list);
    return 0;
}
