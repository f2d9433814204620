#!/usr/bin/env bash
# tools/gate-demo.sh: keel-gate guarding a small C program that uses libkeel.
#
# Builds keel (build/devel: keel-gate and both library variants), makes a
# sample repository in a temp dir whose .keel/gate.conf has a gcc/clang x
# devel/release matrix, submits a handful of branches - good ones, one that
# breaks only the release build, one with a lock-order inversion that only a
# devel test run catches (report.lock-order=abort), one with a flaky test and
# two that conflict - then runs `keel-gate run --once` and shows what landed,
# what was rejected and why, and how many builds it took.
#
#   tools/gate-demo.sh            (KEEP=1 keeps the temp dir; BUILD=0 skips the build)
set -eu -o pipefail
cd "$(dirname "$0")/.."
top=$PWD
if [ "${BUILD:-1}" = 1 ]; then
    cmake --preset devel >/dev/null
    cmake --build build/devel --target keel-gate keel_devel_static keel_static >/dev/null
fi
gate=$top/build/devel/keel-gate
demo=$(mktemp -d /tmp/keel-gate-demo-XXXXXX)
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf -- "$demo"' EXIT
repo=$demo/repo
mkdir -p "$demo/shared" # what jobs may write besides their tree: they run in a sandbox
git init -q -b main "$repo"
cd "$repo"
g() { git -c user.name=demo -c user.email=demo@localhost "$@"; }

# ---- the sample program: a counter guarded by two ranked locks ----------------------
mkdir -p src tests .keel
cat > src/counter.h <<'EOF'
#include <keel/keel.h>
void counter_add(int n);
int counter_total(void);
EOF
cat > src/counter.c <<'EOF'
#include "counter.h"

enum { RANK_STATS = 10, RANK_LOG = 20 }; /* stats before log, never the reverse */
static keel_mutex stats_lock = KEEL_MUTEX_INITIALIZER("stats", RANK_STATS);
static keel_mutex log_lock = KEEL_MUTEX_INITIALIZER("log", RANK_LOG);
static int total, logged;

void counter_add(int n)
{
    keel_mutex_lock(&stats_lock);
    total += n;
    keel_mutex_lock(&log_lock);
    logged++;
    keel_mutex_unlock(&log_lock);
    keel_mutex_unlock(&stats_lock);
}

int counter_total(void)
{
    keel_mutex_lock(&stats_lock);
    int t = total;
    keel_mutex_unlock(&stats_lock);
    return t;
}
EOF
cat > src/greet.c <<'EOF'
const char *greeting(void);
const char *greeting(void)
{
    return "hello";
}
EOF
cat > src/main.c <<'EOF'
#include <stdio.h>

#include "counter.h"

const char *greeting(void);

