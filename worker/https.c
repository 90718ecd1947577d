/*
 * https.c - reading https inputs through the worker's own libcurl (see
 * https.h for why GDAL's /vsicurl/ is not used).
 *
 * A GDAL file system plugin (VSIInstallPluginHandler, GDAL >= 3.0): open
 * finds the size with a one-byte ranged GET, read does one ranged GET per
 * call, and GDAL puts its own buffering and block cache in front
 * (nBufferSize, nCacheSize), so a COG read of a few tiles costs a few
 * requests. A server that ignores Range (200 with the whole body) still
 * works: the bytes before the offset are dropped and the transfer is cut
 * once the range is filled.
 *
 * Each open handle owns its CURL easy handle and the URL that allowed
 * redirects led to; GDAL does not share a handle between threads. Errors in
 * the callbacks are reported to GDAL (CPLError, VSIError); https_probe sets
 * the worker's error before GDAL is involved, so a refused redirect is
 * reported as InputNotAllowed with the offending Location.
 */
#include "https.h"

#include "err.h"
#include "input.h"
#include "mem.h"

#include <cpl_conv.h>
#include <cpl_error.h>
#include <cpl_string.h>
#include <cpl_vsi.h>
#include <cpl_vsi_error.h>
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#define CONNECT_TIMEOUT_S 15L
#define LOW_SPEED_TIME_S 60L /* a transfer under 1 byte/s for this long fails */
#define ERR_BODY_MAX 160

typedef enum { H_OK, H_NOT_FOUND, H_DENIED, H_NOT_ALLOWED, H_TRANSIENT, H_OTHER } hstatus;

typedef struct {
    hstatus st;
    char msg[1024];
} hres;

typedef struct {
    CURL *h;
    char *url; /* where allowed redirects led; starts as the input URI */
    uint64_t size, pos;
    bool eof;
} hfile;

/* One response being received. */
typedef struct {
    CURL *h;
    char *dst;
    size_t cap, got;
    uint64_t off, skip;
    int64_t total; /* from Content-Range, -1 when absent */
    long status;
    bool started, full, forbidden;
    char body[ERR_BODY_MAX + 1];
    size_t body_len;
} sink;

static size_t on_data(char *p, size_t size, size_t nmemb, void *ud)
{
    sink *s = ud;
    size_t n = size * nmemb, all = n;
    if (!s->started) {
        s->started = true;
        curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &s->status);
        if (s->status == 200) s->skip = s->off; /* Range ignored: the body starts at 0 */
    }
    if (s->status != 200 && s->status != 206) {
        size_t k = ERR_BODY_MAX - s->body_len < n ? ERR_BODY_MAX - s->body_len : n;
        memcpy(s->body + s->body_len, p, k);
        s->body_len += k;
        return all;
    }
    if (s->skip) {
        size_t k = (uint64_t)n < s->skip ? n : (size_t)s->skip;
        p += k;
        n -= k;
        s->skip -= k;
    }
    size_t room = s->cap - s->got, k = n < room ? n : room;
    memcpy(s->dst + s->got, p, k);
    s->got += k;
    if (s->got == s->cap) {
        s->full = true;
        /* Cut the transfer when the server sends more than was asked. */
        if (k < n || s->status == 200) return 0;
    }
    return all;
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *ud)
{
    sink *s = ud;
    size_t n = size * nmemb;
    static const char cr[] = "content-range:";
    if (n > sizeof cr && !strncasecmp(p, cr, sizeof cr - 1)) {
        /* "bytes a-b/total" or "bytes * /total" (416) */
        const char *slash = memchr(p, '/', n);
        if (slash && slash + 1 < p + n && slash[1] >= '0' && slash[1] <= '9')
            s->total = (int64_t)strtoll(slash + 1, NULL, 10);
    }
    return n;
}

/* Refuses connections to link-local and metadata addresses whatever name
 * led there (DNS rebinding included): libcurl asks us for every socket. */
static curl_socket_t on_open_socket(void *ud, curlsocktype purpose, struct curl_sockaddr *a)
{
    sink *s = ud;
    (void)purpose;
    if (input_addr_forbidden(&a->addr)) {
        s->forbidden = true;
        return CURL_SOCKET_BAD;
    }
    return socket(a->family, a->socktype, a->protocol);
}

