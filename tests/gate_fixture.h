/*
 * tests/gate_fixture.h - real repositories for keel-gate's end-to-end tests:
 * a bare repository in a temp dir whose `main` holds .keel/gate.conf and a
 * check script (repository content; job commands are argv vectors), and
 * branches made of commits on top of it with libgit2.
 */
#ifndef KEEL_TEST_GATE_FIXTURE_H
#define KEEL_TEST_GATE_FIXTURE_H

#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <git2.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#include "gate.h"
#include "git.h"

/*
 * GATE_TEST_REMOTE 1: the gate reaches the repository through a file:// URL
 * with a mirror of its own (gate/git/remote.h); the tests look at the repository
 * itself, as before.  fx_where may name another URL for the same repository
 * (a git daemon's).
 */
#ifndef GATE_TEST_REMOTE
#define GATE_TEST_REMOTE 0
#endif

static char fx_dir[64];
static char fx_shared[96]; /* where jobs may write (the configuration's `writable`): MARKER */
static const char *fx_where_dir = "/tmp"; /* where fx_dir is made */
static char fx_repo[128];
static char fx_state[128];
static char fx_url[160];
static char fx_mirror[128];
static const char *fx_where; /* what the gate is given: fx_repo, or a URL */
static git_repository *fx_git;
static git_oid fx_base;

typedef struct fx_file {
    const char *path;    /* may hold directories: ".keel/gate.conf" */
    const char *content; /* NULL: the file is removed */
} fx_file;

/*
 * Commit `files` on top of `parent` (NULL: a root commit) and point `branch`
 * at it; its author and committer `author` (Name, address Name@example.org;
 * NULL: test <test@localhost>).
 */
static inline void fx_commit_by(const char *author, const git_oid *parent, const fx_file *files,
                                size_t n, const char *branch, git_oid *out)
{
    git_commit *pc = NULL;
    git_tree *ptree = NULL;
    if (parent != NULL) {
        assert_int_equal(git_commit_lookup(&pc, fx_git, parent), 0);
        assert_int_equal(git_commit_tree(&ptree, pc), 0);
    }
    git_tree_update up[8];
    assert_true(n <= 8);
    for (size_t i = 0; i < n; i++) {
        memset(&up[i], 0, sizeof(up[i]));
        up[i].action = files[i].content != NULL ? GIT_TREE_UPDATE_UPSERT : GIT_TREE_UPDATE_REMOVE;
        if (files[i].content != NULL)
            assert_int_equal(git_blob_create_from_buffer(&up[i].id, fx_git, files[i].content,
                                                         strlen(files[i].content)),
                             0);
        up[i].filemode = GIT_FILEMODE_BLOB;
        up[i].path = files[i].path;
    }
    git_oid tree_id;
    if (ptree != NULL) {
        assert_int_equal(git_tree_create_updated(&tree_id, fx_git, ptree, n, up), 0);
    } else {
        /* a root commit: start from the empty tree */
        git_treebuilder *tb = NULL;
        git_oid empty;
        assert_int_equal(git_treebuilder_new(&tb, fx_git, NULL), 0);
        assert_int_equal(git_treebuilder_write(&empty, tb), 0);
        git_treebuilder_free(tb);
        git_tree *et = NULL;
        assert_int_equal(git_tree_lookup(&et, fx_git, &empty), 0);
        assert_int_equal(git_tree_create_updated(&tree_id, fx_git, et, n, up), 0);
        git_tree_free(et);
    }
    git_tree *tree = NULL;
    assert_int_equal(git_tree_lookup(&tree, fx_git, &tree_id), 0);
    git_signature *sig = NULL;
    char email[128];
    (void)snprintf(email, sizeof(email), "%s@example.org", author != NULL ? author : "");
    assert_int_equal(git_signature_now(&sig, author != NULL ? author : "test",
                                       author != NULL ? email : "test@localhost"),
                     0);
    const git_commit *parents[1] = {pc};
    assert_int_equal(git_commit_create(out, fx_git, NULL, sig, sig, NULL, branch, tree,
                                       pc != NULL ? 1 : 0, parents),
                     0);
    char ref[160];
    (void)snprintf(ref, sizeof(ref), "refs/heads/%s", branch);
    git_reference *r = NULL;
    assert_int_equal(git_reference_create(&r, fx_git, ref, out, 1, "test"), 0);
    git_reference_free(r);
    git_signature_free(sig);
    git_tree_free(tree);
    git_tree_free(ptree);
    git_commit_free(pc);
}

