/*
 * test_module.c - modules: dependency order, POST, failures that stop a
 * module and its dependants, POST selection, reverse-order stop, cycles and
 * missing dependencies (from plugins), the module a thread executes in.
 *
 * The program's modules:  log <- net <- storage <- api   (api needs storage, ...)
 */
#define _GNU_SOURCE 1
#include <dlfcn.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "testutil.h"

#include "keel/keel.h"

static char events[512]; /* "init:log exit:log ..." */
static int fail_roundtrip;
static int fail_net_init;
static int roundtrip_runs;
static int format_runs;
static const char *module_seen_in_init;

static void note(const char *what, const char *name)
{
    size_t len = strlen(events);
    (void)snprintf(events + len, sizeof(events) - len, "%s:%s ", what, name);
}

static keel_status log_init(void)
{
    note("init", "log");
    return KEEL_OK;
}
static void log_exit(void)
{
    note("exit", "log");
}
static keel_status net_init(void)
{
    note("init", "net");
    if (fail_net_init)
        return KEEL_ERR(KEEL_E_IO, "no network interface");
    return KEEL_OK;
}
static void net_exit(void)
{
    note("exit", "net");
}
static keel_status storage_init(void)
{
    note("init", "storage");
    const keel_module *m = keel_module_current();
    module_seen_in_init = m != NULL ? m->name : "(none)";
    return KEEL_OK;
}
static void storage_exit(void)
{
    note("exit", "storage");
}
static keel_status post_roundtrip(void)
{
    roundtrip_runs++;
    if (fail_roundtrip)
        return KEEL_ERR(KEEL_E_IO, "block 7 read back different data");
    return KEEL_OK;
}
static keel_status post_format(void)
{
    format_runs++;
    return KEEL_OK;
}
static keel_status api_init(void)
{
    note("init", "api");
    return KEEL_OK;
}
static void api_exit(void)
{
    note("exit", "api");
}

static const char *const net_deps[] = {"log", NULL};
static const char *const storage_deps[] = {"net", "log", NULL};
static const char *const api_deps[] = {"storage", NULL};
static const keel_post storage_posts[] = {
    {"roundtrip", post_roundtrip}, {"format", post_format}, {NULL, NULL}};

KEEL_MODULE(api, "2.0.0", api_init, api_exit, api_deps, NULL);
KEEL_MODULE(storage, "1.2.0", storage_init, storage_exit, storage_deps, storage_posts);
KEEL_MODULE(log, "1.0.0", log_init, log_exit, NULL, NULL);
KEEL_MODULE(net, "1.1.0", net_init, net_exit, net_deps, NULL);

static keel_module_info info_of(const char *name)
{
    keel_module *m = keel_module_find(name);
    assert_non_null(m);
    keel_module_info mi;
    keel_test_ok(keel_module_info_get(m, &mi));
    return mi;
}

/* reports of kind "module", collected */
static char reports[4096];
static int nreports;
static bool collect(const keel_report_info *info, void *ctx)
{
    (void)ctx;
    if (info->kind != KEEL_REPORT_MODULE)
        return false;
    nreports++;
    size_t len = strlen(reports);
    (void)snprintf(reports + len, sizeof(reports) - len, "%s|%s|", info->message, info->text);
    return true;
}

static void test_dependency_order_and_reverse_stop(void **state)
{
    (void)state;
    keel_test_ok(keel_modules_start());
    assert_string_equal(events, "init:log init:net init:storage init:api ");
    assert_int_equal(info_of("log").start_order, 1);
    assert_int_equal(info_of("api").start_order, 4);
    assert_int_equal(info_of("storage").state, KEEL_MODULE_RUNNING);
    assert_int_equal(info_of("storage").posts_run, 2);
    assert_string_equal(info_of("storage").version, "1.2.0");
    events[0] = '\0';
    keel_modules_stop();
    assert_string_equal(events, "exit:api exit:storage exit:net exit:log ");
    assert_int_equal(info_of("log").state, KEEL_MODULE_STOPPED);
    /* started again: a second start is fine */
    events[0] = '\0';
    keel_test_ok(keel_modules_start());
    assert_string_equal(events, "init:log init:net init:storage init:api ");
    keel_modules_stop();
}

