/*
 * test_gate_input.c - input that cannot stop the queue: whatever someone can
 * push is at worst that change's rejection (or that ref's refusal), with a
 * reason, never an error that stops `run`.  Each hostile input sits in a
 * queue between good changes: `run --once` succeeds, the hostile one is
 * rejected or refused naming the problem, the good ones land, main holds only
 * tested merges, and two more runs find nothing stuck.  Local repositories
 * and file:// URLs (a mirror of the gate's own).
 *
 *   - submitted branches whose head is a blob, a tree or an annotated tag
 *     (peeled), and a change in the store whose head is not a commit;
 *   - refs/keel-gate/submit/ refs: a blob, a tree, an annotated tag (peeled),
 *     a tag of a blob, names too long for the store (and one that a
 *     truncating buffer would confuse with another ref);
 *   - trees with entries git refuses to check out (.git in any case or
 *     disguise, .., git~1, a symlinked .gitmodules, ...) or deeper than a
 *     path can be long, and one unit test per rule of gate_tree_name_check;
 *   - a change whose own objects are missing (rejected), a target whose
 *     history is damaged (the gate's error, nobody rejected);
 *   - a broken or missing .keel/gate.conf: rejected with the parser's
 *     message in the reason and in `log`, whatever `retries` is;
 *   - libgit2 running out of memory in a merge is the gate's error, never a
 *     change's fault (devel: every allocation of the merge failed in turn).
 */
#define _GNU_SOURCE 1
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <git2/sys/commit.h>

#include "gate_fixture.h"

#include "heaps.h"

/* ---- objects the tests make -------------------------------------------------------------- */

enum { MODE_TREE = 0040000, MODE_BLOB = 0100644, MODE_LINK = 0120000 };

static git_oid blob_of(const char *text)
{
    git_oid oid;
    assert_int_equal(git_blob_create_from_buffer(&oid, fx_git, text, strlen(text)), 0);
    return oid;
}

/* An annotated tag object (no ref) pointing at `target`. */
static git_oid tag_of(const git_oid *target, const char *name)
{
    git_object *obj = NULL;
    assert_int_equal(git_object_lookup(&obj, fx_git, target, GIT_OBJECT_ANY), 0);
    git_signature *sig = NULL;
    assert_int_equal(git_signature_now(&sig, "test", "test@localhost"), 0);
    git_oid oid;
    assert_int_equal(git_tag_annotation_create(&oid, fx_git, name, obj, sig, "a tag\n"), 0);
    git_signature_free(sig);
    git_object_free(obj);
    return oid;
}

static void set_ref(const char *ref, const git_oid *oid)
{
    git_reference *r = NULL;
    assert_int_equal(git_reference_create(&r, fx_git, ref, oid, 1, "test"), 0);
    git_reference_free(r);
}

static bool ref_exists(const char *ref)
{
    git_oid oid;
    return git_reference_name_to_id(&oid, fx_git, ref) == 0;
}

static void push_submit(const char *name, const git_oid *oid)
{
    char ref[1024];
    (void)snprintf(ref, sizeof(ref), "refs/keel-gate/submit/%s", name);
    set_ref(ref, oid);
}

static bool submit_exists(const char *name)
{
    char ref[1024];
    (void)snprintf(ref, sizeof(ref), "refs/keel-gate/submit/%s", name);
    return ref_exists(ref);
}

/* A raw tree entry: any name git's own tools would refuse to write. */
typedef struct raw_entry {
    char name[64];
    size_t len;
    unsigned mode;
    git_oid oid;
} raw_entry;

static int raw_cmp(const void *a, const void *b)
{
    const raw_entry *x = (const raw_entry *)a, *y = (const raw_entry *)b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->name, y->name, n);
    if (c != 0)
        return c;
    /* git's order: a tree sorts as if its name ended with '/' */
    int cx = x->len > y->len ? (unsigned char)x->name[n] : (x->mode == MODE_TREE ? '/' : 0);
    int cy = y->len > x->len ? (unsigned char)y->name[n] : (y->mode == MODE_TREE ? '/' : 0);
    return cx - cy;
}

/* Write a tree object byte by byte (libgit2's tree builder refuses hostile names). */
static git_oid raw_tree(raw_entry *e, size_t n)
{
    qsort(e, n, sizeof(*e), raw_cmp);
    char buf[4096];
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        int k = snprintf(buf + len, sizeof(buf) - len, "%o ", e[i].mode);
        assert_true(k > 0 && len + (size_t)k + e[i].len + 1 + GIT_OID_RAWSZ < sizeof(buf));
        len += (size_t)k;
        memcpy(buf + len, e[i].name, e[i].len);
        len += e[i].len;
        buf[len++] = '\0';
        memcpy(buf + len, e[i].oid.id, GIT_OID_RAWSZ);
        len += GIT_OID_RAWSZ;
    }
    git_odb *odb = NULL;
    assert_int_equal(git_repository_odb(&odb, fx_git), 0);
    git_oid oid;
    assert_int_equal(git_odb_write(&oid, odb, buf, len, GIT_OBJECT_TREE), 0);
    git_odb_free(odb);
    return oid;
}

static raw_entry raw(const char *name, size_t len, unsigned mode, const git_oid *oid)
{
    raw_entry e;
    memset(&e, 0, sizeof(e));
    assert_true(len < sizeof(e.name));
    memcpy(e.name, name, len);
    e.len = len;
    e.mode = mode;
    git_oid_cpy(&e.oid, oid);
    return e;
}

/* The entries of main's first commit's tree, into e; how many. */
static size_t base_entries(raw_entry *e, size_t max)
{
    git_commit *c = NULL;
    git_tree *t = NULL;
    assert_int_equal(git_commit_lookup(&c, fx_git, &fx_base), 0);
    assert_int_equal(git_commit_tree(&t, c), 0);
    size_t n = git_tree_entrycount(t);
    assert_true(n <= max);
    for (size_t i = 0; i < n; i++) {
        const git_tree_entry *te = git_tree_entry_byindex(t, i);
        e[i] = raw(git_tree_entry_name(te), strlen(git_tree_entry_name(te)),
                   (unsigned)git_tree_entry_filemode(te), git_tree_entry_id(te));
    }
    git_tree_free(t);
    git_commit_free(c);
    return n;
}

