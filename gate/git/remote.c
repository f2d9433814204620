/*
 * remote.c - a guarded repository reached through git's transports: the
 * local mirror, fetching a branch's head, and landing by a push that cannot
 * overwrite a concurrent one (remote.h).
 */
#define _GNU_SOURCE 1
#include "remote.h"

#include "git.h"
#include "heaps.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { REF_MAX = 512, CONFIG_KEY_MAX = 64 };

#define GIT_HEAP KEEL_MODULE_REF(gate_git)

static const char url_key[] = "keel-gate.url"; /* in the mirror's config: whose mirror it is */
static const char land_ref[] = "refs/keel-gate/land"; /* what a landing push sends */

/* ---- URLs ------------------------------------------------------------------------------ */

/* The length of a scheme at the start of `s` (letters, digits, '+', '-', '.'), 0 if none. */
static size_t scheme_len(const char *s)
{
    size_t n = 0;
    while ((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= 'A' && s[n] <= 'Z') ||
           (n > 0 && ((s[n] >= '0' && s[n] <= '9') || s[n] == '+' || s[n] == '-' || s[n] == '.')))
        n++;
    return strncmp(s + n, "://", 3) == 0 ? n : 0;
}

/* scp-like [user@]host:path: a ':' before any '/', after at least two characters. */
static bool scp_like(const char *s)
{
    const char *colon = strchr(s, ':');
    const char *slash = strchr(s, '/');
    return colon != NULL && colon - s >= 2 && (slash == NULL || slash > colon);
}

/*
 * Where the userinfo of the authority [auth, end) ends: its LAST '@' (an '@'
 * in a password is not always percent-encoded, and a user may be an e-mail
 * address), NULL when it has none.  Redaction and the host's check both
 * read a URL so: what is before that '@' is never shown, what is after it
 * is the host.
 */
static const char *userinfo_end(const char *auth, const char *end)
{
    const char *at = NULL;
    for (const char *p = auth; p < end; p++)
        if (*p == '@')
            at = p;
    return at;
}

bool gate_remote_is_url(const char *where)
{
    if (where == NULL)
        return false;
    if (scheme_len(where) > 0)
        return true;
    struct stat st;
    return scp_like(where) && stat(where, &st) != 0; /* an existing "a:b" is a local path */
}

