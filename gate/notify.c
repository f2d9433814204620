/*
 * notify.c - run the notification hook with a JSON event on its stdin.
 */
#define _GNU_SOURCE 1
#include "notify.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "exec.h"
#include "gate.h"

keel_status gate_notify_run(const gate_words *cmd, const char *dir, const char *json,
                            const char *log, unsigned timeout_ms)
{
    KEEL_ASSERT(cmd != NULL && json != NULL);
    if (cmd->n == 0)
        return KEEL_OK;
    int in[2];
    if (pipe2(in, O_CLOEXEC) != 0)
        return KEEL_ERR_SYS(errno, "cannot make a pipe for hook '%s'", cmd->words[0]);
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        (void)close(in[0]);
        (void)close(in[1]);
        return KEEL_ERR_SYS(e, "cannot fork for hook '%s'", cmd->words[0]);
    }
    if (pid == 0) {
        (void)setpgid(0, 0);
        sigset_t none;
        (void)sigemptyset(&none);
        (void)sigprocmask(SIG_SETMASK, &none, NULL);
        (void)dup2(in[0], 0);
        int out = open(log != NULL ? log : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (out >= 0) {
            (void)dup2(out, 1);
            (void)dup2(out, 2);
        }
        if (dir != NULL && chdir(dir) != 0)
            _exit(127);
        execvp(cmd->words[0], cmd->words);
        _exit(127);
    }
    (void)setpgid(pid, pid);
    (void)close(in[0]);
    /* a hook that does not read its input must not hang or kill the gate */
    void (*old)(int) = signal(SIGPIPE, SIG_IGN);
    size_t len = strlen(json), off = 0;
    while (off < len) {
        ssize_t n = write(in[1], json + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    (void)close(in[1]);
    (void)signal(SIGPIPE, old);
    unsigned long long start = gate_now_ms();
    int status = 0;
    bool killed = false;
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid || (w < 0 && errno != EINTR))
            break;
        if (!killed && gate_now_ms() - start > timeout_ms) {
            (void)kill(-pid, SIGKILL);
            killed = true;
        }
        struct timespec ms = {0, 5000000};
        (void)nanosleep(&ms, NULL);
    }
    if (killed)
        return KEEL_ERR(KEEL_E_TIMEOUT, "hook '%s' ran past %u ms: killed", cmd->words[0],
                        timeout_ms);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return KEEL_OK;
    if (WIFEXITED(status))
        return keel_status_with_int(
            KEEL_ERR(KEEL_E_IO, "hook '%s' exited with %d", cmd->words[0], WEXITSTATUS(status)),
            "exit", WEXITSTATUS(status));
    return KEEL_ERR(KEEL_E_IO, "hook '%s' was killed by signal %d", cmd->words[0],
                    WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}
