/*
 * module_plugin.c - a module in a plugin: registered by dlopen(), started by
 * the next keel_modules_start(), stopped when the plugin is unloaded.
 */
#define KEEL_MODULE_NAME "plugin_mod"
#include "keel/keel.h"

/* test_module defines it (its symbols are exported): the plugin's exit says it ran */
extern void test_module_plugin_exited(void) __attribute__((weak));

static keel_status plugin_init(void)
{
    return KEEL_OK;
}

static void plugin_exit(void)
{
    if (test_module_plugin_exited != NULL)
        test_module_plugin_exited();
}

static const char *const deps[] = {"log", NULL};
KEEL_MODULE(plugin_mod, "0.1", plugin_init, plugin_exit, deps, NULL);
