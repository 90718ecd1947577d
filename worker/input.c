/*
 * input.c - the input allowlists and opening inputs with GDAL.
 *
 * Three layers keep a hostile task from reading what it should not:
 *  1. URI syntax and allowlists (schemes, buckets, hosts), checked without I/O
 *     so `terrane-worker validate` catches them;
 *  2. at open time, the https host's addresses are resolved and link-local
 *     and metadata addresses refused (a DNS name can point anywhere), and
 *     https inputs are read through https.c, not GDAL's /vsicurl/, which
 *     would follow redirects anywhere; every redirect is checked against
 *     layer 1 and every connection against the forbidden addresses;
 *  3. GDAL opens the dataset with a driver allowlist, so a file that is
 *     really a VRT, a raw-binary header or a WMS description is refused even
 *     if it is named .tif.
 * GDAL's /vsi prefixes are never accepted from a task: "/vsicurl/..." as a
 * local path would otherwise be a network read.
 */
#include "input.h"

#include "err.h"
#include "https.h"
#include "log.h"
#include "mem.h"
#include "srccheck.h"
#include "terrane_proto.h"

#include <arpa/inet.h>
#include <cpl_error.h>
#include <cpl_vsi.h>
#include <cpl_vsi_error.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

static const char *const raster_drivers[] = {"GTiff",       "COG",  "PNG", "JPEG",
                                             "JP2OpenJPEG", "GPKG", "HFA", NULL};
static const char *const vector_drivers[] = {"ESRI Shapefile", "GPKG",       "GeoJSON",
                                             "GeoJSONSeq",     "FlatGeobuf", NULL};

/* Names that reach instance metadata services on the clouds we run on. */
static const char *const metadata_hosts[] = {"169.254.169.254",
                                             "169.254.170.2",
                                             "169.254.170.23",
                                             "fd00:ec2::254",
                                             "fd00:ec2::23",
                                             "metadata",
                                             "metadata.google.internal",
                                             "instance-data",
                                             "instance-data.ec2.internal",
                                             NULL};

static bool local_allowed(void)
{
    const char *v = getenv(TERRANE_ENV_ALLOW_LOCAL);
    return v && !strcmp(v, "1");
}

/* True when item is in the comma-separated list env (or the list is "*"). */
static bool in_list(const char *env, const char *dflt, const char *item, size_t item_len)
{
    const char *list = getenv(env);
    if (!list) list = dflt;
    while (*list) {
        while (*list == ' ' || *list == ',')
            list++;
        const char *end = list;
        while (*end && *end != ',')
            end++;
        size_t n = (size_t)(end - list);
        while (n && list[n - 1] == ' ')
            n--;
        if ((n == 1 && list[0] == '*') || (n == item_len && !strncasecmp(list, item, item_len)))
            return true;
        list = end;
    }
    return false;
}

static bool is_bucket_name(const char *b, size_t n)
{
    if (n < 3 || n > 63) return false;
    for (size_t i = 0; i < n; i++) {
        char c = b[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.'))
            return false;
    }
    return true;
}

static bool has_dotdot_segment(const char *p)
{
    for (const char *s = p; (s = strstr(s, "..")) != NULL; s += 2) {
        bool start = s == p || s[-1] == '/';
        bool end = s[2] == '\0' || s[2] == '/';
        if (start && end) return true;
    }
    return false;
}

static bool has_control_chars(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) return true;
    return false;
}

static bool is_metadata_host(const char *host, size_t n)
{
    for (size_t i = 0; metadata_hosts[i]; i++)
        if (strlen(metadata_hosts[i]) == n && !strncasecmp(metadata_hosts[i], host, n)) return true;
    return false;
}

bool input_addr_forbidden(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        uint32_t a = ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr);
        return (a >> 16) == 0xA9FE /* 169.254/16 link-local */ || a == 0;
    }
    if (sa->sa_family == AF_INET6) {
        const unsigned char *b = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
        static const unsigned char ec2[16] = {0xfd, 0, 0, 0, 0, 0, 0xec, 2};
        if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) return true; /* fe80::/10 */
        if (!memcmp(b, ec2, 8)) return true;                    /* fd00:ec2::/64 */
        /* IPv4-mapped link-local */
        static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (!memcmp(b, mapped, 12) && b[12] == 169 && b[13] == 254) return true;
    }
    return false;
}