/* A commit of `tree` on main's first commit, as refs/heads/<branch>. */
static git_oid commit_tree_on_base(const git_oid *tree, const char *branch)
{
    git_signature *sig = NULL;
    assert_int_equal(git_signature_now(&sig, "test", "test@localhost"), 0);
    const git_oid *parents[1] = {&fx_base};
    git_oid oid;
    assert_int_equal(
        git_commit_create_from_ids(&oid, fx_git, NULL, sig, sig, NULL, branch, tree, 1, parents),
        0);
    git_signature_free(sig);
    char ref[256];
    (void)snprintf(ref, sizeof(ref), "refs/heads/%s", branch);
    set_ref(ref, &oid);
    return oid;
}

static void loose_path(const git_oid *oid, char *buf, size_t size)
{
    char hex[GIT_OID_HEXSZ + 1];
    git_oid_tostr(hex, sizeof(hex), oid);
    (void)snprintf(buf, size, "%s/objects/%.2s/%s", fx_repo, hex, hex + 2);
}

/* Remove a (loose) object from the repository. */
static void remove_object(const git_oid *oid)
{
    char path[256];
    loose_path(oid, path, sizeof(path));
    assert_int_equal(unlink(path), 0);
    git_odb *odb = NULL;
    assert_int_equal(git_repository_odb(&odb, fx_git), 0);
    assert_int_equal(git_odb_refresh(odb), 0);
    git_odb_free(odb);
}

static gate_change change_of(gate *g, long long id)
{
    gate_change c;
    fx_ok(gate_store_get(gate_get_store(g), id, &c));
    return c;
}

static void assert_reason_has(gate *g, long long id, gate_change_state state, const char *what)
{
    gate_change c = change_of(g, id);
    if (c.state != state || strstr(c.reason, what) == NULL)
        fail_msg("change %lld '%s' is %s (%s), not %s with '%s' in its reason", id, c.branch,
                 gate_change_state_name(c.state), c.reason, gate_change_state_name(state), what);
}

/* One run --once on a gate of its own; it must succeed (the queue never stops). */
static gate_run_stats run_ok(void)
{
    gate *g = fx_open();
    gate_run_stats st;
    keel_status s = gate_run(g, true, &st);
    gate_close(g);
    if (!keel_ok(s)) {
        char msg[2048];
        (void)keel_status_format(s, msg, sizeof(msg));
        keel_status_free(s);
        fail_msg("run --once stopped with an error: %s", msg);
    }
    return st;
}

/* Two more runs decide nothing: nothing is left stuck on a restart. */
static void nothing_stuck(void)
{
    for (int i = 0; i < 2; i++) {
        gate_run_stats st = run_ok();
        assert_int_equal(st.landed + st.rejected + st.conflicts + st.builds, 0);
    }
    assert_int_equal(
        fx_sql_int("SELECT count(*) FROM changes WHERE state IN ('queued', 'testing')", NULL), 0);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM jobs WHERE state = 'running'", NULL), 0);
}

/*
 * Queue `n` branches between two good changes: "good1" first, then
 * `branches` in order (their ids into ids[]), then "good2" (both made here).
 */
static void queue_between_good(const char *const *branches, size_t n, long long *ids)
{
    fx_branch("good1", "good1.txt", "1\n");
    fx_branch("good2", "good2.txt", "2\n");
    gate *g = fx_open();
    (void)fx_submit(g, "good1", 0);
    for (size_t i = 0; i < n; i++)
        ids[i] = fx_submit(g, branches[i], 0);
    (void)fx_submit(g, "good2", 0);
    gate_close(g);
}

/*
 * `run --once` succeeds, landing `landed` changes (good1 and good2 among
 * them, once each) and rejecting `rejected`; main is at a tested merge; two
 * more runs decide nothing.
 */
static void run_expect(unsigned long long landed, unsigned long long rejected)
{
    gate_run_stats st = run_ok();
    assert_int_equal(st.landed, landed);
    assert_int_equal(st.rejected, rejected);
    assert_int_equal(fx_times_landed("good1"), 1);
    assert_int_equal(fx_times_landed("good2"), 1);
    fx_assert_tip_tested();
    nothing_stuck();
}

/* test_<scenario>_local and test_<scenario>_url: on a repository by its path, and through file:// */
#define BOTH_WAYS(scenario)                           \
    static void test_##scenario##_local(void **state) \
    {                                                 \
        (void)state;                                  \
        scenario(false);                              \
    }                                                 \
    static void test_##scenario##_url(void **state)   \
    {                                                 \
        (void)state;                                  \
        scenario(true);                               \
    }

/* ---- submitted branches whose head is not a commit ------------------------------------- */

static void submit_not_commits(bool remote)
{
    fx_setup_repo("strategy = serial\nretries = 0", "");
    if (remote)
        fx_where = fx_url;
    fx_branch("good1", "good1.txt", "1\n");
    git_oid blob = blob_of("a blob\n"), tree, tagged, tag, tag2, blob_tag;
    set_ref("refs/heads/blobby", &blob);
    git_commit *c = NULL;
    assert_int_equal(git_commit_lookup(&c, fx_git, &fx_base), 0);
    git_oid_cpy(&tree, git_commit_tree_id(c));
    git_commit_free(c);
    set_ref("refs/heads/treey", &tree);
    fx_branch("tagged", "tagged.txt", "t\n");
    fx_head("tagged", &tagged);
    tag = tag_of(&tagged, "v1");
    tag2 = tag_of(&tag, "v1-again"); /* a tag of a tag: peeled all the way */
    set_ref("refs/heads/tagged", &tag2);
    blob_tag = tag_of(&blob, "blob-tag");
    set_ref("refs/heads/blobtag", &blob_tag);
    fx_branch("good2", "good2.txt", "2\n");
    gate *g = fx_open();
    (void)fx_submit(g, "good1", 0);
    static const char *const refused[] = {"blobby", "treey", "blobtag"};
    static const char *const says[] = {"a blob", "a tree", "a blob"};
    for (size_t i = 0; i < 3; i++) {
        long long id = 0;
        keel_status s = gate_submit(g, refused[i], 0, &id);
        if (keel_ok(s))
            fail_msg("'%s' (not a commit) was queued as change %lld", refused[i], id);
        char msg[1024];
        (void)keel_status_format(s, msg, sizeof(msg));
        assert_true(keel_status_has(s, &gate_codes, GATE_E_BAD_CHANGE));
        keel_status_free(s);
        if (strstr(msg, refused[i]) == NULL || strstr(msg, says[i]) == NULL)
            fail_msg("the error for '%s' names neither it nor '%s': %s", refused[i], says[i], msg);
    }
    long long t = fx_submit(g, "tagged", 0);
    (void)fx_submit(g, "good2", 0);
    gate_change tc = change_of(g, t);
    char hex[GIT_OID_HEXSZ + 1];
    git_oid_tostr(hex, sizeof(hex), &tagged);
    assert_string_equal(tc.head, hex); /* the commit, not the tag */
    gate_close(g);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM changes", NULL), 3);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM events WHERE kind = 'peeled' AND change = "
                                "(SELECT id FROM changes WHERE branch = 'tagged')",
                                NULL),
                     1);
    run_expect(3, 0);
    git_oid landed[4];
    assert_int_equal(fx_landed_heads(landed, 4), 3);
    assert_true(git_oid_equal(&landed[1], &tagged)); /* the tag's commit, in queue order */
}

