/*
 * git.c - keel-gate's git operations on libgit2.
 *
 * Every use of libgit2 holds a reference on it (git_libgit2_init): a
 * repository for its lifetime, a branch-name check for its call.  So none is
 * left when the last repository closes, and gate_git's exit can shut libgit2
 * down and take its memory back off the module's heap (heaps.h).
 */
#define _GNU_SOURCE 1
#include "git.h"

#include "git_int.h"
#include "heaps.h"
#include "remote.h"

#include <errno.h>
#include <stdarg.h>
#include <git2.h>
#include <git2/sys/repository.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

KEEL_CODESPACE_DEFINE(gate_codes, "gate", GATE_CODES)

#define GIT_HEAP KEEL_MODULE_REF(gate_git)

keel_status gate_git_error(int rc, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    const git_error *e = git_error_last();
    /*
     * An allocation libgit2 asked for failed: that is the cause, whatever it
     * says (it may say "not found" of an object it had no memory to read).
     */
    keel_status heap = gate_heaps_take_failure(); /* which heap, and why */
    if (!keel_ok(heap))
        return keel_status_with_int(KEEL_CONTEXT(heap, "%s", what), "git_error", rc);
    return keel_status_with_int(
        keel_status_with_int(
            KEEL_ERR(KEEL_E_IO, "%s: %s", what,
                     e != NULL && e->message != NULL ? e->message : "libgit2 error"),
            "git_error", rc),
        "git_class", e != NULL ? e->klass : 0);
}

/* A reference on libgit2 (see the top of the file). */
static keel_status libgit2_hold(void)
{
    if (git_libgit2_init() < 0)
        return KEEL_ERR(KEEL_E_IO, "cannot initialise libgit2");
    return KEEL_OK;
}

static void libgit2_release(void)
{
    (void)git_libgit2_shutdown(); /* the users left: none is an error */
}

/* A record holding copies of `path` and `url` (NULL: local), with a reference on libgit2. */
static keel_status repo_new(const char *path, const char *url, gate_repo **out)
{
    size_t plen = strlen(path) + 1, ulen = url != NULL ? strlen(url) + 1 : 0;
    void *mem = NULL;
    keel_status s = keel_heap_alloc(GIT_HEAP, sizeof(gate_repo) + plen + ulen, &mem);
    if (!keel_ok(s))
        return s;
    gate_repo *r = (gate_repo *)mem;
    memset(r, 0, sizeof(*r));
    r->path = (char *)(r + 1);
    memcpy(r->path, path, plen);
    if (url != NULL) {
        r->url = r->path + plen;
        memcpy(r->url, url, ulen);
    }
    s = libgit2_hold();
    if (!keel_ok(s)) {
        keel_heap_free(GIT_HEAP, r);
        return s;
    }
    *out = r;
    return KEEL_OK;
}

/*
 * An empty index in memory instead of the repository's: work trees are
 * checked out against trees only, never against the index of a user's
 * working copy (which could make a file left by a job look tracked), and
 * nothing the gate does writes an index.
 */
static int use_empty_index(git_repository *repo)
{
    git_index *index = NULL;
    int rc = git_index_new(&index);
    if (rc == 0)
        rc = git_repository_set_index(repo, index);
    git_index_free(index);
    return rc;
}

keel_status gate_repo_open(const char *path, gate_repo **out)
{
    KEEL_ASSERT(path != NULL && out != NULL);
    *out = NULL;
    gate_repo *r = NULL;
    keel_status s = repo_new(path, NULL, &r);
    if (!keel_ok(s))
        return KEEL_CONTEXT(s, "opening repository '%s'", path);
    int rc = git_repository_open_ext(&r->repo, path, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL);
    if (rc == 0)
        rc = use_empty_index(r->repo);
    if (rc != 0) {
        s = keel_status_with_str(gate_git_error(rc, "cannot open repository '%s'", path),
                                 "repository", path);
        gate_repo_close(r);
        return s;
    }
    *out = r;
    return KEEL_OK;
}

keel_status gate_repo_open_remote(const char *url, const char *mirror, gate_repo **out)
{
    KEEL_ASSERT(url != NULL && out != NULL);
    *out = NULL;
    char shown[512], place[1024];
    gate_remote_redact(url, shown, sizeof(shown));
    keel_status s = gate_remote_check_url(url);
    if (keel_ok(s) && mirror == NULL) {
        s = gate_remote_default_mirror(url, place, sizeof(place));
        mirror = place;
    }
    gate_repo *r = NULL;
    if (keel_ok(s))
        s = repo_new(mirror, url, &r);
    if (keel_ok(s))
        s = gate_remote_open_mirror(url, mirror, &r->repo);
    if (keel_ok(s)) {
        int rc = use_empty_index(r->repo);
        if (rc != 0)
            s = gate_git_error(rc, "cannot open the mirror '%s'", mirror);
    }
    if (!keel_ok(s)) {
        gate_repo_close(r);
        return KEEL_CONTEXT(s, "opening remote repository '%s'", shown);
    }
    *out = r;
    return KEEL_OK;
}

