/*
 * gate/git/git.h - the git work keel-gate does, in-process with libgit2: resolve
 * branches, merge a candidate's changes onto the target tip, materialize a
 * tree for a job, and move the target branch with a compare-and-swap.
 *
 * Nothing here runs `git` or a shell; a branch name is checked by libgit2's
 * own rules (no "..", no control characters, no leading '-', ...) before it
 * is used.
 */
#ifndef KEEL_GATE_GIT_H
#define KEEL_GATE_GIT_H

#include "keel/keel.h"

typedef struct gate_repo gate_repo; /* opaque */

/* Error codes of keel-gate's own, next to keel's. */
#define GATE_CODES(X)                                          \
    X(CONFLICT, "the change does not merge onto the target")   \
    X(MOVED, "the target branch moved: compare-and-swap lost") \
    X(BAD_REF, "not a valid branch name")                      \
    X(BAD_CHANGE, "the change itself is bad")
#define GATE_CODE_ENUM(name, msg) GATE_E_##name,
enum gate_code { GATE_E_OK = 0, GATE_CODES(GATE_CODE_ENUM) };
extern const keel_codespace gate_codes;

enum { GATE_HEX = 41 };

/*
 * The longest branch name keel-gate takes, in bytes: the store and the
 * configuration hold one more (the NUL); every ref name it builds from a
 * branch fits its buffers whole, so no name is ever truncated into another.
 */
enum { GATE_BRANCH_LEN_MAX = 255 };

/* Open a repository (bare or not) at `path`. */
KEEL_MUST_USE keel_status gate_repo_open(const char *path, gate_repo **out);
/*
 * A repository reached through git's transports (remote.h): `url`, its
 * objects in the bare mirror at `mirror` (NULL: the default place), made
 * when absent.  Branch heads are then the remote's, fetched when asked
 * for; gate_branch_cas pushes.
 */
KEEL_MUST_USE keel_status gate_repo_open_remote(const char *url, const char *mirror,
                                                gate_repo **out);
void gate_repo_close(gate_repo *r);
bool gate_repo_is_remote(const gate_repo *r);
/* Where the repository (or a remote's mirror) is on disk. */
const char *gate_repo_dir(const gate_repo *r);

/* The repository's git directory (where keel-gate keeps its state by default), with a '/'. */
const char *gate_repo_git_dir(const gate_repo *r);
/* A non-bare repository's working directory (with a '/'); NULL for a bare one or a mirror. */
const char *gate_repo_workdir(const gate_repo *r);
/*
 * The branch HEAD names (the default target).  A remote's: when it cannot
 * be reached, the one it named when last reached (kept as the mirror's HEAD).
 */
KEEL_MUST_USE keel_status gate_repo_head_branch(gate_repo *r, char *name, size_t size);

/*
 * Is `branch` a valid branch name?  git's rules, no shell metacharacters, at
 * most GATE_BRANCH_LEN_MAX bytes (GATE_E_BAD_REF with the name when not).
 */
KEEL_MUST_USE keel_status gate_branch_check(const char *branch);
/*
 * Why gate_branch_check refuses `branch` (NULL: as ""), into `why` ("it has
 * '..' (git's notation for a range of commits)"): git check-ref-format's
 * rules for a branch, the characters keel-gate takes, the length.  False,
 * and "", when none of them refuses it (libgit2 has the last word).
 */
bool gate_branch_why(const char *branch, char *why, size_t size);

/* The commit a branch points at, as 40 hex digits (a remote's: as it is now, fetched). */
KEEL_MUST_USE keel_status gate_branch_head(gate_repo *r, const char *branch, char hex[GATE_HEX]);
/* The same without the network: a remote's as its mirror last saw it. */
KEEL_MUST_USE keel_status gate_branch_known(gate_repo *r, const char *branch, char hex[GATE_HEX]);

/*
 * The commit the object `hex` names, for a change (`what` names it in
 * messages: "branch 'x'"): the object itself when it is a commit; the commit
 * an annotated tag peels to, as `git merge <tag>` takes it (tags of tags
 * too), its id in `tag` ("" when `hex` is no tag).  A blob, a tree, a tag of
 * one, or an object that is missing is GATE_E_BAD_CHANGE naming `what` and
 * the type; a failure to read (memory, I/O) is the gate's own error.
 */