BOTH_WAYS(submit_not_commits)

/* A change already in the store (queued before this check existed) whose head is a blob. */
static void test_queued_head_not_a_commit(void **state)
{
    (void)state;
    fx_setup_repo("strategy = batch\nretries = 0", "");
    fx_branch("good1", "good1.txt", "1\n");
    fx_branch("good2", "good2.txt", "2\n");
    git_oid blob = blob_of("not a commit\n");
    char hex[GIT_OID_HEXSZ + 1];
    git_oid_tostr(hex, sizeof(hex), &blob);
    gate *g = fx_open();
    (void)fx_submit(g, "good1", 0);
    long long bad = 0;
    fx_ok(gate_store_submit(gate_get_store(g), "blob", hex, "main", 0, 1, &bad));
    (void)fx_submit(g, "good2", 0);
    gate_close(g);
    run_expect(2, 1);
    g = fx_open();
    assert_reason_has(g, bad, GATE_CHANGE_REJECTED, "is a blob, not a commit");
    gate_close(g);
}

/*
 * A queued change whose head in the store is no commit id at all (the row
 * damaged, or written before heads were checked): rejected with the reason
 * like a head that is a blob; it was the gate's error, "'zzzz' is not a commit
 * id", which stopped run at every start with the change still first.
 */
static void test_queued_head_not_an_id(void **state)
{
    (void)state;
    fx_setup_repo("strategy = batch\nretries = 0", "");
    fx_branch("good1", "good1.txt", "1\n");
    fx_branch("damaged", "damaged.txt", "d\n");
    fx_branch("good2", "good2.txt", "2\n");
    gate *g = fx_open();
    (void)fx_submit(g, "good1", 0);
    long long bad = fx_submit(g, "damaged", 0);
    (void)fx_submit(g, "good2", 0);
    gate_close(g);
    char sql[128];
    (void)snprintf(sql, sizeof(sql), "UPDATE changes SET head = 'zzzz' WHERE id = %lld", bad);
    fx_sql_exec(sql);
    run_expect(2, 1);
    g = fx_open();
    assert_reason_has(g, bad, GATE_CHANGE_REJECTED,
                      "the head of the change 'zzzz' is not a commit id (40 hex digits)");
    gate_close(g);
}

/* ---- refs pushed to refs/keel-gate/submit/ ----------------------------------------------- */

static long long refused_like(const char *pattern)
{
    return fx_sql_int("SELECT count(*) FROM events WHERE kind = 'refused' AND detail LIKE ?1",
                      pattern);
}

static void pushed_not_commits(bool remote)
{
    fx_setup_repo("strategy = serial\nretries = 0", "");
    if (remote)
        fx_where = fx_url;
    git_oid good1, good2, tagged, blob = blob_of("pushed blob\n"), tree;
    fx_branch("a-good", "a.txt", "a\n");
    fx_head("a-good", &good1);
    fx_branch("d-tag", "d.txt", "d\n");
    fx_head("d-tag", &tagged);
    fx_branch("z-good", "z.txt", "z\n");
    fx_head("z-good", &good2);
    git_commit *c = NULL;
    assert_int_equal(git_commit_lookup(&c, fx_git, &fx_base), 0);
    git_oid_cpy(&tree, git_commit_tree_id(c));
    git_commit_free(c);
    git_oid tag = tag_of(&tagged, "d"), blob_tag = tag_of(&blob, "e");
    push_submit("a-good", &good1);
    push_submit("b-blob", &blob);
    push_submit("c-tree", &tree);
    push_submit("d-tag", &tag);
    push_submit("e-tag-of-blob", &blob_tag);
    push_submit("z-good", &good2);
    gate *g = fx_open();
    size_t queued = 0;
    fx_ok(gate_take_pushed(g, &queued));
    gate_close(g);
    assert_int_equal(queued, 3);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM changes", NULL), 3);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM events WHERE kind = 'refused'", NULL), 3);
    assert_int_equal(refused_like("%submit/b-blob%is a blob%"), 1);
    assert_int_equal(refused_like("%submit/c-tree%is a tree%"), 1);
    assert_int_equal(refused_like("%submit/e-tag-of-blob%annotated tag%of a blob%"), 1);
    char hex[GIT_OID_HEXSZ + 1];
    git_oid_tostr(hex, sizeof(hex), &tagged);
    assert_int_equal(
        fx_sql_int("SELECT count(*) FROM changes WHERE branch = 'd-tag' AND head = ?1", hex), 1);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM events WHERE kind = 'peeled' AND detail "
                                "LIKE '%annotated tag%'",
                                NULL),
                     1);
    static const char *const names[] = {"a-good", "b-blob",        "c-tree",
                                        "d-tag",  "e-tag-of-blob", "z-good"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (submit_exists(names[i]))
            fail_msg("refs/keel-gate/submit/%s is still there", names[i]);
    gate_run_stats st = run_ok();
    assert_int_equal(st.landed, 3);
    assert_int_equal(st.rejected, 0);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM changes WHERE state = 'landed'", NULL), 3);
    fx_assert_tip_tested();
    nothing_stuck();
}

