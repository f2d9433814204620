# bench/replay/projects/inih.sh: benhoyt/inih (an INI parser: ini.c, tests/unittest.sh), for
# bench/replay/make-fixture.sh.  Get the clone once (the fixture is made from it offline):
#   git clone https://github.com/benhoyt/inih && git -C inih checkout 26254ee
# The range: the 58 first-parent commits after d3eda4f (2020-07-19) up to 26254ee (2025-09-12,
# r62); see docs/benchmarks.md "Real-history replay".
recipe_base=d3eda4f
recipe_head=26254ee
recipe_count=58
recipe_break_file=ini.c
# "Modify test baseline to ensure GH Actions fails" (reverted by the next commit): its tests fail
recipe_real_bad=2f1ee9b

# .replay/build.sh CC FLAGS...: ini.c compiled alone (tests/unittest.sh compiles it again with
# each of its option sets)
recipe_build_script() {
    cat <<'SH'
cc=$1
shift
exec "$cc" "$@" -Wall -c ini.c -o ini.o
SH
}

# .replay/project-test.sh CC FLAGS...: tests/unittest.sh, which writes tests/baseline_*.txt
# again (the project's CI then fails on `git diff`): here each is compared with the committed
# one.  Older unittest.sh call `gcc` by name, newer ones $CC: both get CC FLAGS (a `gcc` on
# PATH that runs CC FLAGS).
recipe_test_script() {
    cat <<'SH'
cc=$(command -v "$1") || exit 1
shift
top=$PWD
rm -rf .replay-run && mkdir -p .replay-run/bin .replay-run/expected
printf '#!/bin/sh\nexec %s %s "$@"\n' "$cc" "$*" > .replay-run/bin/gcc
chmod +x .replay-run/bin/gcc
cp tests/baseline_*.txt .replay-run/expected/
cd tests || exit 1
PATH=$top/.replay-run/bin:$PATH CC="$cc $*" bash ./unittest.sh || exit 1
fail=0
for f in "$top"/.replay-run/expected/baseline_*.txt; do
    b=$(basename "$f")
    cmp -s "$f" "$b" || { echo "FAILED: tests/$b differs:"; diff "$f" "$b" | head -n 10; fail=1; }
done
exit "$fail"
SH
}
