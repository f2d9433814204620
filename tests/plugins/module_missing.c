/*
 * module_missing.c - a module depending on a module nobody registered
 * ("storag" for "storage": the error suggests the nearest name).
 */
#include "keel/keel.h"

static const char *const deps[] = {"log", "storag", NULL};
KEEL_MODULE(needs_missing, "1.0", NULL, NULL, deps, NULL);
