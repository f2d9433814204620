# The shared libraries export only keel's API: every exported symbol starts
# with keel_ (keel__ names are the internals the public macros expand to).
# Read from the dynamic symbol table with readelf: a local or hidden entry
# there (the linker puts the bounds of the library's own keel_stress section
# in it, hidden or local with -z start-stop-visibility=hidden) binds locally
# and is not exported.
include(${CMAKE_CURRENT_LIST_DIR}/probe_common.cmake)
foreach(lib ${DEVEL_SO} ${RELEASE_SO})
    probe_run(rc out readelf --dyn-syms -W ${lib})
    if(NOT rc EQUAL 0)
        probe_fail("readelf ${lib}: ${out}")
    endif()
    string(REPLACE "\n" ";" lines "${out}")
    set(n 0)
    foreach(l ${lines})
        # Num: Value Size Type Bind Vis Ndx Name
        if(l MATCHES "^ *[0-9]+: [0-9a-f]+ +[0-9]+ +[A-Z_]+ +([A-Z_]+) +([A-Z_]+) +([A-Z0-9]+) +([^ @]+)")
            set(bind ${CMAKE_MATCH_1})
            set(vis ${CMAKE_MATCH_2})
            set(ndx ${CMAKE_MATCH_3})
            set(sym ${CMAKE_MATCH_4})
            if(ndx STREQUAL "UND" OR bind STREQUAL "LOCAL" OR vis STREQUAL "HIDDEN"
               OR vis STREQUAL "INTERNAL")
                continue()
            endif()
            # (ASan adds __odr_asan.<name> companions of exported variables)
            if(NOT sym MATCHES "^(__odr_asan[.])?keel_")
                probe_fail("${lib} exports '${sym}', which is not keel API")
            endif()
            math(EXPR n "${n} + 1")
        endif()
    endforeach()
    if(n LESS 20)
        probe_fail("${lib} exports only ${n} symbols; the API is missing")
    endif()
    message(STATUS "${lib}: ${n} exported symbols, all keel_")
endforeach()
