/*
 * outputs.c - publishing a container asset's /outputs (outputs.h).
 *
 * Order: every data file (rasters as COGs), each further raster's Item,
 * item.json, manifest.json last; on failure everything written is removed
 * again, manifest first, as publish() does. The manifest is the one
 * manifest_build writes, with "files" listing every file (the primary
 * first, so publish_lookup finds it) and "fileCount"; its entries are
 * spooled to a scratch file while publishing and streamed into it.
 * cJSON reference rule: documents built here are freed here.
 */
#include "outputs.h"

#include "cog.h"
#include "err.h"
#include "hash.h"
#include "log.h"
#include "manifest.h"
#include "mem.h"
#include "op.h"
#include "op_container.h"
#include "publish.h"
#include "selfpod.h"
#include "stac.h"
#include "terrane_proto.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <gdal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MEDIA_OCTET "application/octet-stream"

bool outputs_is_geotiff(const char *name)
{
    size_t n = strlen(name);
    return (n > 4 && !strcasecmp(name + n - 4, ".tif")) ||
           (n > 5 && !strcasecmp(name + n - 5, ".tiff"));
}

const char *outputs_media_type(const char *name)
{
    static const struct {
        const char *ext, *type;
    } map[] = {{".json", "application/json"},
               {".geojson", MEDIA_GEOJSON},
               {".csv", MEDIA_CSV},
               {".txt", "text/plain"},
               {".md", "text/markdown"},
               {".html", "text/html"},
               {".png", "image/png"},
               {".jpg", "image/jpeg"},
               {".jpeg", "image/jpeg"},
               {".gpkg", "application/geopackage+sqlite3"},
               {".parquet", "application/vnd.apache.parquet"},
               {".nc", "application/netcdf"},
               {".zip", "application/zip"},
               {".onnx", "application/onnx"},
               {NULL, NULL}};
    if (outputs_is_geotiff(name)) return MEDIA_COG;
    const char *dot = strrchr(name, '.');
    const char *slash = strrchr(name, '/');
    if (!dot || (slash && dot < slash)) return MEDIA_OCTET;
    for (size_t i = 0; map[i].ext; i++)
        if (!strcasecmp(dot, map[i].ext)) return map[i].type;
    return MEDIA_OCTET; /* models (.pkl, .pt, .npz, ...) and anything else */
}

/* ---- listing ------------------------------------------------------------ */

/* nftw has no user pointer: the walk's state lives here, for one walk. */
static struct walk {
    size_t root_len;
    char **names;
    size_t n, cap;
    size_t hidden;
    int failed; /* error already set */
} W;

