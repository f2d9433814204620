/*
 * storage_stress.c - stress options in a storage-like module, for
 * `keel-stress sweep` to cover its error paths.
 *
 * A tiny mirrored block store: every block is written to a primary and a
 * mirror disk (in memory), with a metadata record per batch.  Its error
 * paths are what the talk's stress options are for - rare, recoverable
 * conditions QA can hardly produce:
 *
 *   storage.disk_error   a write to the primary fails: retried, then the
 *                        block fails over to the mirror alone
 *   storage.read_error   a read from the primary fails: served by the mirror
 *   storage.meta_write   writing a batch's metadata fails: the batch is
 *                        rolled back and written again
 *
 * One of them is deliberately left unrecovered: in the default build of the
 * program, a failed metadata write forgets to roll back the batch's dirty
 * count, and the invariant checked when the store closes fails.  Normal runs
 * never see it.  `keel-stress sweep -- ./storage_stress` finds it at once;
 * `./storage_stress --fixed` runs the repaired path and the sweep passes.
 *
 *   ./storage_stress                                   # a clean run
 *   KEEL_OPTIONS='stress=storage.disk_error:1/5;stress.summary' ./storage_stress
 *   keel-stress sweep -- ./storage_stress              # finds the planted bug
 *   keel-stress sweep -- ./storage_stress --fixed      # passes
 */
#define KEEL_MODULE_NAME "storage"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel/keel.h"

enum { BLOCKS = 64, BLOCK_SIZE = 64, BATCH = 8, RETRIES = 3 };

typedef struct disk {
    unsigned char data[BLOCKS][BLOCK_SIZE];
    bool valid[BLOCKS];
} disk;

typedef struct store {
    disk primary;
    disk mirror;
    unsigned dirty; /* blocks written since the last metadata record */
    unsigned batches;
    unsigned retries;
    unsigned failovers;
    unsigned mirror_reads;
    unsigned meta_rewrites;
    bool fixed; /* the repaired metadata error path */
} store;

static keel_status disk_write(disk *d, unsigned blk, const unsigned char *buf, bool primary)
{
    KEEL_ASSERT(d != NULL && blk < BLOCKS && buf != NULL);
    if (primary && KEEL_STRESS(disk_error))
        return KEEL_ERR(KEEL_E_INJECTED, "write of block %u to the primary disk failed", blk);
    memcpy(d->data[blk], buf, BLOCK_SIZE);
    d->valid[blk] = true;
    return KEEL_OK;
}

static keel_status disk_read(const disk *d, unsigned blk, unsigned char *buf, bool primary)
{
    KEEL_ASSERT(d != NULL && blk < BLOCKS && buf != NULL);
    if (primary && KEEL_STRESS(read_error))
        return KEEL_ERR(KEEL_E_INJECTED, "read of block %u from the primary disk failed", blk);
    if (!d->valid[blk])
        return KEEL_ERR(KEEL_E_NOTFOUND, "block %u was never written", blk);
    memcpy(buf, d->data[blk], BLOCK_SIZE);
    return KEEL_OK;
}

/* Write one block: retry the primary, then fail over to the mirror alone. */
static keel_status store_write(store *st, unsigned blk, const unsigned char *buf)
{
    KEEL_ASSERT(st != NULL && blk < BLOCKS);
    keel_status s = KEEL_OK;
    bool on_primary = false;
    for (int attempt = 0; attempt < RETRIES && !on_primary; attempt++) {
        keel_status_free(s);
        s = disk_write(&st->primary, blk, buf, true);
        on_primary = keel_ok(s);
        if (!on_primary)
            st->retries++;
    }
    if (!on_primary) {
        keel_status_free(s);
        st->primary.valid[blk] = false; /* stale: reads must go to the mirror */
        st->failovers++;
    }
    s = disk_write(&st->mirror, blk, buf, false);
    if (!keel_ok(s))
        return KEEL_WRAP(s, KEEL_E_IO, "block %u is on neither disk", blk);
    st->dirty++;
    return KEEL_OK;
}

