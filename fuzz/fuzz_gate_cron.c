/*
 * fuzz_gate_cron.c - libFuzzer harness for the nightly level's schedules
 * (gate/levels/cron.c): any bytes as a schedule.  A refusal must say
 * something; a schedule taken must fire, later than asked, at a minute's
 * start, and be found again from the second before (next is the first match).
 *
 *   tools/fuzz.sh gate_cron
 */
#include "fuzz_gate.h"

#include "cron.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_begin(data, size);
    char *text = fuzz_cstring(data, size);
    gate_cron c;
    keel_status s = gate_cron_parse(text, &c);
    if (!keel_ok(s)) {
        FUZZ_CHECK(keel_status_message(s)[0] != '\0', "a refusal that says nothing");
        keel_status_free(s);
        free(text);
        return 0;
    }
    long long t = 1796300000; /* 2026-12 */
    for (int i = 0; i < 4; i++) {
        long long next = gate_cron_next(&c, t);
        FUZZ_CHECK(next > t, "a schedule taken that does not fire");
        FUZZ_CHECK(next % 60 == 0, "a fire not at a minute's start");
        FUZZ_CHECK(gate_cron_next(&c, next - 1) == next, "next is not the first match");
        long long j = gate_cron_jitter(text, next, 1800);
        FUZZ_CHECK(j >= next && j < next + 1800, "a jitter out of its range");
        t = next;
    }
    free(text);
    return 0;
}