bool gate_repo_is_remote(const gate_repo *r)
{
    KEEL_ASSERT(r != NULL);
    return r->url != NULL;
}

const char *gate_repo_dir(const gate_repo *r)
{
    KEEL_ASSERT(r != NULL);
    return r->path;
}

void gate_repo_close(gate_repo *r)
{
    if (r == NULL)
        return;
    git_repository_free(r->repo);
    keel_heap_free(GIT_HEAP, r); /* its path and URL too: one block */
    libgit2_release();
}

/* A component's rule (git check-ref-format): `comp` of `len` bytes, NULL when it keeps them. */
static const char *component_rule(const char *comp, size_t len)
{
    if (len == 0)
        return "it has '//' (an empty component)";
    if (comp[0] == '.')
        return "a component starts with '.' (git hides such names)";
    if (len >= 5 && strncmp(comp + len - 5, ".lock", 5) == 0)
        return "a component ends with '.lock' (git's lock files are named so)";
    return NULL;
}

/*
 * The character at `p` as a reason names it: a control character as '\x0a' (a
 * C0 control or DEL), any other byte with the continuation bytes that follow it
 * (a UTF-8 character whole: 'é', not '?'; whoever prints it escapes what a
 * terminal would act on).  `out` holds 8 bytes.
 */
static const char *shown_character(const char *p, char out[8])
{
    unsigned char c = (unsigned char)*p;
    if (c < 0x20 || c == 0x7f) {
        (void)snprintf(out, 8, "\\x%02x", c);
        return out;
    }
    size_t n = 1;
    while (c >= 0x80 && n < 4 && ((unsigned char)p[n] & 0xc0) == 0x80)
        n++;
    memcpy(out, p, n);
    out[n] = '\0';
    return out;
}

bool gate_branch_why(const char *branch, char *why, size_t size)
{
    KEEL_ASSERT(why != NULL && size > 0);
    why[0] = '\0';
    const char *b = branch != NULL ? branch : "";
    size_t len = strlen(b);
    const char *rule = NULL;
    if (len == 0)
        rule = "it is empty";
    else if (len > GATE_BRANCH_LEN_MAX) {
        (void)snprintf(why, size, "too long (%zu bytes; keel-gate takes at most %d)", len,
                       (int)GATE_BRANCH_LEN_MAX);
        return true;
    }
    /*
     * Stricter than git: only characters that mean nothing to a shell, so a
     * name can appear in logs, hooks and mail without quoting surprises.
     */
    char shown[8];
    for (const char *p = b; rule == NULL && *p != '\0'; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-' || c == '+' || c == '/')) {
            (void)snprintf(why, size,
                           "character '%s' is not allowed (letters, digits, '.', '_', '-', '+' "
                           "and '/' are)",
                           shown_character(p, shown));
            return true;
        }
    }
    if (rule == NULL && b[0] == '-')
        rule = "it starts with '-' (git would read it as an option)";
    else if (rule == NULL && strcmp(b, "HEAD") == 0)
        rule = "'HEAD' is git's name for the commit checked out";
    else if (rule == NULL && strncmp(b, "refs/", 5) == 0)
        rule = "it starts with 'refs/' (a branch is named without it: 'refs/heads/' is added)";
    else if (rule == NULL && strstr(b, "..") != NULL)
        rule = "it has '..' (git's notation for a range of commits)";
    else if (rule == NULL && b[len - 1] == '.')
        rule = "it ends with '.'";
    else if (rule == NULL && b[0] == '/')
        rule = "it starts with '/'";
    else if (rule == NULL && b[len - 1] == '/')
        rule = "it ends with '/'";
    for (const char *p = b; rule == NULL;) {
        size_t n = strcspn(p, "/");
        rule = component_rule(p, n);
        if (p[n] == '\0')
            break;
        p += n + 1;
    }
    if (rule != NULL) /* git's rules, the ones above the character set's */
        (void)snprintf(why, size, "%s (git check-ref-format)", rule);
    return rule != NULL;
}

keel_status gate_branch_check(const char *branch)
{
    char why[160];
    if (gate_branch_why(branch, why, sizeof(why)))
        return keel_status_with_str(
            KEEL_ERR_IN(&gate_codes, GATE_E_BAD_REF, "'%.*s%s' is not a valid branch name: %s",
                        branch != NULL && strlen(branch) > 64 ? 64 : 300,
                        branch != NULL ? branch : "",
                        branch != NULL && strlen(branch) > 64 ? "..." : "", why),
            "branch", branch != NULL ? branch : "");
    int valid = 0; /* and libgit2's own check, whatever the rules above missed */
    keel_status s = libgit2_hold();
    if (!keel_ok(s))
        return s;
    int rc = git_branch_name_is_valid(&valid, branch);
    if (rc != 0)
        s = gate_git_error(rc, "cannot check the branch name '%s'", branch);
    libgit2_release();
    if (!keel_ok(s))
        return s;
    if (!valid)
        return keel_status_with_str(
            KEEL_ERR_IN(&gate_codes, GATE_E_BAD_REF, "'%s' is not a valid branch name", branch),
            "branch", branch);
    return KEEL_OK;
}

