/*
 * worktree.c - a job's work tree reused from job to job (worktree.h).
 *
 * The record of a checkout is every entry under the work tree after it (a
 * walk with fts, lstat only), sorted by path.  Before the next checkout a
 * second walk keeps an entry only if the record has it with the same inode,
 * ctime, size and mode (a directory: same inode and mode; what is in it is
 * judged entry by entry), and removes the rest.
 */
#define _GNU_SOURCE      1
#define KEEL_MODULE_NAME "gate_git"
#include "worktree.h"

#include "heaps.h"

#include <errno.h>
#include <fts.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define WT_HEAP KEEL_MODULE_REF(gate_git)

typedef struct wt_entry {
    size_t name; /* offset of the path (relative to the work tree) in names */
    dev_t dev;
    ino_t ino;
    struct timespec ctime;
    off_t size;
    mode_t mode;
} wt_entry;

struct gate_worktree {
    char held[GATE_HEX]; /* the commit whose tree it holds; "" unknown */
    wt_entry *entries;   /* the record, sorted by path */
    size_t n, cap;
    char *names;
    size_t names_len, names_cap;
    char *dir; /* in the same block */
};

keel_status gate_worktree_new(const char *dir, gate_worktree **out)
{
    KEEL_ASSERT(dir != NULL && out != NULL);
    *out = NULL;
    void *mem = NULL;
    char *copy = NULL;
    keel_status s = gate_heaps_alloc_named(WT_HEAP, sizeof(gate_worktree), dir, &mem, &copy);
    if (!keel_ok(s))
        return KEEL_CONTEXT(s, "a work tree in '%s'", dir);
    gate_worktree *w = (gate_worktree *)mem;
    w->dir = copy;
    *out = w;
    return KEEL_OK;
}

void gate_worktree_delete(gate_worktree *w)
{
    if (w == NULL)
        return;
    keel_heap_free(WT_HEAP, w->entries);
    keel_heap_free(WT_HEAP, w->names);
    keel_heap_free(WT_HEAP, w); /* its dir too: one block */
}

const char *gate_worktree_dir(const gate_worktree *w)
{
    KEEL_ASSERT(w != NULL);
    return w->dir;
}

void gate_worktree_forget(gate_worktree *w)
{
    KEEL_ASSERT(w != NULL);
    w->held[0] = '\0';
    w->n = 0;
    w->names_len = 0;
}

static int by_name(const void *a, const void *b, void *names)
{
    return strcmp((const char *)names + ((const wt_entry *)a)->name,
                  (const char *)names + ((const wt_entry *)b)->name);
}