static int walk_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    if (ftw->level == 0) return 0;
    const char *rel = path + W.root_len + 1;
    const char *base = path + ftw->base;
    if (base[0] == '.') {
        W.hidden++;
        return flag == FTW_D ? FTW_SKIP_SUBTREE : 0;
    }
    if (flag == FTW_D) return 0;
    if (flag == FTW_DNR || flag == FTW_NS) {
        W.failed = err_set(ERR_INTERNAL, ERR_OUTPUT, NULL, "cannot read %s", path);
        return FTW_STOP;
    }
    if (flag == FTW_SL || flag == FTW_SLN || !S_ISREG(st->st_mode)) {
        W.failed = err_set(ERR_BAD_INPUT, ERR_OUTPUT, NULL,
                           "outputs: %s is not a regular file (symbolic links, devices and pipes "
                           "are not published)",
                           rel);
        return FTW_STOP;
    }
    size_t len = strlen(rel);
    bool ok = len <= TERRANE_OUTPUT_NAME_MAX;
    for (const char *p = rel; ok && *p; p++)
        if ((unsigned char)*p < 0x21 || *p == 0x7f || *p == '\\' || *p == '?' || *p == '#')
            ok = false;
    if (!ok) {
        W.failed = err_set(ERR_BAD_INPUT, ERR_OUTPUT, NULL,
                           "outputs: \"%.80s\" is not a usable object name (at most %d bytes, "
                           "no spaces, control characters, '\\\\', '?' or '#')",
                           rel, TERRANE_OUTPUT_NAME_MAX);
        return FTW_STOP;
    }
    if (ftw->level == 1 && (!strcmp(rel, TERRANE_OBJ_STAC) || !strcmp(rel, TERRANE_OBJ_MANIFEST))) {
        W.failed = err_set(ERR_BAD_INPUT, ERR_OUTPUT, NULL,
                           "outputs: %s is a name Terrane writes itself; rename the file", rel);
        return FTW_STOP;
    }
    if (!strncmp(rel, TERRANE_OBJ_ITEMS_DIR "/", sizeof TERRANE_OBJ_ITEMS_DIR)) {
        W.failed = err_set(ERR_BAD_INPUT, ERR_OUTPUT, NULL,
                           "outputs: %s/ is where Terrane writes further rasters' Items; "
                           "rename %s",
                           TERRANE_OBJ_ITEMS_DIR, rel);
        return FTW_STOP;
    }
    if (W.n == TERRANE_OUTPUT_FILES_MAX) {
        W.failed = err_set(ERR_BAD_INPUT, ERR_OUTPUT, NULL, "outputs: more than %d files",
                           TERRANE_OUTPUT_FILES_MAX);
        return FTW_STOP;
    }
    if (W.n == W.cap) {
        size_t cap = W.cap ? W.cap * 2 : 256;
        char **grown = mem_realloc(W.names, cap * sizeof *grown);
        if (!grown) {
            W.failed = err_oom();
            return FTW_STOP;
        }
        W.names = grown;
        W.cap = cap;
    }
    if (!(W.names[W.n] = mem_strdup(rel))) {
        W.failed = err_oom();
        return FTW_STOP;
    }
    W.n++;
    return 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void names_free(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        mem_free(names[i]);
    mem_free(names);
}

/* The regular files below dir, relative and sorted. */
static int list_outputs(const char *dir, char ***out, size_t *n)
{
    struct stat st;
    *out = NULL;
    *n = 0;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return err_set(ERR_INTERNAL, ERR_OUTPUT, NULL,
                       "outputs: %s is not a directory (is the outputs volume mounted?)", dir);
    memset(&W, 0, sizeof W);
    W.root_len = strlen(dir);
    while (W.root_len > 1 && dir[W.root_len - 1] == '/')
        W.root_len--;
    if (nftw(dir, walk_entry, 32, FTW_PHYS | FTW_ACTIONRETVAL) != 0 && !W.failed)
        W.failed =
            err_set(ERR_INTERNAL, ERR_OUTPUT, NULL, "cannot list %s: %s", dir, strerror(errno));
    if (W.failed) {
        names_free(W.names, W.n);
        memset(&W, 0, sizeof W);
        return -1;
    }
    if (W.hidden)
        log_kv(LOG_WARN,
               "outputs: hidden files and directories (names starting with '.') are "
               "not published",
               (const char *)NULL);
    if (W.n > 1) qsort(W.names, W.n, sizeof *W.names, cmp_names);
    *out = W.names;
    *n = W.n;
    memset(&W, 0, sizeof W);
    return 0;
}

/* ---- metadata.json ------------------------------------------------------- */

/* Reads dir/metadata.json when present: *md is the parsed object when it is
 * within TERRANE_METADATA_MAX, *too_big when it is not. */
