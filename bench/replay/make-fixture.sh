#!/usr/bin/env bash
# bench/replay/make-fixture.sh: a real project's history as a queue of changes for keel-gate.
#
#   bench/replay/make-fixture.sh SRC_CLONE FIXTURE_DIR [--project NAME | --recipe FILE]
#       [--seed S] [--base COMMIT] [--count N] [--broken-percent P] [--conflict-pairs K]
#       [--flaky-permille F]
#
# From a local clone (nothing is fetched), FIXTURE_DIR gets:
#   origin.git    a bare repository: `main` is the base commit plus one commit adding
#                 .keel/gate.conf (configurations gcc-debug, gcc -O0 -g, and clang-release,
#                 clang -O2, each building and running the project's own tests) and .replay/
#                 (the build and test scripts, the flaky test, a file per conflicting pair);
#                 `change-NN` (NN = 01..N) is the next N commits of the project's first-parent
#                 history taken as a stack: change i's head holds the real commits 1..i, each
#                 recreated with its real tree (plus .keel and .replay), author, date and message,
#                 so the stack is linear even where the project merged; a broken or conflicting
#                 change has one extra commit on its own branch only.
#   manifest.txt  one line per change: branch, real commit, head, expected outcome
#                 (good: lands; bad: rejected; conflict: a merge conflict; bad-alone: a real
#                 broken commit, rejected alone, or landed with the later change that fixes it
#                 in one candidate), what was injected.
#
# Injected from the seed (sha256 of "seed:what:i", so the same seed gives the same fixture,
# commit ids included): about P% (10) of the changes broken (the recipe's real broken commits,
# and others by an extra commit that breaks the build of both configurations, of gcc-debug
# only or of clang-release only: an #error appended to the recipe's C file), K (2) conflicting pairs (two good changes each with an extra commit setting
# the line of .replay/conflict-P.txt differently: the later one conflicts), and a flaky test
# (.replay/flaky.sh, run after the project's tests by every job: fails F (50) in 1000 runs; see
# the file for how its randomness is reproducible).
#
# A recipe (bench/replay/projects/NAME.sh) sets base, count, break_file, real_bad (real commits
# whose own tests fail, bad-alone, counted in P%) and prints the build and test scripts:
# see bench/replay/projects/parson.sh.
set -eu -o pipefail
here=$(cd "$(dirname "$0")" && pwd)

usage() {
    sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
}

[ $# -ge 2 ] || usage
src=$1 fixture=$2
shift 2
project="" recipe="" seed=1 base="" count="" broken_percent=10 conflict_pairs=2 flaky_permille=50
while [ $# -gt 0 ]; do
    case $1 in
    --project) project=$2 ;;
    --recipe) recipe=$2 ;;
    --seed) seed=$2 ;;
    --base) base=$2 ;;
    --count) count=$2 ;;
    --broken-percent) broken_percent=$2 ;;
    --conflict-pairs) conflict_pairs=$2 ;;
    --flaky-permille) flaky_permille=$2 ;;
    *) echo "make-fixture.sh: unknown option '$1'" >&2 && usage ;;
    esac
    shift 2 || usage
done
if [ -z "$recipe" ]; then
    [ -n "$project" ] || project=$(basename "$(cd "$src" && pwd)")
    recipe=$here/projects/$project.sh
fi
[ -n "$project" ] || project=$(basename "$recipe" .sh)
[ -f "$recipe" ] || { echo "make-fixture.sh: no recipe '$recipe' (--project NAME or --recipe FILE)" >&2 && exit 2; }
# shellcheck source=projects/parson.sh
. "$recipe"
: "${recipe_base:?}" "${recipe_count:?}" "${recipe_break_file:?}"
base=${base:-$recipe_base}
count=${count:-$recipe_count}
break_file=$recipe_break_file
[[ $seed =~ ^[0-9]+$ ]] || { echo "make-fixture.sh: '--seed $seed' is not a number" >&2 && exit 2; }

srcgit=$(git -C "$src" rev-parse --absolute-git-dir)
sg() { git --git-dir="$srcgit" "$@"; }
base=$(sg rev-parse --verify "$base^{commit}")
# the N commits after base on the first-parent line of whatever holds base and is newest
mapfile -t real < <(sg rev-list --first-parent --reverse --ancestry-path "$base..${recipe_head:-HEAD}" | head -n "$count")
[ "${#real[@]}" -eq "$count" ] || {
    echo "make-fixture.sh: only ${#real[@]} commits after '$base', $count asked" >&2
    exit 1
}

[ ! -e "$fixture" ] || { echo "make-fixture.sh: '$fixture' exists (remove it first)" >&2 && exit 1; }
mkdir -p "$fixture"
fixture=$(cd "$fixture" && pwd)
origin=$fixture/origin.git
git init -q --bare -b main "$origin"
og() { git --git-dir="$origin" "$@"; }
# the source's objects, read-only (no fetch, no network): copied in so the fixture stands alone
sg rev-list --objects "$base" "${real[@]}" | cut -d' ' -f1 | sg pack-objects -q --stdout |
    og index-pack --stdin >/dev/null