static const wt_entry *recorded(const gate_worktree *w, const char *rel)
{
    size_t lo = 0, hi = w->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(w->names + w->entries[mid].name, rel);
        if (c == 0)
            return &w->entries[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* Is this entry as the last checkout left it? */
static bool untouched(const gate_worktree *w, const char *rel, const struct stat *st)
{
    const wt_entry *e = recorded(w, rel);
    if (e == NULL || e->dev != st->st_dev || e->ino != st->st_ino || e->mode != st->st_mode)
        return false;
    if (S_ISDIR(st->st_mode))
        return true; /* entries come and go in it: each is judged on its own */
    return e->size == st->st_size && e->ctime.tv_sec == st->st_ctim.tv_sec &&
           e->ctime.tv_nsec == st->st_ctim.tv_nsec;
}

static keel_status record(gate_worktree *w, const char *rel, const struct stat *st)
{
    size_t len = strlen(rel) + 1;
    if (w->names_len + len > w->names_cap) {
        size_t cap = w->names_cap > 0 ? w->names_cap * 2 : 4096;
        while (cap < w->names_len + len)
            cap *= 2;
        keel_status s = keel_heap_realloc(WT_HEAP, (void **)&w->names, cap);
        if (!keel_ok(s))
            return s;
        w->names_cap = cap;
    }
    if (w->n == w->cap) {
        size_t cap = w->cap > 0 ? w->cap * 2 : 64;
        keel_status s = keel_heap_realloc(WT_HEAP, (void **)&w->entries, cap * sizeof(wt_entry));
        if (!keel_ok(s))
            return s;
        w->cap = cap;
    }
    wt_entry *e = &w->entries[w->n++];
    e->name = w->names_len;
    e->dev = st->st_dev;
    e->ino = st->st_ino;
    e->ctime = st->st_ctim;
    e->size = st->st_size;
    e->mode = st->st_mode;
    memcpy(w->names + w->names_len, rel, len);
    w->names_len += len;
    return KEEL_OK;
}

typedef enum walk_what { WALK_RECORD, WALK_CLEAN, WALK_EMPTY } walk_what;

/*
 * One walk of the work tree: record its entries, remove those not recorded
 * (CLEAN) or all of them (EMPTY).  KEEL_E_IO when an entry could not be read
 * or removed.
 */
static keel_status walk(gate_worktree *w, walk_what what)
{
    char *roots[2] = {w->dir, NULL};
    FTS *fts = fts_open(roots, FTS_PHYSICAL | FTS_NOCHDIR, NULL);
    if (fts == NULL)
        return KEEL_ERR_SYS(errno, "cannot walk work tree '%s'", w->dir);
    size_t root = strlen(w->dir) + 1;
    keel_status s = KEEL_OK;
    errno = 0;
    FTSENT *e;
    while (keel_ok(s) && (e = fts_read(fts)) != NULL) {
        if (e->fts_level == 0) {
            if (e->fts_info == FTS_NS && e->fts_errno == ENOENT)
                break; /* no work tree yet */
            if (e->fts_info != FTS_D && e->fts_info != FTS_DP)
                s = KEEL_ERR(KEEL_E_IO, "work tree '%s' is not a directory", w->dir);
            continue;
        }
        const char *rel = e->fts_path + root;
        switch (e->fts_info) {
        case FTS_D:
            if (what == WALK_RECORD)
                s = record(w, rel, e->fts_statp);
            break;
        case FTS_DP:
            if ((what == WALK_EMPTY || (what == WALK_CLEAN && !untouched(w, rel, e->fts_statp))) &&
                rmdir(e->fts_path) != 0)
                s = KEEL_ERR_SYS(errno, "cannot remove '%s'", e->fts_path);
            break;
        case FTS_F:
        case FTS_SL:
        case FTS_SLNONE:
        case FTS_DEFAULT: /* FIFOs, sockets, devices: never in a tree */
            if (what == WALK_RECORD)
                s = record(w, rel, e->fts_statp);
            else if ((what == WALK_EMPTY || e->fts_info == FTS_DEFAULT ||
                      !untouched(w, rel, e->fts_statp)) &&
                     unlink(e->fts_path) != 0)
                s = KEEL_ERR_SYS(errno, "cannot remove '%s'", e->fts_path);
            break;
        default: /* unreadable, or no stat */
            s = KEEL_ERR_SYS(e->fts_errno, "cannot read '%s'", e->fts_path);
            break;
        }
        errno = 0;
    }
    if (keel_ok(s) && e == NULL && errno != 0)
        s = KEEL_ERR_SYS(errno, "cannot walk work tree '%s'", w->dir);
    (void)fts_close(fts);
    return s;
}

keel_status gate_worktree_checkout(gate_worktree *w, gate_repo *r, const char *commit)
{
    KEEL_ASSERT(w != NULL && r != NULL && commit != NULL);
    if (KEEL_STRESS(tree_full)) /* as a full disk under the work trees would */
        return KEEL_ERR_SYS(ENOSPC, "cannot write work tree '%s' (stress point)", w->dir);
    char held[GATE_HEX];
    memcpy(held, w->held, sizeof(held));
    w->held[0] = '\0'; /* until this checkout is through; the record stays for the clean-up */
    struct stat sb;
    if (lstat(w->dir, &sb) == 0 && !S_ISDIR(sb.st_mode)) {
        /* a job replaced its work tree (a symlink, a file): never written through */
        if (unlink(w->dir) != 0)
            return KEEL_ERR_SYS(
                errno, "cannot remove '%s', which a job put where its work tree was", w->dir);
        held[0] = '\0';
    }
    bool done = false;
    keel_status s = KEEL_OK;
    if (held[0] != '\0') {
        s = walk(w, WALK_CLEAN);
        if (keel_ok(s))
            s = gate_checkout(r, commit, held, w->dir);
        done = keel_ok(s);
        if (!done)
            keel_status_ignore(s, "a job left what cannot be undone: written whole instead");
    }
    if (!done) {
        s = walk(w, WALK_EMPTY);
        if (keel_ok(s))
            s = gate_checkout(r, commit, NULL, w->dir);
    }
    w->n = 0;
    w->names_len = 0;
    if (keel_ok(s))
        s = walk(w, WALK_RECORD);
    if (!keel_ok(s)) {
        gate_worktree_forget(w);
        return KEEL_CONTEXT(s, "checking out %.12s in '%s'", commit, w->dir);
    }
    qsort_r(w->entries, w->n, sizeof(wt_entry), by_name, w->names);
    (void)snprintf(w->held, sizeof(w->held), "%s", commit);
    return KEEL_OK;
}
