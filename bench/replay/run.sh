#!/usr/bin/env bash
# bench/replay/run.sh: a fixture of bench/replay/make-fixture.sh through keel-gate, strategy by
# strategy, from the same state each time.
#
#   bench/replay/run.sh FIXTURE_DIR [--strategies "serial batch speculative speculative-batch adaptive"]
#       [--reps R] [--slots 4] [--retries 1] [--max-batch 8] [--max-depth 4] [--work DIR] [--keep]
#   bench/replay/run.sh FIXTURE_DIR --judge STORE
#
# For each repetition, each strategy in turn (ABCDE ABCDE ...: the machine is shared, so its load
# drifts alike for all): a fresh copy of FIXTURE_DIR/origin.git, its main's .keel/gate.conf set
# to the strategy and limits (one commit), every change submitted in the manifest's order, then
# `keel-gate run --once` until the queue is empty, timed.  Then from the gate's store: builds
# (what `keel-gate status` counts: a candidate's attempt), jobs (a configuration's run), each
# change's state against the manifest (a good change not landed is "wrongly rejected", a bad one
# landed is "bad landed"; a bad-alone one, a project's own broken commit, may land with the later
# change that fixes it; a change of a conflicting pair is judged by its partner's fate: a conflict
# when its partner landed before it was decided, else a good change, so that the later one of a
# pair whose first was rejected lands), flakes; and main's final tree must be the last good
# change's (the fixture's own files aside).  Prints one line per run, then per strategy the
# median and range.  --judge STORE only judges the changes of a store (a kept run's
# origin.git/keel-gate.db) against the manifest: a line of counts (landed rejected conflicts
# other wrongly_rejected bad_landed unexpected), each wrong outcome on stderr, exit 1 if any.
#
# The keel-gate binary: KEEL_GATE=path, else build/release/keel-gate, else build/devel/keel-gate.
# A strategy written STRATEGY@PATH runs with the keel-gate at PATH instead, and is named so in
# the results: two builds of keel-gate compared in one alternating run (adaptive@/tmp/old-gate);
# one whose strategy is adaptive is never the best fixed one.
# Runs go to --work DIR (default FIXTURE_DIR/runs), each removed after unless --keep; the
# results of every run are appended to DIR/results.tsv.  Exit 1 when a good change was not
# landed, a bad one landed, or a conflict was not one; 2 on usage or set-up errors.
set -eu -o pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)

usage() {
    sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
}
[ $# -ge 1 ] || usage
fixture=$(cd "$1" && pwd) || exit 2
shift
strategies="serial batch speculative speculative-batch adaptive" reps=1 slots=4 retries=1
max_batch=8 max_depth=4 work="" keep=0 judge_store=""
while [ $# -gt 0 ]; do
    case $1 in
    --judge) judge_store=$2 ;;
    --strategies) strategies=$2 ;;
    --reps) reps=$2 ;;
    --slots) slots=$2 ;;
    --retries) retries=$2 ;;
    --max-batch) max_batch=$2 ;;
    --max-depth) max_depth=$2 ;;
    --work) work=$2 ;;
    --keep) keep=1 && shift && continue ;;
    *) echo "run.sh: unknown option '$1'" >&2 && usage ;;
    esac
    shift 2 || usage
done
manifest=$fixture/manifest.txt
[ -f "$manifest" ] || { echo "run.sh: '$fixture' is not a fixture (no manifest.txt)" >&2 && exit 2; }
mapfile -t branches < <(awk '!/^#/ && NF { print $1 }' "$manifest")
declare -A expected=() partner=() first_of=()
while read -r b _ _ e injected; do
    expected[$b]=$e
    case $injected in pair[0-9]*) # a conflicting pair: the first of it and the later one
        if [ -n "${first_of[$injected]:-}" ]; then
            partner[$b]=${first_of[$injected]} && partner[${first_of[$injected]}]=$b
        else
            first_of[$injected]=$b
        fi ;;
    esac