static inline void fx_commit(const git_oid *parent, const fx_file *files, size_t n,
                             const char *branch, git_oid *out)
{
    fx_commit_by(NULL, parent, files, n, branch, out);
}

/* The content of `path` in the tree of `commit`, into buf (cut to fit). */
static inline void fx_read_at(const git_oid *commit, const char *path, char *buf, size_t size)
{
    git_commit *c = NULL;
    git_tree *t = NULL;
    git_tree_entry *e = NULL;
    git_blob *b = NULL;
    assert_int_equal(git_commit_lookup(&c, fx_git, commit), 0);
    assert_int_equal(git_commit_tree(&t, c), 0);
    assert_int_equal(git_tree_entry_bypath(&e, t, path), 0);
    assert_int_equal(git_blob_lookup(&b, fx_git, git_tree_entry_id(e)), 0);
    (void)snprintf(buf, size, "%.*s", (int)git_blob_rawsize(b),
                   (const char *)git_blob_rawcontent(b));
    git_blob_free(b);
    git_tree_entry_free(e);
    git_tree_free(t);
    git_commit_free(c);
}

/* Does the tree of `commit` hold `path`? */
static inline bool fx_has_at(const git_oid *commit, const char *path)
{
    git_commit *c = NULL;
    git_tree *t = NULL;
    git_tree_entry *e = NULL;
    assert_int_equal(git_commit_lookup(&c, fx_git, commit), 0);
    assert_int_equal(git_commit_tree(&t, c), 0);
    bool has = git_tree_entry_bypath(&e, t, path) == 0;
    git_tree_entry_free(e);
    git_tree_free(t);
    git_commit_free(c);
    return has;
}

/* A branch off main's first commit changing one file. */
static inline void fx_branch(const char *branch, const char *path, const char *content)
{
    git_oid oid;
    const fx_file f[] = {{path, content}};
    fx_commit(&fx_base, f, 1, branch, &oid);
}

/*
 * The kill -9 and fault sweeps (every crash point, random kills, every failed allocation of the
 * store) are not run under ThreadSanitizer: a life killed or failed at a point finds no data race
 * that the other gate tests, run under it, do not, and these sweeps took about 280 s of its
 * test time (session 15: make check's time is CI's budget).  The devel, release and ASan builds
 * run them in full.  Shown as skipped, with this reason.  fx_skip_under_tsan(what): skipped under
 * ThreadSanitizer (KEEL_TEST_UNDER_TSAN, testutil.h), saying what is not run (NULL: a sweep).
 */
static inline void fx_skip_under_tsan(const char *what)
{
#ifdef KEEL_TEST_UNDER_TSAN
    (void)fprintf(stderr,
                  "skipped: %s, not run under ThreadSanitizer (devel, release and ASan run it)\n",
                  what != NULL ? what : "a kill -9 or fault sweep");
    skip();
#else
    (void)what;
#endif
}

static inline void fx_skip_sweep_under_tsan(void)
{
    fx_skip_under_tsan(NULL);
}

/*
 * Can bubblewrap make a sandbox here (jobs run in one: sandbox.h)?  NULL
 * when it can, else why not (the tests that run jobs are then skipped).
 */
static inline const char *fx_sandbox_missing(void)
{
    static int usable = -1;
    if (usable < 0)
        usable = system("bwrap --die-with-parent --unshare-all --cap-drop ALL --ro-bind / / "
                        "--dev /dev --proc /proc --tmpfs /tmp true >/dev/null 2>&1") == 0;
    return usable ? NULL
                  : "bubblewrap ('bwrap') cannot make a sandbox on this machine: install it "
                    "(make deps), or allow user namespaces; every job runs in one";
}

/*
 * The default line `line` of key `key` for a section, unless `lines` (the
 * test's own, up to any next section) give the key: a key given twice is an
 * error (gate.conf).
 */