int main(void)
{
    for (int i = 1; i <= 10; i++)
        counter_add(i);
    printf("%s %d\n", greeting(), counter_total());
    return 0;
}
EOF
cat > build.sh <<'EOF'
# build.sh CC VARIANT: the program against libkeel-devel (devel) or libkeel (release); KEEL_LIBS:
# what libkeel needs (a foreign build: no jemalloc, docs/platforms.md)
cc=$1
if [ "$2" = devel ]; then def=1 lib=keel-devel; else def=0 lib=keel; fi
exec "$cc" -std=gnu11 -Wall -Wextra -Werror -O2 -DKEEL_DEVEL=$def -I"$KEEL_INCLUDE" -o app \
    src/*.c "$KEEL_LIBDIR/lib$lib.a" -pthread ${KEEL_LIBS:--ldw -ljemalloc}
EOF
cat > test.sh <<'EOF'
for t in tests/*.sh; do
    sh "$t" || { echo "FAILED: $t"; exit 1; }
done
EOF
cat > soak.sh <<'EOF'
# the soak suite (the post level's: too long for the queue): 20 runs in a row, each as the first
for i in $(seq 1 20); do
    out=$(./app) || { echo "soak: run $i exited $?"; exit 1; }
    [ "$out" = "$(cat expected.txt)" ] || { echo "soak: run $i printed '$out', expected '$(cat expected.txt)'"; exit 1; }
done
EOF
cat > tests/output.sh <<'EOF'
out=$(${RUN:-} ./app) || exit 1 # RUN: qemu-aarch64 for the foreign configuration
[ "$out" = "$(cat expected.txt)" ] || { echo "got '$out', expected '$(cat expected.txt)'"; exit 1; }
EOF
echo "hello 55" > expected.txt
# keel's headers and libraries for the jobs, in the shared directory they may see: a job's /tmp
# is its own, so a keel checkout under /tmp (a clean clone) would be out of their sight
mkdir -p "$demo/shared/keel/lib"
cp -R "$top/include" "$demo/shared/keel/include"
cp "$top"/build/devel/libkeel-devel.a "$top"/build/devel/libkeel.a "$demo/shared/keel/lib/"
# one foreign platform in the matrix: libkeel-devel cross-built for aarch64 (tools/platforms.sh,
# docs/platforms.md), the program built with aarch64-linux-gnu-gcc and run under qemu-aarch64;
# left out, saying why, where the cross tools are missing
foreign=""
if ! command -v aarch64-linux-gnu-gcc >/dev/null || ! command -v qemu-aarch64 >/dev/null; then
    echo "gate demo: the aarch64 configuration is left out: no aarch64-linux-gnu-gcc or qemu-aarch64 (make deps installs them)"
elif ! (cd "$top" && PLATFORM_BUILD_ONLY=keel_devel_static tools/platforms.sh aarch64 >"$demo/platform.log" 2>&1); then
    echo "gate demo: the aarch64 configuration is left out: libkeel for aarch64 could not be built ($(grep -m1 -o 'SKIPPED: .*\|FAILED.*' "$demo/platform.log"))"
else
    mkdir -p "$demo/shared/keel/lib-aarch64"
    cp "$top/build/platform-aarch64/libkeel-devel.a" "$demo/shared/keel/lib-aarch64/"
    foreign=aarch64
fi
{
    echo "[gate]"
    echo "target   = main"
    echo "slots    = 4"
    echo "strategy = adaptive"
    echo "retries  = 1"
    echo "notify   = tee -a $demo/events.jsonl"
    for cc in gcc clang; do
        for v in devel release; do
            echo
            echo "[config $cc-$v]"
            echo "build    = sh build.sh $cc $v"
            echo "test     = sh test.sh"
            echo "env      = KEEL_INCLUDE=$demo/shared/keel/include KEEL_LIBDIR=$demo/shared/keel/lib DEMO_MARK=$demo/shared/flaky-mark KEEL_OPTIONS=report.lock-order=abort"
            echo "writable = $demo/shared"
            echo "timeout  = 120"
        done
    done
    echo
    echo "[config soak]"
    echo "build    = sh build.sh gcc release"
    echo "test     = sh soak.sh"
    echo "env      = KEEL_INCLUDE=$demo/shared/keel/include KEEL_LIBDIR=$demo/shared/keel/lib"
    echo "writable = $demo/shared"
    echo "levels   = nightly   # on a schedule (default 02:00 UTC), not in the queue"
    echo "tier     = 1         # a failure is backed out automatically, once its culprit is verified"
    echo "timeout  = 120"
    if [ -n "$foreign" ]; then
        echo
        echo "[config aarch64-devel]"
        echo "build    = sh build.sh aarch64-linux-gnu-gcc devel"
        echo "test     = sh test.sh"
        echo "env      = KEEL_INCLUDE=$demo/shared/keel/include KEEL_LIBDIR=$demo/shared/keel/lib-aarch64 KEEL_LIBS=-ldw RUN=qemu-aarch64 QEMU_LD_PREFIX=/usr/aarch64-linux-gnu DEMO_MARK=$demo/shared/flaky-mark KEEL_OPTIONS=report.lock-order=abort"
        echo "writable = $demo/shared"
        echo "timeout  = 300"
    fi
} > .keel/gate.conf
g add -A && g commit -qm "a counter with ranked locks"

branch() { # branch NAME MESSAGE: commit what the caller changed on a new branch off main
    g checkout -q -b "$1" main 2>/dev/null || g checkout -q "$1"
}
commit() { g add -A && g commit -qm "$1" && g checkout -q main; }

branch version
printf 'const char *version(void);\nconst char *version(void)\n{\n    return "1.0";\n}\n' > src/version.c
commit "a version string"

branch readme
echo "A counter. Built and landed by keel-gate." > README
commit "a README"

branch greet-hi
sed -i 's/"hello"/"hi"/' src/greet.c && echo "hi 55" > expected.txt
commit "say hi"

branch greet-hey
sed -i 's/"hello"/"hey"/' src/greet.c && echo "hey 55" > expected.txt
commit "say hey"

branch release-fastpath
cat > src/fast.c <<'EOF'
#include <keel/keel.h>

int fast_sum(int n);
int fast_sum(int n)
{
#if KEEL_DEVEL
    KEEL_ASSERT(n >= 0);
    return n * (n + 1) / 2;
#else
    return n * (n + 1) / 2 + unchecked_bias; /* only the release build compiles this line */
