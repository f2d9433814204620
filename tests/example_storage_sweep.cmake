# examples/storage_stress under keel-stress sweep: the planted unrecovered
# error path is found (exit 1, the crash and its replay line), and the
# repaired program (--fixed) passes the same sweep (exit 0).
foreach(var CLI PROG)
    if(NOT DEFINED ${var})
        message(FATAL_ERROR "pass -D${var}=...")
    endif()
endforeach()

execute_process(COMMAND ${CLI} sweep --quiet --jobs 2 -- ${PROG}
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 1)
    message(FATAL_ERROR "sweep over the planted bug: exit ${rc}, expected 1\n${out}\n${err}")
endif()
foreach(want "crashed +storage\\.meta_write +1 +once +SIGABRT: assert"
             "KEEL_OPTIONS='stress=storage\\.meta_write:nth=1;stress\\.seed=1"
             "points: 3, reached: 3, never reached: 0")
    if(NOT out MATCHES "${want}")
        message(FATAL_ERROR "sweep output lacks /${want}/:\n${out}\n${err}")
    endif()
endforeach()
if(out MATCHES "storage\\.(disk_error|read_error)")
    message(FATAL_ERROR "the recovered paths (disk_error, read_error) were reported:\n${out}")
endif()

execute_process(COMMAND ${CLI} sweep --quiet --jobs 2 -- ${PROG} --fixed
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0 OR NOT out MATCHES "failed: 0")
    message(FATAL_ERROR "sweep over the fixed program: exit ${rc}, expected 0\n${out}\n${err}")
endif()
message(STATUS "the sweep finds the planted bug and passes the fixed program")