static inline const char *fx_unless(const char *lines, const char *key, const char *line)
{
    size_t len = strlen(key);
    for (const char *p = lines; *p != '\0' && *p != '[';
         p += strcspn(p, "\n") + (p[strcspn(p, "\n")] != '\0')) {
        const char *k = p + strspn(p, " \t");
        if (strncmp(k, key, len) == 0 && k[len] != '\0' && strchr(" \t=", k[len]) != NULL)
            return "";
    }
    return line;
}

#ifndef FS_IOC_GETFLAGS /* <linux/fs.h>'s, which clashes with <sys/mount.h> (test_gate_faults.c) */
#define FS_IOC_GETFLAGS _IOR('f', 1, long)
#define FS_IOC_SETFLAGS _IOW('f', 2, long)
#endif
#ifndef FS_TOPDIR_FL
#define FS_TOPDIR_FL 0x00020000
#endif

/*
 * Where fx_dir is made: <fx_where_dir>/keel-tests (in `buf`), a directory
 * whose subdirectories ext4 spreads over its block groups (FS_TOPDIR_FL, the
 * Orlov allocator's "top of a hierarchy", as for /home).  Made straight in
 * /tmp, every test's directory went to /tmp's block group, where the files
 * that all the tests had just removed were: on an ext4 without a journal (this
 * machine's, session 21) each new inode is found past every inode of its group removed
 * in the last minutes (find_inode_bit, recently_deleted), and that search was
 * half of a gate test's processor time (docs/benchmarks.md).  A file system
 * without the flag refuses it: nothing changes there.
 */