/* Splits https://host[:port]/path; host excludes brackets of IPv6 literals. */
static int https_host(const char *uri, const char *field, const char **host, size_t *host_len)
{
    const char *h = uri + strlen("https://");
    const char *end = h + strcspn(h, "/?#");
    if (memchr(h, '@', (size_t)(end - h)))
        return err_set(ERR_BAD_INPUT, ERR_INPUT_NOT_ALLOWED, field,
                       "%s: user information in URLs is not allowed", field);
    if (*h == '[') {
        const char *close = memchr(h, ']', (size_t)(end - h));
        if (!close)
            return err_set(ERR_BAD_INPUT, ERR_INPUT_NOT_ALLOWED, field, "%s: malformed host",
                           field);
        *host = h + 1;
        *host_len = (size_t)(close - h - 1);
    } else {
        const char *colon = memchr(h, ':', (size_t)(end - h));
        *host = h;
        *host_len = (size_t)((colon ? colon : end) - h);
    }
    if (*host_len == 0 || *end != '/' || !end[1])
        return err_set(ERR_BAD_INPUT, ERR_INPUT_NOT_ALLOWED, field,
                       "%s: expected https://host/path", field);
    return 0;
}

int input_check_uri(const char *uri, const char *field)
{
    if (has_control_chars(uri))
        return err_set(ERR_BAD_INPUT, ERR_INPUT_NOT_ALLOWED, field,
                       "%s: control characters are not allowed", field);
    if (!strncmp(uri, "s3://", 5)) {
        const char *b = uri + 5, *slash = strchr(b, '/');
        size_t n = slash ? (size_t)(slash - b) : strlen(b);
        if (!is_bucket_name(b, n) || !slash || !slash[1])
            return err_set(ERR_BAD_INPUT, ERR_INPUT_NOT_ALLOWED, field,
                           "%s: expected s3://bucket/key with a valid bucket name", field);
        if (has_dotdot_segment(slash))
            return err_set(ERR_BAD_INPUT, ERR_INPUT_NOT_ALLOWED, field,
                           "%s: '..' segments are not allowed", field);
        if (!in_list(TERRANE_ENV_ALLOWED_BUCKETS, "*", b, n))
            return err_set(ERR_BAD_INPUT, ERR_INPUT_NOT_ALLOWED, field,
                           "%s: bucket \"%.*s\" is not in the allowed buckets (%s)", field, (int)n,
                           b, TERRANE_ENV_ALLOWED_BUCKETS);
        return 0;
    }
    if (!strncmp(uri, "https://", 8)) {
        const char *host;
        size_t n;
        if (https_host(uri, field, &host, &n) < 0) return -1;
        if (is_metadata_host(host, n) || (n >= 8 && !strncmp(host, "169.254.", 8)) ||
            (n >= 4 && !strncasecmp(host, "fe80", 4)))
            return err_set(ERR_BAD_INPUT, ERR_INPUT_NOT_ALLOWED, field,
                           "%s: link-local and metadata addresses are never allowed", field);
        if (has_dotdot_segment(host + n))
            return err_set(ERR_BAD_INPUT, ERR_INPUT_NOT_ALLOWED, field,
                           "%s: '..' segments are not allowed", field);
        if (!in_list(TERRANE_ENV_ALLOWED_HOSTS, "", host, n))
            return err_set(ERR_BAD_INPUT, ERR_INPUT_NOT_ALLOWED, field,
                           "%s: host \"%.*s\" is not in the allowed hosts (%s)", field, (int)n,
                           host, TERRANE_ENV_ALLOWED_HOSTS);
        return 0;
    }
    if (uri[0] == '/') {
        if (!local_allowed())
            return err_set(ERR_BAD_INPUT, ERR_INPUT_NOT_ALLOWED, field,
                           "%s: local paths are not allowed (only s3:// and https:// URIs; set "
                           "%s=1 for local runs)",
                           field, TERRANE_ENV_ALLOW_LOCAL);
        if (!strncmp(uri, "/vsi", 4) || !strncmp(uri, "/proc/", 6) || !strncmp(uri, "/dev/", 5) ||
            !strncmp(uri, "/sys/", 5))
            return err_set(ERR_BAD_INPUT, ERR_INPUT_NOT_ALLOWED, field,
                           "%s: this path is never allowed", field);
        return 0;
    }
    if (!strncmp(uri, "http://", 7))
        return err_set(ERR_BAD_INPUT, ERR_INPUT_NOT_ALLOWED, field,
                       "%s: plain http is not allowed, use https://", field);
    return err_set(ERR_BAD_INPUT, ERR_INPUT_NOT_ALLOWED, field,
                   "%s: unsupported URI \"%.80s\" (expected s3://bucket/key or https://host/path)",
                   field, uri);
}

