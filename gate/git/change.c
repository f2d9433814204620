/*
 * change.c - what a change brings, checked before gate_merge merges it
 * (git_int.h): its head peeled to a commit, the entries of its tree that
 * differ from the tree it is merged onto, the commits of its history down to
 * where it meets the target's; and whose fault a failure is.
 *
 * A failure that is the change's own doing is GATE_E_BAD_CHANGE: its head
 * missing or not a commit, a tree entry name git refuses (tree_names.c), an
 * object of its tree or a commit of its history missing or malformed.
 * Anything else is the gate's: memory (a failed allocation of libgit2's, on
 * gate_git's heap, whatever libgit2 then says), I/O, a damaged object file,
 * the target's own objects.  Objects are looked up only once they are known
 * to be there: libgit2 1.5 leaks on some of its paths for a missing one.
 */
#define _GNU_SOURCE 1
#include "git_int.h"

#include "heaps.h"
#include "remote.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define GIT_HEAP KEEL_MODULE_REF(gate_git)

/* ---- whose fault ----------------------------------------------------------------------- */

enum {
    TREE_PATH_MAX = 4096,                   /* as Linux takes a path: longer ones fail */
    TREE_SHOWN_MAX = TREE_PATH_MAX * 4 + 8, /* a path for a message (\xNN: 4 bytes a byte) */
    TREE_WHAT_MAX = TREE_SHOWN_MAX + 256    /* an object for a message */
};

/*
 * Is libgit2's last error the gate's trouble (memory, the disk, the system,
 * a damaged object file) rather than what an object of the repository holds?
 * Unknown: the gate's, so that nobody is blamed for it.
 */
static bool git_fault_is_gates(void)
{
    const git_error *e = git_error_last();
    if (e == NULL)
        return true;
    switch (e->klass) {
    case GIT_ERROR_NONE: /* libgit2 could not say why: short of memory */
    case GIT_ERROR_NOMEMORY:
    case GIT_ERROR_OS:
    case GIT_ERROR_ZLIB:
    case GIT_ERROR_THREAD:
    case GIT_ERROR_INTERNAL:
    case GIT_ERROR_FILESYSTEM:
    case GIT_ERROR_NET:
    case GIT_ERROR_SSL:
    case GIT_ERROR_SSH:
    case GIT_ERROR_HTTP:
        return true;
    default:
        return false;
    }
}

/* GATE_E_BAD_CHANGE for change `index`, "path" when a tree entry is the cause. */
static keel_status bad_change(size_t index, const char *path, const char *fmt, ...)
    KEEL_PRINTF(3, 4);
static keel_status bad_change(size_t index, const char *path, const char *fmt, ...)
{
    char what[1024];
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    keel_status s = keel_status_with_uint(KEEL_ERR_IN(&gate_codes, GATE_E_BAD_CHANGE, "%s", what),
                                          "index", (unsigned long long)index);
    return path != NULL ? keel_status_with_str(s, "path", path) : s;
}

/*
 * An allocation of libgit2's failed on this thread since the last look (the
 * gate's error, naming the heap, for the call that failed with rc), or
 * KEEL_OK.  libgit2 may report such a failure as something else: "not
 * found" of an object it had no memory to read.
 */
static keel_status heap_failed(int rc, const char *doing, const char *what)
{
    keel_status heap = gate_heaps_take_failure();
    if (keel_ok(heap))
        return KEEL_OK;
    return keel_status_with_int(KEEL_CONTEXT(heap, "cannot %s%s", doing, what), "git_error", rc);
}

void gate_change_forget_heap(void)
{
    keel_status_free(gate_heaps_take_failure());
}

/*
 * libgit2 failed (rc) reading an object that only change `index` brings:
 * the change's fault (BAD_CHANGE: missing, malformed), unless the failure is
 * the gate's own (git_fault_is_gates).
 */
