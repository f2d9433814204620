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
    # a slow test's COST (tests/costs.txt): started first, not left for the end of the run
    if(costs MATCHES "\n${CAP}[.]${n} ([0-9]+)")
        string(APPEND body "set_tests_properties([=[${CAP}.${n}]=] PROPERTIES COST ${CMAKE_MATCH_1})\n")
    endif()
    if(NOT SERIAL STREQUAL "" AND "${CAP}.${n}" MATCHES "${SERIAL}")
        string(APPEND body "set_tests_properties([=[${CAP}.${n}]=] PROPERTIES RUN_SERIAL TRUE)\n")
    endif()
endforeach()
if(body STREQUAL "")
    message(FATAL_ERROR "${EXE} lists no tests")
endif()
file(WRITE ${OUT} "${body}")
