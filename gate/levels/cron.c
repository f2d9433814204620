/*
 * cron.c - the nightly level's schedules (see cron.h).
 */
#include "cron.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

enum { FIELDS = 5, TEXT_MAX = 256 };

typedef struct field_def {
    const char *name;
    int lo, hi;
    const char *const *names; /* names[i] is value lo + i; NULL: numbers only */
} field_def;

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun", "jul",
                                          "aug", "sep", "oct", "nov", "dec", NULL};
static const char *const day_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL};

static const field_def fields[FIELDS] = {
    {"minute", 0, 59, NULL},
    {"hour", 0, 23, NULL},
    {"day of the month", 1, 31, NULL},
    {"month", 1, 12, month_names},
    {"day of the week", 0, 7, day_names},
};

/* KEEL_E_PARSE: field f's item `what` is `why` (the field's values are said too). */
static keel_status bad(int f, const char *what, const char *why, const char *text)
{
    return keel_status_with_str(KEEL_ERR(KEEL_E_PARSE, "field %d (%s): '%s' %s (values %d to %d)",
                                         f + 1, fields[f].name, what, why, fields[f].lo,
                                         fields[f].hi),
                                "schedule", text);
}

/* A value of field f at *p (a number or a name), moved past it; false: none there. */
static bool value(int f, const char **p, int *out)
{
    const char *s = *p;
    if (isdigit((unsigned char)*s)) {
        long v = 0;
        while (isdigit((unsigned char)*s) && v < 1000)
            v = v * 10 + (*s++ - '0');
        if (isdigit((unsigned char)*s))
            return false;
        *out = (int)v;
        *p = s;
        return true;
    }
    const char *const *names = fields[f].names;
    for (int i = 0; names != NULL && names[i] != NULL; i++)
        if (strncasecmp(s, names[i], 3) == 0 && !isalpha((unsigned char)s[3])) {
            *out = fields[f].lo + i;
            *p = s + 3;
            return true;
        }
    return false;
}

/* One field's text (NUL-ended, no blanks) into the bits of its values. */
static keel_status parse_field(int f, const char *item, const char *text, uint64_t *bits,
                               bool *star)
{
    const field_def *d = &fields[f];
    *bits = 0;
    *star = item[0] == '*';
    const char *p = item;
    for (;;) {
        int a, b, step = 1;
        bool ranged = false;
        const char *start = p;
        if (*p == '*') {
            a = d->lo;
            b = d->hi;
            p++;
        } else {
            if (!value(f, &p, &a))
                return bad(f, start, "is not a value, a range or '*'", text);
            b = a;
            if (*p == '-') {
                ranged = true;
                p++;
                if (!value(f, &p, &b))
                    return bad(f, start, "is not a range of values", text);
            }
        }
        bool open_end = *start != '*' && !ranged && *p == '/'; /* a/n: from a to the end */
        if (*p == '/') {
            p++;
            if (!isdigit((unsigned char)*p) || !value(f, &p, &step) || step < 1 ||
                step > d->hi - d->lo + 1)
                return bad(f, start, "has a step that is not a number from 1 to the field's width",
                           text);
            if (open_end)
                b = d->hi;
        }
        if (a < d->lo || a > d->hi || b < d->lo || b > d->hi)
            return bad(f, start, "is out of range", text);
        if (b < a)
            return bad(f, start, "is a range that ends before it starts", text);
        for (int v = a; v <= b; v += step)
            *bits |= (uint64_t)1 << (f == 4 && v == 7 ? 0 : v); /* 7 is Sunday too */
        if (*p == '\0')
            return KEEL_OK;
        if (*p != ',' || p[1] == '\0')
            return bad(f, p, "is not a value, a range, a step or a ',' list", text);
        p++;
    }
}

static const struct {
    const char *name, *is;
} shorthands[] = {
    {"@hourly", "0 * * * *"},   {"@daily", "0 0 * * *"},   {"@midnight", "0 0 * * *"},
    {"@weekly", "0 0 * * 0"},   {"@monthly", "0 0 1 * *"}, {"@yearly", "0 0 1 1 *"},
    {"@annually", "0 0 1 1 *"},
};

