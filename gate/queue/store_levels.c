/*
 * store_levels.c - keel-gate's store: the schema step that records at which
 * level a culprit search started (store_culprit.h): `post` (a post build
 * failed) or `nightly` (a nightly run failed).  Searches made before the
 * step are the post level's, its only one then.
 */
#define _GNU_SOURCE      1
#define KEEL_MODULE_NAME "gate_store"
#include "store_int.h"

/* The schema step (store.c's migrations; only its own column). */
const char gate__store_levels_schema[] =
    "ALTER TABLE culprit_searches ADD COLUMN level TEXT NOT NULL DEFAULT 'post';";