keel_status gate_remote_check_url(const char *url)
{
    char shown[512];
    gate_remote_redact(url != NULL ? url : "", shown, sizeof(shown));
    if (url == NULL || url[0] == '\0')
        return KEEL_ERR(KEEL_E_INVAL, "an empty repository URL");
    for (const char *p = url; *p != '\0'; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
            return keel_status_with_str(
                KEEL_ERR(KEEL_E_INVAL,
                         "'%s' is not a repository URL: spaces and control or non-ASCII "
                         "characters are not allowed (percent-encode them)",
                         shown),
                "url", shown);
    size_t n = scheme_len(url);
    const char *auth = url, *end = NULL; /* where a user and a host may be: [auth, end) */
    if (n > 0) {
        static const char *const known[] = {"ssh",  "git",     "http",   "https",
                                            "file", "git+ssh", "ssh+git"};
        bool ok = false;
        for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
            ok |= strlen(known[i]) == n && strncasecmp(url, known[i], n) == 0;
        if (!ok)
            return keel_status_with_str(
                KEEL_ERR(KEEL_E_INVAL,
                         "'%s': unknown transport '%.*s' (ssh, https, http, git and file are "
                         "known)",
                         shown, (int)n, url),
                "url", shown);
        auth = url + n + 3;
        end = auth + strcspn(auth, "/");
    } else if (!scp_like(url)) {
        return keel_status_with_str(KEEL_ERR(KEEL_E_INVAL, "'%s' is not a repository URL", shown),
                                    "url", shown);
    } else {
        end = strchr(url, ':');
    }
    /*
     * ssh would take a user or host starting with '-' for an option: refused
     * wherever a reader may find one (the start, after any '@': readers
     * differ on which '@' ends the userinfo).
     */
    bool option = auth[0] == '-';
    for (const char *p = auth; p < end; p++)
        option |= p[0] == '@' && p[1] == '-';
    if (option)
        return keel_status_with_str(
            KEEL_ERR(KEEL_E_INVAL, "'%s': a host or user name may not start with '-'", shown),
            "url", shown);
    return KEEL_OK;
}

void gate_remote_redact(const char *url, char *buf, size_t size)
{
    size_t n = scheme_len(url);
    const char *auth = url + (n > 0 ? n + 3 : 0);
    const char *at = n > 0 ? userinfo_end(auth, auth + strcspn(auth, "/")) : NULL;
    const char *colon = at != NULL ? (const char *)memchr(auth, ':', (size_t)(at - auth)) : NULL;
    if (colon != NULL) /* the password: from the userinfo's first ':' to its end */
        (void)snprintf(buf, size, "%.*s:***%s", (int)(colon - url), url, at);
    else
        (void)snprintf(buf, size, "%s", url);
}

static keel_status make_dirs(char *path)
{
    for (char *p = path + 1; *p != '\0'; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        int rc = mkdir(path, 0700);
        int err = errno;
        *p = '/';
        if (rc != 0 && err != EEXIST)
            return KEEL_ERR_SYS(err, "cannot create directory '%.*s'", (int)(p - path), path);
    }
    return KEEL_OK;
}

keel_status gate_remote_default_mirror(const char *url, char *buf, size_t size)
{
    KEEL_ASSERT(url != NULL && buf != NULL && size > 0);
    unsigned long long h = 1469598103934665603ull; /* FNV-1a: which URL */
    for (const char *p = url; *p != '\0'; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    /* the last path component, without ".git", in characters that need no quoting */
    size_t end = strlen(url);
    while (end > 0 && url[end - 1] == '/')
        end--;
    size_t start = end;
    while (start > 0 && url[start - 1] != '/' && url[start - 1] != ':')
        start--;
    if (end - start > 4 && strncmp(url + end - 4, ".git", 4) == 0)
        end -= 4;
    char name[48];
    size_t k = 0;
    for (size_t i = start; i < end && k + 1 < sizeof(name); i++) {
        char c = url[i];
        bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                     c == '.' || c == '_' || c == '-';
        name[k] = '_';
        if (plain && !(k == 0 && c == '.'))
            name[k] = c;
        k++;
    }
    name[k] = '\0';
    const char *state = getenv("XDG_STATE_HOME");
    const char *home = getenv("HOME");
    int len;
    if (state != NULL && state[0] == '/')
        len = snprintf(buf, size, "%s/keel-gate/%s-%08llx.git", state, k > 0 ? name : "repo",
                       h & 0xffffffffull);
    else if (home != NULL && home[0] == '/')
        len = snprintf(buf, size, "%s/.local/state/keel-gate/%s-%08llx.git", home,
                       k > 0 ? name : "repo", h & 0xffffffffull);
    else
        return KEEL_ERR(KEEL_E_INVAL,
                        "no place for the mirror of a remote repository: neither "
                        "XDG_STATE_HOME nor HOME is an absolute path (give --mirror)");
    if (len < 0 || (size_t)len >= size)
        return KEEL_ERR(KEEL_E_RANGE, "the mirror's path is too long");
    return make_dirs(buf);
}

/* ---- the mirror ------------------------------------------------------------------------- */

static keel_status probe(const char *url);

/* Is `dir` absent, or an empty directory (as good as absent)? */
static bool no_mirror_yet(const char *dir)
{
    struct stat st;
    if (stat(dir, &st) != 0)
        return errno == ENOENT;
    return S_ISDIR(st.st_mode) && rmdir(dir) == 0; /* only an empty one goes */
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    (void)remove(path);
    return 0;
}

/*
 * A new mirror: made whole (a bare repository bound to `url`) at a name of
 * its own next to `dir`, then renamed into place, so that no process, killed
 * or not, ever finds a half-made mirror at `dir`.  When another keel-gate put
 * one there first, that one is used (opened and checked by the caller).
 */
static keel_status create_mirror(const char *url, const char *dir, const char *shown)
{
    char tmp[REF_MAX * 2];
    int n = snprintf(tmp, sizeof(tmp), "%s.new-%ld-%lld", dir, (long)getpid(), (long long)clock());
    if (n < 0 || (size_t)n >= sizeof(tmp))
        return KEEL_ERR(KEEL_E_RANGE, "the mirror's path '%s' is too long", dir);
    git_repository *repo = NULL;
    int rc = git_repository_init(&repo, tmp, 1);
    git_config *cfg = NULL;
    if (rc == 0)
        rc = git_repository_config(&cfg, repo);
    if (rc == 0)
        rc = git_config_set_string(cfg, url_key, url);
    keel_status s =
        rc == 0 ? KEEL_OK : gate_git_error(rc, "cannot create the mirror '%s' of '%s'", dir, shown);
    git_config_free(cfg);
    git_repository_free(repo);
    if (keel_ok(s) && rename(tmp, dir) != 0 && errno != EEXIST && errno != ENOTEMPTY)
        s = KEEL_ERR_SYS(errno, "cannot put the mirror of '%s' at '%s'", shown, dir);
    (void)nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS); /* left when another was first */
    return s;
}

keel_status gate_remote_open_mirror(const char *url, const char *dir, git_repository **out)
{
    KEEL_ASSERT(url != NULL && dir != NULL && out != NULL);
    *out = NULL;
    char shown[512];
    gate_remote_redact(url, shown, sizeof(shown));
    keel_status s = gate_remote_check_url(url);
    if (!keel_ok(s))
        return s;
    if (no_mirror_yet(dir)) {
        s = probe(url); /* no mirror made for a remote that cannot be reached */
        if (keel_ok(s))
            s = create_mirror(url, dir, shown);
        if (!keel_ok(s))
            return s;
    }
    git_repository *repo = NULL;
    int rc = git_repository_open_ext(&repo, dir, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL);
    if (rc != 0)
        return keel_status_with_str(
            gate_git_error(rc, "'%s' is not a mirror of '%s' (not a git repository)", dir, shown),
            "mirror", dir);
    git_config *cfg = NULL;
    rc = git_repository_config(&cfg, repo);
    if (rc != 0) {
        s = gate_git_error(rc, "cannot read the configuration of the mirror '%s'", dir);
    } else {
        git_buf have = GIT_BUF_INIT;
        rc = git_config_get_string_buf(&have, cfg, url_key);
        if (rc == GIT_ENOTFOUND) { /* a repository of its own, not one the gate made */
            s = keel_status_with_str(
                KEEL_ERR(KEEL_E_INVAL,
                         "'%s' is a git repository but not a keel-gate mirror (it names no "
                         "remote), so not the mirror of '%s': give another --mirror (a "
                         "directory that does not exist yet, or an empty one, is made the "
                         "mirror)",
                         dir, shown),
                "mirror", dir);
        } else if (rc == 0 && strcmp(have.ptr, url) != 0) {
            char was[512];
            gate_remote_redact(have.ptr, was, sizeof(was));
            s = keel_status_with_str(
                KEEL_ERR(KEEL_E_INVAL,
                         "'%s' is the mirror of '%s', not of '%s': give another --mirror", dir, was,
                         shown),
                "mirror", dir);
        } else if (rc != 0) {
            s = gate_git_error(rc, "cannot read the configuration of the mirror '%s'", dir);
        }
        git_buf_dispose(&have);
    }
    git_config_free(cfg);
    if (!keel_ok(s)) {
        git_repository_free(repo);
        return s;
    }
    *out = repo;
    return KEEL_OK;
}

/* ---- the mirror's lock ------------------------------------------------------------------ */

enum { MIRROR_LOCK_WAIT_MS = 60000 };

/* A git lock file in the mirror (its name ends in ".lock"): removed. */
static int rm_lock(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    size_t n = strlen(path);
    if (flag == FTW_F && n > 5 && strcmp(path + n - 5, ".lock") == 0)
        (void)unlink(path);
    return 0;
}

keel_status gate_remote_mirror_lock(git_repository *mirror, int *fd)
{
    KEEL_ASSERT(mirror != NULL && fd != NULL);
    const char *dir = git_repository_path(mirror); /* ends in '/' */
    char path[REF_MAX * 2];
    (void)snprintf(path, sizeof(path), "%skeel-gate.lock", dir);
    *fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (*fd < 0)
        return KEEL_ERR_SYS(errno, "cannot open the mirror's lock '%s'", path);
    struct flock fl;
    memset(&fl, 0, sizeof(fl));
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    struct timespec step = {0, 20000000L};
    for (long waited = 0; fcntl(*fd, F_OFD_SETLK, &fl) != 0; waited += 20) {
        int e = errno;
        if ((e != EAGAIN && e != EACCES) || waited >= MIRROR_LOCK_WAIT_MS) {
            (void)close(*fd);
            *fd = -1;
            return e == EAGAIN || e == EACCES
                       ? KEEL_ERR(KEEL_E_BUSY,
                                  "the mirror '%s' is busy: another keel-gate has held its lock "
                                  "for more than %d s",
                                  dir, MIRROR_LOCK_WAIT_MS / 1000)
                       : KEEL_ERR_SYS(e, "cannot lock the mirror's lock '%s'", path);
        }
        (void)nanosleep(&step, NULL);
    }
    /*
     * Every keel-gate writes to its mirror holding this lock: a git lock file
     * there now was left by one that was killed while it wrote (else every
     * later update of that ref would fail for ever).
     */
    static const char *const files[] = {"HEAD.lock", "config.lock", "packed-refs.lock"};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        (void)snprintf(path, sizeof(path), "%s%s", dir, files[i]);
        (void)unlink(path);
    }
    (void)snprintf(path, sizeof(path), "%srefs", dir);
    (void)nftw(path, rm_lock, 16, FTW_PHYS);
    return KEEL_OK;
}