static keel_status change_object_error(int rc, size_t index, const char *path, const char *what)
{
    keel_status heap = heap_failed(rc, "read ", what);
    if (!keel_ok(heap))
        return heap;
    if (rc != GIT_ENOTFOUND && git_fault_is_gates())
        return gate_git_error(rc, "cannot read %s", what);
    const git_error *e = git_error_last();
    if (rc == GIT_ENOTFOUND)
        return bad_change(index, path, "%s is missing from the repository", what);
    return bad_change(index, path, "%s cannot be read: %s", what,
                      e != NULL && e->message != NULL ? e->message : "libgit2 error");
}

/* ---- the head: a commit, or an annotated tag of one ---------------------------------- */

/*
 * Peel `obj` (taken; `what` names it: "the head of branch 'x'") to a commit:
 * *out, the first tag's id in *tag (zero: no tag), or BAD_CHANGE naming the
 * type it ends at.
 */
static keel_status peel_to_commit(gate_repo *r, git_object *obj, const char *what, size_t index,
                                  git_commit **out, git_oid *tag)
{
    *out = NULL;
    memset(tag, 0, sizeof(*tag));
    char hex[GATE_HEX];
    keel_status s = KEEL_OK;
    /* a chain of tags ends: an object cannot name one made after it */
    while (keel_ok(s) && git_object_type(obj) == GIT_OBJECT_TAG) {
        if (git_oid_is_zero(tag))
            git_oid_cpy(tag, git_object_id(obj));
        git_oid next;
        git_oid_cpy(&next, git_tag_target_id((const git_tag *)obj));
        git_object_free(obj);
        obj = NULL;
        char target[GATE_HEX * 2 + 512];
        (void)git_oid_tostr(hex, sizeof(hex), tag);
        (void)snprintf(target, sizeof(target), "%s, the target of annotated tag %.12s (object ",
                       what, hex);
        (void)git_oid_tostr(hex, sizeof(hex), &next);
        (void)snprintf(target + strlen(target), sizeof(target) - strlen(target), "%s)", hex);
        int rc = git_object_lookup(&obj, r->repo, &next, GIT_OBJECT_ANY);
        if (rc != 0)
            s = change_object_error(rc, index, NULL, target);
    }
    if (keel_ok(s) && git_object_type(obj) != GIT_OBJECT_COMMIT) {
        char tag_hex[GATE_HEX];
        (void)git_oid_tostr(hex, sizeof(hex), git_object_id(obj));
        (void)git_oid_tostr(tag_hex, sizeof(tag_hex), tag);
        const char *type = git_object_type2string(git_object_type(obj));
        s = git_oid_is_zero(tag)
                ? bad_change(index, NULL, "%s is a %s, not a commit (object %s)", what, type, hex)
                : bad_change(index, NULL,
                             "%s is an annotated tag (%.12s) of a %s, not of a commit (object %s)",
                             what, tag_hex, type, hex);
    }
    if (!keel_ok(s)) {
        git_object_free(obj);
        return s;
    }
    *out = (git_commit *)obj;
    return KEEL_OK;
}

keel_status gate_change_commit(gate_repo *r, const git_oid *head, const char *what, size_t index,
                               git_commit **out, git_oid *tag)
{
    *out = NULL;
    git_object *obj = NULL;
    char hex[GATE_HEX], object[GATE_HEX + 512];
    (void)git_oid_tostr(hex, sizeof(hex), head);
    (void)snprintf(object, sizeof(object), "%s (object %s)", what, hex);
    int rc = git_object_lookup(&obj, r->repo, head, GIT_OBJECT_ANY);
    if (rc != 0)
        return change_object_error(rc, index, NULL, object);
    return peel_to_commit(r, obj, what, index, out, tag);
}

keel_status gate_commit_of(gate_repo *r, const char *what, const char *hex, char commit[GATE_HEX],
                           char tag[GATE_HEX])
{
    KEEL_ASSERT(r != NULL && what != NULL && commit != NULL && tag != NULL);
    commit[0] = tag[0] = '\0';
    gate_change_forget_heap();
    git_oid oid, tag_id;
    keel_status s = gate_oid_parse(hex, &oid);
    git_commit *c = NULL;
    if (keel_ok(s))
        s = gate_change_commit(r, &oid, what, 0, &c, &tag_id);
    if (!keel_ok(s))
        return s;
    (void)git_oid_tostr(commit, GATE_HEX, git_commit_id(c));
    if (!git_oid_is_zero(&tag_id))
        (void)git_oid_tostr(tag, GATE_HEX, &tag_id);
    git_commit_free(c);
    return KEEL_OK;
}

