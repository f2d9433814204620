/*
 * Whether a file a tool is asked to write can be written, said before the tool's work starts
 * (keel-run's --report and --lock-graph, keel-stress's --json).  Header only, libc only: the
 * launcher links no libkeel.
 */
#ifndef KEEL_RUN_PATH_H
#define KEEL_RUN_PATH_H

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * 0 when `path` can be written: an existing file that is no directory and is writable, or a new
 * one in a directory this process can write.  Else the errno that says why: EISDIR for a
 * directory; *in_dir true when it is the file's directory (copied into dir) that refuses.
 */
static inline int run_path_unwritable(const char *path, char *dir, size_t size, bool *in_dir)
{
    struct stat st;
    *in_dir = false;
    if (stat(path, &st) == 0)
        return S_ISDIR(st.st_mode) ? EISDIR : access(path, W_OK) != 0 ? errno : 0;
    int err = errno;
    char copy[PATH_MAX];
    (void)snprintf(copy, sizeof(copy), "%s", path);
    (void)snprintf(dir, size, "%s", dirname(copy));
    struct stat ds;
    int dir_err = stat(dir, &ds) != 0             ? errno
                  : !S_ISDIR(ds.st_mode)          ? ENOTDIR
                  : access(dir, W_OK | X_OK) != 0 ? errno
                                                  : 0;
    *in_dir = dir_err != 0;
    return dir_err != 0 ? dir_err : err != ENOENT ? err : 0;
}

#endif