static long config_long(const char *name, long dflt)
{
    const char *v = CPLGetConfigOption(name, NULL);
    return v && *v ? strtol(v, NULL, 10) : dflt;
}

static void pause_seconds(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* A Location may be followed only if it is an input URI the task itself
 * could have named. */
static bool redirect_allowed(const char *loc, char *why, size_t cap)
{
    if (strncmp(loc, "https://", 8) != 0) {
        snprintf(why, cap, "only https:// redirects are followed");
        return false;
    }
    if (input_check_uri(loc, "Location") < 0) {
        snprintf(why, cap, "%s", err_get_message());
        err_clear();
        return false;
    }
    return true;
}

static void body_excerpt(sink *s)
{
    for (size_t i = 0; i < s->body_len; i++)
        if ((unsigned char)s->body[i] < 0x20 || (unsigned char)s->body[i] >= 0x7f) s->body[i] = ' ';
    s->body[s->body_len] = '\0';
}

/* GETs [off, off+len) of f into dst; *got bytes arrived (fewer at the end
 * of the file). Sets f->size when the response says it. */
static int fetch(hfile *f, uint64_t off, size_t len, char *dst, size_t *got, hres *r)
{
    long retries = config_long("GDAL_HTTP_MAX_RETRY", 3);
    const char *d = CPLGetConfigOption("GDAL_HTTP_RETRY_DELAY", NULL);
    double delay = d && *d ? atof(d) : 1.0;
    char range[48], errbuf[CURL_ERROR_SIZE];
    int redirects = 0;
    long attempt = 0;
    snprintf(range, sizeof range, "%" PRIu64 "-%" PRIu64, off, off + len - 1);
    for (;;) {
        sink s = {.h = f->h, .dst = dst, .cap = len, .off = off, .total = -1};
        errbuf[0] = '\0';
        curl_easy_setopt(f->h, CURLOPT_URL, f->url);
        curl_easy_setopt(f->h, CURLOPT_RANGE, range);
        curl_easy_setopt(f->h, CURLOPT_WRITEDATA, &s);
        curl_easy_setopt(f->h, CURLOPT_HEADERDATA, &s);
        curl_easy_setopt(f->h, CURLOPT_OPENSOCKETDATA, &s);
        curl_easy_setopt(f->h, CURLOPT_ERRORBUFFER, errbuf);
        CURLcode cc = curl_easy_perform(f->h);
        long status = 0;
        curl_easy_getinfo(f->h, CURLINFO_RESPONSE_CODE, &status);
        r->st = H_OK;
        r->msg[0] = '\0';
        if (s.forbidden) {
            r->st = H_NOT_ALLOWED;
            snprintf(r->msg, sizeof r->msg, "%s connects to a link-local or metadata address",
                     f->url);
            return -1;
        }
        if (cc != CURLE_OK && !(cc == CURLE_WRITE_ERROR && s.full)) {
            r->st = H_TRANSIENT;
            snprintf(r->msg, sizeof r->msg, "GET %s: %s", f->url,
                     errbuf[0] ? errbuf : curl_easy_strerror(cc));
        } else if (status >= 300 && status < 400) {
            char *loc = NULL, why[400];
            curl_easy_getinfo(f->h, CURLINFO_REDIRECT_URL, &loc);
            if (!loc) {
                r->st = H_OTHER;
                snprintf(r->msg, sizeof r->msg, "GET %s: HTTP %ld without a Location", f->url,
                         status);
                return -1;
            }
            if (++redirects > HTTPS_MAX_REDIRECTS) {
                r->st = H_NOT_ALLOWED;
                snprintf(r->msg, sizeof r->msg, "%s: more than %d redirects", f->url,
                         HTTPS_MAX_REDIRECTS);
                return -1;
            }
            if (!redirect_allowed(loc, why, sizeof why)) {
                r->st = H_NOT_ALLOWED;
                snprintf(r->msg, sizeof r->msg,
                         "%.300s redirects to %.200s, which is not allowed: %s", f->url, loc, why);
                return -1;
            }
            char *next = mem_strdup(loc);
            if (!next) {
                r->st = H_OTHER;
                snprintf(r->msg, sizeof r->msg, "out of memory");
                return -1;
            }
            mem_free(f->url);
            f->url = next;
            continue;
        } else if (status == 200 || status == 206) {
            curl_off_t cl = -1;
            if (s.total >= 0) {
                f->size = (uint64_t)s.total;
            } else if (status == 200 &&
                       curl_easy_getinfo(f->h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl) ==
                           CURLE_OK &&
                       cl >= 0) {
                f->size = (uint64_t)cl;
            }
            *got = s.got;
            return 0;
        } else if (status == 416 && s.total >= 0) { /* an empty file, or off past its end */
            f->size = (uint64_t)s.total;
            *got = 0;
            return 0;
        } else {
            body_excerpt(&s);
            r->st = status >= 500 || status == 429   ? H_TRANSIENT
                    : status == 404 || status == 410 ? H_NOT_FOUND
                    : status == 401 || status == 403 ? H_DENIED
                                                     : H_OTHER;
            snprintf(r->msg, sizeof r->msg, "GET %s: HTTP %ld%s%s%s", f->url, status,
                     s.body_len ? " (" : "", s.body, s.body_len ? ")" : "");
        }
        if (r->st != H_TRANSIENT || attempt++ >= retries) return -1;
        pause_seconds(delay);
    }
}

static void hfile_free(hfile *f)
{
    if (!f) return;
    if (f->h) curl_easy_cleanup(f->h);
    mem_free(f->url);
    mem_free(f);
}

static hfile *hfile_new(const char *uri, hres *r)
{
    hfile *f = mem_calloc(1, sizeof *f);
    if (!f || !(f->url = mem_strdup(uri)) || !(f->h = curl_easy_init())) {
        hfile_free(f);
        r->st = H_OTHER;
        snprintf(r->msg, sizeof r->msg, "out of memory");
        return NULL;
    }
    CURL *h = f->h;
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
#else
    curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long)CURLPROTO_HTTPS);
