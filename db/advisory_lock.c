/* advisory_lock.c - session advisory locks keyed by (collection_id, metadata_hash).
 *
 * The bounded wait uses lock_timeout inside a short transaction (SET LOCAL), because a
 * session-level advisory lock outlives the transaction that took it while the setting
 * does not: nothing of the timeout leaks into the caller's session. */
#include "advisory_lock.h"

#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "pg.h"

int advisory_lock_key(const char *collection_id, const char *metadata_hash, int64_t *key_out,
                      struct pw_error *err)
{
    static const char prefix[] = "projection-worker:";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    int rc = 0;
    if (!collection_id || !metadata_hash)
        return pw_error_set(err, PW_EINVAL, "advisory lock needs a collection id and a hash");
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx)
        return pw_error_set(err, PW_ENOMEM, "out of memory");
    if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(ctx, prefix, sizeof prefix - 1) != 1 ||
        EVP_DigestUpdate(ctx, collection_id, strlen(collection_id)) != 1 ||
        EVP_DigestUpdate(ctx, ":", 1) != 1 ||
        EVP_DigestUpdate(ctx, metadata_hash, strlen(metadata_hash)) != 1 ||
        EVP_DigestFinal_ex(ctx, md, &n) != 1) {
        rc = pw_error_set(err, PW_EINTERNAL, "SHA-256 failed in libcrypto");
        goto cleanup;
    }
    uint64_t u = 0;
    for (int i = 0; i < 8; i++)
        u = (u << 8) | md[i];
    memcpy(key_out, &u, sizeof u); /* two's complement reinterpretation */
cleanup:
    EVP_MD_CTX_free(ctx);
    return rc;
}

static void key_text(int64_t key, char buf[24])
{
    snprintf(buf, 24, "%lld", (long long)key);
}

int advisory_lock_try(PGconn *conn, int64_t key, int *acquired, struct pw_error *err)
{
    char k[24];
    const char *params[] = {k};
    PGresult *res = NULL;
    key_text(key, k);
    int rc = pg_exec(conn, "SELECT pg_try_advisory_lock($1::bigint)", 1, params, &res, err);
    if (rc == 0) {
        *acquired = !strcmp(PQgetvalue(res, 0, 0), "t");
        PQclear(res);
    }
    return rc;
}

int advisory_lock_acquire(PGconn *conn, int64_t key, int timeout_ms, struct pw_error *err)
{
    char k[24], t[24];
    const char *p_timeout[] = {t}, *p_key[] = {k};
    if (PQtransactionStatus(conn) != PQTRANS_IDLE)
        return pw_error_set(err, PW_EINVAL, "advisory_lock_acquire inside a transaction");
    key_text(key, k);
    snprintf(t, sizeof t, "%dms", timeout_ms < 0 ? 0 : timeout_ms);
    int rc = pg_begin(conn, err);
    if (rc == 0)
        rc = pg_exec(conn, "SELECT set_config('lock_timeout', $1, true)", 1, p_timeout, NULL, err);
    if (rc == 0)
        rc = pg_exec(conn, "SELECT pg_advisory_lock($1::bigint)", 1, p_key, NULL, err);
    if (rc == 0)
        rc = pg_commit(conn, err);
    if (rc < 0) {
        pg_rollback(conn);
        if (rc == PW_ETIMEOUT)
            pw_error_set(err, PW_ETIMEOUT,
                         "projection lock still held by another worker after %d ms", timeout_ms);
    }
    return rc;
}

int advisory_lock_release(PGconn *conn, int64_t key, struct pw_error *err)
{
    char k[24];
    const char *params[] = {k};
    PGresult *res = NULL;
    key_text(key, k);
    int rc = pg_exec(conn, "SELECT pg_advisory_unlock($1::bigint)", 1, params, &res, err);
    if (rc == 0) {
        if (strcmp(PQgetvalue(res, 0, 0), "t") != 0)
            rc = pw_error_set(err, PW_EINTERNAL, "advisory lock was not held by this session");
        PQclear(res);
    }
    return rc;
}