keel_status gate_stale_lock_clear(const char *lock, bool *removed)
{
    KEEL_ASSERT(lock != NULL && removed != NULL);
    *removed = false;
    struct stat sb;
    if (lstat(lock, &sb) != 0 || !S_ISREG(sb.st_mode))
        return KEEL_OK;
    if (time(NULL) - sb.st_mtime < GATE_STALE_LOCK_S)
        return KEEL_OK;
    if (unlink(lock) != 0 && errno != ENOENT)
        return KEEL_ERR_SYS(errno, "cannot remove the stale lock file '%s'", lock);
    *removed = true;
    return KEEL_OK;
}

void gate_remote_mirror_unlock(int fd)
{
    if (fd >= 0)
        (void)close(fd); /* drops the lock */
}

/* ---- connections -------------------------------------------------------------------------- */

typedef struct remote_call {
    unsigned credential_tries;
    char refused[256]; /* a ref the remote did not update, with its reason */
} remote_call;

static int credentials(git_credential **out, const char *url, const char *user_from_url,
                       unsigned int allowed, void *payload)
{
    (void)url;
    remote_call *call = (remote_call *)payload;
    if (++call->credential_tries > 2)
        return GIT_PASSTHROUGH; /* what there is was refused: no loop */
    const char *user = getenv("KEEL_GATE_USER");
    if (user == NULL || user[0] == '\0')
        user = user_from_url;
    if ((allowed & GIT_CREDENTIAL_SSH_KEY) != 0)
        return git_credential_ssh_key_from_agent(out, user != NULL ? user : "git");
    const char *password = getenv("KEEL_GATE_PASSWORD");
    if ((allowed & GIT_CREDENTIAL_USERPASS_PLAINTEXT) != 0 && user != NULL && password != NULL)
        return git_credential_userpass_plaintext_new(out, user, password);
    if ((allowed & GIT_CREDENTIAL_DEFAULT) != 0)
        return git_credential_default_new(out);
    return GIT_PASSTHROUGH;
}

