/*
 * tests/slurm_cluster.h - a real Slurm cluster on localhost for keel-gate's
 * Slurm tests, started and torn down by the test itself, without systemd:
 * munged with a private key and socket, slurmctld and two slurmd (n1:
 * features gcc,debug; n2: clang,release; one CPU each) on free ports, a
 * private slurm.conf, all under a temp dir.  The daemons read slurm.conf
 * (-f); the clients (SLURM_CONF, and so keel-gate's salloc, srun, squeue and
 * scancel) read client.conf, the same but for a MessageTimeout a test may
 * lower while slurmctld is down (sc_client_timeout).
 *
 * sc_start returns NULL when the cluster is up, else why it cannot start
 * here (not root, Slurm or munge not installed, a daemon that would not
 * start): the test skips, saying so.
 */
#ifndef KEEL_TEST_SLURM_CLUSTER_H
#define KEEL_TEST_SLURM_CLUSTER_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct sc_cluster {
    char dir[64];
    char conf[128];    /* the daemons' */
    char client[128];  /* the clients' (SLURM_CONF) */
    unsigned ports[4]; /* slurmctld, slurmd (default), n1, n2 */
    bool up;
    int keeper; /* the write end of the keeper's input (-1: none) */
    int kept;   /* the read end of a pipe the keeper holds until it has torn the cluster down */
} sc_cluster;

static sc_cluster sc;

/* A TCP port on 127.0.0.1 no one listens on now. */
static inline unsigned sc_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    unsigned port = 0;
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    (void)close(fd);
    return port;
}

static inline int sc_sh(const char *fmt, ...) KEEL_PRINTF(1, 2);
static inline int sc_sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    return rc == -1 ? -1 : WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

static inline bool sc_have(const char *prog)
{
    return sc_sh("command -v %s >/dev/null 2>&1", prog) == 0;
}

/* Wait until the shell command `cmd` succeeds (at most `ms`); true when it did. */
static inline bool sc_wait_for(const char *cmd, unsigned ms)
{
    for (unsigned waited = 0; waited < ms; waited += 50) {
        if (sc_sh("%s", cmd) == 0)
            return true;
        (void)usleep(50000);
    }
    return false;
}

/* Every node idle, within `ms`. */
static inline bool sc_wait_idle(unsigned ms)
{
    return sc_wait_for("test \"$(sinfo -h -o %T 2>/dev/null | sort -u)\" = idle", ms);
}

/*
 * Some node idle, within `ms`: after slurmctld was down while a job ended, its node stays
 * allocated in the controller's eyes until its slurmd registers again.
 */
static inline bool sc_wait_any_idle(unsigned ms)
{
    return sc_wait_for("sinfo -h -t idle -o %n 2>/dev/null | grep -q .", ms);
}

static inline int sc_start_ctld(void)
{
    return sc_sh("slurmctld -f '%s' >>'%s/log/start.log' 2>&1", sc.conf, sc.dir);
}

static inline int sc_start_slurmd(const char *node)
{
    return sc_sh("slurmd -f '%s' -N %s >>'%s/log/start.log' 2>&1", sc.conf, node, sc.dir);
}

/* kill -9 of a daemon by its pid file (slurmctld.pid, slurmd-n1.pid). */
static inline void sc_kill9(const char *pidfile)
{
    (void)sc_sh("test -s '%s/%s' && kill -9 $(cat '%s/%s') 2>/dev/null; rm -f '%s/%s'", sc.dir,
                pidfile, sc.dir, pidfile, sc.dir, pidfile);
}

