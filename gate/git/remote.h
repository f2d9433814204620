/*
 * gate/git/remote.h - a repository keel-gate reaches through git's transports
 * (ssh, https, git://, file://), with libgit2 in-process.
 *
 * The gate keeps a bare mirror of the remote on local disk: merges,
 * checkouts and configuration reads work on the mirror's objects; what the
 * remote holds is asked for when it matters.
 *
 *   - a branch's head is what the remote advertises at that moment, its
 *     objects fetched into the mirror (gate_remote_fetch_branch);
 *   - landing is a push, non-forced, of the tested merge, made only after the
 *     remote was seen to still hold the expected commit on the same
 *     connection: receive-pack then updates the ref only if it still holds
 *     that commit (the old value travels with the update), so a concurrent
 *     push is never overwritten (gate_remote_push_cas).  libgit2's file://
 *     transport writes the ref without that last check: a window of
 *     milliseconds; guard a local repository by its path for an atomic
 *     compare-and-swap (git.h).
 *
 * Credentials: ssh through ssh-agent; https user and password from
 * KEEL_GATE_USER and KEEL_GATE_PASSWORD (the user may be in the URL).  A
 * URL's password never appears in a message (gate_remote_redact).
 * Transient network errors are retried twice (after 0.2 s and 1 s).
 */
#ifndef KEEL_GATE_REMOTE_H
#define KEEL_GATE_REMOTE_H

#include <git2.h>

#include "keel/keel.h"

/* Is `where` a URL (scheme://..., or scp-like [user@]host:path) rather than a local path? */
bool gate_remote_is_url(const char *where);

/*
 * A URL fit to use: printable, no spaces, a transport libgit2 has, no user or
 * host (after the userinfo's last '@') starting with '-' (KEEL_E_INVAL naming it).
 */
KEEL_MUST_USE keel_status gate_remote_check_url(const char *url);

/*
 * `url` with its password (if any) replaced by "***", for messages: the
 * userinfo after its first ':', up to the authority's LAST '@' (an '@' in a
 * password is not always percent-encoded).  Cut as snprintf cuts.
 */
void gate_remote_redact(const char *url, char *buf, size_t size);

/*
 * Where the mirror of `url` lives when none is given:
 * $XDG_STATE_HOME/keel-gate/<name>-<hash>.git ($HOME/.local/state when unset),
 * its parent directories created.
 */
KEEL_MUST_USE keel_status gate_remote_default_mirror(const char *url, char *buf, size_t size);

/*
 * Open the mirror of `url` at `dir`, creating it (bare) when absent.  A
 * mirror made for another URL is refused (KEEL_E_INVAL naming both).
 */
KEEL_MUST_USE keel_status gate_remote_open_mirror(const char *url, const char *dir,
                                                  git_repository **out);

/*
 * The commit the remote's refs/heads/<branch> points at (KEEL_E_NOTFOUND
 * naming branch and URL when it has none), its objects fetched into the
 * mirror and the mirror's refs/heads/<branch> set to it.
 */
KEEL_MUST_USE keel_status gate_remote_fetch_branch(git_repository *mirror, const char *url,
                                                   const char *branch, git_oid *out);

/* The branch the remote's HEAD names. */
KEEL_MUST_USE keel_status gate_remote_head_branch(git_repository *mirror, const char *url,
                                                  char *name, size_t size);

/*
 * Move the remote's `branch` from `expected` to `next` (a descendant, in the
 * mirror): GATE_E_MOVED (git.h) naming what the remote holds when it holds
 * something else, or refused the update because it had moved.  Any other
 * refusal (a hook, a protected branch) is KEEL_E_IO with the remote's reason.
 */
KEEL_MUST_USE keel_status gate_remote_push_cas(git_repository *mirror, const char *url,
                                               const char *branch, const git_oid *expected,
                                               const git_oid *next);

/*
 * Point the remote's refs/heads/<branch> at `commit` (in the mirror), made
 * or moved (forced: a branch of the gate's own, such as a backout's), and
 * the mirror's.  Nothing is pushed when the remote holds it already.  A
 * refusal is KEEL_E_STATE with the remote's reason.
 */
KEEL_MUST_USE keel_status gate_remote_put_branch(git_repository *mirror, const char *url,
                                                 const char *branch, const git_oid *commit);

/* Called for each ref found: its name (full) and commit. */
typedef keel_status (*gate_remote_ref_fn)(const char *ref, const git_oid *oid, void *ctx);

/*
 * Every ref of the remote under `prefix` (e.g. "refs/keel-gate/submit/"),
 * its objects fetched into the mirror and the mirror's ref of the same name
 * set to it, then given to fn (in the remote's order; fn's error stops).
 */
KEEL_MUST_USE keel_status gate_remote_each_ref(git_repository *mirror, const char *url,
                                               const char *prefix, gate_remote_ref_fn fn,
                                               void *ctx);

/*
 * Delete the remote's `ref` if it still points at `expected` (*deleted
 * false, KEEL_OK, when it points elsewhere or is gone), and the mirror's.
 */
KEEL_MUST_USE keel_status gate_remote_delete_ref(git_repository *mirror, const char *url,
                                                 const char *ref, const git_oid *expected,
                                                 bool *deleted);

/* libgit2's last error (rc its return code) as a keel status; git.c. */
KEEL_MUST_USE keel_status gate_git_error(int rc, const char *fmt, ...) KEEL_PRINTF(2, 3);

/*
 * The mirror is keel-gate's own: every keel-gate process writes to it holding
 * its lock (an open-file-description lock on <mirror>/keel-gate.lock, waited
 * for up to 60 s: KEEL_E_BUSY after).  So a git lock file found there once it
 * is held (a ref's .lock, HEAD.lock, config.lock, packed-refs.lock) was left
 * by a keel-gate killed while it wrote, and is removed: a kill never blocks
 * the refs it was writing for ever.  *fd: give it back with
 * gate_remote_mirror_unlock.  The remote functions above take it themselves.
 */
KEEL_MUST_USE keel_status gate_remote_mirror_lock(git_repository *mirror, int *fd);

/*
 * A git lock file `lock` (a ref's) older than GATE_STALE_LOCK_S: left by a
 * writer killed while it wrote (git holds a ref's lock for the moment of its
 * update), so it is removed (*removed; false when there is none, or a young
 * one: a writer at work).  keel-gate is the writer of the branch it guards;
 * a kill during its own update would otherwise stop every later landing.
 */
enum { GATE_STALE_LOCK_S = 10 };
KEEL_MUST_USE keel_status gate_stale_lock_clear(const char *lock, bool *removed);
void gate_remote_mirror_unlock(int fd);

#endif /* KEEL_GATE_REMOTE_H */
