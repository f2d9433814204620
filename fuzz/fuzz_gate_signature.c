/*
 * fuzz_gate_signature.c - libFuzzer target for keel-gate's failure signature
 * (gate/exec/signature.h): how a failed job's log ends, normalised, the
 * evidence the scheduler's flake verdicts and the rejections taken back
 * rest on.  The log is whatever the job printed: anyone who can push writes
 * it.
 *
 * Properties, for any bytes:
 *   - never 0, and the same for the same text;
 *   - what signature.h says does not count does not count: every digit made
 *     another digit; every blank made a run of two blanks; a line put in
 *     front of text that has more than GATE_SIGNATURE_LINES non-empty lines;
 *     every run of digits given a decimal (".5" after it: "3" as "3.5",
 *     "0x1f" as "0.5x1.5f") changes nothing.
 * (The units' folding is checked by test_gate_flake.test_signature_normalised.)
 *
 *   tools/fuzz.sh gate_signature     (FUZZ_SECONDS=300 for 5 minutes)
 */
#include "fuzz_gate.h"

#include "signature.h"

static unsigned long long sig(const unsigned char *p, size_t n)
{
    return gate_signature_of((const char *)p, n);
}

static bool blank(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_begin(data, size);
    if (size > 65536)
        return 0;
    unsigned long long s = sig(data, size);
    if (s == 0)
        fuzz_fail(__LINE__, "a signature of 0", data, size);
    if (sig(data, size) != s)
        fuzz_fail(__LINE__, "two signatures of one text", data, size);
    unsigned char *t = (unsigned char *)malloc(3 * size + 8);
    if (t == NULL)
        abort();
    /* digits: another digit each */
    for (size_t i = 0; i < size; i++)
        t[i] = data[i] >= '0' && data[i] <= '9' ? (unsigned char)('0' + (data[i] - '0' + 7) % 10)
                                                : data[i];
    if (sig(t, size) != s)
        fuzz_fail(__LINE__, "another digit counted", data, size);
    /* blanks: each one two */
    size_t n = 0;
    for (size_t i = 0; i < size; i++) {
        t[n++] = data[i];
        if (blank(data[i]))
            t[n++] = ' ';
    }
    if (sig(t, n) != s)
        fuzz_fail(__LINE__, "a run of blanks counted", data, size);
    /* a decimal after every run of digits */
    n = 0;
    for (size_t i = 0; i < size; i++) {
        t[n++] = data[i];
        bool digit = data[i] >= '0' && data[i] <= '9';
        bool next = i + 1 < size && data[i + 1] >= '0' && data[i + 1] <= '9';
        if (digit && !next) {
            t[n++] = '.';
            t[n++] = '5';
        }
    }
    if (sig(t, n) != s)
        fuzz_fail(__LINE__, "a number's decimal counted", data, size);
    /* a line in front of GATE_SIGNATURE_LINES non-empty ones */
    unsigned lines = 0;
    bool empty = true;
    for (size_t i = 0; i < size; i++) {
        if (data[i] == '\n') {
            lines += empty ? 0u : 1u;
            empty = true;
        } else if (!blank(data[i])) {
            empty = false;
        }
    }
    lines += empty ? 0u : 1u;
    if (lines > GATE_SIGNATURE_LINES) { /* 5 more bytes: room, since size > 8 */
        memcpy(t, "x 12\n", 5);
        memcpy(t + 5, data, size);
        if (sig(t, size + 5) != s)
            fuzz_fail(__LINE__, "a line before the last ones counted", data, size);
    }
    free(t);
    return 0;
}