static void test_failing_post_stops_module_and_dependants(void **state)
{
    (void)state;
    fail_roundtrip = 1;
    (void)keel_report_set_handler(collect, NULL);
    keel_status s = keel_modules_start();
    assert_false(keel_ok(s));
    char text[2048];
    (void)keel_status_format(s, text, sizeof(text));
    assert_int_equal(keel_status_code(s), KEEL_E_POST);
    keel_status_free(s);
    assert_non_null(strstr(text, "power-on self test 'roundtrip' failed"));
    assert_non_null(strstr(text, "module 'storage'"));
    assert_non_null(strstr(text, "block 7 read back different data"));
    assert_non_null(strstr(text, "2 modules did not start: 'storage' (failed), 'api' (blocked)"));
    assert_int_equal(info_of("storage").state, KEEL_MODULE_FAILED);
    assert_string_equal(info_of("storage").failed_test, "roundtrip");
    assert_int_equal(info_of("api").state, KEEL_MODULE_BLOCKED);
    assert_string_equal(info_of("api").blocked_by, "storage");
    assert_int_equal(info_of("log").state, KEEL_MODULE_RUNNING);
    assert_int_equal(info_of("net").state, KEEL_MODULE_RUNNING);
    /* storage initialised, so it was undone; api never initialised */
    assert_string_equal(events, "init:log init:net init:storage exit:storage ");
    assert_int_equal(format_runs, 0); /* the POSTs after the failing one do not run */
    char json[4096];                  /* ... and say so */
    (void)keel_modules_json(json, sizeof(json));
    assert_non_null(strstr(json, "{\"name\":\"roundtrip\",\"result\":\"failed\""));
    assert_non_null(strstr(json, "{\"name\":\"format\",\"result\":\"skipped\""));
    assert_int_equal(nreports, 2);
    assert_non_null(strstr(reports, "module 'storage' did not start: a POST failed"));
    assert_non_null(strstr(reports, "module 'api' did not start: a module it depends on"));
    (void)keel_report_set_handler(NULL, NULL);
    events[0] = '\0';
    keel_modules_stop();
    assert_string_equal(events, "exit:net exit:log ");
}

static void test_failing_init(void **state)
{
    (void)state;
    fail_net_init = 1;
    (void)keel_report_set_handler(collect, NULL);
    keel_status s = keel_modules_start();
    assert_int_equal(keel_status_code(s), KEEL_E_IO); /* the init's own code */
    char text[2048];
    (void)keel_status_format(s, text, sizeof(text));
    keel_status_free(s);
    assert_non_null(strstr(text, "module 'net': init failed"));
    assert_non_null(strstr(text, "no network interface"));
    assert_int_equal(info_of("net").state, KEEL_MODULE_FAILED);
    assert_int_equal(info_of("storage").state, KEEL_MODULE_BLOCKED);
    assert_string_equal(info_of("storage").blocked_by, "net");
    assert_int_equal(info_of("api").state, KEEL_MODULE_BLOCKED);
    assert_string_equal(events, "init:log init:net ");
    (void)keel_report_set_handler(NULL, NULL);
    keel_modules_stop();
}

static void test_post_selection_none(void **state)
{
    (void)state;
    keel_test_ok(keel_options_set("module.post=none"));
    fail_roundtrip = 1; /* would fail, but does not run */
    keel_test_ok(keel_modules_start());
    assert_int_equal(roundtrip_runs, 0);
    assert_int_equal(format_runs, 0);
    assert_int_equal(info_of("storage").posts_run, 0);
    keel_modules_stop();
}

