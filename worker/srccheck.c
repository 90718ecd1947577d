/*
 * srccheck.c - HEAD an observed input and compare it with the observation.
 *
 * The comparison uses what the observation recorded, strongest first: the
 * S3 version id, the ETag (S3's is the content MD5 or the multipart digest;
 * an overwrite with other bytes changes it), Last-Modified for https
 * servers without ETags, and the size. A field the observation did not
 * record is not compared.
 */
#include "srccheck.h"

#include "err.h"
#include "log.h"
#include "mem.h"
#include "s3req.h"

#include <stdio.h>
#include <string.h>

static bool etag_equal(const char *sent, const char *observed)
{
    size_t n = strlen(sent);
    if (n >= 2 && sent[0] == '"' && sent[n - 1] == '"')
        return strlen(observed) == n - 2 && !strncmp(sent + 1, observed, n - 2);
    return !strcmp(sent, observed);
}

static int changed(const char *field, const char *uri, const char *what, const char *now,
                   const char *then)
{
    return err_set(ERR_TRANSIENT, ERR_SOURCE_CHANGED, field,
                   "%s: %s changed since it was observed (%s now \"%.100s\", observed "
                   "\"%.100s\"); the next observation gives it a new data version",
                   field, uri, what, now, then);
}

bool srccheck_needed(const task *t)
{
    for (size_t i = 0; i < t->n_inputs; i++)
        if (t->inputs[i].observed_etag || t->inputs[i].observed_version_id ||
            t->inputs[i].observed_last_modified)
            return true;
    return false;
}

int srccheck_input(const task *t, const task_input *in)
{
    char field[48];
    s3req_resp r;
    int rc = -1;
    if (!in->observed_etag && !in->observed_version_id && !in->observed_last_modified) return 0;
    snprintf(field, sizeof field, "inputs[%d].uri", task_input_index(t, in));
    if (!strncmp(in->uri, "s3://", 5)) {
        char bucket[64];
        const char *b = in->uri + 5, *slash = strchr(b, '/');
        if (!slash || (size_t)(slash - b) >= sizeof bucket)
            return err_set(ERR_BAD_INPUT, ERR_INPUT_NOT_ALLOWED, field,
                           "%s: expected s3://bucket/key", field);
        memcpy(bucket, b, (size_t)(slash - b));
        bucket[slash - b] = '\0';
        if (s3req_head_object(bucket, slash + 1, field, &r) < 0) goto cleanup;
    } else if (!strncmp(in->uri, "https://", 8)) {
        if (s3req_head_url(in->uri, field, &r) < 0) goto cleanup;
    } else {
        return err_set(ERR_BAD_INPUT, ERR_INVALID_TASK, field,
                       "%s: an observed version can only be checked on s3:// and https:// "
                       "inputs",
                       field);
    }
    if (r.status == 404) {
        err_set(ERR_TRANSIENT, ERR_SOURCE_CHANGED, field,
                "%s: %s was removed since it was observed", field, in->uri);
        goto cleanup;
    }
    if (r.status == 401 || r.status == 403) {
        err_set(ERR_BAD_INPUT, ERR_SOURCE_ACCESS_DENIED, field,
                "%s: access to %s denied (HTTP %ld)", field, in->uri, r.status);
        goto cleanup;
    }
    if (r.status != 200) {
        err_set(ERR_TRANSIENT, ERR_SOURCE_UNAVAILABLE, field,
                "%s: cannot check %s against its observation (HTTP %ld)", field, in->uri, r.status);
        goto cleanup;
    }
    if (in->observed_version_id && strcmp(r.version_id, in->observed_version_id)) {
        changed(field, in->uri, "version id", r.version_id, in->observed_version_id);
        goto cleanup;
    }
    if (in->observed_etag && !etag_equal(r.etag, in->observed_etag)) {
        changed(field, in->uri, "ETag", r.etag, in->observed_etag);
        goto cleanup;
    }
    if (in->observed_last_modified && strcmp(r.last_modified, in->observed_last_modified)) {
        changed(field, in->uri, "Last-Modified", r.last_modified, in->observed_last_modified);
        goto cleanup;
    }
    if (in->observed_size >= 0 && r.has_length &&
        r.content_length != (unsigned long long)in->observed_size) {
        char now[32], then[32];
        snprintf(now, sizeof now, "%llu", r.content_length);
        snprintf(then, sizeof then, "%lld", in->observed_size);
        changed(field, in->uri, "size", now, then);
        goto cleanup;
    }
    log_kv(LOG_DEBUG, "input is the observed version", "input", in->name, "uri", in->uri,
           (const char *)NULL);
    rc = 0;
cleanup:
    s3req_resp_free(&r);
    return rc;
}

int srccheck_all(const task *t)
{
    for (size_t i = 0; i < t->n_inputs; i++)
        if (srccheck_input(t, &t->inputs[i]) < 0) return -1;
    return 0;
}