static inline void fx_scratch_parent(char *buf, size_t size)
{
    (void)snprintf(buf, size, "%s/keel-tests", fx_where_dir);
    if (mkdir(buf, 01777) == 0)
        assert_int_equal(chmod(buf, 01777), 0); /* past the umask: for every user, as /tmp */
    else
        assert_int_equal(errno, EEXIST);
    int fd = open(buf, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    assert_true(fd >= 0);
    int flags = 0;
    if (ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0 && (flags & FS_TOPDIR_FL) == 0) {
        flags |= FS_TOPDIR_FL;
        (void)ioctl(fd, FS_IOC_SETFLAGS, &flags); /* another user's, or not ext*: as it is */
    }
    (void)close(fd);
}

/*
 * A repository whose main has a configuration with `gate_section` extra lines
 * in [gate] and one configuration "unit" that runs `sh ci.sh` (ci.sh: fail
 * when a file named "bad" exists), MARKER=<fx_shared>/marker in its
 * environment and fx_shared writable (a job sees only its own tree, a private
 * /tmp and its `writable` paths).  Skips the test when bwrap cannot run here.
 */
static inline void fx_setup_repo(const char *gate_lines, const char *config_lines)
{
    fx_dir[0] = '\0';
    const char *missing = fx_sandbox_missing();
    if (missing != NULL) {
        (void)fprintf(stderr, "skipped: %s\n", missing);
        skip();
    }
    git_libgit2_init();
    char parent[sizeof(fx_dir) - sizeof("/keel-gaterun-XXXXXX") + 1];
    fx_scratch_parent(parent, sizeof(parent));
    (void)snprintf(fx_dir, sizeof(fx_dir), "%s/keel-gaterun-XXXXXX", parent);
    assert_non_null(mkdtemp(fx_dir));
    (void)snprintf(fx_shared, sizeof(fx_shared), "%s/shared", fx_dir);
    assert_int_equal(mkdir(fx_shared, 0755), 0);
    (void)snprintf(fx_repo, sizeof(fx_repo), "%s/repo.git", fx_dir);
    (void)snprintf(fx_state, sizeof(fx_state), "%s/state.db", fx_dir);
    (void)snprintf(fx_url, sizeof(fx_url), "file://%s", fx_repo);
    (void)snprintf(fx_mirror, sizeof(fx_mirror), "%s/mirror.git", fx_dir);
    fx_where = GATE_TEST_REMOTE ? fx_url : fx_repo;
    assert_int_equal(git_repository_init(&fx_git, fx_repo, 1), 0);
    char conf[2048], notify[320], env[320], writable[320];
    (void)snprintf(notify, sizeof(notify), "notify = tee -a %s/events.jsonl\n", fx_dir);
    (void)snprintf(env, sizeof(env), "env = MARKER=%s/marker\n", fx_shared);
    (void)snprintf(writable, sizeof(writable), "writable = %s\n", fx_shared);
    (void)snprintf(conf, sizeof(conf), "[gate]\n%s%s%s\n%s[config unit]\n%s%s%s%s%s\n",
                   fx_unless(gate_lines, "target", "target = main\n"),
                   fx_unless(gate_lines, "slots", "slots = 2\n"), gate_lines,
                   fx_unless(gate_lines, "notify", notify),
                   fx_unless(config_lines, "test", "test = sh ci.sh\n"),
                   fx_unless(config_lines, "env", env),
                   fx_unless(config_lines, "timeout", "timeout = 30\n"),
                   fx_unless(config_lines, "writable", writable), config_lines);
    const fx_file f[] = {
        {".keel/gate.conf", conf}, {"ci.sh", "test ! -e bad\n"}, {"shared.txt", "base\n"}};
    fx_commit(NULL, f, 3, "main", &fx_base);
    assert_int_equal(git_repository_set_head(fx_git, "refs/heads/main"), 0);
}

static inline void fx_teardown_repo(void)
{
    if (fx_dir[0] == '\0')
        return; /* skipped before it was set up */
    git_repository_free(fx_git);
    fx_git = NULL;
    char cmd[128];
    (void)snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", fx_dir); /* our own mkdtemp dir */
    assert_int_equal(system(cmd), 0);
    fx_dir[0] = '\0';
    git_libgit2_shutdown();
}

/* <fx_shared>/marker<suffix>: what the job's $MARKER<suffix> names. */
static inline void fx_marker(char *buf, size_t size, const char *suffix)
{
    (void)snprintf(buf, size, "%s/marker%s", fx_shared, suffix);
}

/* Live processes (not zombies) with `var` (NAME=value, or a prefix of one) in their environment. */
static inline int fx_processes_with(const char *var)
{
    DIR *d = opendir("/proc");
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e = readdir(d); e != NULL; e = readdir(d)) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue;
        char path[300], stat[512], env[8192];
        (void)snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        size_t got = fread(stat, 1, sizeof(stat) - 1, f);
        fclose(f);
        stat[got] = '\0';
        const char *rp = strrchr(stat, ')');
        if (rp == NULL || rp[2] == 'Z' || rp[2] == 'X')
            continue;
        (void)snprintf(path, sizeof(path), "/proc/%s/environ", e->d_name);
        f = fopen(path, "r");
        if (f == NULL)
            continue;
        got = fread(env, 1, sizeof(env) - 1, f);
        fclose(f);
        env[got] = '\0';
        for (size_t i = 0; i < got; i += strlen(env + i) + 1)
            if (strncmp(env + i, var, strlen(var)) == 0) {
                n++;
                break;
            }
    }
    closedir(d);
    return n;
}

/*
 * Live processes of this test's jobs: those whose environment holds its
 * MARKER.  Pid namespaces make a job's own pids meaningless here.
 */
static inline int fx_job_processes(void)
{
    char want[160];
    (void)snprintf(want, sizeof(want), "MARKER=%s/marker", fx_shared);
    return fx_processes_with(want);
}

/*
 * The job processes still alive after up to `ms` milliseconds: killed
 * processes end asynchronously (a fork bomb's 64 take a while on a loaded
 * machine), so "none left" is checked as "none left soon".
 */
static inline int fx_job_processes_after(long ms)
{
    int n = fx_job_processes();
    for (long waited = 0; n > 0 && waited < ms; waited += 50) {
        struct timespec ts = {0, 50 * 1000000L};
        (void)nanosleep(&ts, NULL);
        n = fx_job_processes();
    }
    return n;
}

static inline void fx_ok(keel_status s)
{
    if (!keel_ok(s)) {
        keel_status_print(stderr, s);
        keel_status_free(s);
        fail();
    }
}

