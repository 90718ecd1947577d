/*
 * publish.c - content-addressed, atomic publishing (publish.h).
 *
 * Destinations. An s3:// output goes through GDAL's /vsis3/: a write handle
 * buffers up to VSIS3_CHUNK_SIZE and then streams a multipart upload, and S3
 * makes the object visible at its key only when the upload completes, so a
 * reader never sees a partial object. A local output directory (development
 * only) gets the same property from a temporary file in the same directory,
 * fsync(2) and rename(2).
 *
 * One pass. Each file is read once from scratch in 4 MiB chunks; every chunk
 * updates the SHA-256 and is written to the destination. Object metadata is
 * sent when an upload starts, before the digest exists, so the checksum is
 * not stored as x-amz-meta-checksum (setting it afterwards would be a
 * server-side CopyObject of the whole object, limited to 5 GiB). Instead
 * the manifest records the checksum together with the object's ETag read
 * back after the upload; a cache lookup trusts an unchanged ETag and size,
 * and re-hashes the object only when it cannot.
 *
 * Order and failure. Files first, then item.json, then manifest.json: the
 * manifest's presence means "complete". On any failure every object this
 * call wrote is deleted again, manifest first, so no reader ever sees a
 * manifest whose files are missing.
 *
 * S3 errors. GDAL 3.6 reports a failed upload only as "DoSinglePartPUT of
 * ... failed"; the HTTP status and S3's error document reach us as GDAL
 * warnings (its retry notices) and CPLDebug("S3", ...) messages. While
 * publishing or looking up, a pushed error handler collects them, with
 * CPL_DEBUG set to the "S3" category for this thread only, so the error
 * names the S3 operation, the URI, the status and S3's error code. How each
 * is classified (and why 4xx on the output is Internal) is at s3_error.
 * Objects also carry x-amz-meta-terrane-data-version, known up front.
 * Main thread only.
 */
#include "publish.h"

#include "err.h"
#include "hash.h"
#include "input.h"
#include "log.h"
#include "manifest.h"
#include "mem.h"
#include "stac.h"
#include "terrane_proto.h"

#include <cpl_conv.h>
#include <cpl_error.h>
#include <cpl_string.h>
#include <cpl_vsi.h>
#include <cpl_vsi_error.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <gdal.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (4u << 20)
/* Files, item.json and manifest.json. */
#define MAX_WRITTEN (OP_MAX_OUTPUTS + 2)

/* How long each step of one publish took, logged as one line ("publish
 * steps") so what is left to overlap can be read off a run. Milliseconds,
 * summed over the files. */
typedef struct pub_steps {
    double preflight;  /* opening each COG to check it is whole */
    double read_hash;  /* reading scratch and SHA-256 (and, copying, writing) */
    double write;      /* copying: handing chunks to the destination */
    double stream;     /* copying: wall time of reading, hashing and writing together */
    double fsync;      /* local: the second thread's fsync of the file */
    double fsync_wait; /* local: waiting for that fsync after hashing ended */
    double commit;     /* link/rename and directory fsync, or the upload's last part */
    double etag;       /* S3: reading the ETag back */
    double stac;       /* building the STAC Item and the manifest */
    double item;       /* writing item.json */
    double manifest;   /* writing manifest.json */
} pub_steps;

static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void log_steps(const pub_steps *st)
{
    const double f[11] = {st->preflight, st->read_hash,  st->write,   st->stream,
                          st->fsync,     st->fsync_wait, st->commit,  st->etag,
                          st->stac,      st->item,       st->manifest};
    char v[11][24];
    for (int i = 0; i < 11; i++)
        snprintf(v[i], sizeof v[i], "%.1f", f[i]);
    log_kv(LOG_INFO, "publish steps", "preflightMs", v[0], "readHashMs", v[1], "writeMs", v[2],
           "streamMs", v[3], "fsyncMs", v[4], "fsyncWaitMs", v[5], "commitMs", v[6], "etagMs", v[7],
           "stacMs", v[8], "itemMs", v[9], "manifestMs", v[10], (const char *)NULL);
}

/* ---- S3 error capture ------------------------------------------------- */

typedef struct s3_capture {
    int http_status;      /* last HTTP status GDAL mentioned; 0 = none seen */
    bool no_response;     /* a request got no HTTP response at all */
    char code[64];        /* S3 error document <Code> */
    char message[256];    /* S3 error document <Message> */
    char curl_error[256]; /* libcurl's message for a failed connection */
    char failure[512];    /* GDAL's last CE_Failure text */
    char saved_debug[16]; /* this thread's CPL_DEBUG before capture_begin */
    bool had_debug;
} s3_capture;

static void capture_reset(s3_capture *c)
{
    VSIErrorReset();
    c->http_status = 0;
    c->no_response = false;
    c->code[0] = c->message[0] = c->curl_error[0] = c->failure[0] = '\0';
}

/* Copies the text between <tag> and </tag> in s into dst. */
static void xml_value(const char *s, const char *tag, char *dst, size_t cap)
{
    char open[40], close[40];
    snprintf(open, sizeof open, "<%s>", tag);
    snprintf(close, sizeof close, "</%s>", tag);
    const char *a = strstr(s, open);
    const char *b = a ? strstr(a, close) : NULL;
    if (!a || !b) return;
    a += strlen(open);
    snprintf(dst, cap, "%.*s", (int)(b - a), a);
}

static void CPL_STDCALL capture_handler(CPLErr cls, CPLErrorNum num, const char *msg)
{
    s3_capture *c = CPLGetErrorHandlerUserData();
    const char *p;
    (void)num;
    if (!msg) return;
    if (cls == CE_Debug) {
        if (strncmp(msg, "S3: ", 4) != 0) return;
        if (strstr(msg, "<Error>")) {
            xml_value(msg, "Code", c->code, sizeof c->code);
            xml_value(msg, "Message", c->message, sizeof c->message);
        }
        if ((p = strstr(msg, "response_code=")) != NULL) {
            int status = atoi(p + strlen("response_code="));
            if (status == 0)
                c->no_response = true;
            else
                c->http_status = status;
        }
        if ((p = strstr(msg, "curl error msg=")) != NULL)
            snprintf(c->curl_error, sizeof c->curl_error, "%s", p + strlen("curl error msg="));
        /* A failed request whose response had no body: nothing came back. */
        if (!strcmp(msg, "S3: (null)") && c->http_status == 0) c->no_response = true;
        log_kv(LOG_DEBUG, msg, "source", "gdal", (const char *)NULL);
        return;
    }
    if (cls == CE_Warning) {
        /* "HTTP error code: 503 - <url>. Retrying again in 1.0 secs" and
         * "HTTP response code on <url>: 503" */
        if (!strncmp(msg, "HTTP error code: ", 17))
            c->http_status = atoi(msg + 17);
        else if (!strncmp(msg, "HTTP response code on ", 22) && (p = strrchr(msg, ':')) != NULL) {
            int status = atoi(p + 1);
            if (status == 0)
                c->no_response = true;
            else
                c->http_status = status;
        }
        log_kv(LOG_WARN, msg, "source", "gdal", (const char *)NULL);
        return;
    }
    /* Failures are reported through err.h once classified. */
    snprintf(c->failure, sizeof c->failure, "%s", msg);
}