/* The cluster's slurm.conf at `path`, with MessageTimeout=`message_timeout_s`. */
static inline bool sc_write_conf(const char *path, unsigned message_timeout_s)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return false;
    (void)fprintf(
        f,
        "ClusterName=keel\nSlurmctldHost=localhost(127.0.0.1)\nSlurmctldPort=%u\n"
        "SlurmdPort=%u\nAuthType=auth/munge\nCredType=cred/munge\n"
        "AuthInfo=socket=%s/munge/munge.socket\nSlurmUser=root\nSlurmdUser=root\n"
        "StateSaveLocation=%s/state\nSlurmdSpoolDir=%s/spool/%%n\n"
        "SlurmctldPidFile=%s/slurmctld.pid\nSlurmdPidFile=%s/slurmd-%%n.pid\n"
        "SlurmctldLogFile=%s/log/slurmctld.log\nSlurmdLogFile=%s/log/slurmd-%%n.log\n"
        "ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\n"
        "JobAcctGatherType=jobacct_gather/none\nAccountingStorageType=accounting_storage/none\n"
        "JobCompType=jobcomp/filetxt\nJobCompLoc=%s/log/jobcomp.txt\n"
        "SelectType=select/cons_tres\nSelectTypeParameters=CR_Core\nMpiDefault=none\n"
        "ReturnToService=2\nKillWait=2\nMessageTimeout=%u\nMinJobAge=30\n"
        "SchedulerParameters=batch_sched_delay=0,sched_min_interval=0\n"
        "NodeName=n1 NodeAddr=127.0.0.1 Port=%u CPUs=1 RealMemory=1000 Features=gcc,debug "
        "State=UNKNOWN\n"
        "NodeName=n2 NodeAddr=127.0.0.1 Port=%u CPUs=1 RealMemory=1000 Features=clang,release "
        "State=UNKNOWN\n"
        "PartitionName=ci Nodes=n[1-2] Default=YES MaxTime=INFINITE State=UP\n",
        sc.ports[0], sc.ports[1], sc.dir, sc.dir, sc.dir, sc.dir, sc.dir, sc.dir, sc.dir, sc.dir,
        message_timeout_s, sc.ports[2], sc.ports[3]);
    return fclose(f) == 0;
}

/*
 * The clients' MessageTimeout (client.conf, written whole then renamed; the daemons keep
 * theirs).  A Slurm client that cannot connect to slurmctld tries again each second for
 * MessageTimeout - 1 s: 1 s makes each of keel-gate's calls fail at once while it is down.
 */
static inline bool sc_client_timeout(unsigned seconds)
{
    char tmp[160];
    (void)snprintf(tmp, sizeof(tmp), "%s.tmp", sc.client);
    return sc_write_conf(tmp, seconds) && rename(tmp, sc.client) == 0;
}

/*
 * The cluster's keeper (sh -c SC_KEEPER <dir>): it waits for a line on its input, or the
 * input's end, then tears the cluster down: kill -9 of both slurmd first (no slurmd starts a
 * slurmstepd after the sweep), of slurmctld, of the cluster's slurmstepd processes (those
 * whose environment names its slurm.conf: slurmd gives its steps SLURM_CONF = the file it
 * read; one whose job ended while slurmctld was down waits for it forever), of munged, each
 * only while its command line names the cluster's dir (a pid file outlives its process); then
 * the dir removed (kept with KEEL_TEST_KEEP_CLUSTER).  Its input's only writer is the test
 * process (close-on-exec: no daemon, job or client holds it), so the cluster goes with the
 * test however the test ends: sc_stop, or kill -9 (ctest's timeout).  It runs outside the
 * test's process tree (ctest kills a timed-out test's children too) and its session.
 */
#define SC_KEEPER                                                                        \
    "d=$0; read -r line\n"                                                               \
    "ours() { test -n \"$1\" && tr '\\0' ' ' </proc/$1/cmdline | grep -qF \"$d/\"; }\n"  \
    "for f in slurmd-n1.pid slurmd-n2.pid slurmctld.pid; do\n"                           \
    "  p=$(cat \"$d/$f\"); ours \"$p\" && kill -9 \"$p\"; done\n"                        \
    "for p in /proc/[0-9]*; do\n"                                                        \
    "  read -r c <$p/comm && test \"$c\" = slurmstepd && tr '\\0' '\\n' <$p/environ |\n" \
    "    grep -qxF \"SLURM_CONF=$d/slurm.conf\" && kill -9 ${p#/proc/}; done\n"          \
    "p=$(cat \"$d/munge/munged.pid\"); ours \"$p\" && kill -9 \"$p\"\n"                  \
    "test -n \"$KEEL_TEST_KEEP_CLUSTER\" || rm -rf -- \"$d\"\n"

/* The keeper started (sc.keeper, sc.kept); false when it could not be. */
static inline bool sc_keeper_start(void)
{
    int in[2], held[2];
    if (pipe2(in, O_CLOEXEC) != 0)
        return false;
    if (pipe2(held, O_CLOEXEC) != 0) {
        (void)close(in[0]);
        (void)close(in[1]);
        return false;
    }
    (void)fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) { /* only async-signal-safe calls: the test may have threads */
        if (setsid() < 0 || fork() != 0)
            _exit(0); /* the keeper, its grandchild, is nobody's in the test's tree */
        int null = open("/dev/null", O_RDWR); /* not the test's output, which ctest reads */
        if (null < 0 || dup2(in[0], 0) < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0 ||
            dup2(held[1], 3) < 0)
            _exit(127);
        execl("/bin/sh", "sh", "-c", SC_KEEPER, sc.dir, (char *)NULL);
        _exit(127);
    }
    (void)close(in[0]);
    (void)close(held[1]);
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        (void)close(in[1]);
        (void)close(held[0]);
        return false;
    }
    sc.keeper = in[1];
    sc.kept = held[0];
    return true;
}