/* A gate of `target` (NULL: the one HEAD names) on the fixture's repository and store. */
static inline gate *fx_open_target(const char *target)
{
    gate_options o;
    gate_options_default(&o);
    o.target = target;
    o.repo = fx_where;
    o.mirror = fx_mirror; /* used when fx_where is a URL */
    o.state = fx_state;
    o.out = getenv("GATE_TEST_VERBOSE") != NULL ? stderr : NULL;
    o.poll_ms = 50;
    o.pause_ms = 20; /* after the gate's own failure: a short pause before it tries again */
    gate *g = NULL;
    fx_ok(gate_open(&o, &g));
    struct stat st; /* the mirror is made by the first open, for a URL only */
    assert_int_equal(stat(fx_mirror, &st) == 0, fx_where != fx_repo);
    return g;
}

static inline gate *fx_open(void)
{
    return fx_open_target(NULL);
}

/* One gate_run(once) on a gate of its own: what `keel-gate run --once` does. */
static inline gate_run_stats fx_run_once(void)
{
    gate *g = fx_open();
    gate_run_stats st;
    fx_ok(gate_run(g, true, &st));
    gate_close(g);
    return st;
}

/* A cmocka teardown for tests that set up a repository. */
static inline int fx_teardown(void **state)
{
    (void)state;
    fx_teardown_repo();
    return 0;
}

static inline long long fx_submit(gate *g, const char *branch, int priority)
{
    long long id = 0;
    fx_ok(gate_submit(g, branch, priority, &id));
    return id;
}

/*
 * Branches a, bad (its test fails: it holds a file named bad) and b, queued
 * in that order: ids[0..2].
 */
static inline void fx_queue_with_bad(gate *g, long long ids[3])
{
    static const char *const names[] = {"a", "bad", "b"};
    static const char *const paths[] = {"a.txt", "bad", "b.txt"};
    static const char *const texts[] = {"a\n", "x\n", "b\n"};
    for (int i = 0; i < 3; i++) {
        fx_branch(names[i], paths[i], texts[i]);
        ids[i] = fx_submit(g, names[i], 0);
    }
}

/*
 * A branch `branch` whose configuration (`gate_lines` in [gate], one job
 * "unit" with timeout = 1) runs ci.sh = `ci`: a job that times out.
 */
static inline void fx_hang_branch(const char *branch, const char *gate_lines, const char *ci)
{
    char conf[512];
    (void)snprintf(conf, sizeof(conf),
                   "[gate]\n%s\n[config unit]\ntest = sh ci.sh\nenv = MARKER=%s/marker\n"
                   "timeout = 1\n",
                   gate_lines, fx_shared);
    const fx_file f[] = {{"ci.sh", ci}, {".keel/gate.conf", conf}};
    git_oid oid;
    fx_commit(&fx_base, f, 2, branch, &oid);
}

static inline gate_change_state fx_state_of(gate *g, long long id)
{
    gate_change c;
    fx_ok(gate_store_get(gate_get_store(g), id, &c));
    return c.state;
}

static inline void fx_head(const char *branch, git_oid *out)
{
    char ref[160];
    (void)snprintf(ref, sizeof(ref), "refs/heads/%s", branch);
    assert_int_equal(git_reference_name_to_id(out, fx_git, ref), 0);
}

/* A commit on main's tip pushed around the gate: `path` set to `content` (NULL: removed). */
static inline void fx_push(const char *path, const char *content, git_oid *out)
{
    git_oid tip;
    fx_head("main", &tip);
    const fx_file f[] = {{path, content}};
    fx_commit(&tip, f, 1, "main", out);
}

/*
 * Walk main's first parents; fill `landed` with the second parent of each
 * merge, newest first.  Returns how many.
 */
static inline size_t fx_landed_heads(git_oid *landed, size_t max)
{
    git_oid cur;
    fx_head("main", &cur);
    size_t n = 0;
    for (;;) {
        git_commit *c = NULL;
        assert_int_equal(git_commit_lookup(&c, fx_git, &cur), 0);
        unsigned np = git_commit_parentcount(c);
        if (np == 2 && n < max)
            git_oid_cpy(&landed[n++], git_commit_parent_id(c, 1));
        if (np == 0) {
            git_commit_free(c);
            break;
        }
        git_oid_cpy(&cur, git_commit_parent_id(c, 0));
        git_commit_free(c);
    }
    return n;
}