static void capture_begin(s3_capture *c)
{
    memset(c, 0, sizeof *c);
    const char *d = CPLGetThreadLocalConfigOption("CPL_DEBUG", NULL);
    if (d) {
        c->had_debug = true;
        snprintf(c->saved_debug, sizeof c->saved_debug, "%s", d);
    }
    /* Only the "S3" category (CPL_DEBUG names categories to emit), and
     * thread-local, so other threads keep their setting. Not "ON": GDAL
     * wraps some requests (EC2 metadata probes, ...) in CPLQuietErrorHandler,
     * which passes debug messages straight to stderr, bypassing the log. */
    CPLSetThreadLocalConfigOption("CPL_DEBUG", "S3");
    CPLPushErrorHandlerEx(capture_handler, c);
    CPLSetCurrentErrorHandlerCatchDebug(TRUE);
}

static void capture_end(s3_capture *c)
{
    CPLPopErrorHandler();
    CPLSetThreadLocalConfigOption("CPL_DEBUG", c->had_debug ? c->saved_debug : NULL);
}

static int status_for_code(const char *code)
{
    static const struct {
        const char *code;
        int status;
    } map[] = {{"NoSuchBucket", 404},
               {"NoSuchKey", 404},
               {"AccessDenied", 403},
               {"InvalidAccessKeyId", 403},
               {"SignatureDoesNotMatch", 403},
               {"AllAccessDisabled", 403},
               {"RequestTimeTooSkewed", 403},
               {"ExpiredToken", 400},
               {"InvalidToken", 400},
               {"RequestTimeout", 400},
               {"InvalidBucketName", 400},
               {"EntityTooLarge", 400},
               {"OperationAborted", 409},
               {"InternalError", 500},
               {"NotImplemented", 501},
               {"ServiceUnavailable", 503},
               {"SlowDown", 503}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (!strcmp(map[i].code, code)) return map[i].status;
    return 0;
}

/* S3 client errors that a retry heals: an expired session token (refreshed
 * credentials), a request that timed out, a clock-skew blip, a conflicting
 * bucket operation. */
static bool code_is_transient(const char *code)
{
    static const char *const codes[] = {
        "ExpiredToken", "RequestTimeout", "RequestTimeTooSkewed", "OperationAborted",
        "SlowDown",     "InternalError",  "ServiceUnavailable",   NULL};
    for (size_t i = 0; codes[i]; i++)
        if (!strcmp(codes[i], code)) return true;
    return false;
}

/*
 * Sets the error for a failed S3 operation op on uri from what was captured.
 *
 * Classification:
 *  - 5xx, 429, no response (connection refused/reset, timeout), and the
 *    transient client codes above: S3ServerError / S3ClientError, class
 *    Transient. The controller retries with backoff; that is what heals them.
 *  - Other 4xx on the OUTPUT (AccessDenied, NoSuchBucket, InvalidAccessKeyId,
 *    SignatureDoesNotMatch, ...): S3ClientError, class Internal. Not
 *    BadInput: the task and its data are fine, the deployment is not (IAM
 *    policy, bucket not created, wrong credentials), and BadInput is never
 *    retried, so the materialization would stay Failed after the operator
 *    fixes the policy. Not Transient: an identical retry fails identically
 *    and Transient failures are the expected noise nobody is paged for.
 *    Internal is retried with backoff too (a fix made meanwhile heals it)
 *    but is counted separately, so a misconfigured bucket shows up as a
 *    fault of the installation rather than as network weather.
 */
static int s3_error(const s3_capture *c, const char *op, const char *uri)
{
    char detail[768];
    int status = c->http_status ? c->http_status : c->code[0] ? status_for_code(c->code) : 0;
    bool transient;
    const char *code;

    int vsi = VSIGetLastErrorNo();
    if (!c->code[0] && (vsi == VSIE_AWSInvalidCredentials || vsi == VSIE_AWSAccessDenied ||
                        vsi == VSIE_AWSBucketNotFound || vsi == VSIE_AWSSignatureDoesNotMatch)) {
        /* GDAL decided before (or without) a request: no usable credentials,
         * or an error it recognised. Configuration, as 4xx below. */
        return err_set(ERR_INTERNAL, ERR_S3_CLIENT, NULL, "%s %s: %s", op, uri,
                       VSIGetLastErrorMsg());
    }
    if (c->code[0]) {
        transient = code_is_transient(c->code) || status >= 500 || status == 429;
        if (status)
            snprintf(detail, sizeof detail, "HTTP %d %s%s%s", status, c->code,
                     c->message[0] ? ": " : "", c->message);
        else
            snprintf(detail, sizeof detail, "%s%s%s", c->code, c->message[0] ? ": " : "",
                     c->message);
    } else if (status) {
        transient = status >= 500 || status == 429;
        snprintf(detail, sizeof detail, "HTTP %d%s%s", status, c->failure[0] ? " - " : "",
                 c->failure);
    } else if (c->no_response || c->curl_error[0]) {
        transient = true;
        snprintf(detail, sizeof detail, "no response from the S3 endpoint (%s)",
                 c->curl_error[0] ? c->curl_error : "connection refused, reset or timed out");
    } else {
        const char *vmsg = VSIGetLastErrorMsg();
        transient = true;
        snprintf(detail, sizeof detail, "%s",
                 c->failure[0]     ? c->failure
                 : vmsg && vmsg[0] ? vmsg
                                   : "request failed");
    }
    code = (status >= 400 && status < 500) ? ERR_S3_CLIENT : ERR_S3_SERVER;
    return err_set(transient ? ERR_TRANSIENT : ERR_INTERNAL, code, NULL, "%s %s: %s", op, uri,
                   detail);
}

/* After a failed stat: true when the object is simply absent (a 404 for
 * the key, or GDAL gave up without any request failing), false when the
 * request failed or the bucket itself is missing or forbidden. */
static bool capture_not_found(const s3_capture *c)
{
    int vsi = VSIGetLastErrorNo();
    if (vsi == VSIE_AWSInvalidCredentials || vsi == VSIE_AWSAccessDenied ||
        vsi == VSIE_AWSBucketNotFound || vsi == VSIE_AWSSignatureDoesNotMatch)
        return false;
    if (c->code[0] && strcmp(c->code, "NoSuchKey") != 0) return false;
    if (c->http_status == 404) return true;
    return !c->http_status && !c->no_response && !c->curl_error[0];
}

/* ---- destinations ------------------------------------------------------ */

typedef struct dest {
    bool local;
    char *base_uri;  /* <output.uri>/<namespace>/<assetKey>/<dataVersion hex> */
    char *base_path; /* the same as a GDAL path (/vsis3/...) or local directory */
    s3_capture *cap; /* active while publishing to S3 */
} dest;

static void dest_free(dest *d)
{
    mem_free(d->base_uri);
    mem_free(d->base_path);
    memset(d, 0, sizeof *d);
}

static int dest_init(const task *t, dest *d)
{
    memset(d, 0, sizeof *d);
    d->local = t->output_uri[0] == '/';
    d->base_uri = mem_printf("%s/%s/%s/%s", t->output_uri, t->namespace_, t->asset_key,
                             task_data_version_hex(t));
    if (!d->base_uri) return err_oom();
    /* The longest name added below is "manifest.json"; the result document
     * has 1024 bytes per URI. */
    if (strlen(d->base_uri) + 1 + 64 >= sizeof(((result *)0)->output_uri)) {
        dest_free(d);
        return err_set(ERR_BAD_INPUT, ERR_INVALID_TASK, "output.uri",
                       "output.uri: the output prefix with namespace and asset key is too long");
    }
    d->base_path = input_gdal_path(d->base_uri);
    if (!d->base_path) {
        dest_free(d);
        return err_oom();
    }
    return 0;
}

/* Sets the error for a failed local file operation. A full or failing disk
 * is transient; a permission or read-only problem is the installation's
 * (Internal, for the same reasons as S3 4xx above). */
static int local_error(int e, const char *op, const char *path)
{
    bool transient = e == ENOSPC || e == EDQUOT || e == EIO || e == EAGAIN || e == EINTR;
    return err_set(transient ? ERR_TRANSIENT : ERR_INTERNAL, ERR_OUTPUT, NULL, "%s %s: %s", op,
                   path, strerror(e));
}

static int mkdir_p(const char *dir)
{
    int rc = -1;
    char *p = mem_strdup(dir);
    if (!p) return err_oom();
    for (char *s = p + 1;; s++) {
        if (*s == '/' || *s == '\0') {
            char saved = *s;
            *s = '\0';
            if (mkdir(p, 0755) != 0 && errno != EEXIST) {
                local_error(errno, "create directory", p);
                goto cleanup;
            }
            *s = saved;
            if (!saved) break;
        }
    }
    rc = 0;
cleanup:
    mem_free(p);
    return rc;
}

/* One object being written. */
typedef struct sink {
    const dest *d;
    char *uri;      /* what errors name: s3://... or the local path */
    char *path;     /* final GDAL path or local path */
    char *tmp_path; /* local: the temporary file renamed to path */
    int fd;
    VSILFILE *fp;
    unsigned long long written;
} sink;

static void sink_discard(sink *s)
{
    if (s->fd >= 0) close(s->fd);
    if (s->tmp_path) unlink(s->tmp_path);
    if (s->fp) {
        /* Closing a failed /vsis3/ handle aborts its multipart upload; the
         * caller deletes the key in case a single-part PUT got through. Its
         * status adds nothing to the error already set. */
        int ignored = VSIFCloseL(s->fp);
        (void)ignored;
    }
    mem_free(s->uri);
    mem_free(s->path);
    mem_free(s->tmp_path);
    memset(s, 0, sizeof *s);
    s->fd = -1;
}

/* Opens name under d for writing; media_type becomes the object's
 * Content-Type, and the data version its x-amz-meta-terrane-data-version
 * (known up front, unlike the checksum). */
static int sink_open(sink *s, const dest *d, const task *t, const char *name,
                     const char *media_type)
{
    memset(s, 0, sizeof *s);
    s->fd = -1;
    s->d = d;
    s->uri = mem_printf("%s/%s", d->base_uri, name);
    s->path = mem_printf("%s/%s", d->base_path, name);
    if (!s->uri || !s->path) goto oom;
    if (d->local) {
        s->tmp_path = mem_printf("%s/.%s.tmp-XXXXXX", d->base_path, name);
        if (!s->tmp_path) goto oom;
        s->fd = mkstemp(s->tmp_path);
        if (s->fd < 0) {
            local_error(errno, "create", s->tmp_path);
            mem_free(s->tmp_path);
            s->tmp_path = NULL; /* nothing to unlink */
            goto fail;
        }
        /* mkstemp makes 0600; published files are for readers. */
        if (fchmod(s->fd, 0644) != 0) {
            local_error(errno, "chmod", s->tmp_path);
            goto fail;
        }
        return 0;
    }
    char ctype[160], meta[128];
    snprintf(ctype, sizeof ctype, "Content-Type=%s", media_type);
    snprintf(meta, sizeof meta, "x-amz-meta-terrane-data-version=%s", t->data_version);
    char *opts[] = {ctype, meta, NULL};
    capture_reset(d->cap);
    s->fp = VSIFOpenEx2L(s->path, "wb", TRUE, opts);
    if (!s->fp) {
        s3_error(d->cap, "upload", s->uri);
        goto fail;
    }
    return 0;
oom:
    err_oom();
fail:
    sink_discard(s);
    return -1;
}

static int sink_write(sink *s, const void *buf, size_t n)
{
    if (s->d->local) {
        const char *p = buf;
        while (n > 0) {
            ssize_t w = write(s->fd, p, n);
            if (w < 0 && errno == EINTR) continue;
            if (w < 0) return local_error(errno, "write", s->tmp_path);
            p += w;
            n -= (size_t)w;
            s->written += (unsigned long long)w;
        }
        return 0;
    }
    capture_reset(s->d->cap);
    if (VSIFWriteL(buf, 1, n, s->fp) != n) return s3_error(s->d->cap, "upload", s->uri);
    s->written += n;
    return 0;
}

/* Makes the object visible at its final key; s is released either way. */
static int sink_commit(sink *s)
{
    int rc = -1;
    if (s->d->local) {
        if (fsync(s->fd) != 0) {
            local_error(errno, "fsync", s->tmp_path);
            goto cleanup;
        }
        int fd = s->fd;
        s->fd = -1;
        if (close(fd) != 0) {
            local_error(errno, "close", s->tmp_path);
            goto cleanup;
        }
        if (rename(s->tmp_path, s->path) != 0) {
            local_error(errno, "rename to", s->path);
            goto cleanup;
        }
        mem_free(s->tmp_path);
        s->tmp_path = NULL;
        /* Make the rename itself durable. */
        int dfd = open(s->d->base_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            (void)fsync(dfd);
            close(dfd);
        }
    } else {
        VSILFILE *fp = s->fp;
        s->fp = NULL;
        capture_reset(s->d->cap);
        /* For a multipart upload this sends the last part and
         * CompleteMultipartUpload; for a small object the single PUT. */
        if (VSIFCloseL(fp) != 0) {
            s3_error(s->d->cap, "upload", s->uri);
            goto cleanup;
        }
    }
    rc = 0;
cleanup:
    sink_discard(s);
    return rc;
}

/* Removes an object this call wrote; failures are logged, not returned:
 * the original error is the one to report. */
static void remove_object(const dest *d, const char *path, const char *uri)
{
    if (d->local) {
        if (unlink(path) != 0 && errno != ENOENT)
            log_kv(LOG_WARN, "could not remove a partly published file", "uri", uri, "error",
                   strerror(errno), (const char *)NULL);
        return;
    }
    capture_reset(d->cap);
    VSIStatBufL st;
    VSICurlPartialClearCache(path);
    if (VSIStatL(path, &st) != 0 && capture_not_found(d->cap)) return; /* never landed */
    capture_reset(d->cap);
    if (VSIUnlink(path) != 0) {
        /* Keep the error slot for the original failure. */
        char msg[1024];
        snprintf(msg, sizeof msg, "%s%s%s", d->cap->code, d->cap->code[0] ? " " : "",
                 d->cap->curl_error[0] ? d->cap->curl_error : d->cap->failure);
        log_kv(LOG_WARN, "could not remove a partly published object", "uri", uri, "error", msg,
               (const char *)NULL);
    }
}

/* ---- publish ----------------------------------------------------------- */

typedef struct published {
    char *uri;
    char *path;
} published;

/* Reads fd (the scratch file path) to the end in CHUNK pieces, hashing
 * each and, when s is given, writing it to the sink: one pass over the
 * file whatever the destination. */
static int hash_stream(int fd, const char *path, unsigned char *buf, hash_ctx *h, sink *s,
                       unsigned long long *total, double *write_ms)
{
    for (;;) {
        ssize_t n = read(fd, buf, CHUNK);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0)
            return err_set(ERR_TRANSIENT, ERR_SCRATCH, NULL, "read %s: %s", path, strerror(errno));
        if (n == 0) return 0;
        if (hash_update(h, buf, (size_t)n) < 0) return -1;
        if (s) {
            double t0 = mono_ms();
            if (sink_write(s, buf, (size_t)n) < 0) return -1;
            *write_ms += mono_ms() - t0;
        }
        *total += (unsigned long long)n;
    }
}