#endif
}
EOF
commit "a fast path for sums"

branch log-reset
cat >> src/counter.c <<'EOF'

void counter_log_reset(void)
{
    keel_mutex_lock(&log_lock);
    keel_mutex_lock(&stats_lock); /* log before stats: the inversion */
    logged = 0;
    keel_mutex_unlock(&stats_lock);
    keel_mutex_unlock(&log_lock);
}
EOF
echo "void counter_log_reset(void);" >> src/counter.h
sed -i 's/^    for (int i = 1/    counter_log_reset();\n    for (int i = 1/' src/main.c
commit "reset the log count"

branch timing-test
cat > tests/timing.sh <<'EOF'
# a timing-dependent test: it fails the first time it ever runs
if [ ! -e "$DEMO_MARK" ]; then touch "$DEMO_MARK"; echo "timing: too slow"; exit 1; fi
EOF
commit "a timing test"

branch tools
echo "indent 4" > .editorconfig
commit "an editor configuration"

# The gate guards a bare repository, as a team's shared one is (a branch checked out in a
# working tree is refused: landing would move it under that working tree).
origin=$demo/origin.git
git clone -q --bare "$repo" "$origin"
cd "$origin"
echo "################ keel-gate demo: $origin (the branches were made in $repo)"
echo "\$ keel-gate submit <branch>   (x7, and one hostile name)"
for b in timing-test version release-fastpath greet-hi log-reset greet-hey readme; do
    "$gate" --quiet submit "$b"
done
"$gate" submit 'evil;rm -rf ~' || echo "(refused, exit $?)"
echo "\$ git push origin tools:refs/keel-gate/submit/tools   (a submit by push: the gate takes it)"
git -C "$repo" push -q "$origin" tools:refs/keel-gate/submit/tools
echo
echo "\$ keel-gate run --once"
start=$(date +%s)
rc=0
"$gate" run --once > "$demo/run.txt" || rc=$?
grep -E '^(gate|queued|landed|rejected|conflict|flaky|moved|summary)' "$demo/run.txt" | sed 's/, log [^)]*)/)/g'
echo "(exit $rc: 1 when something was rejected)"
end=$(date +%s)
echo
echo "\$ keel-gate status"
"$gate" status | grep -v '^running jobs (0)'
echo
echo "main is now:"
git log --oneline --first-parent main | sed 's/^/  /'
echo
echo "why log-reset was rejected (\$ keel-gate log --full log-reset, the aborting devel test):"
"$gate" log --full log-reset > "$demo/log-reset.txt" || true
grep -m3 -E 'lock-order|rank' "$demo/log-reset.txt" | cut -c1-160 | sed 's/^/  /' || true
echo
echo "the notify hook received $(wc -l < "$demo/events.jsonl") events; gate run took $((end - start)) s"

# ---- after the landing: the nightly level finds a break, its culprit, and backs it out ---------
# The nightly soak suite passes on main (a run made due now: `nightly --now`, as if its time had
# come).  greet-cache caches the greeting in a file: the queue's suite runs the program once and
# passes; the soak suite runs it 20 times, and the second run reads the cache back one byte
# short.  The next nightly run fails; the culprit search finds and verifies the change in the
# range since the last nightly pass, and the backout reverts it through the gate (docs/gate.md,
# "The nightly level", "Finding the culprit", "Backing out").
echo
echo "################ after the landing: nightly level, culprit search, backout ################"
cd "$origin"
echo "\$ keel-gate nightly --now; keel-gate run --once   (last night's run: main passes soak)"
"$gate" nightly --now >/dev/null
"$gate" run --once > "$demo/run2.txt" || true
grep -E '^nightly:.*(failed|passed)' "$demo/run2.txt" | sed 's/, log [^)]*)/)/g' | cut -c1-170
cd "$repo"
g fetch -q "$origin" main
g checkout -q -B greet-cache FETCH_HEAD
word=$(sed -n 's/.*return "\(.*\)";/\1/p' src/greet.c)
cat > src/greet.c <<EOF
#include <stdio.h>