#endif
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, LOW_SPEED_TIME_S);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "terrane-worker/" TERRANE_VERSION);
    const char *ca = CPLGetConfigOption("CURL_CA_BUNDLE", NULL);
    if (!ca) ca = CPLGetConfigOption("SSL_CERT_FILE", NULL);
    if (ca && *ca) curl_easy_setopt(h, CURLOPT_CAINFO, ca);
    return f;
}

/* Opens uri and learns its size. */
static hfile *hfile_open(const char *uri, hres *r)
{
    char byte;
    size_t got = 0;
    hfile *f = hfile_new(uri, r);
    if (!f) return NULL;
    f->size = UINT64_MAX;
    if (fetch(f, 0, 1, &byte, &got, r) < 0) goto fail;
    if (f->size == UINT64_MAX) {
        r->st = H_OTHER;
        snprintf(r->msg, sizeof r->msg,
                 "GET %s: the size is unknown (no Content-Range or Content-Length)", f->url);
        goto fail;
    }
    return f;
fail:
    hfile_free(f);
    return NULL;
}

/* GDAL hands the callbacks the path without HTTPS_VSI_PREFIX. */
static const char *uri_of(const char *path)
{
    return strncmp(path, "https://", 8) ? NULL : path;
}

static void report(const hres *r, bool vsi_error)
{
    if (vsi_error)
        VSIError(r->st == H_TRANSIENT   ? VSIE_HttpError
                 : r->st == H_NOT_FOUND ? VSIE_FileError
                                        : VSIE_AWSAccessDenied,
                 "%s", r->msg);
    else
        CPLError(CE_Failure, r->st == H_TRANSIENT ? CPLE_HttpResponse : CPLE_AppDefined, "%s",
                 r->msg);
}

static void *vsi_open(void *ud, const char *path, const char *access)
{
    (void)ud;
    const char *uri = uri_of(path);
    hres r;
    if (!uri || (strcmp(access, "r") && strcmp(access, "rb"))) return NULL;
    hfile *f = hfile_open(uri, &r);
    if (!f && r.st != H_NOT_FOUND) report(&r, false);
    return f;
}

static int vsi_stat(void *ud, const char *path, VSIStatBufL *st, int flags)
{
    (void)ud;
    const char *uri = uri_of(path);
    hres r;
    memset(st, 0, sizeof *st);
    if (!uri) return -1;
    hfile *f = hfile_open(uri, &r);
    if (!f) {
        if (flags & VSI_STAT_SET_ERROR_FLAG && r.st != H_NOT_FOUND) report(&r, true);
        return -1;
    }
    st->st_size = (off_t)f->size;
    st->st_mode = S_IFREG | 0444;
    hfile_free(f);
    return 0;
}

