# Cross build of libkeel and its tests for aarch64 Linux with Debian's cross compiler
# (gcc-aarch64-linux-gnu) and the target's libraries installed through dpkg multiarch
# (libdw-dev:arm64 libcmocka-dev:arm64); the tests run under qemu-user (qemu-aarch64).
# tools/platforms.sh (make check-platforms) configures with it:
#   cmake -B build/platform-aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-aarch64.cmake ...
include(${CMAKE_CURRENT_LIST_DIR}/toolchain-common.cmake)
keel_cross_toolchain(aarch64 aarch64-linux-gnu)
