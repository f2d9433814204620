/*
 * gate/levels/cron.h - the nightly level's schedules (issue 17): cron's
 * five fields, read as cron reads them, and when a schedule next fires,
 * with a jitter of its own.  Pure logic: no clock (the caller says what
 * time it is), no I/O; times are seconds since the epoch, read in UTC.
 *
 *   gate_cron c;
 *   keel_status s = gate_cron_parse("30 2 * * mon-fri", &c);
 *   long long at = gate_cron_next(&c, now);            // 02:30 UTC of the next weekday
 *   at = gate_cron_jitter("long", at, 1800);           // + 0..1799 s, the same every time
 *
 * The fields: minute (0-59), hour (0-23), day of the month (1-31), month
 * (1-12 or jan-dec), day of the week (0-7 or sun-sat; 0 and 7 are Sunday).
 * Each is `*`, a value, a range `a-b`, a list of those `a,b-c`, and any of
 * them with a step `/n` (a star and `/15`: every 15; `8-18/2`; `5/20`: from 5
 * to the field's end).  Names are not case-sensitive.  As in cron, when both day fields
 * are restricted (neither starts with `*`) a day matches when EITHER does;
 * when one starts with `*`, only the other decides.  Shorthands: @hourly,
 * @daily (@midnight), @weekly, @monthly, @yearly (@annually); @reboot has
 * no meaning for a gate and is refused.  A schedule that never fires (`0 0
 * 30 2 *`) is refused.
 */
#ifndef KEEL_GATE_CRON_H
#define KEEL_GATE_CRON_H

#include <stdbool.h>
#include <stdint.h>

#include "keel/keel.h"

typedef struct gate_cron {
    uint64_t minutes; /* bit m: minute m */
    uint32_t hours;   /* bit h */
    uint32_t days;    /* bit d: day of the month d (1..31) */
    uint16_t months;  /* bit m: month m (1..12) */
    uint8_t weekdays; /* bit w: day of the week w (0 = Sunday .. 6) */
    bool days_star;   /* the day-of-month field started with '*' */
    bool weekdays_star;
} gate_cron;

/*
 * Read a schedule: KEEL_E_PARSE naming the field and what was wrong
 * ("field 2 (hour): '25' is not in 0-23").  *out is written only on success.
 */
KEEL_MUST_USE keel_status gate_cron_parse(const char *text, gate_cron *out);

/*
 * The first minute, strictly after `after`, that the schedule matches (its
 * first second); -1 when none comes within 400 years, the Gregorian
 * calendar's whole cycle (so never, for a parsed schedule: one that never
 * fires is refused; "on Feb 1 when it is a Tuesday" may be 11 years away).
 */
long long gate_cron_next(const gate_cron *c, long long after);

/*
 * `fire` moved later by 0 .. jitter_s - 1 seconds, decided by `key` (the
 * configuration's name) and `fire` alone: the same after every restart, and
 * different configurations of one schedule spread apart.  jitter_s <= 0:
 * `fire` itself.
 */
long long gate_cron_jitter(const char *key, long long fire, long long jitter_s);

/* The UTC calendar of t: year, month 1-12, day 1-31, hour, minute, weekday 0 = Sunday. */
void gate_cron_civil(long long t, int *year, int *month, int *day, int *hour, int *minute,
                     int *weekday);

#endif /* KEEL_GATE_CRON_H */
