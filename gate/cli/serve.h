/*
 * gate/cli/serve.h - `keel-gate serve` and `keel-gate token` (serve.c).
 */
#ifndef KEEL_GATE_SERVE_H
#define KEEL_GATE_SERVE_H

#include <stdio.h>

#include "web.h"

/* Serve until SIGINT or SIGTERM; the address ("http://HOST:PORT/") is out's first line. */
KEEL_MUST_USE keel_status gate_serve(gate *g, const gate_web_options *o, FILE *out);
/* token add NAME (prints the token), token list, token revoke NAME. */
KEEL_MUST_USE keel_status gate_token_cmd(gate *g, const char *verb, const char *name,
                                         const char *role, FILE *out);

#endif /* KEEL_GATE_SERVE_H */
