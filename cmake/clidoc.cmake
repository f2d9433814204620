# cmake -DEXE=prog -DPAGE=out.1 -DCOMPLETION=out -P clidoc.cmake
# The program's manual page and bash completion, as it writes them from its own
# tables (its hidden options --help-man and --completion).
cmake_minimum_required(VERSION 3.16)
function(write_from option out)
    get_filename_component(dir ${out} DIRECTORY)
    file(MAKE_DIRECTORY ${dir})
    execute_process(COMMAND ${EXE} ${option} OUTPUT_FILE ${out}.tmp RESULT_VARIABLE rc
                    ERROR_VARIABLE err)
    if(NOT rc EQUAL 0)
        file(REMOVE ${out}.tmp)
        message(FATAL_ERROR "${EXE} ${option} failed (${rc}): ${err}")
    endif()
    file(RENAME ${out}.tmp ${out})
endfunction()
write_from(--help-man ${PAGE})
write_from(--completion ${COMPLETION})
