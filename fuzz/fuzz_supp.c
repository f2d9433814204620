/*
 * fuzz_supp.c - libFuzzer harness for the suppression file parser (report.suppressions).
 *
 * Feeds arbitrary bytes to keel__supp_parse_only() (parse, never apply):
 * the parser must return a status, never crash, read out of bounds or leak.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -DKEEL_DEVEL=1 -DKEEL_BUILDING_LIBRARY \
 *         -D_GNU_SOURCE -Iinclude -Isrc fuzz/fuzz_supp.c src/\*.c -ldw -lpthread -o fuzz_supp
 *   ./fuzz_supp -max_total_time=30 fuzz/corpus/supp
 */
#include "internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly `size` bytes, so ASan sees any read past the end. */
    char *text = (char *)malloc(size != 0 ? size : 1);
    if (text == NULL)
        return 0;
    if (size != 0)
        memcpy(text, data, size);
    keel_status s = keel__supp_parse_only(text, size, "fuzz");
    if (!keel_ok(s)) {
        /* A failure must always say something. */
        char msg[2048];
        size_t n = keel_status_format(s, msg, sizeof(msg));
        if (n == 0 || keel_status_message(s)[0] == '\0')
            abort();
    }
    keel_status_free(s);
    free(text);
    return 0;
}