BOTH_WAYS(pushed_not_commits)

/* "<prefix>/" then components of `width` 'x's (the last one shorter) up to `len` bytes. */
static void long_name(char *buf, size_t size, const char *prefix, size_t len, size_t width)
{
    size_t n = (size_t)snprintf(buf, size, "%s", prefix);
    while (n < len && n + 2 < size) {
        buf[n++] = '/';
        for (size_t k = 0; k < width && n < len && n + 1 < size; k++)
            buf[n++] = (char)('a' + (k % 26));
    }
    buf[n] = '\0';
}

static void pushed_long_names(bool remote)
{
    fx_setup_repo("strategy = serial\nretries = 0", "");
    if (remote)
        fx_where = fx_url;
    git_oid good1, good2, other;
    fx_branch("a-good", "a.txt", "a\n");
    fx_head("a-good", &good1);
    fx_branch("z-good", "z.txt", "z\n");
    fx_head("z-good", &good2);
    fx_branch("other", "o.txt", "o\n");
    fx_head("other", &other);
    /* valid for git (components under 255 bytes), too long for the store (255) */
    char n300[400], n700[800], cut[800];
    long_name(n300, sizeof(n300), "m-long", 300, 90);
    long_name(n700, sizeof(n700), "n-longer", 700, 100);
    /*
     * The 700-byte one truncated where a 512-byte buffer holding its whole
     * ref name would cut it: another ref, pushed too, pointing elsewhere.
     */
    (void)snprintf(cut, sizeof(cut), "%.*s", (int)(511 - strlen("refs/keel-gate/submit/")), n700);
    assert_true(strcmp(cut, n700) != 0 && cut[strlen(cut) - 1] != '/');
    push_submit("a-good", &good1);
    push_submit(n300, &good1);
    push_submit(n700, &other);
    push_submit(cut, &good2);
    push_submit("z-good", &good2);
    gate *g = fx_open();
    size_t queued = 0;
    fx_ok(gate_take_pushed(g, &queued));
    gate_close(g);
    assert_int_equal(queued, 2);
    assert_int_equal(fx_sql_int("SELECT count(*) FROM events WHERE kind = 'refused'", NULL), 3);
    assert_int_equal(refused_like("%too long%"), 3);
    char like[900];
    (void)snprintf(like, sizeof(like), "%%\"refs/keel-gate/submit/%s\"%%", n700);
    assert_int_equal(refused_like(like), 1); /* named whole */
    assert_false(submit_exists(n300));
    assert_false(submit_exists(n700));
    assert_false(submit_exists(cut));
    assert_false(submit_exists("a-good"));
    assert_false(submit_exists("z-good"));
    assert_int_equal(fx_sql_int("SELECT count(*) FROM changes", NULL), 2);
    gate_run_stats st = run_ok();
    assert_int_equal(st.landed, 2);
    assert_int_equal(fx_times_landed("a-good"), 1);
    assert_int_equal(fx_times_landed("z-good"), 1);
    assert_int_equal(fx_times_landed("other"), 0);
    fx_assert_tip_tested();
    nothing_stuck();
}

BOTH_WAYS(pushed_long_names)

/* ---- trees git refuses to check out ------------------------------------------------------ */

typedef struct hostile {
    const char *branch;
    const char *name; /* the entry (in "sub" when nested) */
    size_t len;
    unsigned mode;
    bool nested;
    const char *says; /* in the reason */
} hostile;

/*
 * A tree entry with an empty name is one libgit2 cannot even parse, and its
 * file:// transport packs the objects of every ref of the remote for any
 * fetch: with such a tree in the remote no fetch works at all (git's own
 * servers send only what is asked for), so the URL variant leaves it out.
 */
static bool unparseable(const char *name)
{
    return name[0] == '\0';
}

#define H(branch, name, mode, nested, says)                \
    {                                                      \
        branch, name, sizeof(name) - 1, mode, nested, says \
    }
static const hostile hostiles[] = {
    H("h-dotgit", ".git", MODE_TREE, false, "'.git'"),
    H("h-dotgit-upper", ".GIT", MODE_TREE, false, "'.GIT'"),
    H("h-dotgit-file", ".Git", MODE_BLOB, false, "'.Git'"),
    H("h-shortname", "GIT~1", MODE_TREE, false, "'GIT~1'"),
    H("h-trailing-dot", ".git.", MODE_TREE, false, "'.git.'"),
    H("h-trailing-space", ".git  ", MODE_TREE, false, "'.git  '"),
    H("h-stream", ".git::$INDEX_ALLOCATION", MODE_TREE, false, "'.git::$INDEX_ALLOCATION'"),
    H("h-hfs", ".g\xe2\x80\x8cit", MODE_TREE, false, "'.g\\xe2\\x80\\x8cit'"),
    H("h-backslash", "x\\.git", MODE_TREE, false, "'x\\.git'"),
    H("h-dotdot", "..", MODE_TREE, false, "'..'"),
    H("h-dot", ".", MODE_TREE, false, "'.'"),
    H("h-nested", ".git", MODE_TREE, true, "'sub/.git'"),
    H("h-gitmodules-link", ".gitmodules", MODE_LINK, false, "'.gitmodules'"),
    H("h-empty", "", MODE_BLOB, false, "can't parse filename"),
    H("h-slash", "a/b", MODE_BLOB, false, "'a/b'"),
};
#undef H
enum { NHOSTILE = sizeof(hostiles) / sizeof(hostiles[0]) };

/* main's first tree plus the hostile entry (a directory holding a HEAD file, or a file). */
static void hostile_branch(const hostile *h)
{
    git_oid blob = blob_of("ref: refs/heads/main\n");
    raw_entry inner[1] = {raw("HEAD", 4, MODE_BLOB, &blob)};
    git_oid dir = raw_tree(inner, 1);
    git_oid target = h->mode == MODE_TREE ? dir : blob;
    raw_entry e[16];
    size_t n = base_entries(e, 15);
    if (h->nested) {
        raw_entry sub[2] = {raw(h->name, h->len, h->mode, &target),
                            raw("ok.txt", 6, MODE_BLOB, &blob)};
        git_oid subtree = raw_tree(sub, 2);
        e[n++] = raw("sub", 3, MODE_TREE, &subtree);
    } else {
        e[n++] = raw(h->name, h->len, h->mode, &target);
    }
    git_oid tree = raw_tree(e, n);
    (void)commit_tree_on_base(&tree, h->branch);
}

