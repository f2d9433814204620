# Cross build of libkeel and its tests for s390x Linux with Debian's cross compiler
# (gcc-s390x-linux-gnu) and the target's libraries installed through dpkg multiarch
# (libdw-dev:s390x libcmocka-dev:s390x); the tests run under qemu-user (qemu-s390x).
# tools/platforms.sh (make check-platforms) configures with it:
#   cmake -B build/platform-s390x -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-s390x.cmake ...
include(${CMAKE_CURRENT_LIST_DIR}/toolchain-common.cmake)
keel_cross_toolchain(s390x s390x-linux-gnu)