static vsi_l_offset vsi_tell(void *fp)
{
    return ((hfile *)fp)->pos;
}

static int vsi_seek(void *fp, vsi_l_offset off, int whence)
{
    hfile *f = fp;
    if (whence == SEEK_SET)
        f->pos = off;
    else if (whence == SEEK_CUR)
        f->pos += off;
    else if (whence == SEEK_END)
        f->pos = f->size + off;
    else
        return -1;
    f->eof = false;
    return 0;
}

static size_t vsi_read(void *fp, void *buf, size_t size, size_t count)
{
    hfile *f = fp;
    hres r;
    if (size == 0 || count == 0) return 0;
    uint64_t want = (uint64_t)size * count;
    if (f->pos >= f->size) {
        f->eof = true;
        return 0;
    }
    if (want > f->size - f->pos) want = f->size - f->pos;
    size_t got = 0;
    if (fetch(f, f->pos, (size_t)want, buf, &got, &r) < 0) {
        report(&r, false);
        return 0;
    }
    f->pos += got;
    if (got < (uint64_t)size * count) f->eof = true;
    return got / size;
}

static int vsi_eof(void *fp)
{
    return ((hfile *)fp)->eof;
}

static int vsi_close(void *fp)
{
    hfile_free(fp);
    return 0;
}

/* No side files: GDAL would otherwise probe .ovr, .aux.xml, .msk ... with
 * one request each. */
static char **vsi_siblings(void *ud, const char *dir)
{
    (void)ud, (void)dir;
    return CPLCalloc(1, sizeof(char *));
}

static pthread_once_t install_once = PTHREAD_ONCE_INIT;
static int install_rc = -1;

static void install(void)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return;
    VSIFilesystemPluginCallbacksStruct *cb = VSIAllocFilesystemPluginCallbacksStruct();
    if (!cb) return;
    cb->open = vsi_open;
    cb->stat = vsi_stat;
    cb->tell = vsi_tell;
    cb->seek = vsi_seek;
    cb->read = vsi_read;
    cb->eof = vsi_eof;
    cb->close = vsi_close;
    cb->sibling_files = vsi_siblings;
    cb->nBufferSize = 256 * 1024;
    cb->nCacheSize = 16 * 1024 * 1024;
    install_rc = VSIInstallPluginHandler(HTTPS_VSI_PREFIX, cb) == 0 ? 0 : -1;
    VSIFreeFilesystemPluginCallbacksStruct(cb);
}

int https_install(void)
{
    pthread_once(&install_once, install);
    return install_rc == 0 ? 0
                           : err_set(ERR_INTERNAL, ERR_INTERNAL_CODE, NULL,
                                     "cannot install the https input file system");
}

char *https_gdal_path(const char *uri)
{
    return mem_printf(HTTPS_VSI_PREFIX "%s", uri);
}

int https_probe(const char *uri, const char *field)
{
    hres r;
    hfile *f = hfile_open(uri, &r);
    if (f) {
        hfile_free(f);
        return 0;
    }
    switch (r.st) {
    case H_NOT_ALLOWED:
        return err_set(ERR_BAD_INPUT, ERR_INPUT_NOT_ALLOWED, field, "%s: %s", field, r.msg);
    case H_TRANSIENT:
        return err_set(ERR_TRANSIENT, ERR_INPUT_UNREADABLE, field, "%s: cannot read %s: %s", field,
                       uri, r.msg);
    case H_NOT_FOUND:
        return err_set(ERR_BAD_INPUT, ERR_INPUT_UNREADABLE, field, "%s: %s does not exist (%s)",
                       field, uri, r.msg);
    case H_DENIED:
        return err_set(ERR_BAD_INPUT, ERR_INPUT_UNREADABLE, field, "%s: access to %s denied: %s",
                       field, uri, r.msg);
    default:
        return err_set(ERR_BAD_INPUT, ERR_INPUT_UNREADABLE, field, "%s: cannot read %s: %s", field,
                       uri, r.msg);
    }
}