static void hostile_trees(bool remote)
{
    fx_setup_repo("strategy = batch\nmax-batch = 32\nretries = 0", "");
    if (remote)
        fx_where = fx_url;
    const char *branches[NHOSTILE];
    size_t n = 0;
    for (size_t i = 0; i < NHOSTILE; i++)
        if (!remote || !unparseable(hostiles[i].name)) {
            hostile_branch(&hostiles[i]);
            branches[n++] = hostiles[i].branch;
        }
    long long ids[NHOSTILE];
    queue_between_good(branches, n, ids);
    run_expect(2, n);
    gate *g = fx_open();
    for (size_t i = 0, k = 0; i < NHOSTILE; i++)
        if (!remote || !unparseable(hostiles[i].name))
            assert_reason_has(g, ids[k++], GATE_CHANGE_REJECTED, hostiles[i].says);
    gate_close(g);
    /* found before any checkout: no job ran for a hostile tree */
    assert_int_equal(fx_sql_int("SELECT count(*) FROM jobs WHERE state <> 'passed'", NULL), 0);
}

BOTH_WAYS(hostile_trees)

/*
 * A change whose tree holds a file `f` under `times` directories named `dir` (`len` bytes each),
 * those under `top` among the base's entries: committed as `branch`, queued between two good
 * changes and run.  Its change's id.
 */
static long long run_nested(const char *dir, size_t len, int times, const char *top,
                            const char *branch)
{
    fx_setup_repo("strategy = serial\nretries = 0", "");
    git_oid blob = blob_of("deep\n"), cur;
    raw_entry leaf[1] = {raw("f", 1, MODE_BLOB, &blob)};
    cur = raw_tree(leaf, 1);
    for (int i = 0; i < times; i++) {
        raw_entry e[1] = {raw(dir, len, MODE_TREE, &cur)};
        cur = raw_tree(e, 1);
    }
    raw_entry e[16];
    size_t n = base_entries(e, 15);
    e[n++] = raw(top, strlen(top), MODE_TREE, &cur);
    git_oid tree = raw_tree(e, n);
    (void)commit_tree_on_base(&tree, branch);
    const char *const branches[] = {branch};
    long long d = 0;
    queue_between_good(branches, 1, &d);
    run_expect(2, 1);
    return d;
}

/* A change whose tree nests deeper than a path can be long (4096 bytes): refused, not walked on. */
static void test_deep_tree_refused(void **state)
{
    (void)state;
    long long d = run_nested("d", 1, 2100, "deep", "deep"); /* "deep/d/d/.../f": 4206 bytes */
    gate *g = fx_open();
    assert_reason_has(g, d, GATE_CHANGE_REJECTED, "a path longer than 4095 bytes");
    gate_close(g);
}

/*
 * A path that fills the buffer to its last byte before the entry that overflows it (64
 * directories of 63 characters: 4095 bytes, then a file): refused with the path cut by "/..."
 * inside the buffer (the marker was written past its end, and the reason read on into
 * whatever followed).
 */
static void test_path_at_the_limit_refused(void **state)
{
    (void)state;
    char name[64], top[64];
    memset(name, 'a', 63);
    name[63] = '\0';
    memcpy(top, name, sizeof(top));
    static const char prefix[4] = {'l', 'o', 'n', 'g'}; /* over the name's start */
    memcpy(top, prefix, sizeof(prefix));
    long long d = run_nested(name, 63, 63, top, "at-limit"); /* 64 directories, 4095 bytes */
    gate *g = fx_open();
    assert_reason_has(g, d, GATE_CHANGE_REJECTED, "a path longer than 4095 bytes");
    assert_reason_has(g, d, GATE_CHANGE_REJECTED, "aaaa/...");
    gate_close(g);
}

/* ---- the rules for a tree entry's name, one test each ---------------------------------- */

/* A name, its length (0: strlen), its mode, and what its refusal says (NULL: accepted). */
typedef struct name_case {
    const char *name;
    size_t len;
    unsigned mode;
    const char *says;
} name_case;

static void check_names(const name_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const name_case *c = &cases[i];
        size_t len = c->len > 0 ? c->len : strlen(c->name);
        keel_status s = gate_tree_name_check(c->name, len, c->mode);
        char shown[256];
        gate_tree_name_show(c->name, len, shown, sizeof(shown));
        if (c->says == NULL && !keel_ok(s))
            fail_msg("'%s' (mode %o) was refused: %s", shown, c->mode, keel_status_message(s));
        if (c->says != NULL && keel_ok(s))
            fail_msg("'%s' (mode %o) was accepted", shown, c->mode);
        if (c->says != NULL && (!keel_status_is(s, &gate_codes, GATE_E_BAD_CHANGE) ||
                                strstr(keel_status_message(s), c->says) == NULL))
            fail_msg("'%s' refused as '%s', not with '%s'", shown, keel_status_message(s), c->says);
        keel_status_free(s);
    }
}

#define CHECK_NAMES(cases) check_names(cases, sizeof(cases) / sizeof((cases)[0]))

static void test_name_empty_slash_nul(void **state)
{
    (void)state;
    static const name_case cases[] = {
        {"", 0, MODE_BLOB, "an empty file name"},
        {"a/b", 0, MODE_BLOB, "holds a '/'"},
        {"/", 0, MODE_TREE, "holds a '/'"},
        {"a\0b", 3, MODE_BLOB, "holds a NUL byte"},
        {"a b", 0, MODE_BLOB, NULL},
        {"a\\b", 0, MODE_BLOB, NULL}, /* Linux */
    };
    CHECK_NAMES(cases);
}