/* fsync(2) of a file on its own thread (see link_file). */
typedef struct syncer {
    pthread_t thread;
    int fd;
    int err;   /* errno of a failed fsync, else 0 */
    double ms; /* how long the fsync took */
} syncer;

static void *syncer_main(void *arg)
{
    syncer *sy = arg;
    double t0 = mono_ms();
    sy->err = fsync(sy->fd) == 0 ? 0 : errno;
    sy->ms = mono_ms() - t0;
    return NULL;
}

/* Local output on the scratch file's own filesystem: hash the file in one
 * read and hard-link it into place instead of writing a copy. The link is
 * as atomic as the temporary-name path of sink_commit and saves the write
 * of the whole file (the largest part of publishing a big COG locally).
 * Returns 1 when the file is on another filesystem (the caller copies). */
static int link_file(const dest *d, const op_output *f, unsigned char *buf, published *pub,
                     bool *wrote, char checksum[HASH_MULTIHASH_LEN], unsigned long long *size,
                     pub_steps *st)
{
    struct stat src_st, dir_st;
    int rc = -1, fd = -1;
    hash_ctx *h = NULL;
    char *tmp = NULL;
    unsigned long long total = 0;

    if (stat(f->path, &src_st) != 0 || stat(d->base_path, &dir_st) != 0 ||
        src_st.st_dev != dir_st.st_dev)
        return 1;
    fd = open(f->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        err_set(ERR_TRANSIENT, ERR_SCRATCH, NULL, "open %s: %s", f->path, strerror(errno));
        goto cleanup;
    }
    if (!(h = hash_new())) {
        err_oom();
        goto cleanup;
    }
    /* Flush the file to disk on a second thread while this one hashes it:
     * the two take about as long each, and done one after the other they
     * were most of the publishing time of a large local output. */
    syncer sy = {.fd = fd};
    double t0 = mono_ms();
    bool syncing = pthread_create(&sy.thread, NULL, syncer_main, &sy) == 0;
    int hrc = hash_stream(fd, f->path, buf, h, NULL, &total, &st->write);
    double t1 = mono_ms();
    st->read_hash += t1 - t0;
    if (syncing) pthread_join(sy.thread, NULL);
    st->fsync_wait += mono_ms() - t1;
    st->fsync += sy.ms;
    if (hrc < 0) goto cleanup;
    t1 = mono_ms();
    /* Published files are for readers; scratch files are private. */
    if (fchmod(fd, 0644) != 0 || (syncing ? sy.err != 0 : fsync(fd) != 0)) {
        local_error(syncing && sy.err ? sy.err : errno, "prepare", f->path);
        goto cleanup;
    }
    pub->uri = mem_printf("%s/%s", d->base_uri, f->name);
    pub->path = mem_printf("%s/%s", d->base_path, f->name);
    if (!pub->uri || !pub->path) {
        err_oom();
        goto cleanup;
    }
    /* A hard link under a temporary name, renamed over the final name: the
     * object appears whole or not at all, and the scratch file stays
     * readable for the STAC Item (scratch is removed after the run). */
    tmp = mem_printf("%s/.%s.tmp-%ld", d->base_path, f->name, (long)getpid());
    if (!tmp) {
        err_oom();
        goto cleanup;
    }
    unlink(tmp);
    if (link(f->path, tmp) != 0) {
        if (errno == EXDEV || errno == EPERM || errno == EMLINK) {
            rc = 1;
            goto cleanup;
        }
        local_error(errno, "link", tmp);
        goto cleanup;
    }
    if (rename(tmp, pub->path) != 0) {
        local_error(errno, "rename to", pub->path);
        unlink(tmp);
        goto cleanup;
    }
    *wrote = true;
    int dfd = open(d->base_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    st->commit += mono_ms() - t1;
    if (hash_final(h, checksum) < 0) goto cleanup;
    *size = total;
    rc = 0;
cleanup:
    if (rc == 1) {
        mem_free(pub->uri);
        mem_free(pub->path);
        pub->uri = pub->path = NULL;
    }
    mem_free(tmp);
    hash_free(h);
    if (fd >= 0) close(fd);
    return rc;
}

/* Reading and hashing ahead of the writes (copying to S3 or another
 * filesystem): a second thread reads the scratch file and hashes each chunk
 * into a ring of FEED_SLOTS buffers while this thread hands the previous
 * ones to the sink, so the SHA-256 runs while /vsis3/ uploads a part
 * instead of before it. Still one read of the file, in order. The sink and
 * GDAL's error capture stay on this thread (the capture handler is per
 * thread). */
#define FEED_SLOTS 3

typedef struct feeder {
    pthread_t thread;
    int fd;
    hash_ctx *h;
    unsigned char *bufs[FEED_SLOTS];
    size_t len[FEED_SLOTS];
    int head, count; /* filled slots: head .. head + count - 1 */
    bool eof, stop;
    int err;     /* errno of a failed read; -1 when hashing failed */
    double busy; /* ms spent reading and hashing */
    pthread_mutex_t mu;
    pthread_cond_t cv;
} feeder;

static void *feeder_main(void *arg)
{
    feeder *fe = arg;
    pthread_mutex_lock(&fe->mu);
    for (;;) {
        while (fe->count == FEED_SLOTS && !fe->stop)
            pthread_cond_wait(&fe->cv, &fe->mu);
        if (fe->stop) break;
        int slot = (fe->head + fe->count) % FEED_SLOTS;
        pthread_mutex_unlock(&fe->mu);
        double t0 = mono_ms();
        ssize_t n;
        do
            n = read(fe->fd, fe->bufs[slot], CHUNK);
        while (n < 0 && errno == EINTR);
        int e = n < 0 ? errno : 0;
        if (n > 0 && hash_update(fe->h, fe->bufs[slot], (size_t)n) < 0) e = -1;
        err_clear(); /* this thread's slot; the writer reports */
        fe->busy += mono_ms() - t0;
        pthread_mutex_lock(&fe->mu);
        if (e) {
            fe->err = e;
            break;
        }
        if (n == 0) {
            fe->eof = true;
            break;
        }
        fe->len[slot] = (size_t)n;
        fe->count++;
        pthread_cond_broadcast(&fe->cv);
    }
    pthread_cond_broadcast(&fe->cv);
    pthread_mutex_unlock(&fe->mu);
    return NULL;
}

/* hash_stream with the reading and hashing on a feeder thread; buf is the
 * first of its buffers. Falls back to hash_stream when no thread starts. */
static int pipe_stream(int fd, const char *path, unsigned char *buf, hash_ctx *h, sink *s,
                       unsigned long long *total, pub_steps *st)
{
    feeder fe = {.fd = fd, .h = h};
    int rc = -1;
    fe.bufs[0] = buf;
    for (int k = 1; k < FEED_SLOTS; k++)
        if (!(fe.bufs[k] = mem_malloc(CHUNK))) {
            for (int j = 1; j < k; j++)
                mem_free(fe.bufs[j]);
            return hash_stream(fd, path, buf, h, s, total, &st->write);
        }
    pthread_mutex_init(&fe.mu, NULL);
    pthread_cond_init(&fe.cv, NULL);
    if (pthread_create(&fe.thread, NULL, feeder_main, &fe) != 0) {
        pthread_cond_destroy(&fe.cv);
        pthread_mutex_destroy(&fe.mu);
        for (int k = 1; k < FEED_SLOTS; k++)
            mem_free(fe.bufs[k]);
        return hash_stream(fd, path, buf, h, s, total, &st->write);
    }
    pthread_mutex_lock(&fe.mu);
    for (;;) {
        while (fe.count == 0 && !fe.eof && !fe.err)
            pthread_cond_wait(&fe.cv, &fe.mu);
        if (fe.count == 0) break; /* end of file or a failed read, all written */
        int slot = fe.head;
        pthread_mutex_unlock(&fe.mu);
        double t0 = mono_ms();
        int w = sink_write(s, fe.bufs[slot], fe.len[slot]);
        st->write += mono_ms() - t0;
        pthread_mutex_lock(&fe.mu);
        if (w < 0) goto stop; /* the sink's error is set */
        *total += fe.len[slot];
        fe.head = (fe.head + 1) % FEED_SLOTS;
        fe.count--;
        pthread_cond_broadcast(&fe.cv);
    }
    if (fe.err > 0)
        err_set(ERR_TRANSIENT, ERR_SCRATCH, NULL, "read %s: %s", path, strerror(fe.err));
    else if (fe.err < 0)
        err_set(ERR_INTERNAL, ERR_INTERNAL_CODE, NULL, "hashing %s failed", path);
    else
        rc = 0;
stop:
    fe.stop = true;
    pthread_cond_broadcast(&fe.cv);
    pthread_mutex_unlock(&fe.mu);
    pthread_join(fe.thread, NULL);
    st->read_hash += fe.busy;
    pthread_cond_destroy(&fe.cv);
    pthread_mutex_destroy(&fe.mu);
    for (int k = 1; k < FEED_SLOTS; k++)
        mem_free(fe.bufs[k]);
    return rc;
}

/* Streams the scratch file src to name under d, hashing on the way. */
static int upload_file(const dest *d, const task *t, const op_output *f, unsigned char *buf,
                       published *pub, bool *wrote, char checksum[HASH_MULTIHASH_LEN],
                       unsigned long long *size, pub_steps *st)
{
    int rc = -1, fd = -1;
    hash_ctx *h = NULL;
    sink s = {.fd = -1};

    if (d->local) {
        int linked = link_file(d, f, buf, pub, wrote, checksum, size, st);
        if (linked <= 0) return linked;
    }
    fd = open(f->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        err_set(ERR_TRANSIENT, ERR_SCRATCH, NULL, "open %s: %s", f->path, strerror(errno));
        goto cleanup;
    }
    if (!(h = hash_new())) {
        err_oom();
        goto cleanup;
    }
    if (sink_open(&s, d, t, f->name, f->media_type) < 0) goto cleanup;
    /* From here an object may exist at the key (a single-part PUT goes out
     * at close, even after a failed read): the caller must remove it. */
    pub->uri = mem_strdup(s.uri);
    pub->path = mem_strdup(s.path);
    if (!pub->uri || !pub->path) {
        err_oom();
        goto cleanup;
    }
    *wrote = true;
    unsigned long long total = 0;
    double t0 = mono_ms();
    if (pipe_stream(fd, f->path, buf, h, &s, &total, st) < 0) goto cleanup;
    double t1 = mono_ms();
    st->stream += t1 - t0;
    *size = s.written;
    if (sink_commit(&s) < 0) goto cleanup;
    st->commit += mono_ms() - t1;
    if (hash_final(h, checksum) < 0) goto cleanup;
    rc = 0;
cleanup:
    sink_discard(&s);
    hash_free(h);
    if (fd >= 0) close(fd);
    return rc;
}

static int upload_buffer(const dest *d, const task *t, const char *name, const char *media_type,
                         const char *text, published *pub, bool *wrote)
{
    sink s = {.fd = -1};
    if (sink_open(&s, d, t, name, media_type) < 0) return -1;
    pub->uri = mem_strdup(s.uri);
    pub->path = mem_strdup(s.path);
    if (!pub->uri || !pub->path) {
        sink_discard(&s);
        return err_oom();
    }
    *wrote = true;
    if (sink_write(&s, text, strlen(text)) < 0) {
        sink_discard(&s);
        return -1;
    }
    return sink_commit(&s);
}

/* Reads back an uploaded object's ETag (and checks its size) so a later
 * cache lookup can verify it with one HEAD. Not fatal when the HEAD fails:
 * the lookup then re-hashes. */
static int read_etag(const dest *d, const char *path, const char *uri, unsigned long long size,
                     char *etag, size_t cap)
{
    VSIStatBufL st;
    etag[0] = '\0';
    VSICurlPartialClearCache(path);
    capture_reset(d->cap);
    if (VSIStatL(path, &st) != 0) {
        log_kv(LOG_WARN, "could not stat an uploaded object", "uri", uri, (const char *)NULL);
        return 0;
    }
    if ((unsigned long long)st.st_size != size)
        return err_set(ERR_TRANSIENT, ERR_S3_SERVER, NULL,
                       "upload %s: the stored object has %llu bytes, %llu were sent", uri,
                       (unsigned long long)st.st_size, size);
    char **md = VSIGetFileMetadata(path, "HEADERS", NULL);
    const char *v = CSLFetchNameValue(md, "ETag");
    if (v && strlen(v) < cap) snprintf(etag, cap, "%s", v);
    CSLDestroy(md);
    return 0;
}

/* Free bytes on the filesystem holding path's directory; ULLONG_MAX if
 * unknown. */
static unsigned long long free_bytes_near(const char *path)
{
    char dir[1024];
    struct statvfs v;
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) *slash = '\0';
    if (statvfs(dir, &v) != 0) return ULLONG_MAX;
    return (unsigned long long)v.f_bavail * v.f_frsize;
}