static int read_metadata(const char *dir, cJSON **md, bool *too_big)
{
    int rc = -1;
    char *path = mem_printf("%s/%s", dir, TERRANE_OUTPUT_METADATA);
    char *buf = NULL;
    FILE *f = NULL;
    *md = NULL;
    *too_big = false;
    if (!path) return err_oom();
    f = fopen(path, "rb");
    if (!f) {
        rc = 0; /* optional */
        goto cleanup;
    }
    if (!(buf = mem_malloc(TERRANE_METADATA_MAX + 1))) {
        err_oom();
        goto cleanup;
    }
    size_t n = fread(buf, 1, TERRANE_METADATA_MAX + 1, f);
    if (n > TERRANE_METADATA_MAX) {
        *too_big = true;
        log_kv(LOG_WARN,
               "metadata.json is over the cap: published as a file, not merged into "
               "the STAC Item or the result",
               "capBytes", "65536", (const char *)NULL);
        rc = 0;
        goto cleanup;
    }
    buf[n] = '\0';
    *md = cJSON_ParseWithLength(buf, n);
    if (!cJSON_IsObject(*md)) {
        cJSON_Delete(*md);
        *md = NULL;
        err_set(ERR_BAD_INPUT, ERR_OUTPUT, NULL,
                "outputs: %s is not a JSON object (it is merged into the STAC Item's properties)",
                TERRANE_OUTPUT_METADATA);
        goto cleanup;
    }
    rc = 0;
cleanup:
    if (f) fclose(f);
    mem_free(buf);
    mem_free(path);
    return rc;
}

/* ---- publishing ----------------------------------------------------------- */

/* One published data file, as the Item needs it (strings owned). */
typedef struct pubfile {
    char *name, *href, *local;
    const char *media_type;
    char checksum[HASH_MULTIHASH_LEN];
    char etag[128];
    unsigned long long size;
    bool raster;
} pubfile;

static void pubfile_clear(pubfile *p)
{
    mem_free(p->name);
    mem_free(p->href);
    mem_free(p->local);
    memset(p, 0, sizeof *p);
}

static stac_file to_stac(const pubfile *p)
{
    const char *base = strrchr(p->name, '/');
    base = base ? base + 1 : p->name;
    return (stac_file){.name = p->name,
                       .href = p->href,
                       .media_type = p->media_type,
                       .role = !strcmp(base, TERRANE_OUTPUT_METADATA) ? "metadata" : "data",
                       .checksum = p->checksum,
                       .size = p->size,
                       .etag = p->etag[0] ? p->etag : NULL,
                       .local_path = p->raster ? p->local : NULL,
                       .is_cog = p->raster};
}

/* Rewrites a raster output as a COG in scratch (default COG options);
 * returns the new path in *cog. Not readable as GeoTIFF: the user's. */
static int to_cog(const char *src, const char *rel, const char *scratch, size_t idx, char **cog)
{
    static const char *const drivers[] = {"GTiff", NULL};
    int rc = -1;
    cJSON *opts = cJSON_CreateObject();
    *cog = mem_printf("%s/cog-%zu.tif", scratch, idx);
    if (!opts || !*cog) {
        err_oom();
        goto cleanup;
    }
    CPLErrorReset();
    GDALDatasetH ds = GDALOpenEx(src, GDAL_OF_RASTER | GDAL_OF_READONLY, drivers, NULL, NULL);
    if (!ds) {
        err_set_gdal(ERR_BAD_INPUT, ERR_OUTPUT, NULL,
                     "outputs: %s is named as a GeoTIFF but GDAL cannot read it as one", rel);
        goto cleanup;
    }
    rc = cog_write_from(ds, opts, *cog, NULL, NULL, NULL);
    GDALClose(ds);
    if (rc < 0) err_prefix("outputs: making %s a COG", rel);
cleanup:
    cJSON_Delete(opts);
    if (rc < 0) {
        if (*cog) unlink(*cog);
        mem_free(*cog);
        *cog = NULL;
    }
    return rc;
}

static void utc_now(char *buf, size_t cap)
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Writes text to a new scratch file and publishes it as name. */
static int put_text(publish_dest *pd, const task *t, const char *scratch, const char *name,
                    const char *media, const char *text)
{
    char sum[HASH_MULTIHASH_LEN], etag[128];
    unsigned long long size;
    char *path = mem_printf("%s/text-%ld.json", scratch, (long)getpid());
    if (!path) return err_oom();
    FILE *f = fopen(path, "wb");
    int rc = -1;
    bool bad = !f || fputs(text, f) < 0;
    if (f && fclose(f) != 0) bad = true;
    if (bad)
        err_set(ERR_TRANSIENT, ERR_SCRATCH, NULL, "write %s: %s", path, strerror(errno));
    else
        rc = publish_dest_put_file(pd, t, path, name, media, sum, &size, etag, sizeof etag);
    unlink(path);
    mem_free(path);
    return rc;
}