keel_status gate_oid_parse(const char *hex, git_oid *oid)
{
    if (hex == NULL || strlen(hex) != 40 || git_oid_fromstr(oid, hex) != 0)
        return KEEL_ERR(KEEL_E_INVAL, "'%s' is not a commit id", hex != NULL ? hex : "(null)");
    return KEEL_OK;
}

keel_status gate_branch_head(gate_repo *r, const char *branch, char hex[GATE_HEX])
{
    KEEL_ASSERT(r != NULL && hex != NULL);
    keel_status s = gate_branch_check(branch);
    if (!keel_ok(s))
        return s;
    if (r->url != NULL) {
        git_oid oid;
        s = gate_remote_fetch_branch(r->repo, r->url, branch, &oid);
        if (keel_ok(s))
            (void)git_oid_tostr(hex, GATE_HEX, &oid);
        return s;
    }
    return gate_branch_known(r, branch, hex);
}

keel_status gate_branch_known(gate_repo *r, const char *branch, char hex[GATE_HEX])
{
    KEEL_ASSERT(r != NULL && hex != NULL);
    keel_status s = gate_branch_check(branch);
    if (!keel_ok(s))
        return s;
    git_oid oid;
    char refname[512];
    (void)snprintf(refname, sizeof(refname), "refs/heads/%s", branch);
    int rc = git_reference_name_to_id(&oid, r->repo, refname);
    if (rc == GIT_ENOTFOUND)
        return keel_status_with_str(
            KEEL_ERR(KEEL_E_NOTFOUND, "no branch '%s' in '%s'", branch, r->path), "branch", branch);
    if (rc != 0)
        return gate_git_error(rc, "cannot resolve branch '%s'", branch);
    (void)git_oid_tostr(hex, GATE_HEX, &oid);
    return KEEL_OK;
}

/* The conflicting paths of an index, comma separated, into buf. */
static void conflict_paths(git_index *index, char *buf, size_t size)
{
    size_t pos = 0;
    buf[0] = '\0';
    git_index_conflict_iterator *it = NULL;
    if (git_index_conflict_iterator_new(&it, index) != 0)
        return;
    const git_index_entry *ancestor, *ours, *theirs;
    while (git_index_conflict_next(&ancestor, &ours, &theirs, it) == 0) {
        const git_index_entry *e = ours != NULL ? ours : (theirs != NULL ? theirs : ancestor);
        if (e == NULL)
            continue;
        int n =
            snprintf(buf + pos, size > pos ? size - pos : 0, "%s%s", pos > 0 ? "," : "", e->path);
        if (n > 0)
            pos += (size_t)n;
        if (pos >= size)
            break;
    }
    git_index_conflict_iterator_free(it);
}

/* Merge change `index`, `theirs`, onto `ours`; the new merge commit goes to *result. */
static keel_status merge_one(gate_repo *r, git_odb *odb, git_commit *ours, git_commit *theirs,
                             size_t index, git_oid *result)
{
    git_index *merged = NULL;
    git_tree *tree = NULL;
    git_signature *sig = NULL;
    keel_status s = KEEL_OK;
    char hex[GATE_HEX];
    (void)git_oid_tostr(hex, sizeof(hex), git_commit_id(theirs));
    int rc = git_merge_commits(&merged, r->repo, ours, theirs, NULL);
    if (rc != 0)
        s = gate_change_merge_error(r, odb, rc, git_commit_id(ours), index, hex, "merge");
    if (keel_ok(s) && git_index_has_conflicts(merged)) {
        char paths[1024];
        conflict_paths(merged, paths, sizeof(paths));
        char onto[GATE_HEX];
        (void)git_oid_tostr(onto, sizeof(onto), git_commit_id(ours));
        s = keel_status_with_str(
            keel_status_with_str(
                keel_status_with_uint(KEEL_ERR_IN(&gate_codes, GATE_E_CONFLICT,
                                                  "commit %.12s does not merge: conflicts in %s",
                                                  hex, paths),
                                      "index", (unsigned long long)index),
                "paths", paths),
            "onto", onto);
    }
    git_oid tree_id;
    if (keel_ok(s) && (rc = git_index_write_tree_to(&tree_id, merged, r->repo)) != 0)
        s = gate_change_merge_error(r, odb, rc, git_commit_id(ours), index, hex,
                                    "write the merged tree");
    if (keel_ok(s) && (rc = git_tree_lookup(&tree, r->repo, &tree_id)) != 0)
        s = gate_git_error(rc, "cannot read the merged tree");
    if (keel_ok(s) && (rc = git_signature_now(&sig, "keel-gate", "keel-gate@localhost")) != 0)
        s = gate_git_error(rc, "cannot make a signature");
    if (keel_ok(s)) {
        const git_commit *parents[2] = {ours, theirs};
        char message[128];
        (void)snprintf(message, sizeof(message), "keel-gate: merge %.12s\n", hex);
        rc = git_commit_create(result, r->repo, NULL, sig, sig, NULL, message, tree, 2, parents);
        if (rc != 0)
            s = gate_git_error(rc, "cannot create the merge commit");
    }
    git_signature_free(sig);
    git_tree_free(tree);
    git_index_free(merged);
    return s;
}