static int push_status(const char *refname, const char *status, void *payload)
{
    remote_call *call = (remote_call *)payload;
    if (status != NULL && call->refused[0] == '\0')
        (void)snprintf(call->refused, sizeof(call->refused), "%s: %s", refname, status);
    return 0;
}

static void callbacks_init(git_remote_callbacks *cb, remote_call *call)
{
    (void)git_remote_init_callbacks(cb, GIT_REMOTE_CALLBACKS_VERSION);
    cb->credentials = credentials;
    cb->push_update_reference = push_status;
    cb->payload = call;
}

/* Connected to url for `dir`ection, on an anonymous remote of the mirror (NULL: of none). */
static keel_status connect_remote(git_repository *mirror, const char *url, git_direction dir,
                                  remote_call *call, git_remote **out)
{
    char shown[512];
    gate_remote_redact(url, shown, sizeof(shown));
    *out = NULL;
    git_remote *remote = NULL;
    git_remote_create_options ro;
    (void)git_remote_create_options_init(&ro, GIT_REMOTE_CREATE_OPTIONS_VERSION);
    ro.repository = mirror; /* NULL: detached */
    /*
     * The URL as given: no url.<base>.insteadOf rewriting from the user's
     * configuration (libgit2 1.5 also leaks a PCRE2 match block for every
     * configuration key it tests against that pattern).
     */
    ro.flags = GIT_REMOTE_CREATE_SKIP_INSTEADOF | GIT_REMOTE_CREATE_SKIP_DEFAULT_FETCHSPEC;
    int rc = git_remote_create_with_opts(&remote, url, &ro);
    if (rc != 0)
        return keel_status_with_str(gate_git_error(rc, "'%s' is not a remote", shown), "url",
                                    shown);
    git_remote_connect_options co;
    (void)git_remote_connect_options_init(&co, GIT_REMOTE_CONNECT_OPTIONS_VERSION);
    callbacks_init(&co.callbacks, call);
    rc = git_remote_connect_ext(remote, dir, &co);
    if (rc != 0) {
        keel_status s =
            keel_status_with_str(gate_git_error(rc, "cannot reach '%s'", shown), "url", shown);
        git_remote_free(remote);
        return s;
    }
    *out = remote;
    return KEEL_OK;
}

static void disconnect_remote(git_remote *remote)
{
    if (remote == NULL)
        return;
    (void)git_remote_disconnect(remote);
    git_remote_free(remote);
}

/* What the connected remote advertises for `ref` (found false: nothing). */
static keel_status advertised(git_remote *remote, const char *ref, git_oid *oid, bool *found)
{
    const git_remote_head **heads = NULL;
    size_t n = 0;
    *found = false;
    int rc = git_remote_ls(&heads, &n, remote);
    if (rc != 0)
        return gate_git_error(rc, "cannot list the refs of the remote");
    for (size_t i = 0; i < n; i++)
        if (strcmp(heads[i]->name, ref) == 0) {
            git_oid_cpy(oid, &heads[i]->oid);
            *found = true;
        }
    return KEEL_OK;
}

/*
 * Connected to url for `dir`ection, and what it advertises for `ref` (*found
 * false: nothing); the remote to disconnect_remote, whatever the status.
 */
static keel_status connect_at(git_repository *mirror, const char *url, git_direction dir,
                              const char *ref, remote_call *call, git_remote **remote, git_oid *now,
                              bool *found)
{
    memset(call, 0, sizeof(*call));
    *found = false;
    keel_status s = connect_remote(mirror, url, dir, call, remote);
    if (keel_ok(s))
        s = advertised(*remote, ref, now, found);
    return s;
}

/* Push one refspec on the connected remote (a refusal is left in call->refused). */
static keel_status upload(git_remote *remote, remote_call *call, char *spec, const char *shown)
{
    char *specs[1] = {spec}; /* git_strarray holds char *: spec is the caller's buffer */
    git_strarray arr = {specs, 1};
    git_push_options po;
    (void)git_push_options_init(&po, GIT_PUSH_OPTIONS_VERSION);
    callbacks_init(&po.callbacks, call);
    int rc = git_remote_upload(remote, &arr, &po);
    if (rc != 0)
        return keel_status_with_str(gate_git_error(rc, "cannot push '%s' to '%s'", spec, shown),
                                    "url", shown);
    return KEEL_OK;
}

/* Worth trying again: the network, not the request. */
static bool transient(keel_status s)
{
    if (keel_ok(s) || keel_status_is(s, &gate_codes, GATE_E_MOVED) ||
        keel_status_code(s) != KEEL_E_IO)
        return false;
    long long klass = 0;
    return keel_status_get_int(s, "git_class", &klass) &&
           (klass == GIT_ERROR_NET || klass == GIT_ERROR_SSH || klass == GIT_ERROR_HTTP ||
            klass == GIT_ERROR_SSL);
}

