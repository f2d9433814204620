/*
 * stress_plugin.c - a shared library loaded with dlopen() by test_stress: its
 * stress points are registered when it is loaded and dropped when unloaded.
 * It is a module's source, so its points are named "plugin.<name>".
 */
#define KEEL_MODULE_NAME "plugin"
#include "keel/keel.h"

__attribute__((visibility("default"))) int stress_plugin_open(void);

/* 1 when the injected failure is taken, 0 otherwise. */
int stress_plugin_open(void)
{
    if (KEEL_STRESS(open_fail))
        return 1;
    return 0;
}
