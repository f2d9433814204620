/*
 * test_gate_run_remote.c - every test of test_gate_run.c again, with the
 * guarded repository reached through a URL (file://) and the gate working on
 * a mirror of its own: branch heads fetched, landing by push, the push lost
 * to a concurrent one, a kill -9 at every step.  The checks look at the
 * repository itself.
 */
#define GATE_TEST_REMOTE 1
#include "test_gate_run.c" /* NOLINT(bugprone-suspicious-include): its tests, remote */