/*
 * Change `index` (its head `hex`) onto the commit `onto`: its commit and
 * what its tree brings checked, then merged (*result).
 */
static keel_status merge_change(gate_repo *r, git_odb *odb, const git_oid *onto, const char *hex,
                                size_t index, git_oid *result)
{
    git_commit *ours = NULL, *theirs = NULL;
    git_tree *before = NULL;
    git_oid head, tag;
    keel_status s = gate_oid_parse(hex, &head);
    if (!keel_ok(s)) { /* a store's row damaged, or from before heads were checked: its own */
        keel_status_free(s);
        s = keel_status_with_uint(
            KEEL_ERR_IN(&gate_codes, GATE_E_BAD_CHANGE,
                        "the head of the change '%.64s' is not a commit id (40 hex digits)",
                        hex != NULL ? hex : ""),
            "index", (unsigned long long)index);
    }
    int rc = 0;
    if (keel_ok(s) && ((rc = git_commit_lookup(&ours, r->repo, onto)) != 0 ||
                       (rc = git_commit_tree(&before, ours)) != 0))
        s = gate_git_error(rc, "cannot read the commit to merge change %zu onto", index);
    if (keel_ok(s))
        s = gate_change_commit(r, &head, "the head of the change", index, &theirs, &tag);
    if (keel_ok(s) && !git_oid_is_zero(&tag)) /* queued before tags were peeled at submission */
        s = keel_status_with_uint(
            KEEL_ERR_IN(&gate_codes, GATE_E_BAD_CHANGE,
                        "the head of the change is an annotated tag, not a commit (object %s)",
                        hex),
            "index", (unsigned long long)index);
    if (keel_ok(s))
        s = gate_change_tree(r, odb, before, theirs, index, hex);
    if (keel_ok(s))
        s = gate_change_history(r, odb, onto, git_commit_id(theirs), index, hex);
    if (keel_ok(s))
        s = merge_one(r, odb, ours, theirs, index, result);
    git_tree_free(before);
    git_commit_free(theirs);
    git_commit_free(ours);
    return s;
}

keel_status gate_merge(gate_repo *r, const char *base, const char *const *heads, size_t n,
                       char merge[GATE_HEX])
{
    KEEL_ASSERT(r != NULL && merge != NULL && (heads != NULL || n == 0));
    gate_change_forget_heap();
    git_oid cur;
    keel_status s = gate_oid_parse(base, &cur);
    git_odb *odb = NULL;
    int rc = keel_ok(s) ? git_repository_odb(&odb, r->repo) : 0;
    if (rc != 0)
        s = gate_git_error(rc, "cannot open the objects of '%s'", r->path);
    for (size_t i = 0; keel_ok(s) && i < n; i++) {
        git_oid next;
        s = merge_change(r, odb, &cur, heads[i], i, &next);
        if (keel_ok(s))
            cur = next;
    }
    git_odb_free(odb);
    if (keel_ok(s))
        (void)git_oid_tostr(merge, GATE_HEX, &cur);
    return s;
}

keel_status gate_merge_relabel(gate_repo *r, const char *base, const char *onto, const char *merge,
                               const char *const *messages, size_t n, char out[GATE_HEX])
{
    KEEL_ASSERT(r != NULL && messages != NULL && out != NULL && n > 0);
    void *mem = NULL;
    keel_status s = keel_heap_calloc(GIT_HEAP, n, sizeof(git_commit *), &mem);
    if (!keel_ok(s))
        return KEEL_CONTEXT(s, "writing the messages of %zu merges", n);
    git_commit **chain = (git_commit **)mem; /* newest first */
    git_oid at, want, prev;
    s = gate_oid_parse(merge, &at);
    if (keel_ok(s))
        s = gate_oid_parse(base, &want);
    if (keel_ok(s))
        s = gate_oid_parse(onto, &prev);
    for (size_t i = 0; keel_ok(s) && i < n; i++) {
        int rc = git_commit_lookup(&chain[i], r->repo, &at);
        if (rc != 0)
            s = gate_git_error(rc, "cannot read merge %zu of %.12s", i, merge);
        else if (git_commit_parentcount(chain[i]) != 2)
            s = KEEL_ERR(KEEL_E_INTERNAL, "%.12s is not one of %zu merges on %.12s", merge, n,
                         base);
        else
            git_oid_cpy(&at, git_commit_parent_id(chain[i], 0));
    }
    if (keel_ok(s) && !git_oid_equal(&at, &want))
        s = KEEL_ERR(KEEL_E_INTERNAL, "the %zu merges of %.12s do not start at %.12s", n, merge,
                     base);
    for (size_t i = n; keel_ok(s) && i-- > 0;) { /* oldest first, each onto the one before */
        git_commit *first = NULL, *second = NULL;
        git_tree *tree = NULL;
        int rc = git_commit_lookup(&first, r->repo, &prev);
        if (rc == 0)
            rc = git_commit_parent(&second, chain[i], 1);
        if (rc == 0)
            rc = git_commit_tree(&tree, chain[i]);
        if (rc == 0) {
            const git_commit *parents[2] = {first, second};
            rc = git_commit_create(&prev, r->repo, NULL, git_commit_author(chain[i]),
                                   git_commit_committer(chain[i]), NULL, messages[n - 1 - i], tree,
                                   2, parents);
        }
        if (rc != 0)
            s = gate_git_error(rc, "cannot write the message of merge %zu of %.12s", n - 1 - i,
                               merge);
        git_tree_free(tree);
        git_commit_free(second);
        git_commit_free(first);
    }
    for (size_t i = 0; i < n; i++)
        git_commit_free(chain[i]);
    keel_heap_free(GIT_HEAP, chain);
    if (keel_ok(s))
        (void)git_oid_tostr(out, GATE_HEX, &prev);
    return s;
}