done < <(grep -v '^#' "$manifest")
last_good=$(awk '!/^#/ && $4 == "good" { b = $1 } END { print b }' "$manifest")

# judge STORE -> "landed rejected conflicts other wrong badlanded unexpected"; each wrong outcome
# on stderr.  A change of a conflicting pair: a conflict when its partner landed before it was
# decided (the partner's landed event comes before this change's event of its final state),
# else a good change: it merges once its partner is rejected, or landed after it.
judge() {
    local db=$1 b state at e p order=()
    declare -A state_of=() decided=()
    while IFS='|' read -r b state at; do
        order+=("$b") && state_of[$b]=$state decided[$b]=$at
    done < <(sqlite3 -readonly "$db" "SELECT c.branch, c.state, coalesce((SELECT max(e.id) FROM
        events e WHERE e.change = c.id AND e.kind = c.state), 0) FROM changes c ORDER BY c.id")
    local landed=0 rejected=0 conflicts=0 other=0 wrong=0 badlanded=0 unexpected=0
    for b in "${order[@]}"; do
        state=${state_of[$b]} at=${decided[$b]}
        e=${expected[$b]:-?}
        p=${partner[$b]:-}
        if [ -n "$p" ]; then
            e=good
            [ "${state_of[$p]:-}" = landed ] && [ "${decided[$p]}" -lt "$at" ] && e=conflict
        fi
        case $state in landed) landed=$((landed + 1)) ;; rejected) rejected=$((rejected + 1)) ;;
        conflict) conflicts=$((conflicts + 1)) ;; *) other=$((other + 1)) ;; esac
        case $e:$state in
        good:landed | bad:rejected | conflict:conflict) ;;
        # a real broken commit: rejected alone, or landed in one candidate with its fix
        bad-alone:rejected | bad-alone:landed) ;;
        good:*) wrong=$((wrong + 1)) && echo "  wrongly rejected: $b ($state${p:+; $p ${state_of[$p]:-not submitted}})" >&2 ;;
        bad:landed | conflict:landed) badlanded=$((badlanded + 1)) && echo "  bad landed: $b ($e${p:+ with $p landed before it})" >&2 ;;
        *) unexpected=$((unexpected + 1)) && echo "  unexpected: $b $e -> $state" >&2 ;;
        esac
    done
    echo "$landed $rejected $conflicts $other $wrong $badlanded $unexpected"
}
if [ -n "$judge_store" ]; then
    command -v sqlite3 >/dev/null || { echo "run.sh: needs sqlite3" >&2 && exit 2; }
    [ -f "$judge_store" ] || { echo "run.sh: no store '$judge_store'" >&2 && exit 2; }
    counts=$(judge "$judge_store")
    echo "$counts"
    read -r _ _ _ _ wrong badlanded unexpected <<<"$counts"
    [ $((wrong + badlanded + unexpected)) = 0 ]
    exit
fi

gate=${KEEL_GATE:-}
if [ -z "$gate" ]; then
    for g in "$top/build/release/keel-gate" "$top/build/devel/keel-gate"; do
        [ -x "$g" ] && gate=$g && break
    done
fi
[ -n "$gate" ] && [ -x "$gate" ] || {
    echo "run.sh: no keel-gate (build it: cmake --preset release && cmake --build build/release --target keel-gate; or KEEL_GATE=path)" >&2
    exit 2
}
gate=$(cd "$(dirname "$gate")" && pwd)/$(basename "$gate")
[ -d "$fixture/origin.git" ] || { echo "run.sh: '$fixture' is not a fixture (no origin.git)" >&2 && exit 2; }
work=${work:-$fixture/runs}
mkdir -p "$work"
work=$(cd "$work" && pwd)
results=$work/results.tsv
name=$(sed -n '1s/^# keel-gate replay fixture: \([^,]*\),.*/\1/p' "$manifest")