KEEL_MUST_USE keel_status gate_commit_of(gate_repo *r, const char *what, const char *hex,
                                         char commit[GATE_HEX], char tag[GATE_HEX]);
/* gate_branch_head, then gate_commit_of: the commit to queue for `branch`. */
KEEL_MUST_USE keel_status gate_branch_commit(gate_repo *r, const char *branch,
                                             char commit[GATE_HEX], char tag[GATE_HEX]);

/*
 * May a tree entry be called `name` (`len` bytes, not NUL-terminated) with
 * file mode `mode`?  git's rules for a path component (verify_path) with its
 * NTFS and HFS+ protections on, whatever the host (tree_names.c): not
 * empty, no '/' or NUL, not "." or "..", not ".git" in any case nor what
 * NTFS or HFS+ read as ".git" ("git~1", ".git.", ".git ",
 * ".git::$INDEX_ALLOCATION", "x\\.git", ".g<U+200C>it"), and no symbolic link
 * named like .gitmodules, .gitattributes or .gitignore.  GATE_E_BAD_CHANGE
 * says which rule; any other error is the gate's own (memory).  UTF-8 is
 * read as git reads it for HFS+: where its decoder finds no character
 * (overlong, surrogate, U+FFFE, U+FFFF, ...) the name ends.
 */
KEEL_MUST_USE keel_status gate_tree_name_check(const char *name, size_t len, unsigned mode);
/* `name` (`len` bytes) for a message: bytes outside printable ASCII as \xNN. */
void gate_tree_name_show(const char *name, size_t len, char *buf, size_t size);

/*
 * Merge `heads` (commit ids, in order) one after another onto `base`, creating
 * merge commits in the object database only (no ref or work tree changes).
 * On success `merge` is the last merge commit.  A change that does not merge
 * cleanly gives GATE_E_CONFLICT with the detail "index" (its position in
 * `heads`), "paths" (the conflicting files) and "onto" (the commit it was
 * merged onto: `base` or the merge of the change before it).
 *
 * Before it is merged, each change's tree is checked where it differs from
 * the tree it is merged onto (only the subtrees whose ids differ are read):
 * every entry name by gate_tree_name_check, every object present.  A change
 * that is bad in itself, whatever it is merged onto, gives
 * GATE_E_BAD_CHANGE with "index" and, when a tree entry is the cause,
 * "path": its head missing or not a commit, a name git refuses, an object
 * of its tree missing or unreadable, a history that cannot be merged.  Any
 * other error is the gate's own (memory, I/O, the target's objects: a
 * damaged target history is named as such), never a verdict on a change.
 */
KEEL_MUST_USE keel_status gate_merge(gate_repo *r, const char *base, const char *const *heads,
                                     size_t n, char merge[GATE_HEX]);

/*
 * What a conflict is with: the paths where `head` does not merge onto `onto`
 * (out[0..*n), at most `max` of the *total), each with the last commit on the
 * first-parent history of `onto` that changed it (its tree entry there
 * differs from the first parent's), looked for in the last GATE_ORIGIN_WALK
 * commits.  A commit the gate landed names its change (its
 * `Keel-Gate-Change` trailer); a merge of the gate's not relabelled yet (a
 * candidate ahead) has its second parent, the change's head.  Errors are
 * the gate's (reading the repository, memory).
 */
enum { GATE_ORIGIN_WALK = 1000, GATE_ORIGIN_MAX = 8, GATE_ORIGIN_PATH = 1024 };
typedef struct gate_conflict_origin {
    char path[GATE_ORIGIN_PATH]; /* the conflicting path */
    bool cut;                    /* it did not fit in `path` (not looked for) */
    char commit[GATE_HEX];       /* "": not found in the last GATE_ORIGIN_WALK commits */
    char second[GATE_HEX];       /* its second parent when a merge, else "" */
    long long change;            /* its Keel-Gate-Change trailer; 0: none */
    char subject[96];            /* its first line, cut to fit */
} gate_conflict_origin;
KEEL_MUST_USE keel_status gate_conflict_origins(gate_repo *r, const char *onto, const char *head,
                                                gate_conflict_origin *out, size_t max, size_t *n,
                                                size_t *total);