/* How many times main's history merged the head of `branch`. */
static inline size_t fx_times_landed(const char *branch)
{
    git_oid heads[256], h;
    fx_head(branch, &h);
    size_t n = fx_landed_heads(heads, 256), times = 0;
    for (size_t i = 0; i < n; i++)
        times += git_oid_equal(&heads[i], &h) ? 1u : 0u;
    return times;
}

/*
 * Run `sql` on the store (sqlite directly: a state the gate's API would take
 * long to make, or a row damaged on purpose); a failure fails the test with
 * sqlite's message.
 */
static inline void fx_sql_exec(const char *sql)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(fx_state, &db), SQLITE_OK);
    /* a gate running in another thread may hold the store's lock a moment: wait, as it does */
    (void)sqlite3_busy_timeout(db, 10000);
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("%s: %s", sql, msg != NULL ? msg : "?");
    sqlite3_close(db);
}

/* One integer from the store (sqlite directly: what the tests check, not the gate's API). */
static inline long long fx_sql_int(const char *sql, const char *arg)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(fx_state, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    /* a gate running in another thread may hold the store's lock a moment: wait, as it does */
    (void)sqlite3_busy_timeout(db, 10000);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    if (arg != NULL)
        assert_int_equal(sqlite3_bind_text(st, 1, arg, -1, SQLITE_TRANSIENT), SQLITE_OK);
    long long v = -1;
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/*
 * The target points at a tested state: the merge of a candidate whose jobs
 * passed (one the store says passed, unless the gate was killed between its
 * compare-and-swap and recording it: `settled` false).
 */
static inline void fx_assert_tip_tested_as(bool settled)
{
    git_oid tip;
    fx_head("main", &tip);
    char hex[GIT_OID_HEXSZ + 1];
    git_oid_tostr(hex, sizeof(hex), &tip);
    if (git_oid_equal(&tip, &fx_base))
        return; /* nothing landed: the original tip */
    long long passed = fx_sql_int(
        settled ? "SELECT count(*) FROM candidates WHERE merge = ?1 AND state = 'passed' AND "
                  "EXISTS (SELECT 1 FROM jobs WHERE jobs.candidate = candidates.id AND "
                  "jobs.state = 'passed')"
                : "SELECT count(*) FROM candidates WHERE merge = ?1 AND state IN ('open', "
                  "'passed') AND EXISTS (SELECT 1 FROM jobs WHERE jobs.candidate = "
                  "candidates.id AND jobs.state = 'passed')",
        hex);
    if (passed < 1)
        fail_msg("main is at %s, not the merge of a tested, passed candidate", hex);
}

static inline void fx_assert_tip_tested(void)
{
    fx_assert_tip_tested_as(true);
}

/* ---- a gate daemon in a child process, and a job that waits ------------------------------ */

/*
 * The job: passes at once when $MARKER.fast exists; otherwise starts a long
 * sleep in its process group, says which (pid in $MARKER.sleep) and waits.
 * `stubborn`: the job ignores SIGTERM, so a graceful stop has to wait for
 * the executor's SIGKILL after its grace period.
 */
static inline void fx_slow_branch(const char *branch, bool stubborn)
{
    char script[512];
    (void)snprintf(script, sizeof(script),
                   "if [ -e \"$MARKER.fast\" ]; then exit 0; fi\n"
                   "%s"
                   "sleep 60 &\n"
                   "echo $! > \"$MARKER.tmp\" && mv \"$MARKER.tmp\" \"$MARKER.sleep\"\n"
                   "wait\n",
                   stubborn ? "trap '' TERM\n" : "");
    fx_branch(branch, "ci.sh", script);
}

static inline long long fx_now_ms(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void fx_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* fx_run_once on a thread of the test's (pthread_create): the test orders its builds meanwhile. */
static inline void *fx_run_once_thread(void *arg)
{
    (void)arg;
    (void)fx_run_once();
    return NULL;
}

/* hold.sh's first line: `wait_for NAME` waits until <$HOLD>/NAME exists (fx_mark). */
#define FX_HOLD_WAIT_FOR "wait_for() { while test ! -e \"$HOLD/$1\"; do sleep 0.02; done; }\n"
/*
 * hold.sh's first lines for a commit with a file `late`: its first build
 * makes the mark `once` and waits for `release`, a later one does not wait;
 * the script goes on with "elif" lines for the other commits.
 */
#define FX_HOLD_LATE_ONCE                      \
    FX_HOLD_WAIT_FOR "if test -e late; then\n" \
                     "  if mkdir \"$HOLD/once\" 2>/dev/null; then wait_for release; fi\n"

/*
 * hold.sh for two commits: c1 adds `late` (its first build held until
 * `release`; it fails), c2 removes it and adds c2.txt (waits until c1's first
 * build started; passes): c2's pass comes first.
 */
#define FX_HOLD_LATE_C1                                           \
    FX_HOLD_LATE_ONCE "elif test -e c2.txt; then wait_for once\n" \
                      "fi\n"                                      \
                      "test ! -e late\n"

/*
 * fx_setup_repo, and on its main a commit (*out) of a configuration of
 * `slots` slots without a sandbox whose configuration 'long' (at `level`,
 * tier `tier`) runs `sh hold.sh` (`script`) with HOLD=<fx_shared>: jobs that
 * wait for marks (files) other jobs or the test make, so that a test orders
 * builds by what happened, never by time.
 */
static inline void fx_setup_hold(unsigned slots, const char *level, unsigned tier,
                                 const char *script, git_oid *out)
{
    fx_setup_repo("strategy = serial\nsandbox = none", "");
    char config[1024];
    (void)snprintf(config, sizeof(config),
                   "[gate]\ntarget = main\nslots = %u\nstrategy = serial\nsandbox = none\n"
                   "[config unit]\ntest = sh ci.sh\ntimeout = 30\n"
                   "[config long]\ntest = sh hold.sh\nlevels = %s\ntier = %u\ntimeout = 30\n"
                   "env = HOLD=%s\n",
                   slots, level, tier, fx_shared);
    git_oid tip;
    fx_head("main", &tip);
    const fx_file f[] = {{".keel/gate.conf", config}, {"hold.sh", script}};
    fx_commit(&tip, f, 2, "main", out);
}

/* The mark <fx_shared>/name made once the store holds an event `kind` (60 s at most). */
static inline void fx_mark_after_event(const char *kind, const char *name)
{
    long long until = fx_now_ms() + 60000;
    while (fx_now_ms() < until &&
           fx_sql_int("SELECT count(*) FROM events WHERE kind = ?", kind) < 1)
        fx_sleep_ms(20);
    char path[200];
    (void)snprintf(path, sizeof(path), "%s/%s", fx_shared, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fclose(f), 0);
}

static char fx_log_path[160];

/* `keel-gate run` (--target `target` unless NULL) in a child process; its output goes to fx_log_path. */
static inline pid_t fx_start_daemon_for(const char *target)
{
    (void)snprintf(fx_log_path, sizeof(fx_log_path), "%s/daemon.log", fx_dir);
    (void)fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        FILE *log = fopen(fx_log_path, "w");
        if (log == NULL)
            _exit(101);
        char *argv[] = {(char *)"keel-gate",
                        (char *)"--repo",
                        fx_repo,
                        (char *)"--state",
                        fx_state,
                        (char *)"run",
                        NULL,
                        NULL,
                        NULL};
        int argc = 6;
        char target_copy[GATE_NAME_MAX];
        if (target != NULL) {
            (void)snprintf(target_copy, sizeof(target_copy), "%s", target);
            argv[argc++] = (char *)"--target";
            argv[argc++] = target_copy;
        }
        int rc = gate_cli_main(argc, argv, log, log);
        (void)fclose(log);
        _exit(rc);
    }
    return pid;
}

static inline pid_t fx_start_daemon(void)
{
    return fx_start_daemon_for(NULL);
}

static inline void fx_read_log(char *buf, size_t size)
{
    keel_test_read_file(fx_log_path, buf, size);
}

/* The pid the job wrote to $MARKER.sleep, once it has; fails if the daemon ends first. */
static inline pid_t fx_wait_for_job(pid_t daemon)
{
    char path[160];
    fx_marker(path, sizeof(path), ".sleep");
    for (long long until = fx_now_ms() + 60000; fx_now_ms() < until; fx_sleep_ms(20)) {
        int status = 0;
        if (waitpid(daemon, &status, WNOHANG) == daemon) {
            char log[8192];
            fx_read_log(log, sizeof(log));
            fail_msg("the daemon ended (status %d) before its job started: %s", status, log);
        }
        FILE *f = fopen(path, "r");
        long pid = 0;
        if (f != NULL) {
            int got = fscanf(f, "%ld", &pid);
            (void)fclose(f);
            if (got == 1 && pid > 0)
                return (pid_t)pid;
        }
    }
    fail_msg("the job did not start in 60 s");
    return -1;
}

/* The daemon's wait status; fails after timeout_ms. */
static inline int fx_wait_exit(pid_t pid, long long timeout_ms)
{
    for (long long until = fx_now_ms() + timeout_ms; fx_now_ms() < until; fx_sleep_ms(10)) {
        int status = 0;
        pid_t w = waitpid(pid, &status, WNOHANG);
        assert_true(w >= 0);
        if (w == pid)
            return status;
    }
    (void)kill(pid, SIGKILL);
    (void)waitpid(pid, NULL, 0);
    fail_msg("the daemon did not exit within %lld ms", timeout_ms);
    return -1;
}

/*
 * Is a process of the test's jobs still alive?  Waits up to 5 s for them to
 * go: for `assert_false(fx_still_alive(job))` (a kill's end is asynchronous).
 */
static inline bool fx_still_alive(pid_t pid)
{
    (void)pid; /* its sandbox's pid means nothing here: its processes are found by MARKER */
    for (long long until = fx_now_ms() + 5000; fx_now_ms() < until; fx_sleep_ms(20))
        if (fx_job_processes() == 0)
            return false;
    return true;
}

/*
 * The test's job still runs, and is not dying: its processes alive now and
 * at every look over the next FX_STILL_RUNNING_MS.  What a kill leaves ends
 * within milliseconds (SIGKILL, a sandbox's --die-with-parent); the window
 * is ten times that at a load of 20, not fx_still_alive's 5 s.
 */
enum { FX_STILL_RUNNING_MS = 500 };

static inline bool fx_still_running(void)
{
    for (long long until = fx_now_ms() + FX_STILL_RUNNING_MS;; fx_sleep_ms(20)) {
        if (fx_job_processes() == 0)
            return false;
        if (fx_now_ms() >= until)
            return true;
    }
}

static inline void fx_make_fast(void)
{
    char path[160];
    fx_marker(path, sizeof(path), ".fast");
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    (void)fclose(f);
}

#if KEEL_DEVEL
/* A stress action: someone pushes to main (a commit adding pushed.txt), then the gate goes on. */
static inline bool fx_push_to_main(const char *name, void *ctx)
{
    (void)name;
    (void)ctx;
    git_oid tip, pushed;
    fx_head("main", &tip);
    const fx_file f[] = {{"pushed.txt", "a direct push\n"}};
    fx_commit(&tip, f, 1, "main", &pushed);
    return false; /* the gate goes on to its compare-and-swap, and loses it */
}

static const char *fx_crash_spec; /* the stress spec fx_crashing_run enables */

/* A child's body (keel_test_run_child): run the gate until fx_crash_spec kills it (exit 99). */
static inline void fx_crashing_run(void)
{
    keel_status s = keel_stress_enable(fx_crash_spec);
    if (!keel_ok(s))
        _exit(3);
    gate *g = fx_open();
    gate_run_stats st;
    s = gate_run(g, true, &st);
    keel_status_ignore(s, "the child is to die before it returns");
    _exit(4); /* the stress point never fired */
}

/* The gate run in a child until stress point `spec` kills it (exit 99, as kill -9 would). */
static inline void fx_run_until_killed(const char *spec)
{
    fx_crash_spec = spec;
    char err[4096];
    int status = keel_test_run_child(fx_crashing_run, err, sizeof(err));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 99)
        fail_msg("%s: the gate should have died (status %d): %s", spec, status, err);
}
#endif

#endif /* KEEL_TEST_GATE_FIXTURE_H */