/* An anonymous file in scratch (removed at once, gone when closed). */
static FILE *spool_open(const char *scratch)
{
    char *path = mem_printf("%s/manifest-spool-XXXXXX", scratch);
    FILE *f = NULL;
    if (!path) return NULL;
    int fd = mkstemp(path);
    if (fd >= 0) {
        unlink(path);
        if (!(f = fdopen(fd, "w+"))) close(fd);
    }
    mem_free(path);
    return f;
}

/* Manifest entry of p, one compact line, to the spool. */
static int spool_entry(FILE *spool, const pubfile *p)
{
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddStringToObject(o, "name", p->name) ||
        !cJSON_AddStringToObject(o, "uri", p->href) ||
        !cJSON_AddStringToObject(o, "checksum", p->checksum) ||
        !cJSON_AddNumberToObject(o, "sizeBytes", (double)p->size) ||
        !cJSON_AddStringToObject(o, "mediaType", p->media_type) ||
        (p->etag[0] && !cJSON_AddStringToObject(o, "etag", p->etag))) {
        cJSON_Delete(o);
        return err_oom();
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!s) return err_oom();
    int bad = fputs(s, spool) < 0 || fputc('\n', spool) < 0;
    mem_free(s);
    if (bad)
        return err_set(ERR_TRANSIENT, ERR_SCRATCH, NULL, "spooling the manifest: %s",
                       strerror(errno));
    return 0;
}

/* The primary output's index: params.primaryOutput, else the first raster,
 * else the first file other than metadata.json. */
static int pick_primary(const task *t, char **names, size_t n, size_t *primary)
{
    const char *want = container_primary_output(t);
    for (size_t i = 0; want && i < n; i++)
        if (!strcmp(names[i], want)) {
            *primary = i;
            return 0;
        }
    if (want)
        return err_set(ERR_BAD_INPUT, ERR_OUTPUT, "params.primaryOutput",
                       "params.primaryOutput: the container wrote no file %s", want);
    for (size_t i = 0; i < n; i++)
        if (outputs_is_geotiff(names[i])) {
            *primary = i;
            return 0;
        }
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], TERRANE_OUTPUT_METADATA) != 0) {
            *primary = i;
            return 0;
        }
    return err_set(ERR_BAD_INPUT, ERR_NO_OUTPUTS, NULL,
                   "the container wrote only %s to its outputs directory; a container asset "
                   "must write at least one output file",
                   TERRANE_OUTPUT_METADATA);
}

/* Merges md's members into the Item's properties; keys the Item has win. */
static int merge_metadata(cJSON *item, const cJSON *md)
{
    cJSON *props = cJSON_GetObjectItemCaseSensitive(item, "properties");
    const cJSON *it;
    cJSON_ArrayForEach(it, md)
    {
        if (cJSON_GetObjectItemCaseSensitive(props, it->string)) {
            log_kv(LOG_WARN, "metadata.json: key already set by Terrane, kept Terrane's", "key",
                   it->string, (const char *)NULL);
            continue;
        }
        cJSON *copy = cJSON_Duplicate(it, true);
        if (!copy || !cJSON_AddItemToObject(props, it->string, copy)) {
            cJSON_Delete(copy);
            return err_oom();
        }
    }
    return 0;
}