int input_check_output_uri(const char *uri, const char *field)
{
    if (has_control_chars(uri))
        return err_set(ERR_BAD_INPUT, ERR_INVALID_TASK, field,
                       "%s: control characters are not allowed", field);
    if (!strncmp(uri, "s3://", 5)) {
        const char *b = uri + 5, *slash = strchr(b, '/');
        size_t n = slash ? (size_t)(slash - b) : strlen(b);
        if (!is_bucket_name(b, n))
            return err_set(ERR_BAD_INPUT, ERR_INVALID_TASK, field,
                           "%s: expected s3://bucket[/prefix] with a valid bucket name", field);
        if (slash && has_dotdot_segment(slash))
            return err_set(ERR_BAD_INPUT, ERR_INVALID_TASK, field,
                           "%s: '..' segments are not allowed", field);
        return 0;
    }
    if (uri[0] == '/') {
        if (!local_allowed())
            return err_set(ERR_BAD_INPUT, ERR_INVALID_TASK, field,
                           "%s: local output directories are not allowed (set %s=1 for local "
                           "runs)",
                           field, TERRANE_ENV_ALLOW_LOCAL);
        if (!strncmp(uri, "/vsi", 4) || has_dotdot_segment(uri))
            return err_set(ERR_BAD_INPUT, ERR_INVALID_TASK, field, "%s: this path is never allowed",
                           field);
        return 0;
    }
    return err_set(ERR_BAD_INPUT, ERR_INVALID_TASK, field,
                   "%s: expected s3://bucket[/prefix] or an absolute directory", field);
}

char *input_gdal_path(const char *uri)
{
    if (!strncmp(uri, "s3://", 5)) return mem_printf("/vsis3/%s", uri + 5);
    if (!strncmp(uri, "https://", 8)) return https_gdal_path(uri);
    return mem_strdup(uri);
}

/* Resolves an https input's host and refuses forbidden addresses. */
static int check_resolved(const char *uri, const char *field)
{
    const char *host;
    size_t n;
    char name[256];
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    if (strncmp(uri, "https://", 8) != 0) return 0;
    if (https_host(uri, field, &host, &n) < 0) return -1;
    if (n >= sizeof name)
        return err_set(ERR_BAD_INPUT, ERR_INPUT_NOT_ALLOWED, field, "%s: host name too long",
                       field);
    memcpy(name, host, n);
    name[n] = '\0';
    int rc = getaddrinfo(name, NULL, &hints, &res);
    if (rc != 0)
        return err_set(rc == EAI_AGAIN ? ERR_TRANSIENT : ERR_BAD_INPUT, ERR_INPUT_UNREADABLE, field,
                       "%s: cannot resolve %s: %s", field, name, gai_strerror(rc));
    int bad_addr = 0;
    for (struct addrinfo *a = res; a; a = a->ai_next)
        if (input_addr_forbidden(a->ai_addr)) bad_addr = 1;
    freeaddrinfo(res);
    if (bad_addr)
        return err_set(ERR_BAD_INPUT, ERR_INPUT_NOT_ALLOWED, field,
                       "%s: %s resolves to a link-local or metadata address", field, name);
    return 0;
}

int input_check_reachable(const char *uri, const char *field)
{
    if (input_check_uri(uri, field) < 0) return -1;
    return check_resolved(uri, field);
}

/* The S3 error code when GDAL's error says the credentials were refused:
 * GDAL 3.6 maps InvalidAccessKeyId to the generic CPLE_AWSError, so S3's
 * <Message> texts are recognised too. NULL otherwise. */
static const char *credentials_refused(int no, const char *msg)
{
    if (no == CPLE_AWSInvalidCredentials || strstr(msg, "InvalidAccessKeyId") ||
        strstr(msg, "Access Key Id you provided does not exist"))
        return "InvalidAccessKeyId";
    if (no == CPLE_AWSSignatureDoesNotMatch || strstr(msg, "SignatureDoesNotMatch") ||
        strstr(msg, "signature we calculated does not match"))
        return "SignatureDoesNotMatch";
    return NULL;
}

/* Classifies a failed open: missing object, access, server trouble, or a
 * file GDAL cannot read with the allowed drivers. */