# deterministic numbers: rnd WHAT I -> 0..2^31-1
rnd() { printf '%s:%s:%s' "$seed" "$1" "$2" | sha256sum | cut -c1-8 | { read -r h && echo $((16#$h % 2147483648)); }; }

# ---- what is injected where --------------------------------------------------------------
declare -A kind=() # change index (1-based) -> real | bad-both | bad-gcc | bad-clang | conflict-first | conflict
# the recipe's real commits whose own tests fail (the project broke them itself): bad as they are
nreal=0
for ((i = 1; i <= count; i++)); do
    for r in ${recipe_real_bad:-}; do
        case ${real[i - 1]} in "$r"*) kind[$i]=real nreal=$((nreal + 1)) ;; esac
    done
done
# P% of the changes broken, those real ones included
nbroken=$(((count * broken_percent + 50) / 100 - nreal))
[ "$nbroken" -ge 0 ] || nbroken=0
# the order of the other changes by their draw: the first nbroken are broken
mapfile -t order < <(for i in $(seq 1 "$count"); do
    [ -n "${kind[$i]:-}" ] || echo "$(rnd order "$i") $i"
done | sort -n | cut -d' ' -f2)
for ((n = 0; n < nbroken; n++)); do
    i=${order[n]}
    case $(($(rnd break "$i") % 3)) in
    0) kind[$i]=bad-both ;;
    1) kind[$i]=bad-gcc ;;
    2) kind[$i]=bad-clang ;;
    esac
done
# conflicting pairs: j < k, both otherwise good, 1..6 apart, each change in one pair at most
declare -A pair_of=()
for ((p = 1; p <= conflict_pairs; p++)); do
    found=0
    for ((try = 0; try < 1000 && !found; try++)); do
        j=$(($(rnd "pair$p-j" "$try") % count + 1))
        k=$((j + $(rnd "pair$p-k" "$try") % 6 + 1))
        [ "$k" -le "$count" ] || continue
        if [ -n "${kind[$j]:-}" ] || [ -n "${kind[$k]:-}" ]; then continue; fi
        kind[$j]=conflict-first kind[$k]=conflict pair_of[$j]=$p pair_of[$k]=$p found=1
    done
    [ "$found" = 1 ] || { echo "make-fixture.sh: no room for conflicting pair $p in $count changes" >&2 && exit 1; }
done

# ---- the base: .keel/gate.conf and .replay/ on the real base commit -----------------------
export GIT_AUTHOR_NAME=keel-replay GIT_AUTHOR_EMAIL=replay@keel.invalid
export GIT_COMMITTER_NAME=keel-replay GIT_COMMITTER_EMAIL=replay@keel.invalid
fixed_date="2026-01-01T00:00:00Z"
export GIT_INDEX_FILE=$fixture/index.tmp
trap 'rm -f "$GIT_INDEX_FILE"' EXIT

add_file() { # add_file PATH MODE < content: into the temporary index
    local blob
    blob=$(og hash-object -w --stdin)
    og update-index --add --cacheinfo "$2,$blob,$1"
}
gate_conf() {
    cat <<EOF
# keel-gate replay fixture of $project (bench/replay): bench/replay/run.sh rewrites the
# strategy, the limits and REPLAY_SHARED (the directory the jobs share) for each run
[gate]
target    = main
slots     = 4
strategy  = adaptive
max-batch = 8
max-depth = 4
retries   = 1
EOF
    for c in "gcc-debug gcc -O0 -g" "clang-release clang -O2"; do
        # shellcheck disable=SC2086
        set -- $c # word splitting meant: name, compiler, flags
        cat <<EOF

[config $1]
build    = sh .replay/build.sh $2 $3 ${4:-}
test     = sh .replay/test.sh $2 $3 ${4:-}
env      = REPLAY_SHARED=/nonexistent/replay-shared
writable = /nonexistent/replay-shared
timeout  = 600
EOF
    done
}
flaky_sh() {
    cat <<EOF
# .replay/flaky.sh: a flaky test, failing $flaky_permille runs in 1000, reproducibly.
# Every run takes the next number of a counter kept in \$REPLAY_SHARED/flaky.count (under
# flock, so runs at once never share a number); run n fails when sha256("$seed:n") mod 1000
# < $flaky_permille.  So the k-th flaky run of a gate run fails or passes the same way every
# time; which job gets the k-th number depends on the order jobs reach it.
seed=$seed permille=$flaky_permille
dir=\${REPLAY_SHARED:?}
n=\$(flock "\$dir/flaky.lock" sh -c 'n=\$((\$(cat "\$1" 2>/dev/null || echo 0) + 1)); echo \$n > "\$1"; echo \$n' sh "\$dir/flaky.count")
h=\$(printf '%s:%s' "\$seed" "\$n" | sha256sum | cut -c1-8)
if [ \$((0x\$h % 1000)) -lt "\$permille" ]; then
    # a race's failure rarely ends the same way twice: name what lost it
    set -- open read write close flush seek sync poll
    shift \$((0x\$h % 8))
    echo "flaky: '\$1' came first (run \$n)"
    exit 1
fi
EOF
}
og read-tree "$base"
gate_conf | add_file .keel/gate.conf 100644
flaky_sh | add_file .replay/flaky.sh 100644
recipe_build_script | add_file .replay/build.sh 100644
recipe_test_script | add_file .replay/project-test.sh 100644
printf '%s\n' '# .replay/test.sh CC FLAGS...: the project'"'"'s tests, then the flaky one' \
    'sh .replay/project-test.sh "$@" || exit 1' 'exec sh .replay/flaky.sh' | add_file .replay/test.sh 100644
