/*
 * test_gate_cron.c - the nightly level's schedules (gate/levels/cron.h):
 * cron's five fields as cron reads them, when a schedule next fires, the
 * jitter, and every refusal naming what was wrong.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include "testutil.h"
#include "cron.h"

/* Seconds since the epoch of a UTC time (test side: written apart from cron.c's calendar). */
static long long utc(int y, int mo, int d, int h, int mi)
{
    static const int before[] = {0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334};
    long long days = 0;
    for (int yy = 1970; yy < y; yy++)
        days += (yy % 4 == 0 && (yy % 100 != 0 || yy % 400 == 0)) ? 366 : 365;
    days += before[mo - 1] + d - 1;
    if (mo > 2 && y % 4 == 0 && (y % 100 != 0 || y % 400 == 0))
        days++;
    return days * 86400 + h * 3600LL + mi * 60LL;
}

static gate_cron parsed(const char *text)
{
    gate_cron c;
    keel_status s = gate_cron_parse(text, &c);
    if (!keel_ok(s))
        fail_msg("'%s' refused: %s", text, keel_status_message(s));
    return c;
}

static void expect_next(const char *text, long long after, long long want)
{
    gate_cron c = parsed(text);
    long long got = gate_cron_next(&c, after);
    if (got != want) {
        int y, mo, d, h, mi, wd;
        gate_cron_civil(got, &y, &mo, &d, &h, &mi, &wd);
        fail_msg("'%s' after %lld: %04d-%02d-%02d %02d:%02d (wd %d), wanted %lld", text, after, y,
                 mo, d, h, mi, wd, want);
    }
}

static void test_next_fire(void **state)
{
    (void)state;
    long long t = utc(2026, 12, 3, 7, 14); /* a Thursday */
    expect_next("* * * * *", t, utc(2026, 12, 3, 7, 15));
    expect_next("* * * * *", t + 59, utc(2026, 12, 3, 7, 15));
    expect_next("0 3 * * *", t, utc(2026, 12, 4, 3, 0));
    expect_next("30 2 * * mon-fri", t, utc(2026, 12, 4, 2, 30)); /* Friday */
    expect_next("30 2 * * mon-fri", utc(2026, 12, 4, 3, 0), utc(2026, 12, 7, 2, 30));
    expect_next("*/15 * * * *", t, utc(2026, 12, 3, 7, 15));
    expect_next("5/20 8-18/2 * * *", t, utc(2026, 12, 3, 8, 5));
    expect_next("0 0 1 jan *", t, utc(2027, 1, 1, 0, 0));
    expect_next("0 0 29 feb *", t, utc(2028, 2, 29, 0, 0)); /* a leap day */
    expect_next("0 12 * * 7", t, utc(2026, 12, 6, 12, 0));  /* 7 is Sunday */
    expect_next("0 12 * * SUN", t, utc(2026, 12, 6, 12, 0));
    expect_next("0 0 31 * *", t, utc(2026, 12, 31, 0, 0));
    expect_next("0 0 31 * *", utc(2026, 12, 31, 0, 0), utc(2027, 1, 31, 0, 0));
    /* both day fields restricted: either matches (the 13th, or a Friday) */
    expect_next("0 9 13 * fri", t, utc(2026, 12, 4, 9, 0));
    expect_next("0 9 13 * fri", utc(2026, 12, 11, 10, 0), utc(2026, 12, 13, 9, 0));
    /* one of them '*': only the other decides */
    expect_next("0 9 * * fri", utc(2026, 12, 11, 10, 0), utc(2026, 12, 18, 9, 0));
    /* the day of the month by a step from '*' (1 and 31) and a weekday: both must match (the
       fuzzer's find: years apart, past any short search window) */
    expect_next("0 0 */30 2 2", t, utc(2028, 2, 1, 0, 0));
    expect_next("0 0 */30 2 2", utc(2039, 2, 2, 0, 0), utc(2050, 2, 1, 0, 0)); /* 11 years */
    expect_next("@daily", t, utc(2026, 12, 4, 0, 0));
    expect_next("@weekly", t, utc(2026, 12, 6, 0, 0));
    expect_next("@monthly", t, utc(2027, 1, 1, 0, 0));
    expect_next("@hourly", t, utc(2026, 12, 3, 8, 0));
    expect_next("  0 3 * * *  ", t, utc(2026, 12, 4, 3, 0));
}

/*
 * Brute force: a clock of the test's own, stepped minute by minute (its
 * calendar kept by counting, not computed), checks each minute against the
 * parsed fields with cron's day rule; every minute that matches must be
 * what gate_cron_next returns from the minute before, and no other.
 */
typedef struct walk {
    int y, mo, d, h, mi, wd;
    long long t;
} walk;