static int open_failed(const char *uri, const char *path, const char *field, const char *what)
{
    VSIStatBufL st;
    char gdal_msg[512];
    snprintf(gdal_msg, sizeof gdal_msg, "%s", CPLGetLastErrorMsg());
    /* A key pair caught mid-rotation (creds.c sets the three keys one after
     * another) or an expired one is refused with these; the next attempt
     * signs with a consistent pair, so they are retried, as cog_gdal_fail
     * retries them on reads. The stat below cannot tell: a HEAD's 403 has
     * no body to name the reason. */
    const char *refused = credentials_refused(CPLGetLastErrorNo(), gdal_msg);
    if (refused)
        return err_set(ERR_TRANSIENT, ERR_CREDENTIALS, field,
                       "%s: the credentials were refused reading %s (%s): %s", field, uri, refused,
                       gdal_msg);
    VSIErrorReset();
    if (VSIStatExL(path, &st, VSI_STAT_EXISTS_FLAG | VSI_STAT_SET_ERROR_FLAG) != 0) {
        int e = VSIGetLastErrorNo();
        const char *vmsg = VSIGetLastErrorMsg();
        if (e == VSIE_HttpError || e == VSIE_AWSError) {
            return err_set(ERR_TRANSIENT, ERR_INPUT_UNREADABLE, field, "%s: cannot read %s: %s",
                           field, uri, vmsg && vmsg[0] ? vmsg : "request failed");
        }
        if (e == VSIE_AWSInvalidCredentials || e == VSIE_AWSSignatureDoesNotMatch)
            return err_set(ERR_TRANSIENT, ERR_CREDENTIALS, field,
                           "%s: the credentials were refused reading %s: %s", field, uri, vmsg);
        if (e == VSIE_AWSAccessDenied)
            return err_set(ERR_BAD_INPUT, ERR_INPUT_UNREADABLE, field,
                           "%s: access to %s denied: %s", field, uri, vmsg);
        return err_set(ERR_BAD_INPUT, ERR_INPUT_UNREADABLE, field, "%s: %s does not exist", field,
                       uri);
    }
    return err_set(ERR_BAD_INPUT, ERR_INPUT_INVALID, field,
                   "%s: %s is not a readable %s (allowed formats: %s)%s%s", field, uri, what,
                   what[0] == 'r' ? "GeoTIFF/COG, PNG, JPEG, JPEG 2000, GeoPackage, Erdas Imagine"
                                  : "Shapefile, GeoPackage, GeoJSON, FlatGeobuf",
                   gdal_msg[0] ? ": " : "", gdal_msg);
}

static int open_with(const task *t, const task_input *in, unsigned flags,
                     const char *const *drivers, const char *what, GDALDatasetH *out)
{
    char field[48];
    char *path = NULL;
    int rc = -1;
    *out = NULL;
    snprintf(field, sizeof field, "inputs[%d].uri", task_input_index(t, in));
    if (input_check_uri(in->uri, field) < 0 || check_resolved(in->uri, field) < 0) return -1;
    if (!strncmp(in->uri, "https://", 8) &&
        (https_install() < 0 || https_probe(in->uri, field) < 0))
        return -1;
    if (srccheck_input(t, in) < 0) return -1; /* the observed version, before reading */
    path = input_gdal_path(in->uri);
    if (!path) return err_oom();
    CPLErrorReset();
    *out = GDALOpenEx(path, flags | GDAL_OF_READONLY | GDAL_OF_VERBOSE_ERROR, drivers, NULL, NULL);
    if (!*out) {
        open_failed(in->uri, path, field, what);
        goto cleanup;
    }
    log_kv(LOG_DEBUG, "input opened", "input", in->name, "uri", in->uri, "driver",
           GDALGetDriverShortName(GDALGetDatasetDriver(*out)), (const char *)NULL);
    rc = 0;
cleanup:
    mem_free(path);
    return rc;
}

int input_open_raster(const task *t, const task_input *in, GDALDatasetH *out)
{
    if (open_with(t, in, GDAL_OF_RASTER, raster_drivers, "raster", out) < 0) return -1;
    if (GDALGetRasterCount(*out) < 1) {
        char field[48];
        snprintf(field, sizeof field, "inputs[%d].uri", task_input_index(t, in));
        GDALClose(*out);
        *out = NULL;
        return err_set(ERR_BAD_INPUT, ERR_INPUT_INVALID, field, "%s: %s has no raster bands", field,
                       in->uri);
    }
    return 0;
}

int input_open_vector(const task *t, const task_input *in, GDALDatasetH *out)
{
    return open_with(t, in, GDAL_OF_VECTOR, vector_drivers, "vector", out);
}