/* The cluster torn down by its keeper, waited for. */
static inline void sc_stop(void)
{
    if (!sc.up)
        return;
    sc.up = false;
    if (write(sc.keeper, "\n", 1) != 1) { /* its input's end does the same */
    }
    (void)close(sc.keeper);
    char c;
    ssize_t n;
    while ((n = read(sc.kept, &c, 1)) > 0 || (n < 0 && errno == EINTR)) { /* until its end */
    }
    (void)close(sc.kept);
}

static inline const char *sc_start(void)
{
    memset(&sc, 0, sizeof(sc));
    if (geteuid() != 0)
        return "the Slurm tests start slurmctld, slurmd and munged: they need root";
    static const char *const progs[] = {"slurmctld", "slurmd",  "srun",  "sbatch",
                                        "squeue",    "scancel", "sinfo", "runuser"};
    for (size_t i = 0; i < sizeof(progs) / sizeof(progs[0]); i++)
        if (!sc_have(progs[i]))
            return "Slurm is not installed (make deps installs slurm-wlm, slurmctld, slurmd, "
                   "slurm-client and munge)";
    if (access("/usr/sbin/munged", X_OK) != 0 || getpwnam("munge") == NULL)
        return "munge is not installed (make deps installs it)";
    (void)snprintf(sc.dir, sizeof(sc.dir), "/tmp/keel-slurm-XXXXXX");
    if (mkdtemp(sc.dir) == NULL)
        return "no temp dir for the cluster";
    (void)chmod(sc.dir, 0755);
    if (!sc_keeper_start())
        return "cannot start the cluster's keeper";
    sc.up = true; /* from here sc_stop tears down what started (the keeper does) */
    (void)snprintf(sc.conf, sizeof(sc.conf), "%s/slurm.conf", sc.dir);
    (void)snprintf(sc.client, sizeof(sc.client), "%s/client.conf", sc.dir);
    for (int i = 0; i < 4; i++)
        for (int tries = 0; sc.ports[i] == 0 && tries < 10; tries++) {
            unsigned p = sc_free_port();
            bool dup = false;
            for (int k = 0; k < i; k++)
                dup |= sc.ports[k] == p;
            sc.ports[i] = dup ? 0 : p;
        }
    if (sc_sh("set -e; cd '%s'; mkdir -p munge state spool log; chown munge:munge munge; "
              "chmod 711 munge; head -c 1024 /dev/urandom >munge/munge.key; "
              "chown munge:munge munge/munge.key; chmod 400 munge/munge.key; "
              "runuser -u munge -- /usr/sbin/munged --socket=%s/munge/munge.socket "
              "--key-file=%s/munge/munge.key --pid-file=%s/munge/munged.pid "
              "--log-file=%s/munge/munged.log --seed-file=%s/munge/munged.seed",
              sc.dir, sc.dir, sc.dir, sc.dir, sc.dir, sc.dir) != 0)
        return "munged would not start (see its log in the cluster's temp dir)";
    if (!sc_write_conf(sc.conf, 2) || !sc_write_conf(sc.client, 2))
        return "cannot write slurm.conf";
    (void)setenv("SLURM_CONF", sc.client, 1);
    if (sc_start_ctld() != 0 || sc_start_slurmd("n1") != 0 || sc_start_slurmd("n2") != 0)
        return "slurmctld or slurmd would not start (see the logs in the cluster's temp dir)";
    if (!sc_wait_idle(20000))
        return "the Slurm nodes did not become idle within 20 s";
    return NULL;
}

/* Lines of the cluster's job completion log holding `needle`. */
static inline int sc_jobcomp_count(const char *needle)
{
    char path[160], line[4096];
    (void)snprintf(path, sizeof(path), "%s/log/jobcomp.txt", sc.dir);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    int n = 0;
    while (fgets(line, sizeof(line), f) != NULL)
        n += strstr(line, needle) != NULL;
    (void)fclose(f);
    return n;
}

#endif /* KEEL_TEST_SLURM_CLUSTER_H */