# one run: run_one STRATEGY REP -> a line of results.tsv
run_one() {
    local label=$1 rep=$2 strategy=${1%%@*} gate=$gate
    [ "$label" = "$strategy" ] || gate=${label#*@}
    [ -x "$gate" ] || { echo "run.sh: '$gate' is not an executable keel-gate" >&2 && return 2; }
    local run=$work/$strategy-$(printf '%s' "$label" | cksum | cut -d' ' -f1)-$rep
    rm -rf "$run" && mkdir -p "$run/shared"
    cp -a "$fixture/origin.git" "$run/origin.git"
    local og=(git --git-dir="$run/origin.git")
    # the strategy and limits, and the shared directory, into main's gate.conf: one commit
    local conf blob tree commit
    conf=$("${og[@]}" show main:.keel/gate.conf | sed -E \
        -e "s|^strategy( *)=.*|strategy\1= $strategy|" -e "s|^slots( *)=.*|slots\1= $slots|" \
        -e "s|^retries( *)=.*|retries\1= $retries|" -e "s|^max-batch( *)=.*|max-batch\1= $max_batch|" \
        -e "s|^max-depth( *)=.*|max-depth\1= $max_depth|" -e "s|/nonexistent/replay-shared|$run/shared|g")
    blob=$(printf '%s\n' "$conf" | "${og[@]}" hash-object -w --stdin)
    tree=$(GIT_INDEX_FILE=$run/index.tmp sh -c 'git --git-dir="$1" read-tree main &&
        git --git-dir="$1" update-index --cacheinfo "100644,$2,.keel/gate.conf" && git --git-dir="$1" write-tree' \
        sh "$run/origin.git" "$blob")
    rm -f "$run/index.tmp"
    commit=$(GIT_AUTHOR_NAME=keel-replay GIT_AUTHOR_EMAIL=replay@keel.invalid GIT_COMMITTER_NAME=keel-replay \
        GIT_COMMITTER_EMAIL=replay@keel.invalid "${og[@]}" commit-tree "$tree" -p main \
        -m "replay: strategy $strategy, slots $slots, retries $retries")
    "${og[@]}" update-ref refs/heads/main "$commit"

    local kg=(env XDG_STATE_HOME="$run/state" XDG_CACHE_HOME="$run/cache" "$gate" --repo "$run/origin.git")
    "${kg[@]}" check main >"$run/check.txt" 2>&1 || { cat "$run/check.txt" >&2 && return 2; }
    local b
    for b in "${branches[@]}"; do
        "${kg[@]}" --quiet submit "$b" >>"$run/submit.txt" 2>&1 || { cat "$run/submit.txt" >&2 && return 2; }
    done
    # wall time (bash's time; its CPU figures are left out: the jobs' CPU, spent in their
    # sandboxes, is not in the rusage of the gate's children)
    local rc=0 TIMEFORMAT='%3R' wall
    { time "${kg[@]}" run --once --work "$run/work" >"$run/run.txt" 2>&1 || rc=$?; } 2>"$run/time.txt"
    wall=$(cat "$run/time.txt")
    if [ "$rc" -gt 1 ]; then
        echo "run.sh: keel-gate run --once exited $rc ($strategy, rep $rep): $run/run.txt" >&2
        tail -n 5 "$run/run.txt" >&2
        return 2
    fi
    local db=$run/origin.git/keel-gate.db builds jobs flakes
    builds=$("${kg[@]}" status --json | jq -r .builds)
    jobs=$(sqlite3 -readonly "$db" "SELECT count(*) FROM jobs WHERE state NOT IN ('cancelled')")
    flakes=$(sqlite3 -readonly "$db" "SELECT count(*) FROM events WHERE kind = 'flake'")
    local landed rejected conflicts other wrong badlanded unexpected
    read -r landed rejected conflicts other wrong badlanded unexpected < <(judge "$db")
    # main must hold every real commit up to the last good change: its tree, the fixture's aside
    local tree_ok=yes
    if ! "${og[@]}" diff --quiet main "$last_good" -- . ':(exclude).keel' ':(exclude).replay'; then
        tree_ok=no && unexpected=$((unexpected + 1))
        echo "  main's tree is not $last_good's" >&2
    fi
    printf '%s\t%s\t%s\t%.1f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$label" "$rep" \
        "$wall" "$builds" "$jobs" "$landed" "$rejected" \
        "$conflicts" "$wrong" "$badlanded" "$unexpected" "$flakes" "$tree_ok"
    if [ "$keep" = 0 ]; then
        mkdir -p "$work/logs"
        cp "$run/run.txt" "$work/logs/$(basename "$run").txt"
        rm -rf "$run"
    fi
}
command -v jq >/dev/null && command -v sqlite3 >/dev/null || { echo "run.sh: needs jq and sqlite3" >&2 && exit 2; }
[ -s "$results" ] || printf 'project\tstrategy\trep\twall_s\tbuilds\tjobs\tlanded\trejected\tconflicts\twrongly_rejected\tbad_landed\tunexpected\tflakes\ttree_ok\n' >"$results"
echo "replay of $name: ${#branches[@]} changes, $gate; strategies: $strategies; $reps rep(s); slots $slots, retries $retries, max-batch $max_batch, max-depth $max_depth"
echo "runs in $work; results appended to $results"
this=$work/this.tsv
: >"$this"
for ((rep = 1; rep <= reps; rep++)); do
    for s in $strategies; do
        line=$(run_one "$s" "$rep") || exit 2
        printf '%s\n' "$line" | tee -a "$this" >>"$results"
        printf '%s\n' "$line" | awk -F'\t' '{ printf "  %-17s rep %s: %7.1f s wall, %3d builds, %3d jobs, %d/%d/%d landed/rejected/conflicts, %d wrongly rejected, %d bad landed, %d flakes\n", $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $13 }'
    done
done

# the summary: per strategy, medians (and the wall time's range); ratios to the best fixed one
awk -F'\t' -v order="$strategies" '
function median(list,    n, a, i, j, t) {
    n = split(list, a, " ")
    for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] + 0 > t + 0; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
{
    s = $2; wall[s] = wall[s] " " $4; builds[s] = builds[s] " " $5; jobs[s] = jobs[s] " " $6
    if (!(s in lo) || $4 < lo[s]) lo[s] = $4
    if (!(s in hi) || $4 > hi[s]) hi[s] = $4
    o = $7 "/" $8 "/" $9  # each different outcome once
    if (index(", " out[s] ", ", ", " o ", ") == 0) out[s] = out[s] (out[s] == "" ? "" : ", ") o
    wrong[s] += $10; bad[s] += $11; unexp[s] += $12
}
END {
    n = split(order, st, " "); best = ""
    for (i = 1; i <= n; i++) {
        s = st[i]; mw[s] = median(wall[s]); mb[s] = median(builds[s]); mj[s] = median(jobs[s])
        if (s !~ /^adaptive(@|$)/ && (best == "" || mw[s] < mw[best])) best = s
    }
    printf "\n| strategy | wall s (median, range) | builds | jobs | landed/rejected/conflicts | wrongly rejected | bad landed | wall / best | builds / best |\n"
    printf "|---|---|---|---|---|---|---|---|---|\n"
    for (i = 1; i <= n; i++) {
        s = st[i]
        printf "| %s%s | %.0f (%.0f .. %.0f) | %g | %g | %s | %d | %d | %s | %s |\n", s, s == best ? " (best fixed)" : "",
            mw[s], lo[s], hi[s], mb[s], mj[s], out[s], wrong[s], bad[s],
            best == "" ? "-" : sprintf("%.2f", mw[s] / mw[best]), best == "" ? "-" : sprintf("%.2f", mb[s] / mb[best])
    }
    for (s in wrong) if (wrong[s] + bad[s] + unexp[s] > 0) failed = 1
    for (s in unexp) if (unexp[s] > 0) printf "%s: %d unexpected outcomes (a conflict not found, a change left undecided, main not the last good change)\n", s, unexp[s]
    exit failed
}' "$this"