/* Defence in depth before anything is uploaded: an operation that missed a
 * failed write (GDAL 3.6's GDALClose cannot report one) leaves a truncated
 * COG in scratch, and it must not be published. Opening each raster reads
 * its header and directory; when that fails on a (nearly) full scratch
 * filesystem, full scratch is the cause. */
static int preflight(const op_result *files)
{
    static const char *const drivers[] = {"GTiff", NULL};
    if (files->n_files == 0 || files->n_files > OP_MAX_OUTPUTS)
        return err_set(ERR_INTERNAL, ERR_INTERNAL_CODE, NULL, "publish: %zu files", files->n_files);
    for (size_t i = 0; i < files->n_files; i++) {
        const op_output *f = &files->files[i];
        /* Names become object keys next to item.json and manifest.json. */
        if (!f->path || !f->name || !f->name[0] || strchr(f->name, '/') || f->name[0] == '.' ||
            !strcmp(f->name, TERRANE_OBJ_STAC) || !strcmp(f->name, TERRANE_OBJ_MANIFEST) ||
            !f->media_type)
            return err_set(ERR_INTERNAL, ERR_INTERNAL_CODE, NULL,
                           "publish: output %zu has a bad name \"%s\" or no media type", i,
                           f->name ? f->name : "(null)");
        for (size_t j = 0; j < i; j++)
            if (!strcmp(files->files[j].name, f->name))
                return err_set(ERR_INTERNAL, ERR_INTERNAL_CODE, NULL,
                               "publish: two outputs are named \"%s\"", f->name);
    }
    for (size_t i = 0; i < files->n_files; i++) {
        const op_output *f = &files->files[i];
        if (!f->is_cog) continue;
        CPLErrorReset();
        GDALDatasetH ds =
            GDALOpenEx(f->path, GDAL_OF_RASTER | GDAL_OF_READONLY, drivers, NULL, NULL);
        if (ds) {
            GDALClose(ds);
            continue;
        }
        if (free_bytes_near(f->path) < (1u << 20))
            return err_set_gdal(ERR_TRANSIENT, ERR_SCRATCH, NULL,
                                "scratch space is full: the operation's output %s is truncated",
                                f->path);
        return err_set_gdal(ERR_INTERNAL, ERR_OUTPUT, NULL,
                            "the operation's output %s is not a readable GeoTIFF", f->path);
    }
    return 0;
}

