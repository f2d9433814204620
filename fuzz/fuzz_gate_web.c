/*
 * fuzz_gate_web.c - libFuzzer target for keel-gate serve's request handling
 * (gate/web/routes.c): the method, path, headers and JSON body of a request,
 * answered from a gate over an empty repository and a store in memory, with
 * an admin token known (so that writes reach their body's parser).
 *
 * Input: lines "METHOD", "PATH", then header lines "Name: value" up to an
 * empty line, then the body (any bytes).  The first byte of the input, when
 * it is below 0x20, instead chooses the Authorization sent (bit 0: the admin
 * token, bit 1: a read token) and is dropped.  Properties, for any input:
 *   - the status is one the API documents (200, 201, 206, 400, 401, 403,
 *     404, 405, 409, 413, 416, 422), never a 5xx;
 *   - a JSON response parses (strictly) and an error is exactly
 *     {"error": "<non-empty>"}; a 405 names the methods it takes (Allow);
 *   - a path with a '.' or '..' segment is refused (400) before anything;
 *   - a refused write (4xx) leaves the store's changes, pauses and keys as
 *     they were.
 *
 *   tools/fuzz.sh gate_web     (FUZZ_SECONDS=300 for 5 minutes)
 */
#include "fuzz_gate.h"

#include <ftw.h>
#include <jansson.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include "web.h"

static gate *fz_gate;
static char fz_dir[] = "/tmp/keel-fuzz-web-XXXXXX";

