#!/usr/bin/env bash
# bench/replay/replay.sh: the real-history replay of docs/benchmarks.md, both projects end to end
# (what `make bench-replay` runs).
#
#   bench/replay/replay.sh [PROJECT...]        (default: parson inih)
#
# Environment (all optional):
#   REPLAY_SRC=DIR        the projects' clones, DIR/<project> (default build/replay/src); a missing
#                         one is cloned from GitHub once (the only use of the network; with
#                         REPLAY_OFFLINE=1 it is an error instead)
#   REPLAY_DIR=DIR        fixtures, DIR/<project>-s<seed> (default build/replay), made when missing
#   REPLAY_SEED=S         the fixtures' seed (default 1)
#   REPLAY_STRATEGIES="..."  (default: serial batch speculative speculative-batch adaptive)
#   REPLAY_REPS=R         repetitions (default 3)
#   KEEL_GATE=path        the keel-gate to measure (default build/release/keel-gate)
# Exit 1 when a run of a project rejected a good change, landed a bad one or missed a conflict.
set -eu -o pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
src=${REPLAY_SRC:-$top/build/replay/src}
dir=${REPLAY_DIR:-$top/build/replay}
seed=${REPLAY_SEED:-1}
strategies=${REPLAY_STRATEGIES:-serial batch speculative speculative-batch adaptive}
reps=${REPLAY_REPS:-3}
[ $# -gt 0 ] || set -- parson inih
declare -A url=([parson]=https://github.com/kgabis/parson [inih]=https://github.com/benhoyt/inih)
rc=0
for p in "$@"; do
    recipe=$here/projects/$p.sh
    [ -f "$recipe" ] || { echo "replay.sh: no project '$p' ($recipe)" >&2 && exit 2; }
    recipe_head=$(sed -n 's/^recipe_head=//p' "$recipe")
    if [ ! -d "$src/$p" ]; then
        [ "${REPLAY_OFFLINE:-0}" = 0 ] && [ -n "${url[$p]:-}" ] ||
            { echo "replay.sh: no clone of $p in $src/$p (git clone ${url[$p]:-URL} $src/$p)" >&2 && exit 2; }
        echo "replay.sh: cloning ${url[$p]} into $src/$p (once)"
        mkdir -p "$src"
        git clone -q "${url[$p]}" "$src/$p"
    fi
    git -C "$src/$p" rev-parse -q --verify "$recipe_head^{commit}" >/dev/null ||
        { echo "replay.sh: $src/$p lacks $recipe_head (git -C $src/$p fetch)" >&2 && exit 2; }
    fixture=$dir/$p-s$seed
    [ -f "$fixture/manifest.txt" ] || "$here/make-fixture.sh" "$src/$p" "$fixture" --project "$p" --seed "$seed"
    "$here/run.sh" "$fixture" --strategies "$strategies" --reps "$reps" || rc=1
done
exit "$rc"