keel_status gate_branch_commit(gate_repo *r, const char *branch, char commit[GATE_HEX],
                               char tag[GATE_HEX])
{
    KEEL_ASSERT(r != NULL && commit != NULL && tag != NULL);
    char head[GATE_HEX], what[GATE_BRANCH_LEN_MAX + 32];
    keel_status s = gate_branch_head(r, branch, head);
    if (!keel_ok(s))
        return s;
    (void)snprintf(what, sizeof(what), "the head of branch '%s'", branch);
    s = gate_commit_of(r, what, head, commit, tag);
    if (!keel_ok(s))
        return keel_status_with_str(s, "branch", branch);
    return KEEL_OK;
}

/* ---- the tree: its names, its objects ---------------------------------------------------- */

/*
 * Walking the tree of change `index` where it differs from the tree it is
 * merged onto.  On the heap, messages' buffers included: the walk recurses
 * once per directory level, so its frames stay small.
 */
typedef struct tree_walk {
    gate_repo *r;
    git_odb *odb;
    size_t index;
    const char *head; /* hex, for messages */
    char path[TREE_PATH_MAX];
    size_t len;
    char shown[TREE_SHOWN_MAX];
    char what[TREE_WHAT_MAX];
} tree_walk;

/* The path being walked, for a message (in w->shown): a long one by its last part. */
static const char *walk_path(tree_walk *w)
{
    enum { SHOWN = 160 };
    gate_tree_name_show(w->path, w->len, w->shown, sizeof(w->shown));
    size_t len = strlen(w->shown);
    if (len > SHOWN) {
        memmove(w->shown + 3, w->shown + len - (SHOWN - 3), SHOWN - 3 + 1);
        memcpy(w->shown, "...", 3);
    }
    return w->shown;
}

/* A failure at the entry being walked: the path, the commit and the change say where. */
static keel_status walk_refused(tree_walk *w, keel_status why)
{
    const char *shown = walk_path(w);
    keel_status s = bad_change(w->index, shown, "commit %.12s brings '%s': %s", w->head,
                               w->len > 0 ? shown : "(an empty name)", keel_status_message(why));
    keel_status_free(why);
    return s;
}

static keel_status walk_tree(tree_walk *w, const git_tree *before, const git_tree *tree);

/* One entry of the change's tree that is not as it was before the change. */
static keel_status walk_entry(tree_walk *w, const git_tree_entry *old, const git_tree_entry *e)
{
    const git_oid *id = git_tree_entry_id(e);
    char hex[GATE_HEX];
    (void)git_oid_tostr(hex, sizeof(hex), id);
    switch (git_tree_entry_type(e)) {
    case GIT_OBJECT_TREE: {
        git_tree *sub = NULL, *old_sub = NULL;
        int rc = git_tree_lookup(&sub, w->r->repo, id);
        keel_status s = KEEL_OK;
        if (rc != 0) {
            (void)snprintf(w->what, sizeof(w->what), "commit %.12s: the tree %s of '%s'", w->head,
                           hex, walk_path(w));
            s = change_object_error(rc, w->index, w->shown, w->what);
        }
        if (keel_ok(s) && old != NULL && git_tree_entry_type(old) == GIT_OBJECT_TREE &&
            (rc = git_tree_lookup(&old_sub, w->r->repo, git_tree_entry_id(old))) != 0)
            s = gate_git_error(rc, "cannot read the tree of '%s' it is merged onto", walk_path(w));
        if (keel_ok(s))
            s = walk_tree(w, old_sub, sub);
        git_tree_free(old_sub);
        git_tree_free(sub);
        return s;
    }
    case GIT_OBJECT_BLOB: {
        if (git_odb_exists(w->odb, id))
            return KEEL_OK;
        /* "no" also when it could not look (memory): asked again, the answer says which */
        size_t size = 0;
        git_object_t type = GIT_OBJECT_INVALID;
        int rc = git_odb_read_header(&size, &type, w->odb, id);
        if (rc == 0)
            return KEEL_OK;
        (void)snprintf(w->what, sizeof(w->what), "commit %.12s: the file '%s' (blob %s)", w->head,
                       walk_path(w), hex);
        return change_object_error(rc, w->index, w->shown, w->what);
    }
    case GIT_OBJECT_COMMIT: /* a submodule: its commit is not this repository's */
        return KEEL_OK;
    default:
        return bad_change(w->index, walk_path(w), "commit %.12s: '%s' is an entry of type %s",
                          w->head, w->shown, git_object_type2string(git_tree_entry_type(e)));
    }
}

