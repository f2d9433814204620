# bench/replay/projects/parson.sh: kgabis/parson (a JSON parser: parson.c, tests.c), for
# bench/replay/make-fixture.sh.  Get the clone once (the fixture is made from it offline):
#   git clone https://github.com/kgabis/parson && git -C parson checkout ba29f4e
# The range: the 58 first-parent commits after ba2a854 (2017-03-01) up to ba29f4e (2023-10-31,
# 1.5.3); see docs/benchmarks.md "Real-history replay".
recipe_base=ba2a854
recipe_head=ba29f4e
recipe_count=58
recipe_break_file=parson.c
# "1.2.0: JSON objects are now implemented using hash maps": SIZE_MAX, which -std=c89
# -pedantic-errors refuses (1.2.1, the next commit, stops using it): its build fails
recipe_real_bad=6b3d6f4

# .replay/build.sh CC FLAGS...: what `make test` compiles (tests.c and parson.c, the Makefile's
# warnings and standard; -DTESTS_MAIN, which later tests.c need for their main), with CC FLAGS
recipe_build_script() {
    cat <<'SH'
cc=$1
shift
exec "$cc" "$@" -Wall -Wextra -std=c89 -pedantic-errors -DTESTS_MAIN -o test tests.c parson.c
SH
}

# .replay/project-test.sh: the test program `make test` runs; older ones exit 0 whatever
# failed, so their "Tests failed: 0" line is checked too
recipe_test_script() {
    cat <<'SH'
./test > test.out 2>&1
rc=$?
tail -n 20 test.out
[ "$rc" -eq 0 ] && grep -q '^Tests failed: 0$' test.out
SH
}
