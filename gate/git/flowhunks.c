/*
 * flowhunks.c - recorded resolutions matched on a conflict's hunks, as git's
 * rerere does (flowmerge.h: gate_flow_hunks, gate_flow_hunks_apply): the
 * file with its conflict markers, each hunk's two sides in a fixed order
 * (the preimage, kept as a blob), the id of the hunks' text, and a recorded
 * resolution carried to a file whose other parts changed by a three-way
 * merge of the recorded preimage, the file now and the recorded result.
 */
#define _GNU_SOURCE 1
#include "flowmerge.h"

#include "git_int.h"
#include "heaps.h"
#include "remote.h"

#include <stdio.h>
#include <string.h>

#define GIT_HEAP KEEL_MODULE_REF(gate_git)

enum { MARKER = 7 }; /* git's marker size: "<<<<<<<", "=======", ">>>>>>>" */

/* A growing buffer on the module's heap. */
typedef struct text {
    char *p;
    size_t len, cap;
} text;

static keel_status put(text *t, const char *p, size_t n)
{
    if (t->p == NULL || t->len + n + 1 > t->cap) {
        size_t cap = t->cap > 0 ? t->cap : 4096;
        while (cap < t->len + n + 1)
            cap *= 2;
        void *mem = t->p;
        keel_status s = keel_heap_realloc(GIT_HEAP, &mem, cap);
        if (!keel_ok(s))
            return KEEL_CONTEXT(s, "a conflict's text of %zu bytes", t->len + n);
        t->p = (char *)mem;
        t->cap = cap;
    }
    if (p != NULL && n > 0) {
        memcpy(t->p + t->len, p, n);
        t->len += n;
    }
    t->p[t->len] = '\0';
    return KEEL_OK;
}

static void text_free(text *t)
{
    keel_heap_free(GIT_HEAP, t->p);
    memset(t, 0, sizeof(*t));
}

/* Blob `hex` as a merge input (its buffer borrowed from *b); "" is an empty side. */
static keel_status input_of(gate_repo *r, const char *hex, git_blob **b, git_merge_file_input *in,
                            bool *binary)
{
    *b = NULL;
    (void)git_merge_file_input_init(in, GIT_MERGE_FILE_INPUT_VERSION);
    in->ptr = "";
    in->size = 0;
    if (hex[0] == '\0')
        return KEEL_OK;
    git_oid id;
    keel_status s = gate_oid_parse(hex, &id);
    int rc = keel_ok(s) ? git_blob_lookup(b, r->repo, &id) : 0;
    if (rc != 0)
        return gate_git_error(rc, "cannot read blob %.12s", hex);
    if (!keel_ok(s))
        return s;
    *binary = *binary || git_blob_is_binary(*b);
    in->ptr = (const char *)git_blob_rawcontent(*b);
    in->size = (size_t)git_blob_rawsize(*b);
    return KEEL_OK;
}

/* Does the line at p (n bytes, its newline included) begin with marker character c? */
static bool marker(const char *p, size_t n, char c)
{
    if (n < MARKER + 1)
        return false;
    for (size_t i = 0; i < MARKER; i++)
        if (p[i] != c)
            return false;
    return p[MARKER] == ' ' || p[MARKER] == '\n' || p[MARKER] == '\r';
}

static int side_cmp(const text *a, const text *b)
{
    size_t n = a->len < b->len ? a->len : b->len;
    int c = n > 0 && a->p != NULL && b->p != NULL ? memcmp(a->p, b->p, n) : 0;
    return c != 0 ? c : (a->len > b->len) - (a->len < b->len);
}

/*
 * The merged text with markers (p, n) into the preimage (each hunk's sides
 * in a fixed order, bare markers) and the hunks' own text (each hunk's
 * sides, the smaller first, NUL after each): *hunks the number of hunks.
 */
static keel_status canonical(const char *p, size_t n, text *pre, text *own, size_t *hunks)
{
    text side[2] = {{NULL, 0, 0}, {NULL, 0, 0}};
    int in = -1; /* -1: outside a hunk; 0: ours; 1: theirs */
    keel_status s = KEEL_OK;
    *hunks = 0;
    for (size_t at = 0; keel_ok(s) && at < n;) {
        const char *nl = (const char *)memchr(p + at, '\n', n - at);
        size_t len = nl != NULL ? (size_t)(nl - (p + at)) + 1 : n - at;
        const char *line = p + at;
        at += len;
        if (in < 0 && marker(line, len, '<')) {
            in = 0;
            side[0].len = side[1].len = 0;
        } else if (in == 0 && marker(line, len, '=')) {
            in = 1;
        } else if (in == 1 && marker(line, len, '>')) {
            bool swap = side_cmp(&side[0], &side[1]) > 0;
            const text *a = &side[swap ? 1 : 0], *b = &side[swap ? 0 : 1];
            s = put(pre, "<<<<<<<\n", 8);
            if (keel_ok(s) && a->len > 0)
                s = put(pre, a->p, a->len);
            if (keel_ok(s))
                s = put(pre, "=======\n", 8);
            if (keel_ok(s) && b->len > 0)
                s = put(pre, b->p, b->len);
            if (keel_ok(s))
                s = put(pre, ">>>>>>>\n", 8);
            if (keel_ok(s) && a->len > 0)
                s = put(own, a->p, a->len);
            if (keel_ok(s))
                s = put(own, "", 1);
            if (keel_ok(s) && b->len > 0)
                s = put(own, b->p, b->len);
            if (keel_ok(s))
                s = put(own, "", 1);
            (*hunks)++;
            in = -1;
        } else {
            s = put(in < 0 ? pre : &side[in], line, len);
        }
    }
    if (keel_ok(s) && in >= 0) /* a hunk that never ended: not one to match */
        *hunks = 0;
    text_free(&side[0]);
    text_free(&side[1]);
    return s;
}