static void test_name_dot_dotdot(void **state)
{
    (void)state;
    static const name_case cases[] = {
        {".", 0, MODE_TREE, "is not a file name"},
        {"..", 0, MODE_TREE, "is not a file name"},
        {"..", 0, MODE_BLOB, "is not a file name"},
        {"...", 0, MODE_BLOB, NULL},
        {"..a", 0, MODE_BLOB, NULL},
        {".a", 0, MODE_BLOB, NULL},
    };
    CHECK_NAMES(cases);
}

static void test_name_dotgit_any_case(void **state)
{
    (void)state;
    static const char own[] = "the repository's own directory";
    static const name_case cases[] = {
        {".git", 0, MODE_TREE, own},
        {".GIT", 0, MODE_BLOB, own},
        {".Git", 0, MODE_LINK, own},
        {".gIT", 0, MODE_TREE, own},
        {".gitignore", 0, MODE_BLOB, NULL},
        {".github", 0, MODE_TREE, NULL},
        {".git-blame-ignore-revs", 0, MODE_BLOB, NULL},
        {"foo.git", 0, MODE_TREE, NULL},
        {"git", 0, MODE_TREE, NULL},
        {".gi", 0, MODE_TREE, NULL},
    };
    CHECK_NAMES(cases);
}

static void test_name_ntfs_trailing_dots_and_spaces(void **state)
{
    (void)state;
    static const name_case cases[] = {
        {".git.", 0, MODE_TREE, "to NTFS"},      {".git ", 0, MODE_TREE, "to NTFS"},
        {".GIT. . ..", 0, MODE_TREE, "to NTFS"}, {".git.x", 0, MODE_TREE, NULL},
        {".git x", 0, MODE_TREE, NULL},
    };
    CHECK_NAMES(cases);
}

static void test_name_ntfs_data_stream(void **state)
{
    (void)state;
    static const name_case cases[] = {
        {".git::$INDEX_ALLOCATION", 0, MODE_TREE, "to NTFS"},
        {".git:x", 0, MODE_BLOB, "to NTFS"},
        {".git. :$DATA", 0, MODE_BLOB, "to NTFS"},
        {"git~1:stream", 0, MODE_BLOB, "to NTFS"},
        {"x:.git", 0, MODE_BLOB, NULL},
    };
    CHECK_NAMES(cases);
}

static void test_name_ntfs_short_name(void **state)
{
    (void)state;
    static const name_case cases[] = {
        {"git~1", 0, MODE_TREE, "to NTFS"},   {"GIT~1", 0, MODE_TREE, "to NTFS"},
        {"Git~1 .", 0, MODE_TREE, "to NTFS"}, {"git~2", 0, MODE_TREE, NULL},
        {"git~10", 0, MODE_TREE, NULL},       {"git~1x", 0, MODE_TREE, NULL},
        {"xgit~1", 0, MODE_TREE, NULL},
    };
    CHECK_NAMES(cases);
}

static void test_name_ntfs_backslash(void **state)
{
    (void)state;
    static const name_case cases[] = {
        {"x\\.git", 0, MODE_TREE, "after a '\\'"},
        {"a\\b\\GIT~1", 0, MODE_BLOB, "after a '\\'"},
        {"x\\.git\\y", 0, MODE_BLOB, "after a '\\'"},
        {"x\\.gitx", 0, MODE_BLOB, NULL},
        {"x\\git", 0, MODE_BLOB, NULL},
    };
    CHECK_NAMES(cases);
}

static void test_name_hfs_ignorable_code_points(void **state)
{
    (void)state;
    /* U+200C..U+200F, U+202A..U+202E, U+206A..U+206F, U+FEFF: HFS+ drops them */
    static const name_case cases[] = {
        {".g\xe2\x80\x8cit", 0, MODE_TREE, "to HFS+"},
        {"\xe2\x80\x8f.git", 0, MODE_TREE, "to HFS+"},
        /* the name under test: NOLINTNEXTLINE(misc-misleading-bidirectional) */
        {".GI\xe2\x80\xaeT", 0, MODE_TREE, "to HFS+"},
        {".git\xe2\x81\xaf", 0, MODE_TREE, "to HFS+"},
        {".\xef\xbb\xbfgit", 0, MODE_TREE, "to HFS+"},
        {".git\xe2\x80\x8d\xe2\x80\x8c", 0, MODE_BLOB, "to HFS+"},
        /* as git: malformed UTF-8 right after ".git" is taken as its end */
        {".git\xff", 0, MODE_TREE, "to HFS+"},
        /* ... and so is what git's decoder refuses: a surrogate, an overlong form, U+FFFE */
        {".git\xed\xa0\x80", 0, MODE_TREE, "to HFS+"},
        {".git\xc0\xae", 0, MODE_TREE, "to HFS+"},
        {".git\xef\xbf\xbe", 0, MODE_BLOB, "to HFS+"},
        {".git\xf4\x90\x80\x80", 0, MODE_BLOB, "to HFS+"},
        /* an overlong '.' is no '.' to git: the name is not ".git" (nor valid UTF-8) */
        {"\xc0\xaegit", 0, MODE_TREE, NULL},
        /* code points HFS+ keeps */
        {".g\xe2\x80\x8bit", 0, MODE_TREE, NULL}, /* U+200B */
        {".g\xe2\x80\x80it", 0, MODE_TREE, NULL}, /* U+2000 */
        {".gi\xc3\xa9t", 0, MODE_TREE, NULL},
        {".g\xe2\x80\x8cithub", 0, MODE_TREE, NULL},
    };
    CHECK_NAMES(cases);
}

static void test_name_symlinked_git_files(void **state)
{
    (void)state;
    static const char link[] = "symbolic link";
    static const name_case cases[] = {
        {".gitmodules", 0, MODE_LINK, link},
        {".GITMODULES", 0, MODE_LINK, link},
        {"GITMOD~1", 0, MODE_LINK, link},
        {".gitmodules .", 0, MODE_LINK, link},
        {".gitattributes", 0, MODE_LINK, link},
        {".gitignore", 0, MODE_LINK, link},
        {".g\xe2\x80\x8citmodules", 0, MODE_LINK, link},
        /* the same names as files, and other links, are fine */
        {".gitmodules", 0, MODE_BLOB, NULL},
        {".gitattributes", 0, MODE_BLOB, NULL},
        {".gitignore", 0, MODE_BLOB, NULL},
        {"gitmodules", 0, MODE_LINK, NULL},
        {".gitmodulesx", 0, MODE_LINK, NULL},
        {"link", 0, MODE_LINK, NULL},
        /* the name is its len bytes, whatever follows them */
        {".gitmodulesx", 11, MODE_LINK, link},
        {"GITMOD~1x", 8, MODE_LINK, link},
        {".gitignorez", 10, MODE_LINK, link},
    };
    CHECK_NAMES(cases);
}

