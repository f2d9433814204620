/*
 * gate/cli/query.h - what status (query.c), log (log.c), culprit and history share (not an API).
 */
#ifndef KEEL_GATE_QUERY_H
#define KEEL_GATE_QUERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "gate.h"
#include "store.h"

/* Has the target's tip a configuration named `config` (at any level)?  False when the
 * configuration cannot be read. */
bool gate_target_has_config(gate *g, const char *config);

/* A change as a JSON object, after a comma unless it is the first. */
void gate_json_change(FILE *f, const gate_change *c, bool first);

/* A duration for people: "4.2 s", "3 min 7 s", "2 h 5 min"; "?" when ms < 0. */
void gate_duration_fmt(char *buf, size_t size, long long ms);

/* The first n of `total` ids as "1, 2, 3", then ", ... (N in all)" when some are left out. */
void gate_ids_fmt(char *buf, size_t size, const long long *ids, size_t n, size_t total);

#endif /* KEEL_GATE_QUERY_H */
