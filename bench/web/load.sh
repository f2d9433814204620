#!/usr/bin/env bash
# keel-gate serve under load (docs/benchmarks.md, "keel-gate serve"): GET /api/v1/queue with wrk
# while `keel-gate run` lands a queue on the same store, then the same with 1,000 slow clients
# holding connections open (half a request each), then the gate's time per change with the
# server idle, at 100 requests/s and under wrk, alternating.
#   bench/web/load.sh [KEEL_GATE]      (default build/release/keel-gate; REPS=5, SECONDS_EACH=5,
#                                       MODES="idle paced loaded loaded0" for the second part,
#                                       ONLY=gate: the gate's time per change alone)
set -eu -o pipefail
cd "$(dirname "$0")/../.."
K=${1:-build/release/keel-gate}
K=$(realpath "$K")
REPS=${REPS:-5}
SECS=${SECONDS_EACH:-5}
command -v wrk >/dev/null || { echo "web/load: wrk is missing (make bench-deps)"; exit 77; }
dir=$(mktemp -d /tmp/keel-web-bench-XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT

# a repository whose one configuration sleeps: the gate is busy landing for the whole benchmark
make_repo() { # make_repo <dir> <test command> <branches>
    local d=$1 cmd=$2 n=$3
    git init -q -b main "$d/work"
    mkdir -p "$d/work/.keel"
    printf '[gate]\ntarget = main\nslots = 1\nstrategy = serial\n\n[config unit]\ntest = %s\ntimeout = 60\n' \
        "$cmd" >"$d/work/.keel/gate.conf"
    git -C "$d/work" add -A && git -C "$d/work" commit -qm base
    for i in $(seq 1 "$n"); do
        git -C "$d/work" checkout -qb "c$i" main
        echo "$i" >"$d/work/f$i.txt"
        git -C "$d/work" add -A && git -C "$d/work" commit -qm "c$i"
    done
    git -C "$d/work" checkout -q main
    git clone -q --bare "$d/work" "$d/repo.git"
    for i in $(seq 1 "$n"); do git -C "$d/work" push -q ../repo.git "c$i"; done
}

wrk_run() { # wrk_run <url>: "requests/s p99_ms"
    wrk -t2 -c64 -d"${SECS}s" --latency "$1" | awk '
        /Requests\/sec/ {rps=$2}
        /^ +99%/ {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; p99=v}
        END {printf "%s %s\n", rps, p99}'
}

stats() { # stats <numbers...>: "median [min .. max]"
    printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {m = NR % 2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2; printf "%g [%g .. %g]", m, a[1], a[NR]}'
}

if [ "${ONLY:-}" != gate ]; then # ONLY=gate: the second part alone
echo "== keel-gate serve: GET /api/v1/queue with wrk -t2 -c64 -d${SECS}s, while run lands a queue"
make_repo "$dir/a" "sleep 2" 60
"$K" --repo "$dir/a/repo.git" --quiet run >"$dir/run.log" 2>&1 & pids+=($!)
for i in $(seq 1 60); do "$K" --repo "$dir/a/repo.git" --quiet submit "c$i"; done
"$K" --repo "$dir/a/repo.git" serve --listen 127.0.0.1:0 >"$dir/serve.out" 2>"$dir/serve.err" & pids+=($!)
for _ in $(seq 1 50); do [ -s "$dir/serve.out" ] && break; sleep 0.1; done
url="$(head -1 "$dir/serve.out")api/v1/queue"
echo "server: $url"
curl -sf "$url" >/dev/null
landed() { sqlite3 "$dir/a/repo.git/keel-gate.db" "SELECT count(*) FROM changes WHERE state = 'landed'"; }
rps=() p99=() srps=() sp99=()
for r in $(seq 1 "$REPS"); do
    read -r a b < <(wrk_run "$url"); rps+=("$a"); p99+=("$b")
    # the same with 1,000 slow clients holding a connection each (half a request, then nothing)
    python3 - "$url" 1000 >"$dir/slow.out" 2>&1 <<'PY' &
import socket, sys, time, urllib.parse
u = urllib.parse.urlparse(sys.argv[1]); n = int(sys.argv[2]); socks = []
for _ in range(n):
    s = socket.create_connection((u.hostname, u.port)); s.sendall(b"GET /api/v1/qu"); socks.append(s)
print("open", len(socks), flush=True)
time.sleep(12)
alive = 0
for s in socks:
    s.setblocking(False)
    try:
        alive += 0 if s.recv(1) == b"" else 1
    except BlockingIOError:
        alive += 1
    except OSError:
        pass
print("still open after 12 s:", alive, flush=True)
PY
    slow=$!
    for _ in $(seq 1 100); do grep -q open "$dir/slow.out" 2>/dev/null && break; sleep 0.1; done
    read -r a b < <(wrk_run "$url"); srps+=("$a"); sp99+=("$b")
    wait $slow
    echo "rep $r ($(landed) landed so far): ${rps[-1]} req/s p99 ${p99[-1]} ms; with 1,000 slow clients: $a req/s p99 $b ms ($(tail -1 "$dir/slow.out"))"
done
echo "requests/s: $(stats "${rps[@]}"); p99 ms: $(stats "${p99[@]}")"
echo "with 1,000 slow clients: requests/s: $(stats "${srps[@]}"); p99 ms: $(stats "${sp99[@]}")"
echo "the gate meanwhile landed $(landed) of the 60 changes (it ran on; its errors: $(grep -c error "$dir/run.log" || true))"
kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; pids=()

fi

echo
echo "== the gate's time per change (20 changes, test 'true'): server idle, at 100 requests/s, under wrk"
echo "   (server at its default nice 10), under wrk with the server at --nice 0; alternating"
MODES=${MODES:-idle paced loaded loaded0}
declare -A times=()
for r in $(seq 1 "$REPS"); do
    line="rep $r:"
    for mode in $MODES; do
        d="$dir/g-$mode-$r"; mkdir -p "$d"
        make_repo "$d" "true" 20
        for i in $(seq 1 20); do "$K" --repo "$d/repo.git" --quiet submit "c$i"; done
        nice_opt=()
        [ $mode = loaded0 ] && nice_opt=(--nice 0)
        "$K" --repo "$d/repo.git" serve --listen 127.0.0.1:0 "${nice_opt[@]}" >"$d/serve.out" 2>/dev/null & sp=$!
        for _ in $(seq 1 50); do [ -s "$d/serve.out" ] && break; sleep 0.1; done
        w=""
        if [ $mode = loaded ] || [ $mode = loaded0 ]; then
            wrk -t1 -c32 -d120s "$(head -1 "$d/serve.out")api/v1/queue" >/dev/null & w=$!
            sleep 0.5
        elif [ $mode = paced ]; then # a dashboard's kind of load: 100 requests a second
            python3 - "$(head -1 "$d/serve.out")api/v1/queue" <<'PY' & w=$!
import sys, time, urllib.request
t = time.monotonic()
while True:
    urllib.request.urlopen(sys.argv[1]).read()
    t += 0.01
    time.sleep(max(0.0, t - time.monotonic()))
PY
            sleep 0.5
        fi
        t0=$(date +%s.%N)
        "$K" --repo "$d/repo.git" --quiet run --once || true
        t1=$(date +%s.%N)
        [ -n "$w" ] && kill "$w" 2>/dev/null; kill $sp; wait 2>/dev/null || true
        ms=$(echo "($t1 - $t0) * 1000 / 20" | bc -l | xargs printf '%.0f')
        times[$mode]="${times[$mode]:-} $ms"
        line="$line $mode $ms"
    done
    echo "$line ms/change"
done
for mode in $MODES; do
    # shellcheck disable=SC2086
    echo "ms per change, $mode: $(stats ${times[$mode]})"
done