static void pause_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static const long backoff_ms[] = {200, 1000};
enum { RETRIES = sizeof(backoff_ms) / sizeof(backoff_ms[0]) };

/*
 * After an attempt of a remote operation: true when *s is a network error
 * (transient) and a try is left; *s is then dropped and the pause before try
 * *tries + 1 taken.  do s = op(...); while (again(&s, &tries));
 */
static bool again(keel_status *s, size_t *tries)
{
    if (!transient(*s) || *tries >= RETRIES)
        return false;
    keel_status_free(*s);
    *s = KEEL_OK;
    pause_ms(backoff_ms[(*tries)++]);
    return true;
}

static keel_status probe_once(const char *url)
{
    remote_call call;
    memset(&call, 0, sizeof(call));
    git_remote *remote = NULL;
    keel_status s = connect_remote(NULL, url, GIT_DIRECTION_FETCH, &call, &remote);
    disconnect_remote(remote);
    return s;
}

/* ---- fetch ------------------------------------------------------------------------------ */

/*
 * Download what the connected remote's refs matching `src` (a ref, or a
 * pattern with '*') need into the mirror's objects; refs are the caller's.
 */
static keel_status download(git_remote *remote, remote_call *call, git_odb *odb, const char *src)
{
    char spec[2 * REF_MAX + 4];
    (void)snprintf(spec, sizeof(spec), "+%s:%s", src, src);
    char *specs[1] = {spec};
    git_strarray arr = {specs, 1};
    git_fetch_options fo;
    (void)git_fetch_options_init(&fo, GIT_FETCH_OPTIONS_VERSION);
    callbacks_init(&fo.callbacks, call);
    fo.update_fetchhead = 0;
    fo.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE;
    fo.prune = GIT_FETCH_NO_PRUNE;
    int rc = git_remote_download(remote, &arr, &fo);
    if (rc != 0)
        return gate_git_error(rc, "cannot fetch '%s'", src);
    if (git_odb_refresh(odb) != 0)
        return gate_git_error(-1, "cannot read the mirror's objects again");
    return KEEL_OK;
}

static keel_status fetch_once(git_repository *mirror, const char *url, const char *ref,
                              git_oid *out)
{
    remote_call call;
    memset(&call, 0, sizeof(call));
    git_remote *remote = NULL;
    keel_status s = connect_remote(mirror, url, GIT_DIRECTION_FETCH, &call, &remote);
    bool found = false;
    if (keel_ok(s))
        s = advertised(remote, ref, out, &found);
    if (keel_ok(s) && !found) {
        char shown[512];
        gate_remote_redact(url, shown, sizeof(shown));
        s = keel_status_with_str(
            KEEL_ERR(KEEL_E_NOTFOUND, "no branch '%s' in '%s'", ref + strlen("refs/heads/"), shown),
            "branch", ref + strlen("refs/heads/"));
    }
    git_odb *odb = NULL;
    int rc = keel_ok(s) ? git_repository_odb(&odb, mirror) : 0;
    if (rc != 0)
        s = gate_git_error(rc, "cannot open the mirror's objects");
    if (keel_ok(s) && !git_odb_exists(odb, out)) {
        s = download(remote, &call, odb, ref);
        if (keel_ok(s) && !git_odb_exists(odb, out))
            s = KEEL_ERR(KEEL_E_IO, "fetched '%s' but its commit is not in the mirror", ref);
    }
    git_odb_free(odb);
    if (keel_ok(s)) {
        git_reference *r = NULL;
        rc = git_reference_create(&r, mirror, ref, out, 1, "keel-gate: fetch");
        git_reference_free(r);
        if (rc != 0)
            s = gate_git_error(rc, "cannot record '%s' in the mirror", ref);
    }
    disconnect_remote(remote);
    return s;
}

static keel_status probe(const char *url)
{
    keel_status s;
    size_t tries = 0;
    do
        s = probe_once(url);
    while (again(&s, &tries));
    return s;
}

keel_status gate_remote_fetch_branch(git_repository *mirror, const char *url, const char *branch,
                                     git_oid *out)
{
    KEEL_ASSERT(mirror != NULL && url != NULL && branch != NULL && out != NULL);
    char ref[REF_MAX];
    (void)snprintf(ref, sizeof(ref), "refs/heads/%s", branch);
    int lock = -1;
    keel_status s = gate_remote_mirror_lock(mirror, &lock);
    size_t tries = 0;
    if (keel_ok(s)) {
        do
            s = fetch_once(mirror, url, ref, out);
        while (again(&s, &tries));
    }
    gate_remote_mirror_unlock(lock);
    return s;
}

