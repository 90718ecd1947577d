/*
 * fetch.c - copying a container asset's inputs to local disk (fetch.h).
 *
 * Reads go through GDAL's virtual file systems, as every other input of the
 * worker does: /vsis3/ (credentials from the standard chain, creds.h) and
 * /vsicurl/ for https. GDAL retries 429 and 5xx (GDAL_HTTP_MAX_RETRY, set
 * in main.c) before a read fails.
 */
#include "fetch.h"

#include "err.h"
#include "hash.h"
#include "input.h"
#include "log.h"
#include "mem.h"
#include "op_container.h"

#include <cpl_error.h>
#include <cpl_vsi.h>
#include <cpl_vsi_error.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHUNK (4u << 20)

static int local_fail(int e, const char *what, const char *path)
{
    bool transient = e == ENOSPC || e == EDQUOT || e == EIO || e == EAGAIN || e == EINTR;
    return err_set(transient ? ERR_TRANSIENT : ERR_INTERNAL, ERR_SCRATCH, NULL, "%s %s: %s", what,
                   path, strerror(e));
}

static int make_dir(const char *path)
{
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        return local_fail(errno, "create directory", path);
    return 0;
}

/* Why an input could not be opened: absent or denied is the task's (bad
 * input, as for raster inputs), HTTP and S3 trouble is transient. */
static int open_fail(const char *path, const char *uri, const char *field)
{
    VSIStatBufL st;
    char msg[512];
    snprintf(msg, sizeof msg, "%s", CPLGetLastErrorMsg());
    VSIErrorReset();
    if (VSIStatExL(path, &st, VSI_STAT_EXISTS_FLAG | VSI_STAT_SET_ERROR_FLAG) == 0)
        return err_set(ERR_TRANSIENT, ERR_INPUT_UNREADABLE, field, "%s: cannot open %s%s%s", field,
                       uri, msg[0] ? ": " : "", msg);
    int e = VSIGetLastErrorNo();
    const char *vmsg = VSIGetLastErrorMsg();
    if (e == VSIE_HttpError || e == VSIE_AWSError)
        return err_set(ERR_TRANSIENT, ERR_INPUT_UNREADABLE, field, "%s: cannot read %s: %s", field,
                       uri, vmsg && vmsg[0] ? vmsg : "request failed");
    if (e == VSIE_AWSAccessDenied || e == VSIE_AWSInvalidCredentials ||
        e == VSIE_AWSSignatureDoesNotMatch)
        return err_set(ERR_BAD_INPUT, ERR_INPUT_UNREADABLE, field, "%s: access to %s denied: %s",
                       field, uri, vmsg);
    return err_set(ERR_BAD_INPUT, ERR_INPUT_UNREADABLE, field, "%s: %s does not exist", field, uri);
}

/* Streams one input to dst via a temporary name, hashing it on the way. */
static int fetch_one(const task *t, size_t i, const char *dir, unsigned char *buf)
{
    const task_input *in = &t->inputs[i];
    char field[48], file[CONTAINER_INPUT_FILE_MAX + 1], sum[HASH_MULTIHASH_LEN];
    char *src = NULL, *sub = NULL, *dst = NULL, *tmp = NULL;
    VSILFILE *fp = NULL;
    hash_ctx *h = NULL;
    int fd = -1, rc = -1;
    unsigned long long total = 0;

    snprintf(field, sizeof field, "inputs[%zu].uri", i);
    if (input_check_reachable(in->uri, field) < 0) return -1;
    container_input_file(in, file, sizeof file);
    src = input_gdal_path(in->uri);
    sub = mem_printf("%s/%s", dir, in->name);
    dst = mem_printf("%s/%s/%s", dir, in->name, file);
    tmp = mem_printf("%s/%s/.%s.part", dir, in->name, file);
    h = hash_new();
    if (!src || !sub || !dst || !tmp || !h) {
        err_oom();
        goto cleanup;
    }
    if (make_dir(sub) < 0) goto cleanup;
    CPLErrorReset();
    fp = VSIFOpenExL(src, "rb", TRUE);
    if (!fp) {
        open_fail(src, in->uri, field);
        goto cleanup;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        local_fail(errno, "create", tmp);
        goto cleanup;
    }
    for (;;) {
        size_t n = VSIFReadL(buf, 1, CHUNK, fp);
        if (n == 0) {
            if (VSIFEofL(fp)) break;
            err_set_gdal(ERR_TRANSIENT, ERR_INPUT_UNREADABLE, field,
                         "%s: reading %s failed after %llu bytes", field, in->uri, total);
            goto cleanup;
        }
        if (hash_update(h, buf, n) < 0) goto cleanup;
        for (size_t off = 0; off < n;) {
            ssize_t w = write(fd, buf + off, n - off);
            if (w < 0 && errno == EINTR) continue;
            if (w < 0) {
                local_fail(errno, "write", tmp);
                goto cleanup;
            }
            off += (size_t)w;
        }
        total += n;
        if (n < CHUNK && VSIFEofL(fp)) break;
    }
    if (hash_final(h, sum) < 0) goto cleanup;
    if (in->checksum && strcmp(sum, in->checksum) != 0) {
        snprintf(field, sizeof field, "inputs[%zu].checksum", i);
        err_set(ERR_BAD_INPUT, ERR_CHECKSUM_MISMATCH, field,
                "%s: %s hashes to %s, but %s recorded %s: the object changed after it was "
                "published; re-materialize the upstream",
                field, in->uri, sum, in->asset_key ? in->asset_key : "the task", in->checksum);
        goto cleanup;
    }
    if (fsync(fd) != 0) {
        local_fail(errno, "fsync", tmp);
        goto cleanup;
    }
    int cfd = fd;
    fd = -1;
    if (close(cfd) != 0) {
        local_fail(errno, "close", tmp);
        goto cleanup;
    }
    if (rename(tmp, dst) != 0) {
        local_fail(errno, "rename to", dst);
        goto cleanup;
    }
    char size_s[32];
    snprintf(size_s, sizeof size_s, "%llu", total);
    log_kv(LOG_INFO,
           in->checksum ? "input fetched and verified" : "input fetched (no recorded checksum)",
           "input", in->name, "uri", in->uri, "path", dst, "checksum", sum, "sizeBytes", size_s,
           (const char *)NULL);
    rc = 0;
cleanup:
    if (fd >= 0) close(fd);
    if (rc < 0 && tmp) unlink(tmp);
    if (fp) (void)VSIFCloseL(fp);
    hash_free(h);
    mem_free(src);
    mem_free(sub);
    mem_free(dst);
    mem_free(tmp);
    return rc;
}

int fetch_inputs(const task *t, const char *dir)
{
    unsigned char *buf = NULL;
    int rc = -1;
    if (make_dir(dir) < 0) return -1;
    if (!(buf = mem_malloc(CHUNK))) return err_oom();
    for (size_t i = 0; i < t->n_inputs; i++)
        if (fetch_one(t, i, dir, buf) < 0) goto cleanup;
    rc = 0;
cleanup:
    mem_free(buf);
    return rc;
}
