/*
 * result.c - rendering and writing the Result document.
 *
 * The document must reach the controller whole: Kubernetes cuts termination
 * messages at 4096 bytes, and a cut JSON document is worthless. Only the
 * free-text error message can be long, so it is shortened until the whole
 * document fits.
 */
#include "result.h"

#include "err.h"
#include "mem.h"
#include "terrane_proto.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <gdal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static cJSON *build(const result *r, size_t msg_limit)
{
    cJSON *doc = cJSON_CreateObject(), *o;
    if (!doc) return NULL;
    bool ok = err_is_set() == false;
    cJSON_AddStringToObject(doc, "apiVersion", TERRANE_PROTO_API_VERSION);
    cJSON_AddStringToObject(doc, "kind", TERRANE_PROTO_KIND_RESULT);
    cJSON_AddStringToObject(doc, "status", ok ? "Succeeded" : "Failed");
    if (r->asset_key) cJSON_AddStringToObject(doc, "assetKey", r->asset_key);
    if (r->data_version) cJSON_AddStringToObject(doc, "dataVersion", r->data_version);
    if (ok && r->observation) {
        const result_observation *ob = r->observation;
        o = cJSON_AddObjectToObject(doc, "observation");
        if (o) {
            cJSON_AddStringToObject(o, "dataVersion", ob->data_version);
            cJSON_AddNumberToObject(o, "objectCount", (double)ob->object_count);
            cJSON_AddNumberToObject(o, "bytes", (double)ob->bytes);
            cJSON_AddStringToObject(o, "listing", ob->listing);
            cJSON *one = ob->single ? cJSON_AddObjectToObject(o, "object") : NULL;
            if (one) {
                if (ob->etag[0]) cJSON_AddStringToObject(one, "etag", ob->etag);
                if (ob->version_id[0]) cJSON_AddStringToObject(one, "versionId", ob->version_id);
                if (ob->last_modified[0])
                    cJSON_AddStringToObject(one, "lastModified", ob->last_modified);
                cJSON_AddNumberToObject(one, "sizeBytes", (double)ob->size_bytes);
            }
        }
    } else if (ok && r->grid) {
        /* Verbatim, not re-printed: cJSON would print a number in 15 digits
         * that reads back only within DBL_EPSILON, and the digest is of the
         * exact spelling (grid_num). Parsed once to know it is JSON. */
        cJSON *g = cJSON_Parse(r->grid);
        if (cJSON_IsObject(g)) cJSON_AddRawToObject(doc, "grid", r->grid);
        cJSON_Delete(g);
    } else if (ok) {
        o = cJSON_AddObjectToObject(doc, "output");
        if (o) {
            cJSON_AddStringToObject(o, "uri", r->output_uri);
            cJSON_AddStringToObject(o, "checksum", r->checksum);
            cJSON_AddNumberToObject(o, "sizeBytes", (double)r->size_bytes);
            cJSON_AddStringToObject(o, "mediaType", r->media_type);
            cJSON_AddStringToObject(o, "stacItem", r->stac_item);
            cJSON_AddStringToObject(o, "manifest", r->manifest);
            if (r->n_files) {
                cJSON_AddNumberToObject(o, "files", (double)r->n_files);
                cJSON *md = r->metadata[0] && msg_limit > 0 ? cJSON_Parse(r->metadata) : NULL;
                if (md) cJSON_AddItemToObject(o, "metadata", md);
                if (r->metadata_truncated || (r->metadata[0] && !md))
                    cJSON_AddBoolToObject(o, "metadataTruncated", true);
            }
        }
    } else {
        char msg[2048];
        snprintf(msg, sizeof msg, "%s", err_get_message());
        if (strlen(msg) > msg_limit) {
            /* keep it valid UTF-8: do not cut inside a multi-byte sequence */
            size_t n = msg_limit;
            while (n > 0 && ((unsigned char)msg[n] & 0xC0) == 0x80)
                n--;
            snprintf(msg + n, sizeof msg - n, "...");
        }
        o = cJSON_AddObjectToObject(doc, "error");
        if (o) {
            cJSON_AddStringToObject(o, "class", err_class_name(err_get_class()));
            cJSON_AddStringToObject(o, "code", err_get_code());
            cJSON_AddStringToObject(o, "message", msg);
            if (err_get_field()[0]) cJSON_AddStringToObject(o, "field", err_get_field());
        }
    }
    if (!r->observation && !r->grid) cJSON_AddBoolToObject(doc, "cacheHit", ok && r->cache_hit);
    o = cJSON_AddObjectToObject(doc, "timings");
    if (o) {
        cJSON_AddNumberToObject(o, "totalMs", (double)r->total_ms);
        cJSON_AddNumberToObject(o, "computeMs", (double)r->compute_ms);
        cJSON_AddNumberToObject(o, "publishMs", (double)r->publish_ms);
        if (r->threads > 0) {
            cJSON_AddNumberToObject(o, "threads", (double)r->threads);
            cJSON_AddNumberToObject(o, "gdalCacheMb", (double)r->cache_mb);
        }
    }
    o = cJSON_AddObjectToObject(doc, "worker");
    if (o) {
        cJSON_AddStringToObject(o, "version", TERRANE_VERSION);
        cJSON_AddStringToObject(o, "gdalVersion", GDALVersionInfo("RELEASE_NAME"));
    }
    return doc;
}

size_t result_render(const result *r, char *buf, size_t cap)
{
    size_t limit = 1800;
    if (cap > TERRANE_TERMINATION_MAX) cap = TERRANE_TERMINATION_MAX;
    for (;;) {
        cJSON *doc = build(r, limit);
        char *s = doc ? cJSON_PrintUnformatted(doc) : NULL;
        cJSON_Delete(doc);
        if (s && strlen(s) < cap) {
            size_t n = strlen(s);
            memcpy(buf, s, n + 1);
            mem_free(s);
            return n;
        }
        mem_free(s);
        if (!s || limit == 0) {
            /* Out of memory or still too long: a fixed, valid document. */
            int n = snprintf(buf, cap,
                             "{\"apiVersion\":\"%s\",\"kind\":\"Result\",\"status\":\"Failed\","
                             "\"error\":{\"class\":\"Internal\",\"code\":\"Internal\","
                             "\"message\":\"result could not be rendered\"}}",
                             TERRANE_PROTO_API_VERSION);
            return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
        }
        limit = limit > 200 ? limit - 200 : 0;
    }
}

int result_write(const result *r, const char *path)
{
    char buf[TERRANE_TERMINATION_MAX];
    size_t n = result_render(r, buf, sizeof buf);
    int rc = 0;

    if (!path) path = getenv(TERRANE_ENV_TERMINATION_LOG);
    if (!path || !path[0]) path = TERRANE_TERMINATION_LOG_DEFAULT;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) {
        if (write(fd, buf, n) != (ssize_t)n) rc = -1;
        if (close(fd) != 0) rc = -1;
    } else if (errno != ENOENT && errno != EACCES && errno != EROFS) {
        /* Outside Kubernetes /dev/termination-log does not exist: fine. */
        rc = -1;
    }
    fwrite(buf, 1, n, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    return rc;
}
