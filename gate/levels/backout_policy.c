/*
 * backout_policy.c - the guard rails of an automatic backout (backout_policy.h).
 */
#define _GNU_SOURCE 1
#include "backout_policy.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "keel/keel.h"

static const char *const rail_names[GATE_RAILS] = {
    "",          "unverified", "tier-3",         "target-green",
    "undone",    "revert",     "no-auto-revert", "backout-off",
    "dependent", "age",        "tier-2-wait",    "breaker",
    "budget"};

const char *gate_backout_policy_rail_name(gate_backout_rail r)
{
    return (unsigned)r < GATE_RAILS ? rail_names[r] : "?";
}

const char *gate_backout_policy_action_name(gate_backout_action a)
{
    switch (a) {
    case GATE_BACKOUT_REVERT:
        return "revert";
    case GATE_BACKOUT_PROPOSE:
        return "propose";
    case GATE_BACKOUT_REFUSE:
        return "refuse";
    case GATE_BACKOUT_WAIT:
        return "wait";
    }
    return "?";
}

static void decide(gate_backout_decision *out, gate_backout_action a, gate_backout_rail r,
                   const char *fmt, ...) KEEL_PRINTF(4, 5);
static void decide(gate_backout_decision *out, gate_backout_action a, gate_backout_rail r,
                   const char *fmt, ...)
{
    out->action = a;
    out->rail = r;
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(out->reason, sizeof(out->reason), fmt, ap);
    va_end(ap);
}

void gate_backout_policy_decide(const gate_backout_facts *f, gate_backout_decision *out)
{
    KEEL_ASSERT(f != NULL && out != NULL);
    memset(out, 0, sizeof(*out));
    if (!f->verified)
        decide(out, GATE_BACKOUT_REFUSE, GATE_RAIL_UNVERIFIED,
               "the culprit is not verified: reported, never reverted");
    else if (f->tier != 1 && f->tier != 2)
        decide(out, GATE_BACKOUT_REFUSE, GATE_RAIL_TIER3, "tier %u: informational, never reverted",
               f->tier);
    else if (f->target_green)
        decide(out, GATE_BACKOUT_REFUSE, GATE_RAIL_TARGET_GREEN,
               "the configuration passes on the target again: nothing to back out");
    else if (f->undone)
        decide(out, GATE_BACKOUT_REFUSE, GATE_RAIL_UNDONE,
               "the target's head no longer holds the culprit's change: nothing to back out");
    else if (f->is_revert)
        decide(out, GATE_BACKOUT_REFUSE, GATE_RAIL_REVERT,
               "the culprit is itself a revert: a revert is never reverted");
    else if (f->no_auto_revert)
        decide(out, GATE_BACKOUT_REFUSE, GATE_RAIL_NO_AUTO_REVERT,
               "the culprit is marked 'No-Auto-Revert: true'");
    else if (!f->backout)
        decide(out, GATE_BACKOUT_PROPOSE, GATE_RAIL_BACKOUT_OFF,
               "backout = no: proposed, a person decides");
    else if (!f->applies)
        decide(out, GATE_BACKOUT_REFUSE, GATE_RAIL_DEPENDENT,
               "the revert does not apply cleanly on the target's head: later commits depend on "
               "the culprit");
    else if (f->later_touched)
        decide(out, GATE_BACKOUT_REFUSE, GATE_RAIL_DEPENDENT,
               "later commits changed lines near those the culprit changed: they may depend "
               "on it");
    else if (f->age_s > f->max_age_s)
        decide(out, GATE_BACKOUT_PROPOSE, GATE_RAIL_AGE,
               "the culprit is %lld s old, more than backout-max-age (%lld s): proposed", f->age_s,
               f->max_age_s);
    else if (f->tier == 2 && f->waited_s < f->fix_s)
        decide(out, GATE_BACKOUT_WAIT, GATE_RAIL_TIER2_WAIT,
               "tier 2: a fix may land within tier2-fix-time (%lld s of %lld s passed)",
               f->waited_s, f->fix_s);
    else if (f->breaker_open)
        decide(out, GATE_BACKOUT_REFUSE, GATE_RAIL_BREAKER,
               "the circuit breaker is open: 'keel-gate backouts --reset' closes it");
    else if (f->created_24h >= f->budget || f->landed_24h >= f->budget) {
        decide(out, GATE_BACKOUT_REFUSE, GATE_RAIL_BUDGET,
               "the budget is spent: %u reverts created, %u landed in the last 24 h",
               f->created_24h, f->landed_24h);
        out->open_breaker = true;
    } else
        decide(out, GATE_BACKOUT_REVERT, GATE_RAIL_NONE, "every guard rail passed");
}

/* Does the line [p, end) start with `prefix`? */
static bool line_starts(const char *p, const char *end, const char *prefix)
{
    size_t n = strlen(prefix);
    return (size_t)(end - p) >= n && strncmp(p, prefix, n) == 0;
}

/* Is [p, end) a `No-Auto-Revert: true` trailer (key in any case, blanks around the value)? */
static bool no_auto_revert_line(const char *p, const char *end)
{
    static const char key[] = "No-Auto-Revert:";
    size_t n = sizeof(key) - 1, len = (size_t)(end - p);
    char value[32];
    if (len < n || len - n >= sizeof(value) || strncasecmp(p, key, n) != 0)
        return false;
    memcpy(value, p + n, len - n);
    value[len - n] = '\0';
    char word[8], more = '\0'; /* one word, blanks around it */
    return sscanf(value, " %7s %c", word, &more) == 1 &&
           (strcasecmp(word, "true") == 0 || strcasecmp(word, "yes") == 0);
}

void gate_backout_policy_message(const char *message, bool *is_revert, bool *no_auto_revert)
{
    KEEL_ASSERT(message != NULL && is_revert != NULL && no_auto_revert != NULL);
    *is_revert = false;
    *no_auto_revert = false;
    bool first = true;
    for (const char *p = message; *p != '\0';) {
        const char *end = strchr(p, '\n');
        if (end == NULL)
            end = p + strlen(p);
        if ((first && line_starts(p, end, "Revert \"")) ||
            line_starts(p, end, "This reverts commit"))
            *is_revert = true;
        if (no_auto_revert_line(p, end))
            *no_auto_revert = true;
        first = false;
        p = *end == '\n' ? end + 1 : end;
    }
}