static int month_days(int y, int mo)
{
    static const int n[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return n[mo - 1] + (mo == 2 && y % 4 == 0 && (y % 100 != 0 || y % 400 == 0));
}

static void step(walk *w)
{
    w->t += 60;
    if (++w->mi < 60)
        return;
    w->mi = 0;
    if (++w->h < 24)
        return;
    w->h = 0;
    w->wd = (w->wd + 1) % 7;
    if (++w->d <= month_days(w->y, w->mo))
        return;
    w->d = 1;
    if (++w->mo <= 12)
        return;
    w->mo = 1;
    w->y++;
}

static bool walk_matches(const gate_cron *c, const walk *w)
{
    bool dom = (c->days >> w->d & 1u) != 0, dow = (c->weekdays >> w->wd & 1u) != 0;
    bool day = c->days_star || c->weekdays_star ? dom && dow : dom || dow;
    return day && (c->months >> w->mo & 1u) != 0 && (c->hours >> w->h & 1u) != 0 &&
           (c->minutes >> w->mi & 1u) != 0;
}

static void test_walk_matches_brute_force(void **state)
{
    (void)state;
    static const struct {
        const char *spec;
        int fires;
    } cases[] = {{"17 */5 * * *", 60},      {"45 23 1,15 * mon", 30}, {"0 6 * 3-5 1-5", 30},
                 {"*/7 9-10 13 * fri", 60}, {"0 0 29 2 *", 2},        {"@yearly", 3}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        gate_cron c = parsed(cases[i].spec);
        walk w = {2024, 12, 30, 23, 58, 1, 0}; /* 2024-12-30 23:58, a Monday */
        w.t = utc(w.y, w.mo, w.d, w.h, w.mi);
        long long expect = gate_cron_next(&c, w.t);
        for (int found = 0; found < cases[i].fires;) {
            step(&w);
            if (!walk_matches(&c, &w)) {
                if (w.t >= expect)
                    fail_msg("'%s': %lld fired, not a match", cases[i].spec, expect);
                continue;
            }
            if (w.t != expect)
                fail_msg("'%s': the match at %04d-%02d-%02d %02d:%02d is not the next (%lld)",
                         cases[i].spec, w.y, w.mo, w.d, w.h, w.mi, expect);
            found++;
            expect = gate_cron_next(&c, w.t);
        }
    }
}

static void expect_refused(const char *text, const char *says)
{
    gate_cron c;
    keel_status s = gate_cron_parse(text, &c);
    if (keel_ok(s))
        fail_msg("'%s' was taken", text);
    if (strstr(keel_status_message(s), says) == NULL)
        fail_msg("'%s': '%s' does not say '%s'", text, keel_status_message(s), says);
    keel_status_free(s);
}

static void test_refusals(void **state)
{
    (void)state;
    expect_refused("", "has 0 fields, not 5");
    expect_refused("0 3 * *", "has 4 fields, not 5");
    expect_refused("0 3 * * * *", "has more than 5 fields");
    expect_refused("60 3 * * *", "field 1 (minute): '60' is out of range (values 0 to 59)");
    expect_refused("0 25 * * *", "field 2 (hour): '25' is out of range");
    expect_refused("0 3 0 * *", "field 3 (day of the month): '0' is out of range");
    expect_refused("0 3 * 13 *", "field 4 (month): '13' is out of range");
    expect_refused("0 3 * * 8", "field 5 (day of the week): '8' is out of range");
    expect_refused("0 3 * foo *", "field 4 (month): 'foo' is not a value");
    expect_refused("0 3 * * monday", "field 5 (day of the week): 'monday' is not a value");
    expect_refused("0 5-3 * * *", "'5-3' is a range that ends before it starts");
    expect_refused("*/0 * * * *", "has a step that is not a number");
    expect_refused("*/61 * * * *", "has a step that is not a number");
    expect_refused("1,,2 * * * *", "is not a value");
    expect_refused("1, * * * *", "is not a value, a range, a step or a ',' list");
    expect_refused("1- * * * *", "is not a range of values");
    expect_refused("99999999999 * * * *", "is not a value");
    expect_refused("0 0 30 2 *", "never fires");
    expect_refused("0 0 31 4,6,9,11 *", "never fires");
    expect_refused("@reboot", "@reboot has no meaning");
    expect_refused("@sometimes", "is not a schedule");
    char huge[400];
    memset(huge, '1', sizeof(huge) - 1);
    huge[sizeof(huge) - 1] = '\0';
    expect_refused(huge, "at most 255");
}

static void test_jitter(void **state)
{
    (void)state;
    long long fire = utc(2026, 12, 4, 3, 0);
    assert_int_equal(gate_cron_jitter("long", fire, 0), fire);
    long long a = gate_cron_jitter("long", fire, 1800);
    assert_true(a >= fire && a < fire + 1800);
    assert_int_equal(gate_cron_jitter("long", fire, 1800), a); /* the same after a restart */
    /* configurations of one schedule spread apart, and a configuration's day to day */
    unsigned differ = 0, days_differ = 0;
    char name[32];
    for (int i = 0; i < 20; i++) {
        (void)snprintf(name, sizeof(name), "config-%d", i);
        long long j = gate_cron_jitter(name, fire, 1800);
        assert_true(j >= fire && j < fire + 1800);
        differ += j != a;
        days_differ += gate_cron_jitter(name, fire + 86400, 1800) - 86400 != j;
    }
    assert_true(differ >= 18);
    assert_true(days_differ >= 18);
}

static void test_civil(void **state)
{
    (void)state;
    int y, mo, d, h, mi, wd;
    gate_cron_civil(0, &y, &mo, &d, &h, &mi, &wd);
    assert_true(y == 1970 && mo == 1 && d == 1 && h == 0 && mi == 0 && wd == 4);
    gate_cron_civil(utc(2000, 2, 29, 23, 59), &y, &mo, &d, &h, &mi, &wd);
    assert_true(y == 2000 && mo == 2 && d == 29 && h == 23 && mi == 59 && wd == 2);
    gate_cron_civil(-1, &y, &mo, &d, &h, &mi, &wd);
    assert_true(y == 1969 && mo == 12 && d == 31 && h == 23 && mi == 59 && wd == 3);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_next_fire), cmocka_unit_test(test_walk_matches_brute_force),
        cmocka_unit_test(test_refusals),  cmocka_unit_test(test_jitter),
        cmocka_unit_test(test_civil),
    };
    return keel_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