keel_status gate_remote_head_branch(git_repository *mirror, const char *url, char *name,
                                    size_t size)
{
    KEEL_ASSERT(mirror != NULL && url != NULL && name != NULL && size > 0);
    char shown[512];
    gate_remote_redact(url, shown, sizeof(shown));
    remote_call call;
    memset(&call, 0, sizeof(call));
    git_remote *remote = NULL;
    keel_status s = connect_remote(mirror, url, GIT_DIRECTION_FETCH, &call, &remote);
    git_buf head = GIT_BUF_INIT;
    if (keel_ok(s)) {
        int rc = git_remote_default_branch(&head, remote);
        if (rc == GIT_ENOTFOUND)
            s = KEEL_ERR(KEEL_E_NOTFOUND, "HEAD of '%s' names no branch (give --target)", shown);
        else if (rc != 0)
            s = gate_git_error(rc, "cannot read HEAD of '%s'", shown);
        else if (strncmp(head.ptr, "refs/heads/", 11) != 0 || strlen(head.ptr + 11) >= size)
            s = KEEL_ERR(KEEL_E_NOTFOUND, "HEAD of '%s' names no usable branch (give --target)",
                         shown);
        else
            (void)snprintf(name, size, "%s", head.ptr + 11);
    }
    git_buf_dispose(&head);
    disconnect_remote(remote);
    return s;
}

/* ---- landing ---------------------------------------------------------------------------- */

static keel_status moved(const char *branch, const char *shown, const git_oid *expected,
                         const git_oid *now, bool gone, const char *why)
{
    char want[GATE_HEX], have[GATE_HEX] = "";
    (void)git_oid_tostr(want, sizeof(want), expected);
    if (!gone)
        (void)git_oid_tostr(have, sizeof(have), now);
    return keel_status_with_str(
        keel_status_with_str(
            KEEL_ERR_IN(&gate_codes, GATE_E_MOVED,
                        "branch '%s' of '%s' moved from %.12s to %.12s%s%s: not updated", branch,
                        shown, want, gone ? "(gone)" : have, why[0] != '\0' ? ": " : "", why),
            "expected", want),
        "actual", have);
}

static keel_status push_once(git_repository *mirror, const char *url, const char *branch,
                             const git_oid *expected, const git_oid *next)
{
    char shown[512], ref[REF_MAX];
    gate_remote_redact(url, shown, sizeof(shown));
    (void)snprintf(ref, sizeof(ref), "refs/heads/%s", branch);
    remote_call call;
    git_remote *remote = NULL;
    git_oid now;
    bool found = false;
    keel_status s = connect_at(mirror, url, GIT_DIRECTION_PUSH, ref, &call, &remote, &now, &found);
    if (keel_ok(s) && (!found || !git_oid_equal(&now, expected)))
        s = moved(branch, shown, expected, &now, !found, "");
    if (keel_ok(s)) {
        /* this connection's advertisement is the old value the update carries */
        git_reference *r = NULL;
        int rc = git_reference_create(&r, mirror, land_ref, next, 1, "keel-gate: land");
        git_reference_free(r);
        if (rc != 0)
            s = gate_git_error(rc, "cannot prepare the push of '%s'", branch);
    }
    if (keel_ok(s)) {
        char spec[2 * REF_MAX];
        (void)snprintf(spec, sizeof(spec), "%s:%s", land_ref, ref); /* no '+': not forced */
        s = upload(remote, &call, spec, shown);
    }
    disconnect_remote(remote);
    if (keel_ok(s) && call.refused[0] != '\0') {
        /* moved under us, or refused for a reason of its own (a hook, a protected branch)? */
        remote_call reread;
        s = connect_at(mirror, url, GIT_DIRECTION_FETCH, ref, &reread, &remote, &now, &found);
        disconnect_remote(remote);
        if (keel_ok(s) && (!found || !git_oid_equal(&now, expected)))
            s = moved(branch, shown, expected, &now, !found, call.refused);
        else if (keel_ok(s) && strstr(call.refused, "lock") != NULL)
            /* a lock file of git's beside the remote's ref: a push under way, or a killed one */
            s = keel_status_with_str(
                KEEL_ERR(KEEL_E_BUSY,
                         "'%s' could not update '%s': %s (a lock file beside the branch: another "
                         "push is under way, or one was killed while it ran)",
                         shown, branch, call.refused),
                "url", shown);
        else if (keel_ok(s))
            /* the remote's own rule (a hook, a protected branch): no pause makes it pass */
            s = keel_status_with_str(KEEL_ERR(KEEL_E_STATE, "'%s' refused the update of '%s': %s",
                                              shown, branch, call.refused),
                                     "url", shown);
    }
    if (keel_ok(s)) {
        git_reference *r = NULL;
        int rc = git_reference_create(&r, mirror, ref, next, 1, "keel-gate: landed");
        git_reference_free(r);
        if (rc != 0)
            keel_status_ignore(gate_git_error(rc, "cannot record '%s' in the mirror", ref),
                               "landed; the next fetch records it");
    }
    return s;
}

/*
 * A file:// remote is written by this very process (libgit2's local
 * transport): a stale lock file beside `ref` there (a keel-gate killed in
 * its own update) is cleared as in gate_stale_lock_clear.  True when one was.
 */
static bool clear_remote_lock(const char *url, const char *ref)
{
    if (strncmp(url, "file://", 7) != 0)
        return false;
    static const char *const dirs[] = {"", ".git/"};
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        char lock[REF_MAX * 3];
        (void)snprintf(lock, sizeof(lock), "%s/%s%s.lock", url + 7, dirs[i], ref);
        bool removed = false;
        keel_status s = gate_stale_lock_clear(lock, &removed);
        if (!keel_ok(s))
            keel_status_ignore(s, "the refusal is reported as it is");
        if (removed)
            return true;
    }
    return false;
}