static void test_post_selection_list(void **state)
{
    (void)state;
    keel_test_ok(keel_options_set("module.post=net, storage.format"));
    keel_test_ok(keel_modules_start());
    assert_int_equal(roundtrip_runs, 0);
    assert_int_equal(format_runs, 1);
    char json[4096];
    (void)keel_modules_json(json, sizeof(json));
    assert_non_null(strstr(json, "{\"name\":\"roundtrip\",\"result\":\"skipped\""));
    assert_non_null(strstr(json, "{\"name\":\"format\",\"result\":\"passed\",\"ns\":"));
    assert_non_null(strstr(json, "\"name\":\"api\",\"version\":\"2.0.0\",\"state\":\"running\""));
    keel_modules_stop();
    keel_status s = keel_options_set("module.post=storage;rm -rf");
    assert_false(keel_ok(s));
    keel_status_free(s);
    s = keel_options_set("module.post=storage|x");
    assert_false(keel_ok(s));
    char text[512];
    (void)keel_status_format(s, text, sizeof(text));
    keel_status_free(s);
    assert_non_null(strstr(text, "bad character '|' in module.post"));
}

/* module.post takes all, none, or a list of names: anything else is refused, nothing applied */
static void test_post_selection_malformed(void **state)
{
    (void)state;
    static const char *const bad[][2] = {
        {"a,,b", "empty item"},
        {"net,", "empty item"},
        {"\",\"", "empty item"},
        {"all,net", "'all' stands alone"},
        {"net, none", "'none' stands alone"},
        {"net storage", "'net storage' is no module or module.test name"},
        {"storage.", "'storage.' is no module or module.test name"},
        {".roundtrip", "'.roundtrip' is no module or module.test name"},
        {"stor-age", "'stor-age' is no module or module.test name"},
    };
    keel_test_ok(keel_options_set("module.post=storage.format"));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char opt[128], text[1024];
        (void)snprintf(opt, sizeof(opt), "module.post=%s", bad[i][0]);
        keel_status s = keel_options_set(opt);
        assert_false(keel_ok(s));
        assert_true(KEEL_IS(s, KEEL_E_PARSE));
        (void)keel_status_format(s, text, sizeof(text));
        keel_status_free(s);
        if (strstr(text, bad[i][1]) == NULL || strstr(text, "option 'module.post'") == NULL)
            fail_msg("'%s': expected '%s' in: %s", opt, bad[i][1], text);
        char now[64];
        keel_test_ok(keel_options_get("module.post", now, sizeof(now)));
        assert_string_equal(now, "storage.format");
    }
    keel_test_ok(keel_options_set("module.post=\" net , storage.format \""));
    keel_test_ok(keel_options_set("module.post=\"\""));
}

/* options reports, collected */
static char options_seen[2048];
static bool collect_options(const keel_report_info *info, void *ctx)
{
    (void)ctx;
    if (info->kind != KEEL_REPORT_OPTIONS)
        return false;
    size_t len = strlen(options_seen);
    (void)snprintf(options_seen + len, sizeof(options_seen) - len, "%s|", info->message);
    return true;
}

/*
 * A module.post name close to a registered module's, or a test its (registered) module does not
 * have, is a likely misspelling: reported (kind options) when the modules start, once; a name
 * far from every module's is taken without a word (a plugin's, perhaps).
 */
static void test_post_selection_misspelled(void **state)
{
    (void)state;
    keel_test_ok(keel_options_set("module.post=storag, storage.rountrip, net, plugin_mod"));
    (void)keel_report_set_handler(collect_options, NULL);
    keel_test_ok(keel_modules_start());
    if (strstr(options_seen, "module.post names 'storag', which is no registered module (did "
                             "you mean 'storage'?)") == NULL ||
        strstr(options_seen,
               "module.post names 'storage.rountrip', which is no power-on self "
               "test of module 'storage' (did you mean 'storage.roundtrip'?)") == NULL ||
        strstr(options_seen, "'net'") != NULL || strstr(options_seen, "plugin_mod") != NULL)
        fail_msg("the two misspellings, and only them, expected: %s", options_seen);
    assert_int_equal(roundtrip_runs, 0);
    keel_modules_stop();
    options_seen[0] = '\0';
    keel_test_ok(keel_modules_start()); /* the same option: said once */
    assert_string_equal(options_seen, "");
    (void)keel_report_set_handler(NULL, NULL);
    keel_modules_stop();
}

