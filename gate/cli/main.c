/*
 * main.c - the keel-gate program (the commands are in cli.c).
 */
#include <stdio.h>
#include <string.h>

#include "gate.h"
#include "slurm.h"

int main(int argc, char **argv)
{
    /* a Slurm node's side of a job (gate/exec/slurm.h), not a command of people's */
    if (argc > 1 && strcmp(argv[1], GATE_SLURM_STEP_COMMAND) == 0)
        return gate_slurm_step_main(argc, argv);
    keel_status s = keel_init();
    if (!keel_ok(s)) {
        (void)fprintf(stderr, "keel-gate: error: %s\n", keel_status_message(s));
        keel_status_free(s);
        return 2;
    }
    gate_modules_link();
    s = keel_modules_start(); /* each part's POST, in dependency order */
    if (!keel_ok(s)) {
        (void)fprintf(stderr, "keel-gate: error: a part failed its self test: %s\n",
                      keel_status_message(s));
        keel_status_free(s);
        keel_modules_stop();
        return 1;
    }
    int rc = gate_cli_main(argc, argv, stdout, stderr);
    keel_modules_stop();
    return rc;
}
