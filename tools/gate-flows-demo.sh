#!/usr/bin/env bash
# tools/gate-flows-demo.sh: keel-gate's branch flows (docs/gate.md, "Branch flows").
#
# A bare repository with main, a component branch comp/net (synced both ways with main) and a
# product branch release/2.1 (fed from main, never merged back).  One gate per branch
# (`keel-gate --target BRANCH run --once`) makes each flow's merge and tests it like any change.
# Then comp/net and main change the same line: the flow comp/net -> main is blocked, the two
# authors who touched the file are told through the notify hook (and reminded), a developer
# pushes a resolution to the flow branch, it is tested and lands, and the flow resumes.
#
#   tools/gate-flows-demo.sh      (KEEP=1 keeps the temp dir; BUILD=0 skips the build)
set -eu -o pipefail
cd "$(dirname "$0")/.."
top=$PWD
if [ "${BUILD:-1}" = 1 ]; then
    cmake --preset devel >/dev/null
    cmake --build build/devel --target keel-gate >/dev/null
fi
gate=$top/build/devel/keel-gate
demo=$(mktemp -d /tmp/keel-gate-flows-XXXXXX)
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf -- "$demo"' EXIT
work=$demo/work
origin=$demo/origin.git
git init -q -b main "$work"
cd "$work"
as() { # as NAME git ...: a commit by NAME <NAME@example.org>
    local who=$1
    shift
    git -c user.name="$who" -c user.email="$(echo "$who" | tr '[:upper:]' '[:lower:]')@example.org" "$@"
}

# The notify hook: one line per flow event that tells people (JSON lines on stdin), as a
# mailer would send it: the event, the flow, why, and to whom.  (flow-landed tells nobody.)
cat > "$demo/hook.sh" <<'EOF'
while IFS= read -r line; do
    case $line in *'"event":"flow-landed"'*) continue ;; *'"event":"flow-'*) ;; *) continue ;; esac
    ev=$(printf '%s\n' "$line" | sed -n 's/.*"event":"\([^"]*\)".*/\1/p')
    flow=$(printf '%s\n' "$line" | sed -n 's/.*"flow":"\([^"]*\)".*/\1/p')
    why=$(printf '%s\n' "$line" | sed -n 's/.*"reason":"\([^"]*\)".*/\1/p' | cut -c1-80)
    to=$(printf '%s\n' "$line" | grep -o '"address":"[^"]*"' | sed 's/"address":"//; s/"$//' |
        paste -sd, -)
    echo "  [notify] $ev ($flow): $why${to:+ -> mail to $to}"
done >> "$HOOK_OUT"
EOF

mkdir -p .keel net
cat > .keel/gate.conf <<EOF
[gate]
slots  = 2
notify = env HOOK_OUT=$demo/hook.txt sh $demo/hook.sh

[config unit]
test = sh ci.sh

[flow comp/net -> main]
back-merge     = yes                         # main -> comp/net too
owner          = Olga Owner <olga@example.org>
remind         = 2s 1d                       # the demo's clock: a reminder 2 s after the block

[flow main -> release/2.1]                   # a product branch: never merged back
EOF
echo 'test -s app.c' > ci.sh
printf 'int main(void) { return 0; }\n' > app.c
printf '#define TIMEOUT_MS 100\n' > net/config.h
as Ann add -A && as Ann commit -qm "app, its test and the gate's configuration"
git branch comp/net && git branch release/2.1
git clone -q --bare "$work" "$origin"
git remote add origin "$origin"

run() { # run BRANCH: the gate of BRANCH, once; its flows' lines and what landed
    "$gate" --repo "$origin" --target "$1" run --once > "$demo/run.txt" 2>&1 || true
    grep -E '^(flow |landed|rejected)' "$demo/run.txt" | sed 's/^/  /' | cut -c1-150 || true
}
hook() { # the notify hook's lines since the last call
    sleep 0.2
    if [ -e "$demo/hook.txt" ]; then
        cat "$demo/hook.txt"
        : > "$demo/hook.txt"
    fi
}
push() { git push -q origin "$@"; }

echo "################ keel-gate branch flows: main <-> comp/net, main -> release/2.1 ################"
echo "\$ cat .keel/gate.conf   (the flows)"
sed -n '/^\[flow/,$p' .keel/gate.conf | sed 's/^/  /'
echo
echo "---- 1. both sides move: every flow merges, tests and lands its merge"
git checkout -q comp/net && printf 'int net_send(void);\n' > net/send.h && as Bea add -A &&
    as Bea commit -qm "net: a send function" && push comp/net
git checkout -q main && printf 'int main(void) { return 1 - 1; }\n' > app.c && as Carl add -A &&
    as Carl commit -qm "app: return 1 - 1" && push main
for b in main comp/net release/2.1; do
    echo "\$ keel-gate --target $b run --once"
    run "$b"
done
echo "\$ keel-gate flows"
"$gate" --repo "$origin" --target main flows | grep -E ' -> |waiting' | sed 's/^/  /' | cut -c1-150
echo
echo "---- 2. a conflict: comp/net and main both change net/config.h"
git fetch -q origin
git checkout -q -B comp/net origin/comp/net && printf '#define TIMEOUT_MS 250\n' > net/config.h &&
    as Bea commit -qam "net: a longer timeout" && push comp/net
git checkout -q -B main origin/main && printf '#define TIMEOUT_MS 50\n' > net/config.h &&
    as Dan commit -qam "net: a shorter timeout" && push main
printf 'docs\n' > README && as Eve add -A && as Eve commit -qm "a README (not in the conflict)" &&
    push main
echo "\$ keel-gate --target main run --once"
run main
hook
echo "(2 s later: the reminder's time, on the demo's clock)"
sleep 2
echo "\$ keel-gate --target main run --once"
run main
hook
echo "\$ keel-gate status   (its flows part)"
"$gate" --repo "$origin" --target main status | sed -n '/^flows/,$p' | sed 's/^/  /' | cut -c1-150
echo
echo "---- 3. Bea resolves it as the event's 'reproduce' command says, and pushes the flow branch"
flow=keel-gate/flow/comp+net-to-main
echo "\$ git checkout -B $flow origin/main && git merge origin/comp/net   (conflict) ..."
git fetch -q origin
git checkout -q -B "$flow" origin/main
as Bea merge -q origin/comp/net >/dev/null 2>&1 || true
printf '#define TIMEOUT_MS 150 /* Bea and Dan agreed */\n' > net/config.h
as Bea commit -qam "merge comp/net into main: TIMEOUT_MS 150"
echo "\$ git push origin $flow"
push "$flow"
echo "\$ keel-gate --target main run --once"
run main
hook
echo "\$ keel-gate --target comp/net run --once; keel-gate --target release/2.1 run --once"
run comp/net
run release/2.1
echo "\$ keel-gate status   (its flows part)"
"$gate" --repo "$origin" --target main status | sed -n '/^flows/,$p' | sed 's/^/  /' | cut -c1-150
echo
echo "main is now:"
git --git-dir="$origin" log --oneline --first-parent -6 main | sed 's/^/  /'
if git --git-dir="$origin" merge-base --is-ancestor main release/2.1; then
    echo "release/2.1 holds all of main; main none of release/2.1's own commits (a one-way flow)."
fi