static void utc_now(char *buf, size_t cap)
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int publish(const task *t, const op_result *files, result *r)
{
    int rc = -1;
    dest d = {0};
    s3_capture cap;
    bool capturing = false;
    unsigned char *buf = NULL;
    char *item_text = NULL, *manifest_text = NULL;
    cJSON *item = NULL, *manifest = NULL;
    published pub[MAX_WRITTEN] = {0};
    bool wrote[MAX_WRITTEN] = {0};
    size_t n_pub = 0;
    char checksums[OP_MAX_OUTPUTS][HASH_MULTIHASH_LEN];
    char etags[OP_MAX_OUTPUTS][128];
    unsigned long long sizes[OP_MAX_OUTPUTS];
    stac_file sf[OP_MAX_OUTPUTS];
    char created[32];
    pub_steps st = {0};
    double t0 = mono_ms();

    if (preflight(files) < 0 || dest_init(t, &d) < 0) goto cleanup;
    st.preflight = mono_ms() - t0;
    if (!d.local) {
        capture_begin(&cap);
        capturing = true;
        d.cap = &cap;
        /* A stale stat of an earlier attempt must not shadow what we write. */
        VSICurlPartialClearCache(d.base_path);
    } else if (mkdir_p(d.base_path) < 0) {
        goto cleanup;
    }
    if (!(buf = mem_malloc(CHUNK))) {
        err_oom();
        goto cleanup;
    }

    for (size_t i = 0; i < files->n_files; i++) {
        const op_output *f = &files->files[i];
        if (upload_file(&d, t, f, buf, &pub[n_pub], &wrote[n_pub], checksums[i], &sizes[i], &st) <
            0) {
            n_pub++;
            goto cleanup;
        }
        n_pub++;
        etags[i][0] = '\0';
        t0 = mono_ms();
        if (!d.local &&
            read_etag(&d, pub[i].path, pub[i].uri, sizes[i], etags[i], sizeof etags[i]) < 0)
            goto cleanup;
        st.etag += mono_ms() - t0;
        log_kv(LOG_INFO, "uploaded", "uri", pub[i].uri, "checksum", checksums[i],
               (const char *)NULL);
        sf[i] = (stac_file){.name = f->name,
                            .href = pub[i].uri,
                            .media_type = f->media_type,
                            .role = f->role ? f->role : "data",
                            .checksum = checksums[i],
                            .size = sizes[i],
                            .etag = etags[i][0] ? etags[i] : NULL,
                            .local_path = f->path,
                            .is_cog = f->is_cog};
    }

    utc_now(created, sizeof created);
    t0 = mono_ms();
    char *item_uri = mem_printf("%s/%s", d.base_uri, TERRANE_OBJ_STAC);
    if (!item_uri) {
        err_oom();
        goto cleanup;
    }
    int built = stac_item_build(t, sf, files->n_files, item_uri, created, &item);
    if (built == 0) built = manifest_build(t, sf, files->n_files, item_uri, created, &manifest);
    mem_free(item_uri);
    if (built < 0) goto cleanup;
    item_text = cJSON_Print(item);
    manifest_text = cJSON_Print(manifest);
    if (!item_text || !manifest_text) {
        err_oom();
        goto cleanup;
    }
    st.stac = mono_ms() - t0;
    t0 = mono_ms();
    if (upload_buffer(&d, t, TERRANE_OBJ_STAC, STAC_MEDIA_ITEM, item_text, &pub[n_pub],
                      &wrote[n_pub]) < 0) {
        n_pub++;
        goto cleanup;
    }
    n_pub++;
    st.item = mono_ms() - t0;
    t0 = mono_ms();
    /* Last: its presence is what marks the data version complete. */
    if (upload_buffer(&d, t, TERRANE_OBJ_MANIFEST, "application/json", manifest_text, &pub[n_pub],
                      &wrote[n_pub]) < 0) {
        n_pub++;
        goto cleanup;
    }
    n_pub++;

    st.manifest = mono_ms() - t0;
    log_steps(&st);

    snprintf(r->output_uri, sizeof r->output_uri, "%s", pub[0].uri);
    snprintf(r->checksum, sizeof r->checksum, "%s", checksums[0]);
    r->size_bytes = sizes[0];
    snprintf(r->media_type, sizeof r->media_type, "%s", files->files[0].media_type);
    snprintf(r->stac_item, sizeof r->stac_item, "%s", pub[n_pub - 2].uri);
    snprintf(r->manifest, sizeof r->manifest, "%s", pub[n_pub - 1].uri);
    rc = 0;

cleanup:
    if (rc < 0) {
        /* Newest first: the manifest (if it got written) goes before the
         * files it describes. */
        for (size_t i = n_pub; i-- > 0;)
            if (wrote[i] && pub[i].path) remove_object(&d, pub[i].path, pub[i].uri);
        if (d.local && d.base_path) rmdir(d.base_path); /* only if empty */
        if (n_pub > 0)
            log_kv(LOG_INFO, "publication rolled back", "prefix", d.base_uri ? d.base_uri : "",
                   (const char *)NULL);
    }
    if (!d.local && d.base_path) VSICurlPartialClearCache(d.base_path);
    if (capturing) capture_end(&cap);
    for (size_t i = 0; i < MAX_WRITTEN; i++) {
        mem_free(pub[i].uri);
        mem_free(pub[i].path);
    }
    cJSON_free(item_text);
    cJSON_free(manifest_text);
    cJSON_Delete(item);
    cJSON_Delete(manifest);
    mem_free(buf);
    dest_free(&d);
    return rc;
}