/* Publishes the Item of a raster that is not the primary, at items/<name>.json. */
static int put_raster_item(publish_dest *pd, const task *t, const char *scratch, const pubfile *p,
                           const char *created, char **item_name)
{
    int rc = -1;
    cJSON *item = NULL;
    char *text = NULL, *href = NULL, id[400];
    *item_name = mem_printf("%s/%s.json", TERRANE_OBJ_ITEMS_DIR, p->name);
    if (!*item_name || !(href = mem_printf("%s/%s", publish_dest_uri(pd), *item_name))) {
        err_oom();
        goto cleanup;
    }
    stac_file sf = to_stac(p);
    if (stac_item_build(t, &sf, 1, href, created, &item) < 0) goto cleanup;
    stac_item_id(t, id, sizeof id);
    size_t n = strlen(id);
    snprintf(id + n, sizeof id - n, "-%s", p->name);
    for (char *c = id + n; *c; c++)
        if (*c == '/' || *c == '.') *c = '-';
    cJSON_ReplaceItemInObjectCaseSensitive(item, "id", cJSON_CreateString(id));
    if (!(text = cJSON_Print(item))) {
        err_oom();
        goto cleanup;
    }
    rc = put_text(pd, t, scratch, *item_name, STAC_MEDIA_ITEM, text);
cleanup:
    cJSON_Delete(item);
    cJSON_free(text);
    mem_free(href);
    return rc;
}

/* Streams the manifest: manifest_build's document without "files", then
 * the primary entry and the spooled ones. */
static int put_manifest(publish_dest *pd, const task *t, const char *scratch,
                        const pubfile *primary, FILE *spool, size_t n_files, const char *item_href,
                        const char *created, const char *image_id)
{
    int rc = -1;
    cJSON *m = NULL;
    char *head = NULL, *path = NULL, sum[HASH_MULTIHASH_LEN], etag[128], line[4096];
    unsigned long long size;
    FILE *out = NULL;
    stac_file sf = to_stac(primary);
    if (manifest_build(t, &sf, 1, item_href, created, &m) < 0) goto cleanup;
    if (image_id[0] && !cJSON_AddStringToObject(m, "imageID", image_id)) {
        err_oom();
        goto cleanup;
    }
    cJSON *files = cJSON_DetachItemFromObjectCaseSensitive(m, "files");
    cJSON *entry = cJSON_DetachItemFromArray(files, 0);
    cJSON_Delete(files);
    char *first = entry ? cJSON_PrintUnformatted(entry) : NULL;
    cJSON_Delete(entry);
    head = cJSON_PrintUnformatted(m);
    path = mem_printf("%s/manifest-%ld.json", scratch, (long)getpid());
    if (!first || !head || !path) {
        mem_free(first);
        err_oom();
        goto cleanup;
    }
    size_t hl = strlen(head);
    head[hl - 1] = '\0'; /* the closing brace */
    out = fopen(path, "wb");
    bool bad = !out || fprintf(out, "%s,\"fileCount\":%zu,\"files\":[%s", head, n_files, first) < 0;
    mem_free(first);
    rewind(spool);
    while (!bad && fgets(line, sizeof line, spool)) {
        size_t l = strlen(line);
        if (l && line[l - 1] == '\n') line[--l] = '\0';
        bad = fprintf(out, ",%s", line) < 0;
    }
    if (!bad) bad = fputs("]}\n", out) < 0;
    if (out && fclose(out) != 0) bad = true;
    out = NULL;
    if (bad) {
        err_set(ERR_TRANSIENT, ERR_SCRATCH, NULL, "writing the manifest %s: %s", path,
                strerror(errno));
        goto cleanup;
    }
    rc = publish_dest_put_file(pd, t, path, TERRANE_OBJ_MANIFEST, "application/json", sum, &size,
                               etag, sizeof etag);
cleanup:
    if (out) fclose(out);
    if (path) unlink(path);
    mem_free(path);
    mem_free(head);
    cJSON_Delete(m);
    return rc;
}

