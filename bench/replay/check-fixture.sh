#!/usr/bin/env bash
# bench/replay/check-fixture.sh FIXTURE_DIR [BRANCH...]: each change's head built and tested
# outside keel-gate, both configurations, one after the other (no sandbox, no flaky test):
# a good change must pass both, a broken one fail where its manifest says.  This is how the
# commit ranges of docs/benchmarks.md "Real-history replay" were checked; it takes about a
# minute per 10 changes on one core.
set -eu -o pipefail
fixture=$(cd "$1" && pwd)
shift
only=("$@")
origin=$fixture/origin.git
tmp=$(mktemp -d /tmp/keel-replay-check-XXXXXX)
trap 'rm -rf -- "$tmp"' EXIT
fails=0
while read -r branch _ head expected injected; do
    case $branch in '#'* | '') continue ;; esac
    if [ ${#only[@]} -gt 0 ] && ! printf '%s\n' "${only[@]}" | grep -qx "$branch"; then continue; fi
    line="$branch $expected $injected:"
    for c in "gcc-debug gcc -O0 -g" "clang-release clang -O2"; do
        # shellcheck disable=SC2086
        set -- $c # word splitting meant: name, compiler, flags
        cfg=$1
        shift
        rm -rf "$tmp/tree" && mkdir "$tmp/tree"
        git --git-dir="$origin" archive "$head" | tar -x -C "$tmp/tree"
        if (cd "$tmp/tree" && sh .replay/build.sh "$@" && sh .replay/project-test.sh "$@") >"$tmp/$branch-$cfg.log" 2>&1; then
            got=pass
        else
            got=fail
        fi
        want=pass
        case $injected in bad-both | real) want=fail ;; bad-gcc) [ "$cfg" = gcc-debug ] && want=fail ;;
        bad-clang) [ "$cfg" = clang-release ] && want=fail ;; esac
        line="$line $cfg $got"
        if [ "$got" != "$want" ]; then
            line="$line (expected $want: $(tail -n 3 "$tmp/$branch-$cfg.log" | tr '\n' ' '))"
            fails=$((fails + 1))
        fi
    done
    echo "$line"
done <"$fixture/manifest.txt"
echo "check-fixture.sh: $fails unexpected results"
[ "$fails" = 0 ]