/* ---- one file at a time (publish.h) ------------------------------------ */

struct publish_dest {
    dest d;
    s3_capture cap;
    unsigned char *buf;
};

int publish_dest_open(const task *t, publish_dest **out)
{
    publish_dest *pd = mem_calloc(1, sizeof *pd);
    *out = NULL;
    if (!pd || !(pd->buf = mem_malloc(CHUNK))) {
        mem_free(pd);
        return err_oom();
    }
    if (dest_init(t, &pd->d) < 0 || (pd->d.local && mkdir_p(pd->d.base_path) < 0)) {
        publish_dest_close(pd);
        return -1;
    }
    if (!pd->d.local) {
        capture_begin(&pd->cap);
        pd->d.cap = &pd->cap;
        VSICurlPartialClearCache(pd->d.base_path);
    }
    *out = pd;
    return 0;
}

const char *publish_dest_uri(const publish_dest *pd)
{
    return pd->d.base_uri;
}

/* name's directory part as a dest of its own, so sinks and links (which
 * name temporaries after the file) work unchanged for nested names. */
static int sub_dest(const publish_dest *pd, const char *name, dest *sub, const char **base)
{
    const char *slash = strrchr(name, '/');
    *sub = pd->d;
    sub->base_uri = sub->base_path = NULL;
    *base = slash ? slash + 1 : name;
    int n = slash ? (int)(slash - name) : 0;
    sub->base_uri = mem_printf("%s%s%.*s", pd->d.base_uri, n ? "/" : "", n, name);
    sub->base_path = mem_printf("%s%s%.*s", pd->d.base_path, n ? "/" : "", n, name);
    if (!sub->base_uri || !sub->base_path) return err_oom();
    return sub->local && n ? mkdir_p(sub->base_path) : 0;
}

