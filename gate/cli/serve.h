/*
 * gate/cli/serve.h - `keel-gate serve` and `keel-gate token` (serve.c).
 */
#ifndef KEEL_GATE_SERVE_H
#define KEEL_GATE_SERVE_H

#include <stdio.h>

#include "web.h"

/* Serve until SIGINT or SIGTERM; the address ("http://HOST:PORT/") is out's first line. */
KEEL_MUST_USE keel_status gate_serve(gate *g, const gate_web_options *o, FILE *out);
/* A token's name: 1 to 64 visible ASCII characters (what token add takes). */
#define GATE_TOKEN_NAME_RULE "1 to 64 visible ASCII characters"
bool gate_token_name_ok(const char *name);
/* token add NAME (prints the token), token list, token revoke NAME. */
KEEL_MUST_USE keel_status gate_token_cmd(gate *g, const char *verb, const char *name,
                                         const char *role, FILE *out);

#endif /* KEEL_GATE_SERVE_H */