/*
 * git's merge of one file's three versions (blob ids; "" an empty side) into
 * *res (markers where it conflicts); *binary (nothing merged) when one is.
 * The caller frees res and the blobs.
 */
static keel_status merge3(gate_repo *r, const char *const hex[3], git_blob *blobs[3],
                          git_merge_file_result *res, bool *binary, const char *path)
{
    git_merge_file_input in[3];
    memset(res, 0, sizeof(*res));
    *binary = false;
    keel_status s = KEEL_OK;
    for (size_t i = 0; keel_ok(s) && i < 3; i++)
        s = input_of(r, hex[i], &blobs[i], &in[i], binary);
    git_merge_file_options opts;
    (void)git_merge_file_options_init(&opts, GIT_MERGE_FILE_OPTIONS_VERSION);
    int rc = keel_ok(s) && !*binary ? git_merge_file(res, &in[0], &in[1], &in[2], &opts) : 0;
    if (rc != 0)
        s = gate_git_error(rc, "cannot merge the versions of '%s'", path);
    return s;
}

static void merge3_free(git_blob *blobs[3], git_merge_file_result *res)
{
    git_merge_file_result_free(res);
    for (size_t i = 0; i < 3; i++)
        git_blob_free(blobs[i]);
}

keel_status gate_flow_hunks(gate_repo *r, gate_flow_resolution *k)
{
    KEEL_ASSERT(r != NULL && k != NULL);
    k->hunks[0] = k->preimage[0] = '\0';
    if (k->ours[0] == '\0' || k->theirs[0] == '\0')
        return KEEL_OK; /* a side deleted the file: no hunks */
    git_blob *blobs[3] = {NULL, NULL, NULL};
    git_merge_file_result res;
    bool binary = false;
    const char *const hex[3] = {k->base, k->ours, k->theirs};
    keel_status s = merge3(r, hex, blobs, &res, &binary, k->path);
    text pre = {NULL, 0, 0}, own = {NULL, 0, 0};
    size_t hunks = 0;
    if (keel_ok(s) && !binary && res.ptr != NULL && !res.automergeable)
        s = canonical(res.ptr, res.len, &pre, &own, &hunks);
    if (keel_ok(s) && hunks > 0) {
        git_oid id, pre_id;
        int rc = git_odb_hash(&id, own.p, own.len, GIT_OBJECT_BLOB);
        if (rc == 0)
            rc = git_blob_create_from_buffer(&pre_id, r->repo, pre.p, pre.len);
        if (rc == 0) {
            (void)git_oid_tostr(k->hunks, sizeof(k->hunks), &id);
            (void)git_oid_tostr(k->preimage, sizeof(k->preimage), &pre_id);
        } else {
            s = gate_git_error(rc, "cannot keep the conflict of '%s'", k->path);
        }
    }
    text_free(&pre);
    text_free(&own);
    merge3_free(blobs, &res);
    return s;
}

keel_status gate_flow_hunks_apply(gate_repo *r, const char *path, const char *recorded,
                                  const char *now, const char *result, char out[GATE_HEX],
                                  bool *clean)
{
    KEEL_ASSERT(r != NULL && path != NULL && recorded != NULL && now != NULL && result != NULL &&
                out != NULL && clean != NULL);
    *clean = false;
    out[0] = '\0';
    if (recorded[0] == '\0' || now[0] == '\0' || result[0] == '\0')
        return KEEL_OK; /* a deletion is matched on its blobs only */
    git_blob *blobs[3] = {NULL, NULL, NULL};
    git_merge_file_result res;
    bool binary = false;
    const char *const hex[3] = {recorded, now, result};
    keel_status s = merge3(r, hex, blobs, &res, &binary, path);
    if (keel_ok(s) && !binary && res.automergeable) {
        git_oid id;
        int rc = git_blob_create_from_buffer(&id, r->repo, res.ptr != NULL ? res.ptr : "", res.len);
        if (rc == 0) {
            (void)git_oid_tostr(out, GATE_HEX, &id);
            *clean = true;
        } else {
            s = gate_git_error(rc, "cannot carry the recorded resolution of '%s' over", path);
        }
    }
    merge3_free(blobs, &res);
    return s;
}
