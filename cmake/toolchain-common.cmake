# What every cross toolchain file of cmake/ shares (toolchain-<arch>.cmake):
# keel_cross_toolchain(<CMAKE_SYSTEM_PROCESSOR> <GNU triple>) sets the compiler, where the
# target's libraries and .pc files are (Debian multiarch: /usr/lib/<triple>; or, with
# KEEL_CROSS_SYSROOT in the environment, the target's packages unpacked there), and qemu-user as
# the emulator that runs the target's programs (its C library from /usr/<triple>).
macro(keel_cross_toolchain processor triple)
    set(CMAKE_SYSTEM_NAME Linux)
    set(CMAKE_SYSTEM_PROCESSOR ${processor})
    set(CMAKE_C_COMPILER ${triple}-gcc)
    set(CMAKE_LINKER ${triple}-ld)
    set(CMAKE_AR ${triple}-ar)
    set(CMAKE_RANLIB ${triple}-ranlib)
    # pkg-config looks at the target's .pc files only (its libdw, cmocka)
    set(ENV{PKG_CONFIG_PATH} "")
    if(DEFINED ENV{KEEL_CROSS_SYSROOT})
        # the target's packages unpacked into a private directory (tools/platforms.sh, where
        # multiarch cannot install them): headers, libraries and .pc files from there
        set(root $ENV{KEEL_CROSS_SYSROOT})
        set(ENV{PKG_CONFIG_LIBDIR} ${root}/usr/lib/${triple}/pkgconfig:${root}/usr/share/pkgconfig)
        set(ENV{PKG_CONFIG_SYSROOT_DIR} ${root})
        set(libs ${root}/usr/lib/${triple}:${root}/lib/${triple})
        foreach(kind EXE SHARED MODULE)
            set(CMAKE_${kind}_LINKER_FLAGS_INIT "-Wl,-rpath-link,${libs}")
        endforeach()
        set(CMAKE_CROSSCOMPILING_EMULATOR
            qemu-${processor};-L;/usr/${triple};-E;LD_LIBRARY_PATH=${libs})
    else()
        set(ENV{PKG_CONFIG_LIBDIR} /usr/lib/${triple}/pkgconfig:/usr/share/pkgconfig)
        set(CMAKE_CROSSCOMPILING_EMULATOR qemu-${processor};-L;/usr/${triple})
    endif()
    set(CMAKE_FIND_ROOT_PATH /usr/${triple})
    set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
    set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY BOTH)
    set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
endmacro()