/*
 * Every entry of `tree` that is not in `before` (NULL: none) with the same
 * id and mode: its name checked, a subtree walked the same way against the
 * one it replaces, a file's object there.  Unchanged subtrees are not read.
 */
static keel_status walk_tree(tree_walk *w, const git_tree *before, const git_tree *tree)
{
    size_t n = git_tree_entrycount(tree), at = w->len;
    keel_status s = KEEL_OK;
    for (size_t i = 0; keel_ok(s) && i < n; i++) {
        const git_tree_entry *e = git_tree_entry_byindex(tree, i);
        const char *name = git_tree_entry_name(e);
        const git_tree_entry *old = before != NULL ? git_tree_entry_byname(before, name) : NULL;
        if (old != NULL && git_oid_equal(git_tree_entry_id(old), git_tree_entry_id(e)) &&
            git_tree_entry_filemode_raw(old) == git_tree_entry_filemode_raw(e))
            continue; /* as it was: not the change's */
        size_t len = strlen(name), sep = at > 0 ? 1 : 0;
        if (at + sep + len >= sizeof(w->path)) {
            /* the marker inside the buffer even when the path before it nearly fills it */
            size_t mark = at < sizeof(w->path) - 5 ? at : sizeof(w->path) - 5;
            memcpy(w->path + mark, "/...", 5);
            w->len = mark + 4;
            s = walk_refused(w,
                             KEEL_ERR_IN(&gate_codes, GATE_E_BAD_CHANGE,
                                         "a path longer than %d bytes", (int)sizeof(w->path) - 1));
            break;
        }
        if (sep > 0)
            w->path[at] = '/';
        memcpy(w->path + at + sep, name, len);
        w->len = at + sep + len;
        w->path[w->len] = '\0';
        s = gate_tree_name_check(name, len, (unsigned)git_tree_entry_filemode_raw(e));
        if (keel_status_is(s, &gate_codes, GATE_E_BAD_CHANGE))
            s = walk_refused(w, s);
        else if (keel_ok(s))
            s = walk_entry(w, old, e);
        /* else the gate's own failure (memory): no verdict on the change */
    }
    w->len = at;
    w->path[at] = '\0';
    return s;
}

keel_status gate_change_tree(gate_repo *r, git_odb *odb, const git_tree *before,
                             const git_commit *commit, size_t index, const char *head)
{
    KEEL_ASSERT(r != NULL && odb != NULL && commit != NULL && head != NULL);
    git_tree *tree = NULL;
    int rc = git_commit_tree(&tree, commit);
    if (rc != 0) {
        char object[GATE_HEX + 64], tree_hex[GATE_HEX];
        (void)git_oid_tostr(tree_hex, sizeof(tree_hex), git_commit_tree_id(commit));
        (void)snprintf(object, sizeof(object), "the tree %s of commit %.12s", tree_hex, head);
        return change_object_error(rc, index, NULL, object);
    }
    void *mem = NULL;
    keel_status s = keel_heap_alloc(GIT_HEAP, sizeof(tree_walk), &mem);
    if (!keel_ok(s)) {
        git_tree_free(tree);
        return KEEL_CONTEXT(s, "checking the tree of commit %.12s", head);
    }
    tree_walk *w = (tree_walk *)mem;
    w->r = r;
    w->odb = odb;
    w->index = index;
    w->head = head;
    w->len = 0;
    w->path[0] = '\0';
    s = walk_tree(w, before, tree);
    keel_heap_free(GIT_HEAP, w);
    git_tree_free(tree);
    return s;
}