keel_status gate_commit_subject(gate_repo *r, const char *hex, char *buf, size_t size)
{
    KEEL_ASSERT(r != NULL && buf != NULL && size > 0);
    buf[0] = '\0';
    git_oid oid;
    keel_status s = gate_oid_parse(hex, &oid);
    git_commit *c = NULL;
    int rc = keel_ok(s) ? git_commit_lookup(&c, r->repo, &oid) : 0;
    if (rc != 0)
        s = gate_git_error(rc, "cannot read commit %.12s", hex);
    const char *summary = keel_ok(s) ? git_commit_summary(c) : NULL;
    if (keel_ok(s))
        (void)snprintf(buf, size, "%s", summary != NULL ? summary : "");
    git_commit_free(c);
    return s;
}

/* The tree of the commit `hex` (to free with git_tree_free). */
static keel_status commit_tree(gate_repo *r, const char *hex, git_tree **tree)
{
    *tree = NULL;
    git_oid oid;
    keel_status s = gate_oid_parse(hex, &oid);
    if (!keel_ok(s))
        return s;
    git_commit *c = NULL;
    int rc = git_commit_lookup(&c, r->repo, &oid);
    if (rc == 0)
        rc = git_commit_tree(tree, c);
    git_commit_free(c);
    if (rc != 0)
        return gate_git_error(rc, "cannot read commit %s", hex);
    return KEEL_OK;
}

static keel_status checkout_tree(gate_repo *r, git_tree *tree, git_tree *baseline,
                                 const char *commit, const char *dir)
{
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return KEEL_ERR_SYS(errno, "cannot create work tree '%s'", dir);
    git_checkout_options opts;
    (void)git_checkout_options_init(&opts, GIT_CHECKOUT_OPTIONS_VERSION);
    /*
     * FORCE: whatever differs is written; REMOVE_*: files in neither tree go
     * (the repository's index is an empty one in memory, gate_repo_open, so
     * nothing else counts as tracked; NO_REFRESH: it has no file to be read
     * again from).  libgit2 cannot tell a file a job modified from the
     * baseline's here (with a target directory it hashes the repository's
     * own work tree), nor see a `.git` or a FIFO: gate_worktree_checkout
     * removes all that first.
     */
    opts.checkout_strategy = GIT_CHECKOUT_FORCE | GIT_CHECKOUT_DONT_UPDATE_INDEX |
                             GIT_CHECKOUT_NO_REFRESH | GIT_CHECKOUT_REMOVE_UNTRACKED |
                             GIT_CHECKOUT_REMOVE_IGNORED;
    opts.target_directory = dir;
    opts.baseline = baseline;
    int rc = git_checkout_tree(r->repo, (const git_object *)tree, &opts);
    if (rc != 0)
        return gate_git_error(rc, "cannot write the tree of %s into '%s'", commit, dir);
    return KEEL_OK;
}

keel_status gate_checkout(gate_repo *r, const char *commit, const char *held, const char *dir)
{
    KEEL_ASSERT(r != NULL && dir != NULL);
    git_tree *tree = NULL, *baseline = NULL;
    keel_status s = commit_tree(r, commit, &tree);
    if (keel_ok(s) && held != NULL)
        s = commit_tree(r, held, &baseline);
    if (keel_ok(s))
        s = checkout_tree(r, tree, baseline, commit, dir);
    git_tree_free(baseline);
    git_tree_free(tree);
    return s;
}

