/*
 * auth.c - keel-gate serve's bearer tokens: made random, kept as their
 * SHA-256 (nettle) in the store, compared in constant time (store_web.c).
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <nettle/sha2.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "web.h"

void gate_sha256_hex(const void *data, size_t len, char hex[GATE_TOKEN_HASH_HEX])
{
    struct sha256_ctx ctx;
    uint8_t digest[SHA256_DIGEST_SIZE];
    sha256_init(&ctx);
    sha256_update(&ctx, len, (const uint8_t *)data);
    sha256_digest(&ctx, sizeof(digest), digest);
    for (size_t i = 0; i < sizeof(digest); i++)
        (void)snprintf(hex + 2 * i, 3, "%02x", digest[i]);
}

keel_status gate_token_new(char token[GATE_TOKEN_MAX])
{
    unsigned char raw[32];
    size_t got = 0;
    while (got < sizeof(raw)) {
        ssize_t n = getrandom(raw + got, sizeof(raw) - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return KEEL_ERR_SYS(errno, "cannot read random bytes for a token");
        got += (size_t)n;
    }
    (void)snprintf(token, GATE_TOKEN_MAX, "kg_");
    for (size_t i = 0; i < sizeof(raw); i++)
        (void)snprintf(token + 3 + 2 * i, 3, "%02x", raw[i]);
    return KEEL_OK;
}

keel_status gate_token_check(gate_store *st, const char *authorization, gate_token *out)
{
    memset(out, 0, sizeof(*out));
    if (authorization == NULL || strncasecmp(authorization, "Bearer ", 7) != 0)
        return KEEL_OK;
    const char *token = authorization + 7;
    while (*token == ' ')
        token++;
    char hex[GATE_TOKEN_HASH_HEX];
    gate_sha256_hex(token, strlen(token), hex);
    return gate_store_token_find(st, hex, out);
}