# one file per pair: git takes changes to adjacent lines of one file for a conflict
for ((p = 1; p <= conflict_pairs; p++)); do echo "pair $p: base" | add_file ".replay/conflict-$p.txt" 100644; done
overlay=$(og write-tree)
# the fixture's own files as index lines, put into the index after a read-tree of a real tree
fixture_index=$(og ls-tree -r "$overlay" .keel .replay)
fixture_files() { printf '%s\n' "$fixture_index" | og update-index --index-info; }
main=$(GIT_AUTHOR_DATE=$fixed_date GIT_COMMITTER_DATE=$fixed_date og commit-tree "$overlay" -p "$base" \
    -m "replay: keel-gate configuration and the fixture's scripts (seed $seed)")
og update-ref refs/heads/main "$main"

# ---- the stack -----------------------------------------------------------------------------
recreate() { # recreate REAL PARENT: REAL's tree, author and message, plus the fixture files
    local from=$1 parent=$2 tree an ae ad cn ce cd
    og read-tree "$from"
    fixture_files
    tree=$(og write-tree)
    IFS=$'\t' read -r an ae ad cn ce cd < <(og log -1 --format='%an%x09%ae%x09%aI%x09%cn%x09%ce%x09%cI' "$from")
    og log -1 --format=%B "$from" |
        GIT_AUTHOR_NAME=$an GIT_AUTHOR_EMAIL=$ae GIT_AUTHOR_DATE=$ad GIT_COMMITTER_NAME=$cn \
            GIT_COMMITTER_EMAIL=$ce GIT_COMMITTER_DATE=$cd og commit-tree "$tree" -p "$parent"
}
extra() { # extra HEAD FILE MESSAGE < content: one commit replacing FILE on HEAD
    local head=$1 file=$2 msg=$3 tree
    og read-tree "$head"
    add_file "$file" 100644
    tree=$(og write-tree)
    GIT_AUTHOR_DATE=$fixed_date GIT_COMMITTER_DATE=$fixed_date og commit-tree "$tree" -p "$head" -m "$msg"
}
manifest=$fixture/manifest.txt
{
    echo "# keel-gate replay fixture: $project, seed $seed, base $base, $count changes"
    echo "# made by bench/replay/make-fixture.sh from $(basename "$recipe"); main = $main"
    echo "# branch real-commit head expected injected"
} >"$manifest"
parent=$main
for ((i = 1; i <= count; i++)); do
    r=${real[i - 1]}
    head=$(recreate "$r" "$parent")
    parent=$head
    branch=$(printf 'change-%02d' "$i")
    expected=good injected=-
    case ${kind[$i]:-} in
    real) expected=bad-alone injected=real ;;
    bad-both | bad-gcc | bad-clang)
        expected=bad injected=${kind[$i]}
        case ${kind[$i]} in
        bad-both) guard="#if 1" ;;
        bad-gcc) guard="#ifndef __clang__" ;;
        bad-clang) guard="#ifdef __clang__" ;;
        esac
        head=$({
            og show "$head:$break_file"
            printf '\n%s\n#error "replay: change %d broken on purpose (%s)"\n#endif\n' "$guard" "$i" "${kind[$i]}"
        } | extra "$head" "$break_file" "replay: break $break_file (${kind[$i]})")
        ;;
    conflict-first | conflict)
        p=${pair_of[$i]}
        [ "${kind[$i]}" = conflict ] && expected=conflict
        injected=pair$p
        head=$(echo "pair $p: set by $branch" |
            extra "$head" ".replay/conflict-$p.txt" "replay: conflicting pair $p, set by $branch")
        ;;
    esac
    og update-ref "refs/heads/$branch" "$head"
    echo "$branch $r $head $expected $injected" >>"$manifest"
done
og gc -q --prune=now
echo "make-fixture.sh: $fixture: $count changes ($nbroken broken, $nreal broken by the project itself, $conflict_pairs conflicting pairs), main $main"