keel_status gate_remote_push_cas(git_repository *mirror, const char *url, const char *branch,
                                 const git_oid *expected, const git_oid *next)
{
    KEEL_ASSERT(mirror != NULL && url != NULL && branch != NULL && expected != NULL &&
                next != NULL);
    int lock = -1;
    keel_status s = gate_remote_mirror_lock(mirror, &lock);
    size_t tries = 0;
    /* again only when it failed before the update: a lost reply shows as moved (to next) */
    char ref[REF_MAX];
    (void)snprintf(ref, sizeof(ref), "refs/heads/%s", branch);
    for (int pass = 0; keel_ok(s) && pass < 2; pass++) {
        do
            s = push_once(mirror, url, branch, expected, next);
        while (again(&s, &tries));
        if (!KEEL_IS(s, KEEL_E_BUSY) || !clear_remote_lock(url, ref))
            break;
        keel_status_free(s); /* a stale lock of a killed keel-gate's, gone: once more */
        s = KEEL_OK;
    }
    gate_remote_mirror_unlock(lock);
    return s;
}

/* ---- a branch of the gate's own ------------------------------------------------------------ */

static keel_status put_once(git_repository *mirror, const char *url, const char *ref,
                            const git_oid *commit)
{
    char shown[512];
    gate_remote_redact(url, shown, sizeof(shown));
    remote_call call;
    git_remote *remote = NULL;
    git_oid now;
    bool found = false;
    keel_status s = connect_at(mirror, url, GIT_DIRECTION_PUSH, ref, &call, &remote, &now, &found);
    if (keel_ok(s) && !(found && git_oid_equal(&now, commit))) { /* there already: nothing to do */
        char spec[2 * REF_MAX + 2];
        (void)snprintf(spec, sizeof(spec), "+%s:%s", ref, ref); /* the gate's own: forced */
        s = upload(remote, &call, spec, shown);
        if (keel_ok(s) && call.refused[0] != '\0')
            s = keel_status_with_str(
                KEEL_ERR(KEEL_E_STATE, "'%s' refused '%s': %s", shown, ref, call.refused), "url",
                shown);
    }
    disconnect_remote(remote);
    return s;
}

keel_status gate_remote_put_branch(git_repository *mirror, const char *url, const char *branch,
                                   const git_oid *commit)
{
    KEEL_ASSERT(mirror != NULL && url != NULL && branch != NULL && commit != NULL);
    char ref[REF_MAX];
    (void)snprintf(ref, sizeof(ref), "refs/heads/%s", branch);
    int lock = -1;
    keel_status s = gate_remote_mirror_lock(mirror, &lock);
    if (keel_ok(s)) {
        git_reference *r = NULL;
        int rc = git_reference_create(&r, mirror, ref, commit, 1, "keel-gate: put");
        git_reference_free(r);
        if (rc != 0)
            s = gate_git_error(rc, "cannot point '%s' of the mirror at %s", ref,
                               git_oid_tostr_s(commit));
    }
    size_t tries = 0;
    if (keel_ok(s)) {
        do
            s = put_once(mirror, url, ref, commit);
        while (again(&s, &tries));
    }
    gate_remote_mirror_unlock(lock);
    return s;
}

/* ---- refs pushed for the gate ----------------------------------------------------------- */

/* The refs listed, with their ids, to give to the caller's function once the mirror is let go. */
typedef struct listed_ref {
    git_oid oid;
    char *name; /* on gate_git's heap */
} listed_ref;

static void free_listed(listed_ref *refs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        keel_heap_free(GIT_HEAP, refs[i].name);
    keel_heap_free(GIT_HEAP, refs);
}