/* ---- the history: whose commit cannot be read ------------------------------------------- */

/*
 * A walk of the commits of the target (OURS) and of the change (THEIRS),
 * newest first, as git's merge-base search walks them, down to where they
 * meet (a commit reached from both is STALE, and so is everything below
 * it); with THEIRS absent, the target's whole history.  A commit is looked
 * up only once it is known to be there; one that is not (GONE) is not walked
 * past, and the sides that reach it say whose it is.
 */
enum { H_OURS = 1, H_THEIRS = 2, H_STALE = 4, H_GONE = 8, H_QUEUED = 16, H_USED = 32 };

typedef struct h_entry {
    git_oid oid;
    long long time;
    unsigned flags;
} h_entry;

typedef struct h_walk {
    git_repository *repo;
    git_odb *odb;
    h_entry *map; /* open addressing, a power of two of slots */
    size_t cap, count;
    h_entry **queue; /* a heap of map entries, newest first; rebuilt when the map grows */
    size_t n, queue_cap;
    size_t live;   /* queued and not STALE: the walk goes on while there is one */
    git_oid gone;  /* the first commit that cannot be read (zero: none) */
    char why[256]; /* why */
} h_walk;

static size_t h_hash(const git_oid *oid)
{
    size_t h = 0;
    memcpy(&h, oid->id, sizeof(h));
    return h;
}

static h_entry *h_find(h_entry *map, size_t cap, const git_oid *oid)
{
    for (size_t i = h_hash(oid) & (cap - 1);; i = (i + 1) & (cap - 1))
        if ((map[i].flags & H_USED) == 0 || git_oid_equal(&map[i].oid, oid))
            return &map[i];
}

static bool h_newer(const h_entry *a, const h_entry *b)
{
    return a->time > b->time;
}

static void h_up(h_walk *w, size_t i)
{
    while (i > 0 && h_newer(w->queue[i], w->queue[(i - 1) / 2])) {
        h_entry *t = w->queue[i];
        w->queue[i] = w->queue[(i - 1) / 2];
        w->queue[(i - 1) / 2] = t;
        i = (i - 1) / 2;
    }
}

static void h_down(h_walk *w, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, top = i;
        if (l < w->n && h_newer(w->queue[l], w->queue[top]))
            top = l;
        if (r < w->n && h_newer(w->queue[r], w->queue[top]))
            top = r;
        if (top == i)
            return;
        h_entry *t = w->queue[i];
        w->queue[i] = w->queue[top];
        w->queue[top] = t;
        i = top;
    }
}

/* The map with room for one more (grown, its entries moved, the queue made again). */
static keel_status h_room(h_walk *w)
{
    if (2 * (w->count + 1) <= w->cap && w->n < w->queue_cap)
        return KEEL_OK;
    if (w->n == w->queue_cap) {
        void *mem = w->queue;
        size_t ncap = w->queue_cap > 0 ? 2 * w->queue_cap : 64;
        keel_status s = keel_heap_realloc(GIT_HEAP, &mem, ncap * sizeof(h_entry *));
        if (!keel_ok(s))
            return s;
        w->queue = (h_entry **)mem;
        w->queue_cap = ncap;
    }
    if (2 * (w->count + 1) <= w->cap)
        return KEEL_OK;
    size_t ncap = w->cap > 0 ? 2 * w->cap : 256;
    void *mem = NULL;
    keel_status s = keel_heap_calloc(GIT_HEAP, ncap, sizeof(h_entry), &mem);
    if (!keel_ok(s))
        return s;
    h_entry *map = (h_entry *)mem;
    w->n = 0;
    for (size_t i = 0; i < w->cap; i++)
        if ((w->map[i].flags & H_USED) != 0) {
            h_entry *e = h_find(map, ncap, &w->map[i].oid);
            *e = w->map[i];
            if ((e->flags & H_QUEUED) != 0) {
                w->queue[w->n++] = e;
                h_up(w, w->n - 1);
            }
        }
    keel_heap_free(GIT_HEAP, w->map);
    w->map = map;
    w->cap = ncap;
    return KEEL_OK;
}