static int fz_remove(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* At exit: the gate closed, its repository removed. */
static void fz_close(void)
{
    gate_close(fz_gate);
    (void)nftw(fz_dir, fz_remove, 16, FTW_DEPTH | FTW_PHYS);
}
static char fz_admin[GATE_TOKEN_MAX + 16], fz_read[GATE_TOKEN_MAX + 16];

/* A gate over a new empty repository, its store in memory (once, for the whole run). */
static void fz_open(void)
{
    if (mkdtemp(fz_dir) == NULL)
        abort();
    char repo[64];
    (void)snprintf(repo, sizeof(repo), "%s/repo.git", fz_dir);
    git_repository *r = NULL;
    if (git_repository_init(&r, repo, 1) != 0)
        abort();
    git_repository_free(r);
    gate_options o;
    gate_options_default(&o);
    o.repo = repo;
    o.state = ":memory:";
    o.target = "main";
    o.out = NULL;
    keel_status s = gate_open(&o, &fz_gate);
    if (!keel_ok(s))
        abort();
    (void)atexit(fz_close);
    char token[GATE_TOKEN_MAX], hash[GATE_TOKEN_HASH_HEX];
    gate_role roles[] = {GATE_ROLE_ADMIN, GATE_ROLE_READ};
    char *outs[] = {fz_admin, fz_read};
    for (int i = 0; i < 2; i++) {
        if (!keel_ok(gate_token_new(token)))
            abort();
        gate_sha256_hex(token, strlen(token), hash);
        if (!keel_ok(gate_store_token_add(gate_get_store(fz_gate), i == 0 ? "admin" : "reader",
                                          roles[i], hash, 1)))
            abort();
        (void)snprintf(outs[i], GATE_TOKEN_MAX + 16, "Bearer %s", token);
    }
}

/* What a refused request must not change: a digest of the store's tables. */
static long long fz_state(void)
{
    long long sum = 0;
    gate_change list[8];
    size_t n = 0;
    if (keel_ok(gate_store_changes(gate_get_store(fz_gate), NULL, -1, list, 8, &n)))
        for (size_t i = 0; i < n; i++)
            sum += list[i].id * 31 + list[i].priority * 7 + (long long)list[i].state;
    bool paused = false;
    if (keel_ok(gate_store_paused(gate_get_store(fz_gate), "main", &paused, NULL, 0, NULL)))
        sum += paused ? 1000003 : 0;
    return sum * 1000 + (long long)n;
}

/* The next line of data[*pos..size) as a NUL-ended copy (free it); NULL: none left. */
static char *fz_line(const uint8_t *data, size_t size, size_t *pos)
{
    if (*pos >= size)
        return NULL;
    const uint8_t *nl = memchr(data + *pos, '\n', size - *pos);
    size_t len = nl != NULL ? (size_t)(nl - (data + *pos)) : size - *pos;
    char *line = malloc(len + 1);
    if (line == NULL)
        abort();
    memcpy(line, data + *pos, len);
    line[len] = '\0';
    *pos += len + (nl != NULL ? 1 : 0);
    return line;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_begin(data, size);
    if (fz_gate == NULL)
        fz_open();
    size_t pos = 0;
    unsigned who = 0;
    if (size > 0 && data[0] < 0x20) {
        who = data[0];
        pos = 1;
    }
    char *method = fz_line(data, size, &pos);
    char *path = fz_line(data, size, &pos);
    gate_web_req req;
    memset(&req, 0, sizeof(req));
    req.method = method != NULL && method[0] != '\0' ? method : "GET";
    req.path = path != NULL && path[0] != '\0' ? path : "/api/v1/queue";
    char *lines[16];
    size_t nlines = 0;
    char *line;
    while (nlines < 16 && (line = fz_line(data, size, &pos)) != NULL) {
        if (line[0] == '\0') {
            free(line);
            break;
        }
        lines[nlines++] = line;
        char *colon = strchr(line, ':');
        if (colon == NULL)
            continue;
        *colon = '\0';
        const char *value = colon[1] == ' ' ? colon + 2 : colon + 1;
        if (strcmp(line, "Authorization") == 0)
            req.authorization = value;
        else if (strcmp(line, "Idempotency-Key") == 0)
            req.idempotency_key = value;
        else if (strcmp(line, "Last-Event-ID") == 0)
            req.last_event_id = value;
        else if (strcmp(line, "Range") == 0)
            req.range = value;
        else if (strcmp(line, "offset") == 0)
            req.q_offset = value;
        else if (strcmp(line, "limit") == 0)
            req.q_limit = value;
        else if (strcmp(line, "after") == 0)
            req.q_after = value;
        else if (strcmp(line, "name") == 0)
            req.q_name = value;
    }
    if ((who & 1) != 0)
        req.authorization = fz_admin;
    else if ((who & 2) != 0)
        req.authorization = fz_read;
    char *body = fuzz_copy(data + (pos < size ? pos : size), pos < size ? size - pos : 0);
    req.body = body;
    req.body_len = pos < size ? size - pos : 0;

    long long before = fz_state();
    gate_web_ctx ctx = {fz_gate, (who & 4) != 0};
    gate_web_resp resp;
    gate_web_route(&ctx, &req, &resp);

    static const int documented[] = {200, 201, 206, 400, 401, 403, 404, 405, 409, 413, 416, 422};
    bool known = false;
    for (size_t i = 0; i < sizeof(documented) / sizeof(documented[0]); i++)
        known = known || documented[i] == resp.status;
    FUZZ_CHECK(known, "a status the API documents, never a 5xx");
    if (resp.kind == GATE_WEB_JSON) {
        json_t *j = json_loadb(resp.body, resp.len, JSON_REJECT_DUPLICATES, NULL);
        FUZZ_CHECK(j != NULL, "a JSON response parses");
        if (resp.status >= 400) {
            const char *e = json_string_value(json_object_get(j, "error"));
            FUZZ_CHECK(json_object_size(j) == 1 && e != NULL && e[0] != '\0',
                       "an error is exactly {\"error\": \"...\"}");
        }
        json_decref(j);
    }
    if (resp.status == 405)
        FUZZ_CHECK(resp.allow != NULL, "a 405 says what the path takes");
    bool dotted = strstr(req.path, "/./") != NULL || strstr(req.path, "/../") != NULL ||
                  (strlen(req.path) >= 2 && strcmp(req.path + strlen(req.path) - 2, "/.") == 0) ||
                  (strlen(req.path) >= 3 && strcmp(req.path + strlen(req.path) - 3, "/..") == 0);
    if (dotted)
        FUZZ_CHECK(resp.status == 400, "a '.' or '..' path segment is refused");
    if (resp.status >= 400)
        FUZZ_CHECK(fz_state() == before, "a refused request changes nothing");
    gate_web_resp_free(&resp);
    free(body);
    for (size_t i = 0; i < nlines; i++)
        free(lines[i]);
    free(method);
    free(path);
    return 0;
}