/* ---- the gate's own trouble in a merge is never a change's fault --------------------------- */

/*
 * Devel: libgit2's allocation number K fails (gate_git.alloc:nth=K, libgit2
 * being on gate_git's heap), for every K of a merge of a good change and of
 * a hostile one: each failure is the gate's (injected), never a verdict on
 * the change, until the merge succeeds or finds the hostile entry.
 */
static void test_merge_out_of_memory_is_the_gates(void **state)
{
    (void)state;
#if KEEL_DEVEL
    gate_modules_link();
    fx_ok(keel_modules_start());
    keel_report_set_policy(KEEL_REPORT_STRESS, KEEL_POLICY_COUNT);
    /*
     * libgit2 1.5 leaks a little on some of its own out-of-memory paths
     * (inside git_merge_commits and git_signature_now, measured per K): its
     * leaks, counted at the modules' stop instead of reported.
     */
    keel_report_set_policy(KEEL_REPORT_LEAK, KEEL_POLICY_COUNT);
    fx_setup_repo("strategy = serial", "");
    /* a good change with a symbolic link: its name is checked on gate_git's heap too */
    static const hostile good = {"good", "link", 4, MODE_LINK, false, NULL};
    hostile_branch(&good);
    hostile_branch(&hostiles[11]); /* sub/.git */
    char base[GIT_OID_HEXSZ + 1], heads[2][GIT_OID_HEXSZ + 1];
    git_oid oid;
    git_oid_tostr(base, sizeof(base), &fx_base);
    fx_head("good", &oid);
    git_oid_tostr(heads[0], sizeof(heads[0]), &oid);
    fx_head(hostiles[11].branch, &oid);
    git_oid_tostr(heads[1], sizeof(heads[1]), &oid);
    for (int which = 0; which < 2; which++) {
        unsigned injected = 0;
        bool done = false;
        for (int k = 1; k < 20000 && !done; k++) {
            gate_repo *r = NULL;
            fx_ok(gate_repo_open(fx_repo, &r));
            char spec[64], merge[GATE_HEX];
            const char *h[1] = {heads[which]};
            /*
             * The same merge once first, as a gate that has read these
             * commits before: libgit2 1.5 does not survive every failed
             * allocation while it parses an object (a signature's name or
             * e-mail left NULL, a half-made object database leaked), which
             * is its own trouble; what is left are the merge's own
             * allocations and the gate's walk, all of them failed in turn.
             */
            keel_status s = gate_merge(r, base, h, 1, merge);
            if (which == 1 && keel_status_is(s, &gate_codes, GATE_E_BAD_CHANGE))
                keel_status_free(s);
            else
                fx_ok(s);
            (void)snprintf(spec, sizeof(spec), "gate_git.alloc:nth=%d", k);
            unsigned long long fired = keel_report_count(KEEL_REPORT_STRESS);
            fx_ok(keel_stress_enable(spec));
            s = gate_merge(r, base, h, 1, merge);
            keel_stress_clear();
            gate_repo_close(r);
            done = keel_report_count(KEEL_REPORT_STRESS) == fired; /* the merge has fewer */
            char msg[2048];
            (void)keel_status_format(s, msg, sizeof(msg));
            bool oom = keel_status_has(s, &keel_codespace_keel, KEEL_E_INJECTED);
            bool verdict = keel_status_is(s, &gate_codes, GATE_E_BAD_CHANGE);
            /* which 0: libgit2 did without that allocation; 1: the verdict, the right one */
            bool judged = (which == 0 && keel_ok(s)) ||
                          (which == 1 && verdict && !oom && strstr(msg, "'sub/.git'") != NULL);
            if (oom && !keel_status_has(s, &gate_codes, GATE_E_BAD_CHANGE) &&
                !keel_status_has(s, &gate_codes, GATE_E_CONFLICT))
                injected++; /* the gate's: nothing decided */
            else if (!judged)
                fail_msg("nth=%d: neither the gate's error nor the right verdict: %s", k, msg);
            if (done && (which == 0 ? !keel_ok(s) : !verdict))
                fail_msg("nth=%d, no failure injected: %s", k, msg);
            keel_status_free(s);
        }
        assert_true(done);
        /* the sweep did fail the merge, many ways (the hostile one stops early) */
        if (injected < (which == 0 ? 20u : 1u))
            fail_msg("merge %d failed %u times only", which, injected);
        if (getenv("GATE_TEST_VERBOSE") != NULL)
            (void)fprintf(stderr, "merge %d: %u allocations failed in turn\n", which, injected);
    }
    fx_teardown_repo();
    keel_modules_stop();
#else
    skip();
#endif
}

/* ---- a change's objects missing, the target's history damaged ----------------------------- */

static void test_missing_objects_of_a_change(void **state)
{
    (void)state;
    fx_setup_repo("strategy = batch\nretries = 0", "");
    /* its head commit is gone (a branch deleted and its objects pruned) */
    git_oid head;
    fx_branch("gone-head", "gh.txt", "gh\n");
    fx_head("gone-head", &head);
    /* a commit of its history is gone */
    git_oid mid, top;
    const fx_file f1[] = {{"gp.txt", "1\n"}};
    fx_commit(&fx_base, f1, 1, "gone-parent", &mid);
    const fx_file f2[] = {{"gp.txt", "2\n"}};
    fx_commit(&mid, f2, 1, "gone-parent", &top);
    /* a file of its tree is gone */
    git_oid blob = blob_of("a file whose object goes\n");
    fx_branch("gone-blob", "gb.txt", "a file whose object goes\n");
    static const char *const branches[] = {"gone-head", "gone-parent", "gone-blob"};
    long long ids[3];
    queue_between_good(branches, 3, ids);
    remove_object(&head);
    remove_object(&mid);
    remove_object(&blob);
    run_expect(2, 3);
    char hex[GIT_OID_HEXSZ + 1];
    gate *g = fx_open();
    git_oid_tostr(hex, sizeof(hex), &head);
    assert_reason_has(g, ids[0], GATE_CHANGE_REJECTED, "missing");
    assert_reason_has(g, ids[0], GATE_CHANGE_REJECTED, hex);
    git_oid_tostr(hex, sizeof(hex), &mid);
    assert_reason_has(g, ids[1], GATE_CHANGE_REJECTED, hex);
    assert_reason_has(g, ids[2], GATE_CHANGE_REJECTED, "'gb.txt'");
    assert_reason_has(g, ids[2], GATE_CHANGE_REJECTED, "missing");
    gate_close(g);
}