const char *greeting(void);
const char *greeting(void)
{
    static char cached[16];
    FILE *f = fopen("greet.cache", "r");
    if (f != NULL) { /* a later run: the greeting read back (one byte short: the bug) */
        size_t n = fread(cached, 1, sizeof(cached) - 1, f);
        fclose(f);
        cached[n > 0 ? n - 1 : 0] = 0;
        return cached;
    }
    f = fopen("greet.cache", "w");
    if (f != NULL) {
        fputs("$word", f);
        fclose(f);
    }
    return "$word";
}
EOF
g add -A && g commit -qm "cache the greeting" && g push -q "$origin" greet-cache
cd "$origin"
echo "\$ keel-gate submit greet-cache   (it passes the queue's suite: one run of the program)"
"$gate" --quiet submit greet-cache
"$gate" run --once > "$demo/run3.txt" || true
grep -E '^(landed|rejected)' "$demo/run3.txt" | cut -c1-170
echo "\$ keel-gate nightly --now; keel-gate run --once   (tonight's run)"
"$gate" nightly --now >/dev/null
"$gate" run --once > "$demo/run4.txt" || true
grep -E '^(landed|rejected|nightly:.*(failed|passed)|culprit: (search|.*verified)|backout)' "$demo/run4.txt" | sed 's/, log [^)]*)/)/g' | cut -c1-170
echo
echo "\$ keel-gate culprit soak"
"$gate" culprit soak | cut -c1-170
echo
echo "\$ keel-gate backouts"
"$gate" backouts | cut -c1-170
echo
echo "\$ keel-gate history --config soak   (its nightly runs)"
"$gate" history --config soak | head -8 | cut -c1-170
echo
echo "main is now:"
git log --oneline --first-parent -4 main | sed 's/^/  /'

# ---- the dashboard (keel-gate serve, docs/gate-api.md "Dashboard") -----------------------------
# Served on 127.0.0.1:8080 (or a free port when that is taken), photographed with headless
# Chromium when there is one.  In a terminal it keeps serving until Ctrl-C; otherwise (CI, a
# pipe) it stops, and the demo ends by itself.
echo
echo "################ the dashboard: keel-gate serve ################"
shot=$top/build/demo-dashboard.png
serve_out=$demo/serve.out
serve_pid=
for listen in 127.0.0.1:8080 127.0.0.1:0; do
    "$gate" serve --listen "$listen" >"$serve_out" 2>"$demo/serve.err" &
    serve_pid=$!
    for _ in $(seq 50); do
        [ -s "$serve_out" ] || ! kill -0 "$serve_pid" 2>/dev/null && break
        sleep 0.1
    done
    [ -s "$serve_out" ] && break
    wait "$serve_pid" 2>/dev/null || true
    serve_pid=
done
url=$(head -n1 "$serve_out" 2>/dev/null || true)
if [ -z "$serve_pid" ] || [ -z "$url" ]; then
    echo "(keel-gate serve did not start: $(cat "$demo/serve.err" 2>/dev/null))"
    exit 0
fi
trap 'kill "$serve_pid" 2>/dev/null; wait "$serve_pid" 2>/dev/null; [ "${KEEP:-0}" = 1 ] || rm -rf -- "$demo"' EXIT
echo "\$ keel-gate serve --listen $listen"
echo "$url"
chromium=$(command -v chromium || true)
if [ -n "$chromium" ]; then
    # the page draws itself from the API after it loads: virtual time lets its requests finish
    timeout 60 "$chromium" --headless --no-sandbox --disable-gpu --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --hide-scrollbars --window-size=1280,1100 --virtual-time-budget=5000 \
        --screenshot="$shot" "$url" >/dev/null 2>&1 || true
fi
echo
if [ -s "$shot" ]; then
    echo "screenshot of the dashboard: $shot"
else
    echo "(no screenshot: headless Chromium is not installed; make deps installs it)"
fi
if [ -t 0 ] && [ -t 1 ]; then
    echo "dashboard of the demo's gate: $url  (open it in a browser; Ctrl-C stops it)"
    wait "$serve_pid" || true
else
    echo "dashboard of the demo's gate: $url  (served while the demo ran; in a terminal, make demo"
    echo "keeps it open until Ctrl-C; or KEEP=1 tools/gate-demo.sh, then"
    echo "keel-gate --repo $origin serve)"
fi
