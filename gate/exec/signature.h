/*
 * gate/exec/signature.h - a failed job's failure signature: how its log ends,
 * as a number the scheduler compares (scheduler.h: two failures of a
 * configuration on one tree with the same signature are not a flake).
 *
 * The last GATE_SIGNATURE_LINES non-empty lines of the log, normalised so
 * that what changes from run to run of the same failure does not count:
 * every token holding a '/' becomes what follows its last '/' (paths: work
 * trees, temporary directories), every run of digits or of hex digits
 * holding a digit becomes '#' (counts, times, durations, addresses, ids,
 * hashes), a decimal's point or comma between digits included ("3.9",
 * "1,5"), a unit of a size or a time after a number is dropped ("4 MiB",
 * "3.9 MiB", "900 KiB", "12ms", "1.5 s": all '#'; bytes B KiB MiB GiB TiB
 * kB KB MB GB TB ns us ms s sec secs min mins h), runs of blanks become
 * one space; then a 64-bit FNV-1a hash, never 0 (0 is "unknown" to the
 * scheduler).
 */
#ifndef KEEL_GATE_SIGNATURE_H
#define KEEL_GATE_SIGNATURE_H

#include <stddef.h>

#include "keel/keel.h"

enum { GATE_SIGNATURE_LINES = 8, GATE_SIGNATURE_TAIL = 4096 };

/* The signature of `text` (its last lines). */
unsigned long long gate_signature_of(const char *text, size_t len);

/*
 * The signature of the log at `path` (its last GATE_SIGNATURE_TAIL bytes);
 * *sig is 0 when the log cannot be read (the error says why).
 */
KEEL_MUST_USE keel_status gate_log_signature(const char *path, unsigned long long *sig);

/*
 * The last `nlines` lines of the log at `path` into buf (NUL-terminated,
 * ending in a newline unless empty), read from its last size - 2 bytes (a
 * first line that this cuts is left out); *whole: that is the whole log.
 * false: no log.  (log's decisive failure, try's failed configurations.)
 */
bool gate_log_tail(const char *path, unsigned nlines, char *buf, size_t size, bool *whole);

#endif /* KEEL_GATE_SIGNATURE_H */
