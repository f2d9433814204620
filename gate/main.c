/*
 * main.c - the keel-gate program (the commands are in cli.c).
 */
#include <stdio.h>

#include "gate.h"

int main(int argc, char **argv)
{
    keel_status s = keel_init();
    if (!keel_ok(s)) {
        (void)fprintf(stderr, "keel-gate: error: KEEL_OPTIONS: %s\n", keel_status_message(s));
        keel_status_free(s);
        return 2;
    }
    return gate_cli_main(argc, argv, stdout, stderr);
}
