/* A program built against an installed keel (tests/consumer/run.sh). */
#include <stdio.h>

#include "keel/keel.h"

int main(void)
{
    keel_status s = keel_version_check();
    if (!keel_ok(s)) {
        keel_status_print(stderr, s);
        keel_status_free(s);
        return 1;
    }
    printf("keel %s variant=%s\n", keel_version_string(), KEEL_DEVEL ? "devel" : "release");
    return 0;
}