static void test_module_context(void **state)
{
    (void)state;
    keel_test_ok(keel_modules_start());
    assert_string_equal(module_seen_in_init, "storage");
    assert_null(keel_module_current());
    const keel_module *prev = keel_module_enter(KEEL_MODULE_REF(net));
    assert_ptr_equal(keel_module_current(), KEEL_MODULE_REF(net));
    const keel_module *inner = keel_module_enter(KEEL_MODULE_REF(log));
    assert_ptr_equal(inner, KEEL_MODULE_REF(net));
    keel_module_leave(inner);
    assert_ptr_equal(keel_module_current(), KEEL_MODULE_REF(net));
    keel_module_leave(prev);
    assert_null(keel_module_current());
    keel_modules_stop();
}

void test_module_plugin_exited(void);
void test_module_plugin_exited(void)
{
    note("exit", "plugin_mod");
}

static void *load(const char *name)
{
    char path[512];
    (void)snprintf(path, sizeof(path), "%s/lib%s.so", KEEL_TEST_PLUGIN_DIR, name);
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (h == NULL)
        fail_msg("dlopen %s: %s", path, dlerror());
    return h;
}

static void test_cycle_is_an_error_and_nothing_starts(void **state)
{
    (void)state;
    void *h = load("module_cycle");
    keel_status s = keel_modules_start();
    assert_int_equal(keel_status_code(s), KEEL_E_DEPENDENCY);
    char text[1024];
    (void)keel_status_format(s, text, sizeof(text));
    keel_status_free(s);
    assert_non_null(
        strstr(text, "modules depend on each other in a cycle: 'cyc_a' -> 'cyc_b' -> 'cyc_a'"));
    assert_string_equal(events, "");
    assert_int_equal(info_of("log").state, KEEL_MODULE_REGISTERED);
    assert_int_equal(dlclose(h), 0);
    assert_null(keel_module_find("cyc_a"));
    keel_test_ok(keel_modules_start()); /* without the plugin, all is well again */
    keel_modules_stop();
}

static void test_missing_dependency(void **state)
{
    (void)state;
    void *h = load("module_missing");
    keel_status s = keel_modules_start();
    assert_int_equal(keel_status_code(s), KEEL_E_DEPENDENCY);
    char text[1024];
    (void)keel_status_format(s, text, sizeof(text));
    keel_status_free(s);
    assert_non_null(strstr(text, "module 'needs_missing' depends on 'storag', which is not a "
                                 "registered module (did you mean 'storage'?)"));
    assert_string_equal(events, "");
    assert_int_equal(dlclose(h), 0);
}

static void test_plugin_module_starts_and_stops_with_dlclose(void **state)
{
    (void)state;
    keel_test_ok(keel_modules_start());
    void *h = load("module_plugin");
    keel_module *m = keel_module_find("plugin_mod");
    assert_non_null(m);
    assert_int_equal(keel_module_get_state(m), KEEL_MODULE_REGISTERED);
    keel_test_ok(keel_modules_start()); /* starts what is new */
    assert_int_equal(keel_module_get_state(m), KEEL_MODULE_RUNNING);
    assert_int_equal(info_of("plugin_mod").start_order, 5);
    assert_int_equal(dlclose(h), 0); /* a running plugin module is stopped, then forgotten */
    assert_null(keel_module_find("plugin_mod"));
    keel_modules_stop();
    assert_string_equal(events, "init:log init:net init:storage init:api exit:plugin_mod "
                                "exit:api exit:storage exit:net exit:log ");
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dependency_order_and_reverse_stop),
        cmocka_unit_test(test_failing_post_stops_module_and_dependants),
        cmocka_unit_test(test_failing_init),
        cmocka_unit_test(test_post_selection_none),
        cmocka_unit_test(test_post_selection_list),
        cmocka_unit_test(test_post_selection_malformed),
        cmocka_unit_test(test_post_selection_misspelled),
        cmocka_unit_test(test_module_context),
        cmocka_unit_test(test_cycle_is_an_error_and_nothing_starts),
        cmocka_unit_test(test_missing_dependency),
        cmocka_unit_test(test_plugin_module_starts_and_stops_with_dlclose),
    };
    return keel_test_main(argc, argv, tests, sizeof(tests) / sizeof(tests[0]));
}