int outputs_publish(const task *t, const char *dir, const char *scratch, result *r)
{
    int rc = -1;
    char **names = NULL, created[32];
    size_t n = 0, primary = 0, n_done = 0, n_assets = 0;
    publish_dest *pd = NULL;
    cJSON *md = NULL, *item = NULL;
    bool md_too_big = false, item_written = false, manifest_written = false;
    FILE *spool = NULL;
    pubfile prim = {0}, cur = {0};
    pubfile *assets = NULL; /* non-raster files for item.json, at most TERRANE_ITEM_ASSETS_MAX */
    char **item_names = NULL;
    char *item_text = NULL, *item_href = NULL;
    char image_id[SELFPOD_IMAGE_ID_MAX + 1] = "";

    if (list_outputs(dir, &names, &n) < 0) goto cleanup;
    if (n == 0) {
        err_set(ERR_BAD_INPUT, ERR_NO_OUTPUTS, NULL,
                "the container wrote no files to its outputs directory %s ($%s); a container "
                "asset must write at least one output file",
                dir, TERRANE_ENV_OUTPUT_DIR);
        goto cleanup;
    }
    if (pick_primary(t, names, n, &primary) < 0) goto cleanup;
    if (read_metadata(dir, &md, &md_too_big) < 0) goto cleanup;
    /* the digest the kubelet ran for the user's step, before anything is written */
    if (selfpod_image_id(OUTPUTS_USER_CONTAINER, image_id, sizeof image_id) < 0) goto cleanup;
    assets = mem_calloc(TERRANE_ITEM_ASSETS_MAX, sizeof *assets);
    item_names = mem_calloc(n, sizeof *item_names);
    spool = spool_open(scratch);
    if (!assets || !item_names || !spool) {
        if (!spool)
            err_set(ERR_TRANSIENT, ERR_SCRATCH, NULL, "cannot create the manifest spool: %s",
                    strerror(errno));
        else
            err_oom();
        goto cleanup;
    }
    if (publish_dest_open(t, &pd) < 0) goto cleanup;
    utc_now(created, sizeof created);
    size_t omitted = 0;

    for (size_t i = 0; i < n; i++) {
        char *src = mem_printf("%s/%s", dir, names[i]);
        if (!src) {
            err_oom();
            goto cleanup;
        }
        cur.raster = outputs_is_geotiff(names[i]);
        cur.media_type = outputs_media_type(names[i]);
        if (cur.raster) {
            int crc = to_cog(src, names[i], scratch, i, &cur.local);
            mem_free(src);
            if (crc < 0) goto cleanup;
        } else {
            cur.local = src;
        }
        cur.name = mem_strdup(names[i]);
        cur.href = mem_printf("%s/%s", publish_dest_uri(pd), names[i]);
        if (!cur.name || !cur.href) {
            err_oom();
            goto cleanup;
        }
        int prc = publish_dest_put_file(pd, t, cur.local, cur.name, cur.media_type, cur.checksum,
                                        &cur.size, cur.etag, sizeof cur.etag);
        n_done = i + 1; /* removed on failure even if only partly written */
        if (prc < 0) goto cleanup;
        if (i != primary && spool_entry(spool, &cur) < 0) goto cleanup;
        if (cur.raster && i != primary) {
            if (put_raster_item(pd, t, scratch, &cur, created, &item_names[i]) < 0) goto cleanup;
        }
        if (cur.raster && i != primary) unlink(cur.local); /* its Item is written */
        if (i == primary) {
            prim = cur;
            memset(&cur, 0, sizeof cur);
        } else if (!cur.raster && n_assets < TERRANE_ITEM_ASSETS_MAX) {
            assets[n_assets++] = cur;
            mem_free(assets[n_assets - 1].local);
            assets[n_assets - 1].local = NULL;
            memset(&cur, 0, sizeof cur);
        } else {
            if (!cur.raster) omitted++;
            pubfile_clear(&cur);
        }
    }

    /* item.json: the primary output, then the other (non-raster) files. */
    item_href = mem_printf("%s/%s", publish_dest_uri(pd), TERRANE_OBJ_STAC);
    stac_file *sf = mem_calloc(n_assets + 1, sizeof *sf);
    if (!item_href || !sf) {
        mem_free(sf);
        err_oom();
        goto cleanup;
    }
    sf[0] = to_stac(&prim);
    for (size_t i = 0; i < n_assets; i++)
        sf[i + 1] = to_stac(&assets[i]);
    int brc = stac_item_build(t, sf, n_assets + 1, item_href, created, &item);
    mem_free(sf);
    if (brc < 0) goto cleanup;
    if (md && merge_metadata(item, md) < 0) goto cleanup;
    cJSON *props = cJSON_GetObjectItemCaseSensitive(item, "properties");
    if (md_too_big)
        cJSON_AddStringToObject(props, "terrane:metadataOmitted",
                                "metadata.json is over the 65536-byte cap: see the asset");
    if (omitted) cJSON_AddNumberToObject(props, "terrane:assetsOmitted", (double)omitted);
    cJSON_AddNumberToObject(props, "terrane:fileCount", (double)n);
    if (image_id[0]) cJSON_AddStringToObject(props, "terrane:imageID", image_id);
    if (!(item_text = cJSON_Print(item))) {
        err_oom();
        goto cleanup;
    }
    if (put_text(pd, t, scratch, TERRANE_OBJ_STAC, STAC_MEDIA_ITEM, item_text) < 0) goto cleanup;
    item_written = true;
    if (put_manifest(pd, t, scratch, &prim, spool, n, item_href, created, image_id) < 0) {
        manifest_written = true; /* may have landed: remove it first */
        goto cleanup;
    }

    snprintf(r->output_uri, sizeof r->output_uri, "%s", prim.href);
    snprintf(r->checksum, sizeof r->checksum, "%s", prim.checksum);
    r->size_bytes = prim.size;
    snprintf(r->media_type, sizeof r->media_type, "%s", prim.media_type);
    snprintf(r->stac_item, sizeof r->stac_item, "%s", item_href);
    snprintf(r->manifest, sizeof r->manifest, "%s/%s", publish_dest_uri(pd), TERRANE_OBJ_MANIFEST);
    r->n_files = n;
    if (md) {
        char *compact = cJSON_PrintUnformatted(md);
        if (compact && strlen(compact) < sizeof r->metadata)
            snprintf(r->metadata, sizeof r->metadata, "%s", compact);
        else
            r->metadata_truncated = true;
        if (r->metadata_truncated)
            log_kv(LOG_WARN, "metadata.json is over the result's cap: in the STAC Item only",
                   "capBytes", "1024", (const char *)NULL);
        mem_free(compact);
    }
    if (md_too_big) r->metadata_truncated = true;
    rc = 0;

cleanup:
    if (rc < 0 && pd) {
        if (manifest_written) publish_dest_remove(pd, TERRANE_OBJ_MANIFEST);
        if (item_written) publish_dest_remove(pd, TERRANE_OBJ_STAC);
        for (size_t i = n_done; i-- > 0;) {
            if (item_names && item_names[i]) publish_dest_remove(pd, item_names[i]);
            publish_dest_remove(pd, names[i]);
        }
        if (n_done)
            log_kv(LOG_INFO, "publication rolled back", "prefix", publish_dest_uri(pd),
                   (const char *)NULL);
    }
    if (cur.raster && cur.local) unlink(cur.local);
    if (prim.raster && prim.local) unlink(prim.local);
    pubfile_clear(&cur);
    pubfile_clear(&prim);
    for (size_t i = 0; assets && i < n_assets; i++)
        pubfile_clear(&assets[i]);
    mem_free(assets);
    for (size_t i = 0; item_names && i < n; i++)
        mem_free(item_names[i]);
    mem_free(item_names);
    if (spool) fclose(spool);
    cJSON_Delete(item);
    cJSON_Delete(md);
    cJSON_free(item_text);
    mem_free(item_href);
    publish_dest_close(pd);
    names_free(names, n);
    return rc;
}