/* The remote's refs under `prefix`, their objects fetched and their refs set in the mirror. */
static keel_status list_once(git_repository *mirror, const char *url, const char *prefix,
                             listed_ref **out, size_t *nout)
{
    remote_call call;
    memset(&call, 0, sizeof(call));
    git_remote *remote = NULL;
    keel_status s = connect_remote(mirror, url, GIT_DIRECTION_FETCH, &call, &remote);
    const git_remote_head **heads = NULL;
    size_t n = 0, plen = strlen(prefix);
    int rc = keel_ok(s) ? git_remote_ls(&heads, &n, remote) : 0;
    if (rc != 0)
        s = gate_git_error(rc, "cannot list the refs of the remote");
    git_odb *odb = NULL;
    if (keel_ok(s) && (rc = git_repository_odb(&odb, mirror)) != 0)
        s = gate_git_error(rc, "cannot open the mirror's objects");
    bool missing = false;
    size_t matching = 0;
    for (size_t i = 0; keel_ok(s) && i < n; i++)
        if (strncmp(heads[i]->name, prefix, plen) == 0) {
            matching++;
            missing |= !git_odb_exists(odb, &heads[i]->oid);
        }
    if (keel_ok(s) && missing) {
        char pattern[REF_MAX + 2];
        (void)snprintf(pattern, sizeof(pattern), "%s*", prefix);
        s = download(remote, &call, odb, pattern);
    }
    git_odb_free(odb);
    void *mem = NULL;
    if (keel_ok(s) && matching > 0)
        s = keel_heap_calloc(GIT_HEAP, matching, sizeof(listed_ref), &mem);
    listed_ref *refs = (listed_ref *)mem;
    size_t k = 0;
    for (size_t i = 0; keel_ok(s) && i < n; i++) {
        const char *name = heads[i]->name;
        size_t len = strlen(name);
        /* "<ref>^{}": what an annotated tag peels to, advertised next to it: not a ref */
        if (strncmp(name, prefix, plen) != 0 || (len >= 3 && strcmp(name + len - 3, "^{}") == 0))
            continue;
        /*
         * The mirror's copy of the ref: a name git or the file system refuses
         * (too long for a file, say) is not recorded and passed on all the
         * same, for the caller to refuse: one ref never stops the others.
         */
        git_reference *r = NULL;
        rc = git_reference_create(&r, mirror, name, &heads[i]->oid, 1, "keel-gate: fetch");
        git_reference_free(r);
        if (rc != 0 && rc != GIT_EINVALIDSPEC)
            keel_status_ignore(gate_git_error(rc, "cannot record '%s' in the mirror", name),
                               "the mirror's copy only; the remote's ref is the submission");
        if (refs == NULL || k >= matching)
            break; /* (matching counted these: never) */
        size_t nlen = len + 1;
        void *copy = NULL;
        s = keel_heap_alloc(GIT_HEAP, nlen, &copy);
        if (keel_ok(s)) {
            memcpy(copy, name, nlen);
            refs[k].name = (char *)copy;
            git_oid_cpy(&refs[k].oid, &heads[i]->oid);
            k++;
        }
    }
    disconnect_remote(remote);
    if (!keel_ok(s)) {
        free_listed(refs, k);
        return s;
    }
    *out = refs;
    *nout = k;
    return KEEL_OK;
}

keel_status gate_remote_each_ref(git_repository *mirror, const char *url, const char *prefix,
                                 gate_remote_ref_fn fn, void *ctx)
{
    KEEL_ASSERT(mirror != NULL && url != NULL && prefix != NULL && fn != NULL);
    int lock = -1;
    keel_status s = gate_remote_mirror_lock(mirror, &lock);
    listed_ref *refs = NULL;
    size_t n = 0, tries = 0;
    if (keel_ok(s)) {
        do
            s = list_once(mirror, url, prefix, &refs, &n);
        while (again(&s, &tries));
    }
    gate_remote_mirror_unlock(lock); /* fn may write to the mirror (a pushed ref removed) */
    size_t listed = keel_ok(s) ? n : 0;
    for (size_t i = 0; i < listed; i++) {
        /* one ref's failure stops none after it: the first is what is returned */
        keel_status one = fn(refs[i].name, &refs[i].oid, ctx);
        if (keel_ok(s))
            s = one;
        else
            keel_status_free(one);
    }
    free_listed(refs, n);
    return s;
}

keel_status gate_remote_delete_ref(git_repository *mirror, const char *url, const char *ref,
                                   const git_oid *expected, bool *deleted)
{
    KEEL_ASSERT(mirror != NULL && url != NULL && ref != NULL && expected != NULL &&
                deleted != NULL);
    *deleted = false;
    char shown[512];
    gate_remote_redact(url, shown, sizeof(shown));
    remote_call call;
    git_remote *remote = NULL;
    git_oid now;
    bool found = false;
    int lock = -1;
    keel_status s = gate_remote_mirror_lock(mirror, &lock);
    if (keel_ok(s))
        s = connect_at(mirror, url, GIT_DIRECTION_PUSH, ref, &call, &remote, &now, &found);
    if (keel_ok(s) && found && git_oid_equal(&now, expected)) {
        /* ":<ref>" deletes, carrying the old value; the whole name, however long */
        size_t len = strlen(ref) + 2;
        void *mem = NULL;
        s = keel_heap_alloc(KEEL_MODULE_REF(gate_git), len, &mem);
        if (keel_ok(s)) {
            char *spec = (char *)mem;
            (void)snprintf(spec, len, ":%s", ref);
            s = upload(remote, &call, spec, shown);
            *deleted = keel_ok(s) && call.refused[0] == '\0';
            if (keel_ok(s) && !*deleted && strstr(call.refused, "lock") != NULL &&
                clear_remote_lock(url, ref)) {
                call.refused[0] = '\0'; /* a killed keel-gate's stale lock, gone: once more */
                s = upload(remote, &call, spec, shown);
                *deleted = keel_ok(s) && call.refused[0] == '\0';
            }
            keel_heap_free(KEEL_MODULE_REF(gate_git), spec);
        }
    }
    disconnect_remote(remote);
    git_reference *mine = NULL;
    if (keel_ok(s) && git_reference_lookup(&mine, mirror, ref) == 0) {
        if (git_oid_equal(git_reference_target(mine), expected) && git_reference_delete(mine) != 0)
            keel_status_ignore(gate_git_error(-1, "cannot delete '%s' in the mirror", ref),
                               "the next listing sets the mirror's copy again");
        git_reference_free(mine);
    }
    gate_remote_mirror_unlock(lock);
    return s;
}