keel_status gate_read_file(gate_repo *r, const char *commit, const char *path, char **data,
                           size_t *len)
{
    KEEL_ASSERT(r != NULL && path != NULL && data != NULL && len != NULL);
    *data = NULL;
    *len = 0;
    git_tree *tree = NULL;
    git_tree_entry *entry = NULL;
    git_blob *blob = NULL;
    int rc = 0;
    keel_status s = commit_tree(r, commit, &tree);
    if (keel_ok(s)) {
        rc = git_tree_entry_bypath(&entry, tree, path);
        if (rc == GIT_ENOTFOUND)
            s = keel_status_with_str(
                KEEL_ERR(KEEL_E_NOTFOUND, "no file '%s' in commit %.12s", path, commit), "path",
                path);
        else if (rc != 0)
            s = gate_git_error(rc, "cannot find '%s' in %s", path, commit);
    }
    if (keel_ok(s) && git_tree_entry_type(entry) != GIT_OBJECT_BLOB)
        s = KEEL_ERR(KEEL_E_INVAL, "'%s' in commit %.12s is not a file", path, commit);
    if (keel_ok(s) && (rc = git_blob_lookup(&blob, r->repo, git_tree_entry_id(entry))) != 0)
        s = gate_git_error(rc, "cannot read '%s'", path);
    if (keel_ok(s)) {
        size_t size = (size_t)git_blob_rawsize(blob);
        void *mem = NULL;
        s = keel_heap_alloc(GIT_HEAP, size + 1, &mem);
        if (!keel_ok(s)) {
            s = KEEL_CONTEXT(s, "reading '%s'", path);
        } else {
            char *copy = (char *)mem;
            memcpy(copy, git_blob_rawcontent(blob), size);
            copy[size] = '\0';
            *data = copy;
            *len = size;
        }
    }
    git_blob_free(blob);
    git_tree_entry_free(entry);
    git_tree_free(tree);
    return s;
}

void gate_file_free(char *data)
{
    keel_heap_free(GIT_HEAP, data);
}

keel_status gate_branch_cas(gate_repo *r, const char *branch, const char *expected,
                            const char *next, const char *message)
{
    KEEL_ASSERT(r != NULL);
    keel_status s = gate_branch_check(branch);
    git_oid old_oid, new_oid;
    if (keel_ok(s))
        s = gate_oid_parse(expected, &old_oid);
    if (keel_ok(s))
        s = gate_oid_parse(next, &new_oid);
    if (!keel_ok(s))
        return s;
    if (r->url != NULL)
        return gate_remote_push_cas(r->repo, r->url, branch, &old_oid, &new_oid);
    char refname[512];
    (void)snprintf(refname, sizeof(refname), "refs/heads/%s", branch);
    git_reference *ref = NULL;
    int rc = git_reference_create_matching(&ref, r->repo, refname, &new_oid, 1, &old_oid,
                                           message != NULL ? message : "keel-gate: land");
    git_reference_free(ref);
    ref = NULL;
    bool cleared = false;
    if (rc == GIT_ELOCKED) { /* left by a gate killed in its own update here? */
        char lock[1200];
        (void)snprintf(lock, sizeof(lock), "%s%s.lock", git_repository_path(r->repo), refname);
        s = gate_stale_lock_clear(lock, &cleared);
        if (!keel_ok(s))
            return s;
    }
    if (cleared)
        rc = git_reference_create_matching(&ref, r->repo, refname, &new_oid, 1, &old_oid,
                                           message != NULL ? message : "keel-gate: land");
    git_reference_free(ref);
    if (rc == GIT_EMODIFIED || rc == GIT_ENOTFOUND) {
        char now[GATE_HEX] = "";
        keel_status h = gate_branch_head(r, branch, now);
        if (!keel_ok(h))
            keel_status_ignore(h, "the head is only for the message");
        return keel_status_with_str(
            keel_status_with_str(KEEL_ERR_IN(&gate_codes, GATE_E_MOVED,
                                             "branch '%s' moved from %.12s to %.12s: not updated",
                                             branch, expected, now[0] != '\0' ? now : "(gone)"),
                                 "expected", expected),
            "actual", now);
    }
    if (rc == GIT_ELOCKED)
        /* a lock file of git's beside the ref: a push under way, or one killed while it ran */
        return keel_status_with_str(
            KEEL_ERR(KEEL_E_BUSY,
                     "branch '%s' of '%s' is locked ('%s.lock' exists): another git process is "
                     "updating it, or one was killed while it did (keel-gate removes it once it "
                     "is 10 s old)",
                     branch, r->path, refname),
            "branch", branch);
    if (rc != 0)
        return gate_git_error(rc, "cannot update branch '%s'", branch);
    return KEEL_OK;
}

const char *gate_repo_git_dir(const gate_repo *r)
{
    KEEL_ASSERT(r != NULL);
    return git_repository_path(r->repo);
}

const char *gate_repo_workdir(const gate_repo *r)
{
    KEEL_ASSERT(r != NULL);
    return r->url != NULL ? NULL : git_repository_workdir(r->repo);
}

static keel_status local_head_branch(gate_repo *r, char *name, size_t size);