/* Queue e (its flags set): its parents are to be walked with them. */
static void h_push(h_walk *w, h_entry *e)
{
    e->flags |= H_QUEUED;
    if ((e->flags & H_STALE) == 0)
        w->live++;
    w->queue[w->n++] = e;
    h_up(w, w->n - 1);
}

/*
 * `oid` reached from the sides `flags`: recorded, looked up if it is new to
 * them (present first: GONE when it is not, or is not a readable commit),
 * and queued.  A failure to look is the gate's error.
 */
static keel_status h_reach(h_walk *w, const git_oid *oid, unsigned flags)
{
    keel_status s = h_room(w);
    if (!keel_ok(s))
        return s;
    KEEL_ASSERT(w->map != NULL && w->cap > 2 * w->count && w->n < w->queue_cap);
    h_entry *e = h_find(w->map, w->cap, oid);
    bool fresh = (e->flags & H_USED) == 0;
    if (!fresh && (e->flags & flags) == flags)
        return KEEL_OK; /* nothing new */
    if (fresh) {
        git_oid_cpy(&e->oid, oid);
        e->flags = H_USED;
        w->count++;
    }
    bool was_live = (e->flags & (H_QUEUED | H_STALE)) == H_QUEUED;
    e->flags |= flags;
    if (was_live && (e->flags & H_STALE) != 0)
        w->live--;
    if ((e->flags & H_GONE) != 0)
        return KEEL_OK;
    if (!fresh) {
        if ((e->flags & H_QUEUED) == 0)
            h_push(w, e); /* walked before: again, for the sides new to it */
        return KEEL_OK;
    }
    const git_error *err = NULL;
    int rc = 0;
    if (!git_odb_exists(w->odb, oid)) {
        size_t size = 0;
        git_object_t type = GIT_OBJECT_INVALID;
        rc = git_odb_read_header(&size, &type, w->odb, oid);
    }
    git_commit *c = NULL;
    if (rc == 0)
        rc = git_commit_lookup(&c, w->repo, oid);
    if (rc != 0) {
        char hex[GATE_HEX], what[64];
        (void)git_oid_tostr(hex, sizeof(hex), oid);
        (void)snprintf(what, sizeof(what), "commit %s", hex);
        s = heap_failed(rc, "read ", what);
        if (keel_ok(s) && rc != GIT_ENOTFOUND && git_fault_is_gates())
            s = gate_git_error(rc, "cannot read %s", what);
        if (!keel_ok(s))
            return s;
        err = git_error_last();
        e->flags |= H_GONE;
        if (git_oid_is_zero(&w->gone)) { /* the first: the one the message names */
            git_oid_cpy(&w->gone, oid);
            (void)snprintf(w->why, sizeof(w->why), "%s",
                           rc == GIT_ENOTFOUND ? "it is missing from the repository"
                           : err != NULL && err->message != NULL ? err->message
                                                                 : "libgit2 error");
        }
        return KEEL_OK;
    }
    e->time = (long long)git_commit_time(c);
    git_commit_free(c);
    h_push(w, e);
    return KEEL_OK;
}

