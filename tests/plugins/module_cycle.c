/*
 * module_cycle.c - two modules that depend on each other (test_module loads
 * it to check that a cycle is an error naming both, and nothing starts).
 */
#include "keel/keel.h"

static const char *const a_deps[] = {"cyc_b", NULL};
static const char *const b_deps[] = {"cyc_a", NULL};
KEEL_MODULE(cyc_a, "1.0", NULL, NULL, a_deps, NULL);
KEEL_MODULE(cyc_b, "1.0", NULL, NULL, b_deps, NULL);
