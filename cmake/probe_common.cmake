# Shared by the probe_*.cmake build tests: compile or link a small program
# with the compiler that built keel and capture what happened.
#   probe_run(<result-var> <output-var> <command...>)
function(probe_run rv ov)
    execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
    set(${rv} ${rc} PARENT_SCOPE)
    set(${ov} "${out}${err}" PARENT_SCOPE)
endfunction()

function(probe_fail what)
    message(FATAL_ERROR "FAILED: ${what}")
endfunction()

file(MAKE_DIRECTORY ${BIN})
set(PROBE_CFLAGS -std=c11 -D_GNU_SOURCE -I${SRC}/include -Wall -Wextra -Werror -pthread)
# what a program linking the static library needs besides it
set(PROBE_LIBS -ldw)
if(SANITIZE)
    # the libraries were built with the sanitizer: the probes must link its runtime
    list(APPEND PROBE_CFLAGS -fsanitize=${SANITIZE})
else()
    list(APPEND PROBE_LIBS -ljemalloc) # module heaps (under a sanitizer they use its malloc)
endif()