int publish_dest_put_file(publish_dest *pd, const task *t, const char *path, const char *name,
                          const char *media_type, char checksum[HASH_MULTIHASH_LEN],
                          unsigned long long *size, char *etag, size_t etag_cap)
{
    dest sub;
    const char *base;
    published pub = {0};
    pub_steps st = {0}; /* per-file step times are not reported for container outputs */
    bool wrote = false;
    int rc = -1;
    etag[0] = '\0';
    if (sub_dest(pd, name, &sub, &base) < 0) goto cleanup;
    op_output f = {.path = (char *)path, .name = base, .media_type = media_type};
    if (upload_file(&sub, t, &f, pd->buf, &pub, &wrote, checksum, size, &st) < 0) goto cleanup;
    if (!sub.local && read_etag(&sub, pub.path, pub.uri, *size, etag, etag_cap) < 0) goto cleanup;
    rc = 0;
cleanup:
    if (rc < 0 && wrote && pub.path) remove_object(&sub, pub.path, pub.uri);
    mem_free(pub.uri);
    mem_free(pub.path);
    mem_free(sub.base_uri);
    mem_free(sub.base_path);
    return rc;
}

void publish_dest_remove(publish_dest *pd, const char *name)
{
    char *path = mem_printf("%s/%s", pd->d.base_path, name);
    char *uri = mem_printf("%s/%s", pd->d.base_uri, name);
    if (path && uri) remove_object(&pd->d, path, uri);
    mem_free(path);
    mem_free(uri);
}

void publish_dest_close(publish_dest *pd)
{
    if (!pd) return;
    if (pd->d.cap) {
        VSICurlPartialClearCache(pd->d.base_path);
        capture_end(&pd->cap);
    }
    dest_free(&pd->d);
    mem_free(pd->buf);
    mem_free(pd);
}

/* ---- lookup ------------------------------------------------------------ */

/* Reads the whole (small) object at path into a new buffer. *found is false
 * when it does not exist. */