keel_status gate_repo_head_branch(gate_repo *r, char *name, size_t size)
{
    KEEL_ASSERT(r != NULL && name != NULL && size > 0);
    if (r->url != NULL) {
        keel_status s = gate_remote_head_branch(r->repo, r->url, name, size);
        if (keel_ok(s)) {
            /* the mirror's HEAD follows, for when the remote cannot be reached */
            char ref[512];
            (void)snprintf(ref, sizeof(ref), "refs/heads/%s", name);
            int lock = -1;
            keel_status l = gate_remote_mirror_lock(r->repo, &lock);
            int rc = keel_ok(l) ? git_reference_symbolic_create(NULL, r->repo, "HEAD", ref, 1,
                                                                "keel-gate: the remote's HEAD")
                                : 0;
            gate_remote_mirror_unlock(lock);
            if (!keel_ok(l))
                keel_status_ignore(l, "only the fallback for an unreachable remote");
            if (rc != 0)
                keel_status_ignore(gate_git_error(rc, "cannot set HEAD of '%s'", r->path),
                                   "only the fallback for an unreachable remote");
            return s;
        }
        if (!KEEL_IS(s, KEEL_E_IO))
            return s;
        /* unreachable: the branch the remote's HEAD named when last reached, if it was */
        keel_status m = local_head_branch(r, name, size);
        if (keel_ok(m)) {
            char known[GATE_HEX];
            m = gate_branch_known(r, name, known);
        }
        if (!keel_ok(m)) {
            keel_status_ignore(m, "the remote's own error says more");
            return s;
        }
        keel_status_ignore(s, "the mirror remembers the remote's HEAD");
        return KEEL_OK;
    }
    return local_head_branch(r, name, size);
}

static keel_status local_head_branch(gate_repo *r, char *name, size_t size)
{
    git_reference *head = NULL;
    int rc = git_reference_lookup(&head, r->repo, "HEAD");
    if (rc != 0)
        return gate_git_error(rc, "cannot read HEAD of '%s'", r->path);
    const char *target = git_reference_symbolic_target(head);
    keel_status s = KEEL_OK;
    if (target == NULL || strncmp(target, "refs/heads/", 11) != 0)
        s = KEEL_ERR(KEEL_E_NOTFOUND, "HEAD of '%s' names no branch", r->path);
    else if (strlen(target + 11) >= size)
        s = KEEL_ERR(KEEL_E_RANGE, "HEAD of '%s' names a branch too long", r->path);
    else
        (void)snprintf(name, size, "%s", target + 11);
    git_reference_free(head);
    return s;
}

/* ---- changes submitted by a push ---------------------------------------------------------- */

typedef struct pushed_call {
    gate_pushed_fn fn;
    void *ctx;
} pushed_call;

static keel_status pushed_one(const char *ref, const git_oid *oid, void *ctx)
{
    const pushed_call *call = (const pushed_call *)ctx;
    char hex[GATE_HEX];
    (void)git_oid_tostr(hex, sizeof(hex), oid);
    return call->fn(ref + strlen(GATE_SUBMIT_PREFIX), hex, call->ctx);
}

typedef struct pushed_ref {
    char *ref; /* whole, on GIT_HEAP: a name is never cut to fit a buffer */
    git_oid oid;
} pushed_ref;

static void pushed_refs_free(pushed_ref *refs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        keel_heap_free(GIT_HEAP, refs[i].ref);
    keel_heap_free(GIT_HEAP, refs);
}

/* Append `ref` at `oid` to the list (its name copied). */
static keel_status pushed_add(pushed_ref **refs, size_t *n, size_t *cap, const char *ref,
                              const git_oid *oid)
{
    if (*n == *cap) {
        void *mem = *refs;
        size_t ncap = *cap > 0 ? 2 * *cap : 8;
        keel_status s = keel_heap_realloc(GIT_HEAP, &mem, ncap * sizeof(pushed_ref));
        if (!keel_ok(s))
            return s;
        *refs = (pushed_ref *)mem;
        *cap = ncap;
    }
    size_t len = strlen(ref) + 1;
    void *name = NULL;
    keel_status s = keel_heap_alloc(GIT_HEAP, len, &name);
    if (!keel_ok(s))
        return s;
    memcpy(name, ref, len);
    (*refs)[*n].ref = (char *)name;
    git_oid_cpy(&(*refs)[*n].oid, oid);
    (*n)++;
    return KEEL_OK;
}

keel_status gate_pushed_each(gate_repo *r, gate_pushed_fn fn, void *ctx)
{
    KEEL_ASSERT(r != NULL && fn != NULL);
    pushed_call call = {fn, ctx};
    if (r->url != NULL)
        return gate_remote_each_ref(r->repo, r->url, GATE_SUBMIT_PREFIX, pushed_one, &call);
    /* a local repository's: listed first, since fn removes refs */
    git_reference_iterator *it = NULL;
    int rc = git_reference_iterator_glob_new(&it, r->repo, GATE_SUBMIT_PREFIX "*");
    if (rc != 0)
        return gate_git_error(rc, "cannot list the refs of '%s'", r->path);
    pushed_ref *refs = NULL;
    size_t n = 0, cap = 0;
    keel_status s = KEEL_OK;
    git_reference *ref = NULL;
    while (keel_ok(s) && (rc = git_reference_next(&ref, it)) == 0) {
        if (git_reference_type(ref) == GIT_REFERENCE_DIRECT)
            s = pushed_add(&refs, &n, &cap, git_reference_name(ref), git_reference_target(ref));
        git_reference_free(ref);
    }
    git_reference_iterator_free(it);
    if (keel_ok(s) && rc != GIT_ITEROVER)
        s = gate_git_error(rc, "cannot list the refs of '%s'", r->path);
    size_t listed = keel_ok(s) ? n : 0;
    for (size_t i = 0; i < listed; i++) {
        /* one ref's failure stops none after it: the first is what is returned */
        keel_status one = pushed_one(refs[i].ref, &refs[i].oid, &call);
        if (keel_ok(s))
            s = one;
        else
            keel_status_free(one);
    }
    pushed_refs_free(refs, n);
    return s;
}

