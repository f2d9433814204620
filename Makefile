# keel — the two commands a newcomer types:
#   make demo    build keel and run the demo on its built-in sample data
#   make check   every check: gcc+clang builds with -Werror, C++ checks, static
#                analysis, clang-format, tests under devel/release/asan/tsan, fuzz
# Both install the Debian packages they need first (apt-get, only when missing).
#
# Other targets: make build | check-platforms | bench | bench-replay | fuzz | install PREFIX=/usr/local | deps | bench-deps | clean

SHELL := /bin/bash
PREFIX ?= /usr/local
FUZZ_SECONDS ?= 600

DEPS := cmake ninja-build make gcc g++ clang clang-tidy clang-tools clang-format cppcheck \
        libclang-rt-14-dev pkg-config git libcmocka-dev libdw-dev libelf-dev \
        libsqlite3-dev libgit2-dev libjemalloc-dev libfiu-dev binutils bubblewrap
# a strict JSON parser for the tests of keel-gate's --json output, and keel-gate serve's JSON
DEPS += libjansson-dev
# keel-gate serve: the HTTP server, and SHA-256 for its tokens (nettle, which gnutls under MHD
# links too)
DEPS += libmicrohttpd-dev nettle-dev
# keel-gate serve's dashboard test (tests/browser): headless Chromium driven by playwright-core,
# which npm installs into the build tree (npm: the nodejs package here has it; on a Debian whose
# nodejs does not, tests/browser/run.sh installs Debian's npm)
DEPS += chromium nodejs
# man: the tests render the manual pages the programs write (man -l, groff's warnings)
DEPS += man-db
# the replay.fixture test reads the gate's results as bench/replay/run.sh does
DEPS += jq sqlite3
# the Slurm executor's tests start a cluster on localhost (tests/slurm_cluster.h)
DEPS += slurm-wlm slurmctld slurmd slurm-client munge
# make check-platforms (tools/platforms.sh): libkeel cross-built for 64-bit ARM and big-endian
# s390x, its tests run under qemu-user (the cross C libraries are only recommended by the cross
# compilers: named here); and the gate's compiler cache per configuration (gate/exec/ccache.c)
DEPS += qemu-user gcc-aarch64-linux-gnu gcc-s390x-linux-gnu libc6-dev-arm64-cross libc6-dev-s390x-cross ccache
# ... and libkeel's libraries for those targets, through dpkg multiarch (deps adds the
# architectures): libdw and cmocka.  Not jemalloc: Debian's libjemalloc-dev is not multi-arch
# (cannot be installed beside the host's), so the foreign builds use KEEL_JEMALLOC=OFF.
PLATFORM_ARCHES := arm64 s390x
# Installed for arm64 only: s390x's cannot be on an up-to-date bookworm (zlib1g:s390x cannot follow
# the host's security update), so tools/platforms.sh downloads and unpacks them into a private
# sysroot (its architecture is added above for apt-get download's package lists)
PLATFORM_DEPS := libdw-dev:arm64 libcmocka-dev:arm64

# what the benchmarks compare against, for make bench only: bench_heap loads mimalloc with
# dlopen("libmimalloc.so.2") (its anchor row is missing without it)
BENCH_DEPS := libmimalloc2.0
# keel-gate serve's load benchmark (bench/web/load.sh)
BENCH_DEPS += wrk
# what bench/replay/run.sh reads the gate's results with, for make bench-replay (DEPS has them
# too, for the replay.fixture test)
REPLAY_DEPS := jq sqlite3

SUDO := $(shell [ "$$(id -u)" -ne 0 ] && command -v sudo >/dev/null && echo sudo)

.PHONY: all deps platform-libs bench-deps build demo check check-platforms bench bench-replay fuzz install clean

all: build

# $(call install_missing,<Debian packages>): apt-get install those not installed yet
define install_missing
	@missing=""; for p in $(1); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "keel: installing missing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $$missing; \
	fi
endef

deps:
	$(call install_missing,$(DEPS))
	@for a in $(PLATFORM_ARCHES); do \
	  dpkg --print-foreign-architectures | grep -qx "$$a" && continue; \
	  echo "keel: adding the Debian architecture $$a (dpkg multiarch: libkeel's libraries for make check-platforms)"; \
	  $(SUDO) dpkg --add-architecture "$$a" || exit 1; \
	done
	@$(MAKE) --no-print-directory platform-libs || echo "keel: the foreign platforms' libdw/cmocka could not be installed through multiarch: tools/platforms.sh unpacks them into a private sysroot instead (docs/platforms.md)"

# not fatal (deps above): a Multi-Arch: same package must have one version on every architecture,
# and an architecture the security archive does not carry (s390x on bookworm) cannot follow the
# host's updates
platform-libs:
	$(call install_missing,$(PLATFORM_DEPS))

bench-deps:
	$(call install_missing,$(BENCH_DEPS))

build: deps
	cmake --preset devel >/dev/null && cmake --build build/devel

demo: deps
	@tools/demo.sh

check: deps
	@tools/check.sh

# libkeel cross-built for aarch64 and big-endian s390x, its tests under qemu-user (tools/platforms.sh;
# make check runs it as its platforms stage)
check-platforms: deps
	@tools/platforms.sh

bench: deps bench-deps
	@tools/bench.sh

# keel-gate replaying two real projects' histories (docs/benchmarks.md "Real-history replay";
# bench/replay/replay.sh's REPLAY_* variables: reps, strategies, where the clones are)
bench-replay: deps
	$(call install_missing,$(REPLAY_DEPS))
	cmake --preset release >/dev/null && cmake --build build/release --target keel-gate
	@bench/replay/replay.sh

fuzz: deps
	@FUZZ_SECONDS=$(FUZZ_SECONDS) tools/fuzz.sh

install: deps
	cmake --preset release -DCMAKE_INSTALL_PREFIX=$(PREFIX) >/dev/null
	cmake --build build/release
	cmake --install build/release

clean:
	rm -rf build
