/*
 * serve.c - `keel-gate serve` (the HTTP API, gate/web) and `keel-gate token`
 * (its bearer tokens: add prints the token once, the store keeps its hash).
 */
#define _GNU_SOURCE 1
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "gate_int.h"
#include "serve.h"
#include "text.h"
#include "web.h"

static volatile sig_atomic_t serve_stop;

static void on_stop(int signo)
{
    serve_stop = signo;
}

keel_status gate_serve(gate *g, const gate_web_options *o, FILE *out)
{
    struct sigaction sa, old_int, old_term, old_pipe;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop;
    (void)sigemptyset(&sa.sa_mask);
    serve_stop = 0;
    (void)sigaction(SIGINT, &sa, &old_int);
    (void)sigaction(SIGTERM, &sa, &old_term);
    sa.sa_handler = SIG_IGN; /* a client gone mid-answer is MHD's to handle, not a kill */
    (void)sigaction(SIGPIPE, &sa, &old_pipe);
    gate_web *w = NULL;
    keel_status s = gate_web_start(g, o, &w);
    if (keel_ok(s)) {
        /* the address first, alone on its line: a caller that asked for port 0 reads it */
        (void)fprintf(out, "http://%s/\n", gate_web_address(w));
        (void)fflush(out);
        while (serve_stop == 0) {
            struct timespec ts = {0, 100 * 1000000L};
            (void)nanosleep(&ts, NULL);
        }
        gate_web_stop(w);
    }
    (void)sigaction(SIGINT, &old_int, NULL);
    (void)sigaction(SIGTERM, &old_term, NULL);
    (void)sigaction(SIGPIPE, &old_pipe, NULL);
    return s;
}

bool gate_token_name_ok(const char *name)
{
    for (const char *p = name; *p != '\0'; p++)
        if (*p <= ' ' || *p > '~' || (size_t)(p - name) >= 64)
            return false;
    return name[0] != '\0';
}

keel_status gate_token_cmd(gate *g, const char *verb, const char *name, const char *role, FILE *out)
{
    gate_store *st = gate_get_store(g);
    long long now = (long long)time(NULL);
    if (strcmp(verb, "list") == 0) { /* every token: counted, then read (no cap) */
        size_t n = 0, cap = 0;
        gate_token *list = NULL;
        keel_status s = gate_store_token_list(st, NULL, 0, &n);
        while (keel_ok(s) && n > cap) { /* more than room: a token added meanwhile, say */
            cap = n;
            keel_heap_free(GATE_HEAP, list);
            void *mem = NULL;
            s = keel_heap_calloc(GATE_HEAP, cap, sizeof(gate_token), &mem);
            list = (gate_token *)mem;
            if (keel_ok(s))
                s = gate_store_token_list(st, list, cap, &n);
        }
        if (!keel_ok(s)) {
            keel_heap_free(GATE_HEAP, list);
            return KEEL_CONTEXT(s, "listing the tokens");
        }
        for (size_t i = 0; i < n; i++) {
            char when[32] = "?";
            time_t t = (time_t)list[i].created_at;
            struct tm tm;
            if (gmtime_r(&t, &tm) != NULL)
                (void)strftime(when, sizeof(when), "%Y-%m-%d %H:%M UTC", &tm);
            gate_text_printf(out, "%-24s %-7s created %s\n", list[i].name,
                             gate_role_name(list[i].role), when);
        }
        if (n == 0)
            (void)fprintf(out, "no tokens (keel-gate token add NAME --role read|submit|admin)\n");
        keel_heap_free(GATE_HEAP, list);
        return KEEL_OK;
    }
    if (name == NULL || name[0] == '\0')
        return KEEL_ERR(KEEL_E_INVAL, "'token %s' needs a name", verb);
    if (strcmp(verb, "revoke") == 0)
        return gate_store_token_revoke(st, name, now);
    if (strcmp(verb, "add") != 0)
        return KEEL_ERR(KEEL_E_INVAL, "unknown token command '%s': add, list or revoke", verb);
    gate_role r = gate_role_from_name(role != NULL ? role : "read");
    if (r == GATE_ROLE_NONE)
        return KEEL_ERR(KEEL_E_INVAL, "unknown role '%s': read, submit or admin", role);
    if (!gate_token_name_ok(name))
        return KEEL_ERR(KEEL_E_INVAL, "token name '%s' must be " GATE_TOKEN_NAME_RULE, name);
    char token[GATE_TOKEN_MAX], hash[GATE_TOKEN_HASH_HEX];
    keel_status s = gate_token_new(token);
    if (!keel_ok(s))
        return s;
    gate_sha256_hex(token, strlen(token), hash);
    s = gate_store_token_add(st, name, r, hash, now);
    if (keel_ok(s))
        (void)fprintf(out, "%s\n", token); /* the only time it is shown: the store keeps its hash */
    memset(token, 0, sizeof(token));
    return s;
}