keel_status gate_pushed_remove(gate_repo *r, const char *branch, const char *hex, bool *removed)
{
    KEEL_ASSERT(r != NULL && branch != NULL && removed != NULL);
    *removed = false;
    git_oid oid;
    keel_status s = gate_oid_parse(hex, &oid);
    if (!keel_ok(s))
        return s;
    /* the whole name, however long: a cut one could be another ref */
    size_t len = strlen(GATE_SUBMIT_PREFIX) + strlen(branch) + 1;
    void *mem = NULL;
    s = keel_heap_alloc(GIT_HEAP, len, &mem);
    if (!keel_ok(s))
        return KEEL_CONTEXT(s, "removing the push to '%s%s'", GATE_SUBMIT_PREFIX, branch);
    char *refname = (char *)mem;
    (void)snprintf(refname, len, "%s%s", GATE_SUBMIT_PREFIX, branch);
    if (r->url != NULL) {
        s = gate_remote_delete_ref(r->repo, r->url, refname, &oid, removed);
        keel_heap_free(GIT_HEAP, refname);
        return s;
    }
    git_reference *ref = NULL;
    int rc = git_reference_lookup(&ref, r->repo, refname);
    if (rc == GIT_ENOTFOUND)
        rc = 0;
    else if (rc == 0 && git_reference_type(ref) == GIT_REFERENCE_DIRECT &&
             git_oid_equal(git_reference_target(ref), &oid)) {
        rc = git_reference_delete(ref); /* refused if it moved since the lookup */
        bool cleared = false;
        if (rc == GIT_ELOCKED) { /* its lock left by a gate killed while it removed it? */
            char lock[1200];
            (void)snprintf(lock, sizeof(lock), "%s%s.lock", git_repository_path(r->repo), refname);
            s = gate_stale_lock_clear(lock, &cleared);
            if (!keel_ok(s))
                keel_status_ignore(s, "a ref not removed now is removed when seen again");
            s = KEEL_OK;
        }
        if (cleared)
            rc = git_reference_delete(ref);
        *removed = rc == 0;
        if (rc == GIT_EMODIFIED || rc == GIT_ELOCKED) /* a writer at work: seen again later */
            rc = 0;
    }
    git_reference_free(ref);
    if (rc != 0)
        s = gate_git_error(rc, "cannot remove '%s' from '%s'", refname, r->path);
    keel_heap_free(GIT_HEAP, refname);
    return s;
}

/* ---- recovery and the guarded branch ------------------------------------------------------- */

keel_status gate_is_ancestor(gate_repo *r, const char *ancestor, const char *descendant, bool *out)
{
    KEEL_ASSERT(r != NULL && out != NULL);
    *out = false;
    git_oid a, d;
    keel_status s = gate_oid_parse(ancestor, &a);
    if (keel_ok(s))
        s = gate_oid_parse(descendant, &d);
    if (!keel_ok(s))
        return s;
    if (git_oid_equal(&a, &d)) {
        *out = true;
        return KEEL_OK;
    }
    int rc = git_graph_descendant_of(r->repo, &d, &a);
    if (rc < 0)
        return gate_git_error(rc, "cannot tell whether %.12s holds %.12s", descendant, ancestor);
    *out = rc == 1;
    return KEEL_OK;
}

keel_status gate_branch_checked_out(gate_repo *r, const char *branch, bool *out)
{
    KEEL_ASSERT(r != NULL && out != NULL);
    *out = false;
    if (r->url != NULL || git_repository_is_bare(r->repo))
        return KEEL_OK;
    keel_status s = gate_branch_check(branch);
    if (!keel_ok(s))
        return s;
    char refname[512];
    (void)snprintf(refname, sizeof(refname), "refs/heads/%s", branch);
    git_reference *ref = NULL;
    int rc = git_reference_lookup(&ref, r->repo, refname);
    if (rc == GIT_ENOTFOUND)
        return KEEL_OK;
    if (rc == 0) {
        rc = git_branch_is_checked_out(ref);
        *out = rc == 1;
    }
    git_reference_free(ref);
    if (rc < 0)
        return gate_git_error(rc, "cannot tell whether '%s' is checked out", branch);
    return KEEL_OK;
}