/*
 * The first-parent history of `tip` (history.c), newest first, into
 * out[0..*n-1]: back to `stop` (not included; NULL or "": to the root) or
 * `max` commits.  *reached: `stop` was met (false: the root or `max` came
 * first; a `stop` that is not a first-parent ancestor of `tip` is never met).
 */
KEEL_MUST_USE keel_status gate_first_parents(gate_repo *r, const char *tip, const char *stop,
                                             char (*out)[GATE_HEX], size_t max, size_t *n,
                                             bool *reached);

/*
 * The `n` merges gate_merge made from `base` to `merge` (a chain of first
 * parents), made again onto `onto` with messages[i] for the i-th (oldest
 * first): the same trees, second parents, author and committer.  So what
 * lands says what it is, and a candidate built on `base` lands on `onto`
 * when `onto` holds the same tree (its base, relabelled as it landed).
 * *out: the last.  KEEL_E_INTERNAL when `merge` is not such a chain.
 */
KEEL_MUST_USE keel_status gate_merge_relabel(gate_repo *r, const char *base, const char *onto,
                                             const char *merge, const char *const *messages,
                                             size_t n, char out[GATE_HEX]);
/* The first line of commit `hex`'s message (git_commit_summary), cut to fit. */
KEEL_MUST_USE keel_status gate_commit_subject(gate_repo *r, const char *hex, char *buf,
                                              size_t size);

/*
 * Write the tree of `commit` into the directory `dir` (created when absent).
 * `held`: NULL for an empty directory; else the commit whose tree `dir`
 * holds, unmodified but perhaps with files missing: only what differs is
 * then written, files in neither tree removed.  gate_worktree_checkout
 * (worktree.h) makes a reused work tree so.
 */
KEEL_MUST_USE keel_status gate_checkout(gate_repo *r, const char *commit, const char *held,
                                        const char *dir);

/*
 * The content of `path` in the tree of `commit` (NUL-terminated; *len without
 * the NUL), on module gate_git's heap: give it back with gate_file_free.
 */
KEEL_MUST_USE keel_status gate_read_file(gate_repo *r, const char *commit, const char *path,
                                         char **data, size_t *len);
void gate_file_free(char *data);

/*
 * Move `branch` from `expected` to `next` only if it still points at
 * `expected` (GATE_E_MOVED otherwise: a concurrent push is never
 * overwritten).  A remote's: a push (remote.h).
 */
KEEL_MUST_USE keel_status gate_branch_cas(gate_repo *r, const char *branch, const char *expected,
                                          const char *next, const char *message);

/*
 * Changes submitted by a push: a ref refs/keel-gate/submit/<branch> in the
 * guarded repository (`git push origin topic:refs/keel-gate/submit/topic`).
 * gate_pushed_each gives each one's name (<branch>, not checked: the caller
 * refuses a hostile one) and commit to fn, a remote's fetched first;
 * gate_pushed_remove deletes one once it is queued, only if it still points
 * at that commit (*removed false when it was pushed again meanwhile).
 */
#define GATE_SUBMIT_PREFIX "refs/keel-gate/submit/"
typedef keel_status (*gate_pushed_fn)(const char *branch, const char *hex, void *ctx);
KEEL_MUST_USE keel_status gate_pushed_each(gate_repo *r, gate_pushed_fn fn, void *ctx);
KEEL_MUST_USE keel_status gate_pushed_remove(gate_repo *r, const char *branch, const char *hex,
                                             bool *removed);

/*
 * Does the history of `descendant` hold `ancestor` (or are they the same
 * commit)?  Recovery asks it of each open candidate's merge and the target's
 * tip: a candidate landed before a kill when the tip descends from it, even
 * after the target moved on past it.
 */
KEEL_MUST_USE keel_status gate_is_ancestor(gate_repo *r, const char *ancestor,
                                           const char *descendant, bool *out);

/*
 * Is `branch` checked out in a work tree of the repository (a non-bare
 * repository's own, or a linked one)?  Landing on such a branch would move
 * it under that work tree, whose next commit would undo what landed.  False
 * for a bare repository and for a remote's mirror.
 */
KEEL_MUST_USE keel_status gate_branch_checked_out(gate_repo *r, const char *branch, bool *out);

#endif /* KEEL_GATE_GIT_H */