/* A commit of the target's own history is gone: the gate's trouble, nobody is rejected. */
static void test_damaged_target_blames_nobody(void **state)
{
    (void)state;
    fx_setup_repo("strategy = serial\nretries = 0", "");
    git_oid tip;
    const fx_file f[] = {{"main2.txt", "2\n"}};
    fx_commit(&fx_base, f, 1, "main", &tip);
    fx_branch("a", "a.txt", "a\n"); /* branched from main's first commit */
    gate *g = fx_open();
    long long a = fx_submit(g, "a", 0);
    gate_close(g);
    char path[256], saved[256];
    loose_path(&fx_base, path, sizeof(path));
    (void)snprintf(saved, sizeof(saved), "%s/saved-object", fx_dir);
    assert_int_equal(rename(path, saved), 0);
    g = fx_open();
    gate_run_stats st;
    keel_status s = gate_run(g, true, &st);
    gate_close(g);
    assert_false(keel_ok(s));
    char msg[2048];
    (void)keel_status_format(s, msg, sizeof(msg));
    assert_false(keel_status_has(s, &gate_codes, GATE_E_BAD_CHANGE));
    keel_status_free(s);
    if (strstr(msg, "target") == NULL)
        fail_msg("the error does not say the target is damaged: %s", msg);
    assert_int_equal(st.rejected, 0);
    assert_int_equal(
        fx_sql_int("SELECT count(*) FROM changes WHERE state NOT IN ('queued', 'testing')", NULL),
        0);
    /* repaired: it lands */
    assert_int_equal(rename(saved, path), 0);
    st = run_ok();
    assert_int_equal(st.landed, 1);
    g = fx_open();
    assert_int_equal(fx_state_of(g, a), GATE_CHANGE_LANDED);
    gate_close(g);
    nothing_stuck();
}

/* ---- a broken or missing .keel/gate.conf ------------------------------------------------ */

static void test_broken_config_rejected_with_message(void **state)
{
    (void)state;
    fx_setup_repo("strategy = batch\nretries = 2", "");
    fx_branch("broken", ".keel/gate.conf",
              "[gate]\nslots = 2\nbogus = 1\n[config unit]\ntest = sh ci.sh\n");
    git_oid oid;
    const fx_file gone[] = {{".keel/gate.conf", NULL}};
    fx_commit(&fx_base, gone, 1, "no-config", &oid);
    static const char *const branches[] = {"broken", "no-config"};
    long long ids[2];
    queue_between_good(branches, 2, ids);
    run_expect(2, 2);
    gate *g = fx_open();
    assert_reason_has(g, ids[0], GATE_CHANGE_REJECTED, ".keel/gate.conf:3: unknown key 'bogus'");
    assert_reason_has(g, ids[1], GATE_CHANGE_REJECTED, "no file '.keel/gate.conf'");
    /* `log` shows the message as a job's output */
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    fx_ok(gate_log(g, ids[0], f, false));
    assert_int_equal(fclose(f), 0);
    if (strstr(text, "'gate.conf'") == NULL ||
        strstr(text, ".keel/gate.conf:3: unknown key 'bogus'") == NULL)
        fail_msg("log does not show the configuration's error:\n%s", text);
    free(text);
    gate_close(g);
    /* deterministic: never retried, whatever `retries` is */
    assert_int_equal(fx_sql_int("SELECT count(*) FROM jobs WHERE attempt > 1", NULL), 0);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_submit_not_commits_local, fx_teardown),
        cmocka_unit_test_teardown(test_submit_not_commits_url, fx_teardown),
        cmocka_unit_test_teardown(test_queued_head_not_a_commit, fx_teardown),
        cmocka_unit_test_teardown(test_queued_head_not_an_id, fx_teardown),
        cmocka_unit_test_teardown(test_pushed_not_commits_local, fx_teardown),
        cmocka_unit_test_teardown(test_pushed_not_commits_url, fx_teardown),
        cmocka_unit_test_teardown(test_pushed_long_names_local, fx_teardown),
        cmocka_unit_test_teardown(test_pushed_long_names_url, fx_teardown),
        cmocka_unit_test_teardown(test_hostile_trees_local, fx_teardown),
        cmocka_unit_test_teardown(test_hostile_trees_url, fx_teardown),
        cmocka_unit_test_teardown(test_deep_tree_refused, fx_teardown),
        cmocka_unit_test_teardown(test_path_at_the_limit_refused, fx_teardown),
        cmocka_unit_test(test_name_empty_slash_nul),
        cmocka_unit_test(test_name_dot_dotdot),
        cmocka_unit_test(test_name_dotgit_any_case),
        cmocka_unit_test(test_name_ntfs_trailing_dots_and_spaces),
        cmocka_unit_test(test_name_ntfs_data_stream),
        cmocka_unit_test(test_name_ntfs_short_name),
        cmocka_unit_test(test_name_ntfs_backslash),
        cmocka_unit_test(test_name_hfs_ignorable_code_points),
        cmocka_unit_test(test_name_symlinked_git_files),
        cmocka_unit_test(test_merge_out_of_memory_is_the_gates),
        cmocka_unit_test_teardown(test_missing_objects_of_a_change, fx_teardown),
        cmocka_unit_test_teardown(test_damaged_target_blames_nobody, fx_teardown),
        cmocka_unit_test_teardown(test_broken_config_rejected_with_message, fx_teardown),
    };
    return keel_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