/* Walk from ours and theirs (NULL: ours' whole history). */
static keel_status h_run(h_walk *w, const git_oid *ours, const git_oid *theirs)
{
    keel_status s = h_reach(w, ours, H_OURS);
    if (keel_ok(s) && theirs != NULL)
        s = h_reach(w, theirs, H_THEIRS);
    while (keel_ok(s) && w->live > 0) {
        h_entry *top = w->queue[0];
        w->queue[0] = w->queue[--w->n];
        h_down(w, 0);
        if ((top->flags & H_STALE) == 0)
            w->live--;
        top->flags &= ~(unsigned)H_QUEUED;
        unsigned sides = top->flags & (H_OURS | H_THEIRS | H_STALE);
        if ((sides & (H_OURS | H_THEIRS)) == (H_OURS | H_THEIRS))
            sides |= H_STALE; /* both reach it: common history, and all below it */
        git_oid at;
        git_oid_cpy(&at, &top->oid); /* the map may move under h_reach */
        git_commit *c = NULL;
        int rc = git_commit_lookup(&c, w->repo, &at);
        if (rc != 0)
            return gate_git_error(rc, "cannot read a commit read a moment ago");
        unsigned np = git_commit_parentcount(c);
        for (unsigned i = 0; keel_ok(s) && i < np; i++)
            s = h_reach(w, git_commit_parent_id(c, i), sides);
        git_commit_free(c);
    }
    return s;
}

static void h_free(h_walk *w)
{
    keel_heap_free(GIT_HEAP, w->map);
    keel_heap_free(GIT_HEAP, w->queue);
}

/*
 * Can the whole history of the target (`tip`) be read?  KEEL_E_IO naming the
 * commit when not (the gate's: a damaged repository), else KEEL_OK.
 */
static keel_status target_history(gate_repo *r, git_odb *odb, const git_oid *tip)
{
    h_walk w;
    memset(&w, 0, sizeof(w));
    w.repo = r->repo;
    w.odb = odb;
    keel_status s = h_run(&w, tip, NULL);
    if (keel_ok(s) && !git_oid_is_zero(&w.gone)) {
        char hex[GATE_HEX], at[GATE_HEX];
        (void)git_oid_tostr(hex, sizeof(hex), &w.gone);
        (void)git_oid_tostr(at, sizeof(at), tip);
        s = keel_status_with_str(KEEL_ERR(KEEL_E_IO,
                                          "the history of the target (at %.12s) is damaged: "
                                          "commit %s: %s",
                                          at, hex, w.why),
                                 "commit", hex);
    }
    h_free(&w);
    return s;
}

keel_status gate_change_history(gate_repo *r, git_odb *odb, const git_oid *ours,
                                const git_oid *theirs, size_t index, const char *head)
{
    KEEL_ASSERT(r != NULL && odb != NULL && ours != NULL && theirs != NULL && head != NULL);
    h_walk w;
    memset(&w, 0, sizeof(w));
    w.repo = r->repo;
    w.odb = odb;
    keel_status s = h_run(&w, ours, theirs);
    bool gone = keel_ok(s) && !git_oid_is_zero(&w.gone);
    /*
     * Reached from the change's side only, it may still be the target's (below
     * where the walk stopped on its side): the target's whole history says.
     */
    if (gone)
        s = target_history(r, odb, ours);
    if (gone && keel_ok(s)) {
        char hex[GATE_HEX];
        (void)git_oid_tostr(hex, sizeof(hex), &w.gone);
        s = bad_change(index, NULL, "commit %.12s: commit %s of its history cannot be read: %s",
                       head, hex, w.why);
    }
    h_free(&w);
    return s;
}

keel_status gate_change_merge_error(gate_repo *r, git_odb *odb, int rc, const git_oid *onto,
                                    size_t index, const char *head, const char *step)
{
    keel_status heap = heap_failed(rc, step, "");
    if (!keel_ok(heap))
        return heap;
    if (git_fault_is_gates())
        return gate_git_error(rc, "cannot %s for change %zu", step, index);
    const git_error *e = git_error_last();
    char why[512];
    (void)snprintf(why, sizeof(why), "%s",
                   e != NULL && e->message != NULL ? e->message : "libgit2 error");
    keel_status target = target_history(r, odb, onto);
    if (!keel_ok(target))
        return KEEL_CONTEXT(target, "cannot %s for change %zu: %s", step, index, why);
    return bad_change(index, NULL, "commit %.12s cannot be merged (%s): %s", head, step, why);
}
