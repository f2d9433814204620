/*
 * gate/queue/store_web_int.h - the store's internals (store.c) that
 * store_web.c uses: its connection, its errors, its transactions and its
 * history.  Not an API: only store files include it.
 */
#ifndef KEEL_GATE_STORE_WEB_INT_H
#define KEEL_GATE_STORE_WEB_INT_H

#include <sqlite3.h>

#include "store.h"

sqlite3 *gate__store_db(gate_store *st);
/* An error from SQLite, naming the store and what was being done. */
KEEL_MUST_USE keel_status gate__store_error(const gate_store *st, int rc, const char *what);
/* BEGIN IMMEDIATE (KEEL_E_STATE for a store this process may not write). */
KEEL_MUST_USE keel_status gate__store_begin(gate_store *st);
/* Commit when s is OK, roll back otherwise; returns s (or the commit's error). */
KEEL_MUST_USE keel_status gate__store_finish(gate_store *st, keel_status s);
/* An event of the history, inside the caller's transaction. */
KEEL_MUST_USE keel_status gate__store_event_locked(gate_store *st, long long now, const char *kind,
                                                   long long change, const char *detail);

#endif /* KEEL_GATE_STORE_WEB_INT_H */