keel_status gate_cron_parse(const char *text, gate_cron *out)
{
    KEEL_ASSERT(text != NULL && out != NULL);
    char buf[TEXT_MAX];
    size_t len = strlen(text);
    if (len >= sizeof(buf))
        return KEEL_ERR(KEEL_E_PARSE, "a schedule of %zu characters: at most %d", len,
                        TEXT_MAX - 1);
    const char *s = text;
    while (*s == ' ' || *s == '\t')
        s++;
    if (*s == '@') {
        for (size_t i = 0; i < sizeof(shorthands) / sizeof(shorthands[0]); i++)
            if (strcasecmp(s, shorthands[i].name) == 0)
                return gate_cron_parse(shorthands[i].is, out);
        return keel_status_with_str(
            KEEL_ERR(KEEL_E_PARSE,
                     "'%s' is not a schedule: @hourly, @daily, @midnight, @weekly, @monthly, "
                     "@yearly or @annually (@reboot has no meaning for a gate)",
                     s),
            "schedule", text);
    }
    (void)snprintf(buf, sizeof(buf), "%s", s);
    char *items[FIELDS + 1];
    int n = 0;
    for (char *p = buf; *p != '\0' && n <= FIELDS;) {
        while (*p == ' ' || *p == '\t')
            *p++ = '\0';
        if (*p == '\0')
            break;
        items[n++] = p;
        while (*p != '\0' && *p != ' ' && *p != '\t')
            p++;
    }
    if (n != FIELDS)
        return keel_status_with_str(
            KEEL_ERR(KEEL_E_PARSE,
                     "'%s' has %s%d field%s, not 5: minute hour day-of-month month day-of-week "
                     "(or @daily, @weekly, ...)",
                     text, n > FIELDS ? "more than " : "", n > FIELDS ? FIELDS : n,
                     n == 1 ? "" : "s"),
            "schedule", text);
    gate_cron c;
    memset(&c, 0, sizeof(c));
    uint64_t bits[FIELDS];
    bool star[FIELDS];
    for (int f = 0; f < FIELDS; f++) {
        keel_status st = parse_field(f, items[f], text, &bits[f], &star[f]);
        if (!keel_ok(st))
            return st;
    }
    c.minutes = bits[0];
    c.hours = (uint32_t)bits[1];
    c.days = (uint32_t)bits[2];
    c.months = (uint16_t)bits[3];
    c.weekdays = (uint8_t)bits[4];
    c.days_star = star[2];
    c.weekdays_star = star[4];
    if (gate_cron_next(&c, 0) < 0)
        return keel_status_with_str(
            KEEL_ERR(KEEL_E_PARSE, "'%s' never fires (no such day in any month)", text), "schedule",
            text);
    *out = c;
    return KEEL_OK;
}

/* Days since 1970-01-01 of a UTC date, and back (the proleptic Gregorian calendar). */
static long long days_from_civil(long long y, int m, int d)
{
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    long long yoe = y - era * 400;
    long long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(long long z, long long *y, int *m, int *d)
{
    z += 719468;
    long long era = (z >= 0 ? z : z - 146096) / 146097;
    long long doe = z - era * 146097;
    long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    long long mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static long long floor_div(long long a, long long b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

void gate_cron_civil(long long t, int *year, int *month, int *day, int *hour, int *minute,
                     int *weekday)
{
    long long days = floor_div(t, 86400), secs = t - days * 86400;
    long long y;
    civil_from_days(days, &y, month, day);
    *year = (int)y;
    *hour = (int)(secs / 3600);
    *minute = (int)(secs % 3600 / 60);
    *weekday = (int)((days % 7 + 11) % 7); /* 1970-01-01 was a Thursday (4) */
}

static bool day_matches(const gate_cron *c, int day, int weekday)
{
    bool dom = (c->days >> day & 1u) != 0, dow = (c->weekdays >> weekday & 1u) != 0;
    if (c->days_star || c->weekdays_star)
        return dom && dow; /* a '*' field matches every day: the other decides */
    return dom || dow;
}

long long gate_cron_next(const gate_cron *c, long long after)
{
    KEEL_ASSERT(c != NULL);
    long long t = floor_div(after, 60) * 60 + 60; /* the next whole minute */
    long long limit = t + 146097LL * 86400; /* 400 years: the Gregorian calendar's whole cycle */
    while (t < limit) {
        int y, mo, d, h, mi, wd;
        gate_cron_civil(t, &y, &mo, &d, &h, &mi, &wd);
        long long day0 = floor_div(t, 86400) * 86400;
        if ((c->months >> mo & 1u) == 0) { /* the first day of the next month */
            int ny = mo == 12 ? y + 1 : y, nm = mo == 12 ? 1 : mo + 1;
            t = days_from_civil(ny, nm, 1) * 86400;
        } else if (!day_matches(c, d, wd)) {
            t = day0 + 86400;
        } else if ((c->hours >> h & 1u) == 0) {
            t = day0 + (long long)(h + 1) * 3600;
        } else if ((c->minutes >> mi & 1u) == 0) {
            t += 60;
        } else {
            return t;
        }
    }
    return -1;
}

long long gate_cron_jitter(const char *key, long long fire, long long jitter_s)
{
    KEEL_ASSERT(key != NULL);
    if (jitter_s <= 0)
        return fire;
    uint64_t h = 1469598103934665603ULL; /* FNV-1a over the key, then the time, mixed */
    for (const unsigned char *p = (const unsigned char *)key; *p != '\0'; p++)
        h = (h ^ *p) * 1099511628211ULL;
    h ^= (uint64_t)fire;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return fire + (long long)(h % (uint64_t)jitter_s);
}
