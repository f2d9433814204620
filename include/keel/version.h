/*
 * keel/version.h - the version of the headers and of the linked library.
 *
 *   if (!keel_ok(s = keel_version_check())) ...   header and library agree?
 */
#ifndef KEEL_VERSION_H
#define KEEL_VERSION_H

#include "keel/common.h"
#include "keel/status.h"

/*
 * What changed without a new number (the binary interface is the same: no exported function,
 * public type or inline layout - KEEL__LOCK_LAYOUT, KEEL__HEAP_LAYOUT, KEEL__MODULE_MAGIC - moved):
 *   - reports point at the program's code (docs/reports.md): keel's frames dropped by address,
 *     a NULL file to keel_report_begin means "the program's first frame" (a library from before
 *     prints "?"), and errors keel returns name the program's call (docs/status.md).
 */
#define KEEL_VERSION_MAJOR  0
#define KEEL_VERSION_MINOR  1
#define KEEL_VERSION_PATCH  0
#define KEEL_VERSION_STRING "0.1.0"
/* One number that compares: major * 10000 + minor * 100 + patch. */
#define KEEL_VERSION_NUM \
    (KEEL_VERSION_MAJOR * 10000 + KEEL_VERSION_MINOR * 100 + KEEL_VERSION_PATCH)

KEEL_EXTERN_C_BEGIN

/* The version of the library actually linked, as KEEL_VERSION_NUM. */
KEEL_API unsigned keel_version(void);
/* The same as a string, e.g. "0.1.0 devel". */
KEEL_API const char *keel_version_string(void);

/*
 * Compare a header version with the linked library: an error (KEEL_E_VERSION)
 * when the major versions differ or the library is older than the header.
 */
KEEL_API KEEL_MUST_USE keel_status keel__version_check(unsigned header_version);
#define keel_version_check() keel__version_check(KEEL_VERSION_NUM)

KEEL_EXTERN_C_END

#endif /* KEEL_VERSION_H */
