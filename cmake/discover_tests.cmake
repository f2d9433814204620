# Run after a test executable is built: ask it for its test names (--list)
# and write the ctest file that registers one entry per name.
#   -DEXE=<path> -DCAP=<capability> -DOUT=<file> -DTIMEOUT=<s> [-DEMULATOR=<command, spaced>]
#   [-DSERIAL=<regex of CAP.NAME: run alone>] [-DCOSTS=<file of "CAP.NAME seconds" lines>]
# EMULATOR: what runs the target's programs in a cross build (qemu-user: the toolchain file's
# CMAKE_CROSSCOMPILING_EMULATOR, its words joined by spaces); every test runs under it.
separate_arguments(emulator UNIX_COMMAND "${EMULATOR}")
set(run "")
foreach(word ${emulator})
    string(APPEND run "[=[${word}]=] ")
endforeach()
execute_process(COMMAND ${emulator} ${EXE} --list OUTPUT_VARIABLE names RESULT_VARIABLE rc
                ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${EXE} --list failed (${rc}): ${err}")
endif()
string(REPLACE "\n" ";" names "${names}")
set(costs "")
if(DEFINED COSTS AND EXISTS "${COSTS}")
    file(READ "${COSTS}" costs)
    string(PREPEND costs "\n")
endif()
set(body "")
foreach(n ${names})
    if(n STREQUAL "")
        continue()
    endif()
    string(APPEND body "add_test([=[${CAP}.${n}]=] ${run}[=[${EXE}]=] [=[${n}]=])\n")
    # a cmocka skip() (a devel-only test in a release build, a missing tool) shows as skipped
    string(APPEND body "set_tests_properties([=[${CAP}.${n}]=] PROPERTIES TIMEOUT ${TIMEOUT} ENVIRONMENT [=[KEEL_OPTIONS=;KEEL_REPORT=]=] SKIP_REGULAR_EXPRESSION [=[\\[  SKIPPED \\]]=])\n")
    # a test that reads wall times of its own processes runs alone (ctest's other tests would be
    # in its measurements): SERIAL, a regex of CAP.NAME
    # a slow test's COST (tests/costs.txt): started first, not left for the end of the run; and
    # killed after three times its cost when that is longer than TIMEOUT (the timeout catches a
    # hang, it does not time the test: a sweep of 40 s on an idle machine took over 60 beside a
    # load of 14)
    if(costs MATCHES "\n${CAP}[.]${n} ([0-9]+)")
        set(cost ${CMAKE_MATCH_1})
        math(EXPR limit "${cost} * 3")
        if(limit LESS TIMEOUT)
            set(limit ${TIMEOUT})
        endif()
        string(APPEND body "set_tests_properties([=[${CAP}.${n}]=] PROPERTIES COST ${cost} TIMEOUT ${limit})\n")
    endif()
    if(NOT SERIAL STREQUAL "" AND "${CAP}.${n}" MATCHES "${SERIAL}")
        string(APPEND body "set_tests_properties([=[${CAP}.${n}]=] PROPERTIES RUN_SERIAL TRUE)\n")
    endif()
endforeach()
if(body STREQUAL "")
    message(FATAL_ERROR "${EXE} lists no tests")
endif()
file(WRITE ${OUT} "${body}")