static int read_small(const dest *d, const char *path, const char *uri, size_t cap, char **out,
                      size_t *len, bool *found)
{
    int rc = -1;
    VSIStatBufL st;
    VSILFILE *f = NULL;
    char *buf = NULL;
    *out = NULL;
    *found = false;

    if (d->local) {
        struct stat lst;
        if (stat(path, &lst) != 0) {
            if (errno == ENOENT || errno == ENOTDIR) return 0;
            return local_error(errno, "stat", path);
        }
    } else {
        capture_reset(d->cap);
        if (VSIStatExL(path, &st,
                       VSI_STAT_EXISTS_FLAG | VSI_STAT_SIZE_FLAG | VSI_STAT_SET_ERROR_FLAG) != 0) {
            if (capture_not_found(d->cap)) return 0;
            return s3_error(d->cap, "read", uri);
        }
    }
    if (!d->local) capture_reset(d->cap);
    f = VSIFOpenL(path, "rb");
    if (!f) {
        if (d->local) return local_error(errno, "open", path);
        return s3_error(d->cap, "read", uri);
    }
    buf = mem_malloc(cap + 1);
    if (!buf) {
        err_oom();
        goto cleanup;
    }
    size_t n = VSIFReadL(buf, 1, cap + 1, f);
    if (n == 0 && !VSIFEofL(f)) {
        if (d->local)
            local_error(EIO, "read", path);
        else
            s3_error(d->cap, "read", uri);
        goto cleanup;
    }
    if (n > cap) {
        err_set(ERR_INTERNAL, ERR_OUTPUT, NULL, "manifest %s is over %zu bytes", uri, cap);
        goto cleanup;
    }
    buf[n] = '\0';
    *out = buf;
    buf = NULL;
    *len = n;
    *found = true;
    rc = 0;
cleanup:
    if (f) (void)VSIFCloseL(f);
    mem_free(buf);
    return rc;
}

/* Checks that the primary object still is what the manifest describes:
 * same size, then the same ETag as recorded after the upload (one HEAD), or
 * failing that the same SHA-256, which means reading the whole object
 * (a full GET for S3: seconds per GiB; only for manifests without an ETag,
 * objects rewritten by other tools, and local outputs). */
static int verify_primary(const dest *d, const manifest_primary *p, const char *uri, bool *same,
                          const char **why)
{
    int rc = -1;
    char *path = mem_printf("%s/%s", d->base_path, p->name);
    char **md = NULL;
    char sum[HASH_MULTIHASH_LEN];
    unsigned long long size = 0;
    VSIStatBufL st;
    *same = false;
    if (!path) return err_oom();

    if (!d->local) {
        VSICurlPartialClearCache(path);
        capture_reset(d->cap);
    }
    if (VSIStatExL(path, &st,
                   VSI_STAT_EXISTS_FLAG | VSI_STAT_SIZE_FLAG | VSI_STAT_SET_ERROR_FLAG) != 0) {
        if (!d->local && !capture_not_found(d->cap)) {
            s3_error(d->cap, "read", uri);
            goto cleanup;
        }
        *why = "the manifest's primary object is missing";
        rc = 0;
        goto cleanup;
    }
    if ((unsigned long long)st.st_size != p->size) {
        *why = "the primary object's size differs from the manifest";
        rc = 0;
        goto cleanup;
    }
    if (!d->local && p->etag[0]) {
        capture_reset(d->cap);
        md = VSIGetFileMetadata(path, "HEADERS", NULL);
        const char *etag = CSLFetchNameValue(md, "ETag");
        if (etag && !strcmp(etag, p->etag)) {
            *same = true;
            rc = 0;
            goto cleanup;
        }
        log_kv(LOG_INFO, "cache check: ETag changed, re-hashing the object", "uri", uri,
               (const char *)NULL);
    }
    if (!d->local) capture_reset(d->cap);
    if (hash_path(path, uri, sum, &size) < 0) {
        if (!d->local) s3_error(d->cap, "read", uri);
        goto cleanup;
    }
    *same = size == p->size && !strcmp(sum, p->checksum);
    if (!*same) *why = "the primary object's checksum differs from the manifest";
    rc = 0;
cleanup:
    CSLDestroy(md);
    mem_free(path);
    return rc;
}

int publish_lookup(const task *t, result *r, bool *hit)
{
    int rc = -1;
    dest d = {0};
    s3_capture cap;
    bool capturing = false, found = false, same = false;
    char *mpath = NULL, *muri = NULL, *text = NULL, *primary_uri = NULL;
    size_t len = 0;
    const char *why = NULL;
    manifest_primary *p = NULL;
    *hit = false;

    if (dest_init(t, &d) < 0) goto cleanup;
    if (!d.local) {
        capture_begin(&cap);
        capturing = true;
        d.cap = &cap;
        /* GDAL caches /vsis3/ stat results and directory listings for the
         * process; a lookup must see the bucket as it is now. */
        VSICurlPartialClearCache(d.base_path);
    }
    mpath = mem_printf("%s/%s", d.base_path, TERRANE_OBJ_MANIFEST);
    muri = mem_printf("%s/%s", d.base_uri, TERRANE_OBJ_MANIFEST);
    p = mem_calloc(1, sizeof *p);
    if (!mpath || !muri || !p) {
        err_oom();
        goto cleanup;
    }
    if (read_small(&d, mpath, muri, MANIFEST_MAX_BYTES, &text, &len, &found) < 0) {
        if (strcmp(err_get_code(), ERR_OUTPUT) != 0) goto cleanup;
        why = "the manifest is unusable";
        goto miss;
    }
    if (!found) {
        log_kv(LOG_INFO, "cache miss: no manifest", "uri", muri, (const char *)NULL);
        rc = 0;
        goto cleanup;
    }
    if (manifest_parse(t, text, len, muri, p) < 0) {
        why = "the manifest is unusable";
        goto miss;
    }
    primary_uri = mem_printf("%s/%s", d.base_uri, p->name);
    if (!primary_uri) {
        err_oom();
        goto cleanup;
    }
    if (strchr(p->name, '/') || strcmp(primary_uri, p->uri) != 0) {
        why = "the manifest's primary file is not under this prefix";
        goto miss;
    }
    if (verify_primary(&d, p, p->uri, &same, &why) < 0) goto cleanup;
    if (!same) goto miss;

    snprintf(r->output_uri, sizeof r->output_uri, "%s", p->uri);
    snprintf(r->checksum, sizeof r->checksum, "%s", p->checksum);
    r->size_bytes = p->size;
    snprintf(r->media_type, sizeof r->media_type, "%s", p->media_type);
    snprintf(r->stac_item, sizeof r->stac_item, "%s", p->stac_item);
    snprintf(r->manifest, sizeof r->manifest, "%s", muri);
    *hit = true;
    rc = 0;
    goto cleanup;
miss:
    /* Not an error: the task recomputes and overwrites. */
    log_kv(LOG_WARN, "cache miss: ignoring an earlier publication", "uri", muri, "reason", why,
           "detail", err_is_set() ? err_get_message() : "", (const char *)NULL);
    err_clear();
    rc = 0;
cleanup:
    if (capturing) capture_end(&cap);
    mem_free(p);
    mem_free(primary_uri);
    mem_free(text);
    mem_free(mpath);
    mem_free(muri);
    dest_free(&d);
    return rc;
}