static keel_status store_read(store *st, unsigned blk, unsigned char *buf)
{
    KEEL_ASSERT(st != NULL && blk < BLOCKS);
    keel_status s = disk_read(&st->primary, blk, buf, true);
    if (keel_ok(s))
        return KEEL_OK;
    keel_status_free(s);
    st->mirror_reads++;
    s = disk_read(&st->mirror, blk, buf, false);
    if (!keel_ok(s))
        return KEEL_WRAP(s, KEEL_E_IO, "block %u is readable from neither disk", blk);
    return KEEL_OK;
}

/* Record a batch's metadata: the dirty blocks are then durable. */
static keel_status meta_write(store *st)
{
    KEEL_ASSERT(st != NULL);
    if (KEEL_STRESS(meta_write))
        return KEEL_ERR(KEEL_E_INJECTED, "metadata write of batch %u failed", st->batches);
    st->dirty = 0;
    st->batches++;
    return KEEL_OK;
}

static keel_status store_commit(store *st)
{
    KEEL_ASSERT(st != NULL && st->dirty <= BATCH);
    keel_status s = meta_write(st);
    for (int attempt = 1; !keel_ok(s) && attempt < RETRIES; attempt++) {
        keel_status_free(s);
        st->meta_rewrites++;
        if (st->fixed) {
            s = meta_write(st); /* the batch is still dirty: write its record again */
        } else {
            /* THE PLANTED BUG: "retry" by starting a new batch, losing count of the old one */
            st->dirty++;
            s = KEEL_OK;
        }
    }
    return s;
}

static void store_close(store *st)
{
    /* Every written block belongs to a recorded batch. */
    KEEL_ASSERT(st != NULL && st->dirty == 0);
}

static void fill(unsigned char *buf, unsigned blk)
{
    for (unsigned i = 0; i < BLOCK_SIZE; i++)
        buf[i] = (unsigned char)(blk * 31u + i * 7u);
}

static keel_status run(store *st)
{
    unsigned char buf[BLOCK_SIZE];
    for (unsigned blk = 0; blk < BLOCKS; blk++) {
        fill(buf, blk);
        keel_status s = store_write(st, blk, buf);
        if (keel_ok(s) && (blk + 1) % BATCH == 0)
            s = store_commit(st);
        if (!keel_ok(s))
            return KEEL_CONTEXT(s, "writing block %u", blk);
    }
    /* read everything back and check it */
    for (unsigned blk = 0; blk < BLOCKS; blk++) {
        unsigned char want[BLOCK_SIZE];
        fill(want, blk);
        keel_status s = store_read(st, blk, buf);
        if (!keel_ok(s))
            return KEEL_CONTEXT(s, "reading block %u back", blk);
        if (memcmp(buf, want, BLOCK_SIZE) != 0)
            return KEEL_ERR(KEEL_E_IO, "block %u reads back different data", blk);
    }
    return KEEL_OK;
}

int main(int argc, char **argv)
{
    keel_status s = keel_init();
    if (!keel_ok(s)) {
        char text[1024];
        (void)keel_status_format(s, text, sizeof(text));
        (void)fprintf(stderr, "storage_stress: %s\n", text);
        keel_status_free(s);
        return 2;
    }
    store *st = (store *)calloc(1, sizeof(*st));
    if (st == NULL) {
        (void)fprintf(stderr, "storage_stress: out of memory\n");
        return 2;
    }
    st->fixed = argc > 1 && strcmp(argv[1], "--fixed") == 0;
    s = run(st);
    int rc = 0;
    if (!keel_ok(s)) {
        /* an error that could not be recovered: reported and handled, not a crash */
        char text[1024];
        (void)keel_status_format(s, text, sizeof(text));
        (void)fprintf(stderr, "storage_stress: gave up: %s\n", text);
        keel_status_free(s);
        rc = 1;
    } else {
        store_close(st);
        (void)printf("storage_stress: %d blocks in %u batches verified; %u write retries, %u "
                     "failovers to the mirror, %u mirror reads, %u metadata rewrites\n",
                     BLOCKS, st->batches, st->retries, st->failovers, st->mirror_reads,
                     st->meta_rewrites);
    }
    free(st);
    return rc;
}
