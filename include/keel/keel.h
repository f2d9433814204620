/*
 * keel/keel.h - everything in libkeel.
 *
 * Build with `pkg-config --cflags --libs keel-devel` (checks on) or
 * `pkg-config --cflags --libs keel` (release), or in CMake:
 *   find_package(keel REQUIRED)
 *   target_link_libraries(app PRIVATE keel::keel-devel)
 *
 * One header per capability:
 *   keel/status.h     rich status codes that cannot be ignored
 *   keel/assert.h     assertions (devel) and verifications (always)
 *   keel/report.h     the one report channel every check goes through
 *   keel/options.h    KEEL_OPTIONS, the one option string
 *   keel/backtrace.h  symbolized backtraces
 *   keel/version.h    header and library versions
 *   keel/watchdog.h   time budgets for sections, heartbeats, CPU time per thread/module
 */
#ifndef KEEL_KEEL_H
#define KEEL_KEEL_H

#include "keel/common.h"
#include "keel/status.h"
#include "keel/assert.h"
#include "keel/report.h"
#include "keel/options.h"
#include "keel/backtrace.h"
#include "keel/version.h"
#include "keel/lock.h"
#include "keel/watchdog.h"
#include "keel/stress.h"
#include "keel/module.h"
#include "keel/heap.h"

#endif /* KEEL_KEEL_H */
