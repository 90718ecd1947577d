/*
 * stac.c - building the STAC Item for a published data version.
 *
 * cJSON reference rule here: a value created with cJSON_Create* belongs to
 * this code until it is added to a parent (cJSON_AddItemTo*), which takes it;
 * the whole tree is freed once, from the root.
 */
#include "stac.h"

#include "err.h"
#include "mem.h"

#include <cpl_conv.h>
#include <cpl_error.h>
#include <gdal.h>
#include <math.h>
#include <ogr_api.h>
#include <ogr_srs_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Points per footprint edge: a projected grid's straight edges are curves
 * in longitude/latitude, and 16 points per edge keep the polygon within a
 * small fraction of a pixel of the true outline for UTM-sized rasters. */
#define EDGE_POINTS 16
#define RING_MAX (4 * EDGE_POINTS + 1)
#define LINEAGE_MAX 4096

typedef struct footprint {
    bool have;
    double lon[RING_MAX], lat[RING_MAX];
    size_t n;       /* closed ring: first == last */
    double bbox[4]; /* west, south, east, north */
} footprint;

static const char *const raster_drivers[] = {"GTiff", NULL};
static const char *const geojson_drivers[] = {"GeoJSON", NULL};

/* Degrees rounded to 1e-9 (about 0.1 mm): shorter JSON, no false precision. */
static double round_deg(double v)
{
    return round(v * 1e9) / 1e9;
}

void stac_item_id(const task *t, char *buf, size_t cap)
{
    size_t pos = 0;
    if (cap == 0) return;
    for (const char *s = t->asset_key; *s && pos + 1 < cap; s++)
        buf[pos++] = *s == '/' ? '-' : *s;
    buf[pos] = '\0';
    snprintf(buf + pos, cap - pos, "-%.12s", task_data_version_hex(t));
}

const char *stac_media_type_for_uri(const char *uri)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".tif", "image/tiff; application=geotiff"},
        {".tiff", "image/tiff; application=geotiff"},
        {".gpkg", "application/geopackage+sqlite3"},
        {".geojson", "application/geo+json"},
        {".json", "application/json"},
        {".fgb", "application/vnd.flatgeobuf"},
        {".shp", "application/vnd.shp"},
        {".jp2", "image/jp2"},
        {".png", "image/png"},
        {".jpg", "image/jpeg"},
        {".jpeg", "image/jpeg"},
        {".csv", "text/csv"},
        {".img", "application/x-hfa"},
    };
    const char *slash = strrchr(uri, '/');
    const char *dot = strrchr(slash ? slash : uri, '.');
    if (!dot) return NULL;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (!strcasecmp(dot, types[i].ext)) return types[i].type;
    return NULL;
}

static const char *data_type_name(GDALDataType dt)
{
    switch (dt) {
    case GDT_Byte:
        return "uint8";
    case GDT_UInt16:
        return "uint16";
    case GDT_Int16:
        return "int16";
    case GDT_UInt32:
        return "uint32";
    case GDT_Int32:
        return "int32";
    case GDT_UInt64:
        return "uint64";
    case GDT_Int64:
        return "int64";
    case GDT_Float32:
        return "float32";
    case GDT_Float64:
        return "float64";
    case GDT_CInt16:
        return "cint16";
    case GDT_CInt32:
        return "cint32";
    case GDT_CFloat32:
        return "cfloat32";
    case GDT_CFloat64:
        return "cfloat64";
    default:
        return "other";
    }
}

static cJSON *number_array(const double *v, size_t n)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; a && i < n; i++) {
        cJSON *x = cJSON_CreateNumber(v[i]);
        if (!x) {
            cJSON_Delete(a);
            return NULL;
        }
        cJSON_AddItemToArray(a, x);
    }
    return a;
}

/* Adds v to o under key, taking it; on failure (cJSON copies the key, which
 * can fail) v is freed. False when v is NULL or adding fails. */
static bool attach(cJSON *o, const char *key, cJSON *v)
{
    if (!v) return false;
    if (!cJSON_AddItemToObject(o, key, v)) {
        cJSON_Delete(v);
        return false;
    }
    return true;
}

static bool add_array_copy(cJSON *o, const char *key, const double *v, size_t n)
{
    return attach(o, key, number_array(v, n));
}

/* Returns the SRS in longitude/latitude (x = east) order, or NULL. */
static OGRSpatialReferenceH wgs84_new(void)
{
    OGRSpatialReferenceH s = OSRNewSpatialReference(NULL);
    if (!s) return NULL;
    if (OSRImportFromEPSG(s, 4326) != OGRERR_NONE) {
        OSRDestroySpatialReference(s);
        return NULL;
    }
    OSRSetAxisMappingStrategy(s, OAMS_TRADITIONAL_GIS_ORDER);
    return s;
}

/* A transformation from srs (coordinates in x = east order, as GDAL datasets
 * and OGR layers store them) to WGS 84 lon/lat, or NULL. */
static OGRCoordinateTransformationH to_wgs84_new(OGRSpatialReferenceH srs)
{
    OGRSpatialReferenceH src = OSRClone(srs), dst = wgs84_new();
    OGRCoordinateTransformationH ct = NULL;
    if (src && dst) {
        OSRSetAxisMappingStrategy(src, OAMS_TRADITIONAL_GIS_ORDER);
        CPLPushErrorHandler(CPLQuietErrorHandler);
        ct = OCTNewCoordinateTransformation(src, dst);
        CPLPopErrorHandler();
    }
    if (src) OSRDestroySpatialReference(src);
    if (dst) OSRDestroySpatialReference(dst);
    return ct;
}

/* Fills fp from the rectangle [x0,x1]x[y0,y1] in srs: transformed bounds
 * (OCTTransformBounds densifies the edges) and a densified ring. */
static void footprint_from_box(footprint *fp, OGRSpatialReferenceH srs, const double corner_x[4],
                               const double corner_y[4])
{
    OGRCoordinateTransformationH ct = srs ? to_wgs84_new(srs) : NULL;
    double xmin = corner_x[0], xmax = corner_x[0], ymin = corner_y[0], ymax = corner_y[0];
    int ok[RING_MAX];
    size_t n = 0;

    fp->have = false;
    if (!ct) return;
    for (int i = 1; i < 4; i++) {
        xmin = fmin(xmin, corner_x[i]);
        xmax = fmax(xmax, corner_x[i]);
        ymin = fmin(ymin, corner_y[i]);
        ymax = fmax(ymax, corner_y[i]);
    }
    CPLPushErrorHandler(CPLQuietErrorHandler);
    int bounds_ok = OCTTransformBounds(ct, xmin, ymin, xmax, ymax, &fp->bbox[0], &fp->bbox[1],
                                       &fp->bbox[2], &fp->bbox[3], 21);
    /* The ring walks the four edges of the (possibly rotated) grid. Edges
     * of a geographic grid stay straight in longitude/latitude: corners
     * suffice. */
    int steps = OSRIsGeographic(srs) ? 1 : EDGE_POINTS;
    for (int e = 0; e < 4; e++) {
        int a = e, b = (e + 1) % 4;
        for (int k = 0; k < steps; k++) {
            double f = (double)k / steps;
            fp->lon[n] = corner_x[a] + (corner_x[b] - corner_x[a]) * f;
            fp->lat[n] = corner_y[a] + (corner_y[b] - corner_y[a]) * f;
            n++;
        }
    }
    int ring_ok = OCTTransformEx(ct, (int)n, fp->lon, fp->lat, NULL, ok);
    CPLPopErrorHandler();
    OCTDestroyCoordinateTransformation(ct);
    if (!bounds_ok) return;
    for (size_t i = 0; i < n; i++)
        ring_ok = ring_ok && ok[i];
    if (!ring_ok) {
        /* Some edge points fall outside the target's domain: the bbox
         * polygon is still a correct (coarser) footprint. */
        double w = fp->bbox[0], s = fp->bbox[1], e = fp->bbox[2], nn = fp->bbox[3];
        double lon[4] = {w, e, e, w}, lat[4] = {s, s, nn, nn};
        n = 4;
        memcpy(fp->lon, lon, sizeof lon);
        memcpy(fp->lat, lat, sizeof lat);
    }
    /* RFC 7946: exterior rings are counterclockwise (positive area). */
    double area2 = 0;
    for (size_t i = 0; i < n; i++) {
        size_t j = (i + 1) % n;
        area2 += fp->lon[i] * fp->lat[j] - fp->lon[j] * fp->lat[i];
    }
    if (area2 < 0) {
        for (size_t i = 0, j = n - 1; i < j; i++, j--) {
            double tx = fp->lon[i], ty = fp->lat[i];
            fp->lon[i] = fp->lon[j];
            fp->lat[i] = fp->lat[j];
            fp->lon[j] = tx;
            fp->lat[j] = ty;
        }
    }
    fp->lon[n] = fp->lon[0];
    fp->lat[n] = fp->lat[0];
    fp->n = n + 1;
    for (size_t i = 0; i < fp->n; i++) {
        fp->lon[i] = round_deg(fp->lon[i]);
        fp->lat[i] = round_deg(fp->lat[i]);
    }
    for (int i = 0; i < 4; i++)
        fp->bbox[i] = round_deg(fp->bbox[i]);
    fp->have = true;
}

/* Adds proj:code (projection v2.0.0: "AUTHORITY:CODE", which replaced
 * v1's integer proj:epsg; null with proj:wkt2 + proj:projjson when the CRS
 * has no code), proj:shape, proj:transform and proj:bbox to o. */
static bool add_proj_fields(cJSON *o, OGRSpatialReferenceH srs, int width, int height,
                            const double gt[6], const double native_bbox[4])
{
    bool ok = false;
    char *wkt = NULL, *projjson = NULL;
    OGRSpatialReferenceH guess = NULL;
    char code[96] = "";

    if (srs) {
        const char *auth = OSRGetAuthorityName(srs, NULL);
        const char *c = OSRGetAuthorityCode(srs, NULL);
        if (auth && c && *auth && *c) {
            snprintf(code, sizeof code, "%s:%s", auth, c);
        } else if ((guess = OSRClone(srs)) != NULL && OSRAutoIdentifyEPSG(guess) == OGRERR_NONE &&
                   (c = OSRGetAuthorityCode(guess, NULL)) != NULL && atoi(c) > 0) {
            snprintf(code, sizeof code, "EPSG:%s", c);
        }
    }
    if (*code) {
        if (!cJSON_AddStringToObject(o, "proj:code", code)) goto cleanup;
    } else {
        if (!cJSON_AddNullToObject(o, "proj:code")) goto cleanup;
        if (srs) {
            const char *wkt_opts[] = {"FORMAT=WKT2_2019", NULL};
            if (OSRExportToWktEx(srs, &wkt, wkt_opts) == OGRERR_NONE && wkt &&
                !cJSON_AddStringToObject(o, "proj:wkt2", wkt))
                goto cleanup;
            if (OSRExportToPROJJSON(srs, &projjson, NULL) == OGRERR_NONE && projjson) {
                if (!attach(o, "proj:projjson", cJSON_Parse(projjson))) goto cleanup;
            }
        }
    }
    double shape[2] = {height, width};
    /* STAC's affine order: [a, b, c, d, e, f] = GDAL's
     * [gt1, gt2, gt0, gt4, gt5, gt3]. */
    double affine[6] = {gt[1], gt[2], gt[0], gt[4], gt[5], gt[3]};
    if (!add_array_copy(o, "proj:shape", shape, 2) ||
        !add_array_copy(o, "proj:transform", affine, 6) ||
        (native_bbox && !add_array_copy(o, "proj:bbox", native_bbox, 4)))
        goto cleanup;
    ok = true;
cleanup:
    CPLFree(wkt);
    CPLFree(projjson);
    if (guess) OSRDestroySpatialReference(guess);
    return ok;
}

static bool add_raster_bands(cJSON *asset, GDALDatasetH ds, const double gt[6], bool have_gt)
{
    cJSON *bands = cJSON_AddArrayToObject(asset, "raster:bands");
    if (!bands) return false;
    for (int i = 1; i <= GDALGetRasterCount(ds); i++) {
        GDALRasterBandH b = GDALGetRasterBand(ds, i);
        cJSON *o = cJSON_CreateObject();
        if (!o) return false;
        cJSON_AddItemToArray(bands, o);
        if (!cJSON_AddStringToObject(o, "data_type", data_type_name(GDALGetRasterDataType(b))))
            return false;
        int has_nodata = 0;
        double nd = GDALGetRasterNoDataValue(b, &has_nodata);
        if (has_nodata) {
            /* The raster extension spells non-finite nodata as strings. */
            cJSON *v = isnan(nd)   ? cJSON_CreateString("nan")
                       : isinf(nd) ? cJSON_CreateString(nd > 0 ? "inf" : "-inf")
                                   : cJSON_CreateNumber(nd);
            if (!attach(o, "nodata", v)) return false;
        }
        if (have_gt && gt[2] == 0 && gt[4] == 0 && fabs(gt[1]) == fabs(gt[5]) &&
            !cJSON_AddNumberToObject(o, "spatial_resolution", fabs(gt[1])))
            return false;
    }
    return true;
}

/* Describes a COG: raster:bands on asset; projection fields on proj_target
 * (the Item's properties for the footprint raster, else the asset); the
 * footprint into fp when fp is not NULL. */
static int describe_raster(const stac_file *f, cJSON *asset, cJSON *proj_target, footprint *fp,
                           bool *used_proj)
{
    int rc = -1;
    double gt[6] = {0, 1, 0, 0, 0, 1};
    GDALDatasetH ds = NULL;

    CPLErrorReset();
    ds = GDALOpenEx(f->local_path, GDAL_OF_RASTER | GDAL_OF_READONLY, raster_drivers, NULL, NULL);
    if (!ds) {
        err_set_gdal(ERR_INTERNAL, ERR_OUTPUT, NULL, "STAC Item: cannot open %s for %s",
                     f->local_path, f->name);
        goto cleanup;
    }
    int w = GDALGetRasterXSize(ds), h = GDALGetRasterYSize(ds);
    bool have_gt = GDALGetGeoTransform(ds, gt) == CE_None;
    OGRSpatialReferenceH srs = GDALGetSpatialRef(ds);
    double cx[4], cy[4];
    const double px[4] = {0, w, w, 0}, py[4] = {0, 0, h, h};
    for (int i = 0; i < 4; i++) {
        cx[i] = gt[0] + px[i] * gt[1] + py[i] * gt[2];
        cy[i] = gt[3] + px[i] * gt[4] + py[i] * gt[5];
    }
    double nb[4] = {
        fmin(fmin(cx[0], cx[1]), fmin(cx[2], cx[3])), fmin(fmin(cy[0], cy[1]), fmin(cy[2], cy[3])),
        fmax(fmax(cx[0], cx[1]), fmax(cx[2], cx[3])), fmax(fmax(cy[0], cy[1]), fmax(cy[2], cy[3]))};
    if (!add_raster_bands(asset, ds, gt, have_gt)) goto oom;
    if (have_gt) {
        if (!add_proj_fields(proj_target, srs, w, h, gt, nb)) goto oom;
        *used_proj = true;
        if (fp && srs) footprint_from_box(fp, srs, cx, cy);
    }
    rc = 0;
    goto cleanup;
oom:
    err_oom();
cleanup:
    if (ds) GDALClose(ds);
    return rc;
}

/* The footprint of a GeoJSON output: the extent of its first layer. */
static void describe_geojson(const stac_file *f, footprint *fp)
{
    OGREnvelope env;
    CPLPushErrorHandler(CPLQuietErrorHandler);
    GDALDatasetH ds =
        GDALOpenEx(f->local_path, GDAL_OF_VECTOR | GDAL_OF_READONLY, geojson_drivers, NULL, NULL);
    CPLPopErrorHandler();
    if (!ds) return;
    OGRLayerH layer = GDALDatasetGetLayerCount(ds) > 0 ? GDALDatasetGetLayer(ds, 0) : NULL;
    if (layer && OGR_L_GetExtent(layer, &env, TRUE) == OGRERR_NONE) {
        OGRSpatialReferenceH srs = OGR_L_GetSpatialRef(layer);
        OGRSpatialReferenceH own = NULL;
        if (!srs) srs = own = wgs84_new(); /* RFC 7946: GeoJSON without a CRS is WGS 84 */
        double cx[4] = {env.MinX, env.MaxX, env.MaxX, env.MinX};
        double cy[4] = {env.MaxY, env.MaxY, env.MinY, env.MinY};
        if (srs) footprint_from_box(fp, srs, cx, cy);
        if (own) OSRDestroySpatialReference(own);
    }
    GDALClose(ds);
}

static bool add_geometry(cJSON *item, const footprint *fp)
{
    if (!fp->have) return cJSON_AddNullToObject(item, "geometry") != NULL;
    cJSON *g = cJSON_AddObjectToObject(item, "geometry");
    if (!g || !cJSON_AddStringToObject(g, "type", "Polygon")) return false;
    cJSON *rings = cJSON_AddArrayToObject(g, "coordinates");
    cJSON *ring = cJSON_CreateArray();
    if (!rings || !ring) {
        cJSON_Delete(ring);
        return false;
    }
    cJSON_AddItemToArray(rings, ring);
    for (size_t i = 0; i < fp->n; i++) {
        double p[2] = {fp->lon[i], fp->lat[i]};
        cJSON *pt = number_array(p, 2);
        if (!pt) return false;
        cJSON_AddItemToArray(ring, pt);
    }
    return add_array_copy(item, "bbox", fp->bbox, 4);
}

static bool add_link(cJSON *links, const char *rel, const char *href, const char *type,
                     const char *title)
{
    cJSON *l = cJSON_CreateObject();
    if (!l) return false;
    cJSON_AddItemToArray(links, l);
    return cJSON_AddStringToObject(l, "rel", rel) && cJSON_AddStringToObject(l, "href", href) &&
           (!type || cJSON_AddStringToObject(l, "type", type)) &&
           (!title || cJSON_AddStringToObject(l, "title", title));
}

/* One sentence for processing:lineage, bounded. */
static void lineage_sentence(const task *t, char *buf, size_t cap)
{
    size_t pos = 0;
    int n = snprintf(buf, cap, "Produced by terrane-worker %s (GDAL %s), operation '%s'",
                     TERRANE_VERSION, GDALVersionInfo("RELEASE_NAME"), t->operation);
    pos = n > 0 ? (size_t)n : 0;
    for (size_t i = 0; i < t->n_inputs && pos + 1 < cap; i++) {
        const task_input *in = &t->inputs[i];
        const char *sep = i == 0 ? ", from" : ",";
        if (in->asset_key && in->data_version)
            n = snprintf(buf + pos, cap - pos, "%s %s (asset %s, data version %.19s...)", sep,
                         in->name, in->asset_key, in->data_version);
        else
            n = snprintf(buf + pos, cap - pos, "%s %s (%s)", sep, in->name, in->uri);
        if (n < 0) break;
        pos += (size_t)n;
    }
    if (pos + 1 < cap) snprintf(buf + pos, cap - pos, ".");
    if (pos + 1 >= cap && cap > 4) memcpy(buf + cap - 4, "...", 4);
}

/* Adds one STAC asset per file; COGs also get raster:bands and proj:*
 * (on props for the footprint source fp_src, else on the asset). */
static int add_assets(cJSON *assets, cJSON *props, const stac_file *files, size_t n_files,
                      size_t fp_src, footprint *fp, bool *used_proj, bool *used_raster)
{
    for (size_t i = 0; i < n_files; i++) {
        const stac_file *f = &files[i];
        cJSON *a = cJSON_AddObjectToObject(assets, f->name), *roles = NULL, *role = NULL;
        if (!a || !cJSON_AddStringToObject(a, "href", f->href) ||
            !cJSON_AddStringToObject(a, "type", f->media_type) ||
            !(roles = cJSON_AddArrayToObject(a, "roles")) ||
            !(role = cJSON_CreateString(f->role ? f->role : "data")))
            return err_oom();
        cJSON_AddItemToArray(roles, role);
        if (!cJSON_AddStringToObject(a, "file:checksum", f->checksum) ||
            !cJSON_AddNumberToObject(a, "file:size", (double)f->size))
            return err_oom();
        if (f->is_cog && f->local_path) {
            if (describe_raster(f, a, i == fp_src ? props : a, i == fp_src ? fp : NULL, used_proj) <
                0)
                return -1;
            *used_raster = true;
        } else if (i == fp_src) {
            describe_geojson(f, fp);
        }
    }
    return 0;
}

static int add_links(cJSON *links, const task *t, const char *self_href)
{
    if (!add_link(links, "self", self_href, STAC_MEDIA_ITEM, NULL)) return err_oom();
    for (size_t i = 0; i < t->n_inputs; i++) {
        const task_input *in = &t->inputs[i];
        char title[128];
        snprintf(title, sizeof title, "input %s", in->name);
        /* Lineage points at the upstream's Item when it has one, so a STAC
         * browser can walk the graph; external sources link their data. */
        bool ok =
            in->stac_item
                ? add_link(links, "derived_from", in->stac_item, STAC_MEDIA_ITEM, title)
                : add_link(links, "derived_from", in->uri, stac_media_type_for_uri(in->uri), title);
        if (!ok) return err_oom();
    }
    return 0;
}

static int add_properties(cJSON *props, const task *t, const char *created)
{
    int rc = -1;
    char *lineage = mem_malloc(LINEAGE_MAX);
    cJSON *sw = NULL;
    if (!lineage) return err_oom();
    lineage_sentence(t, lineage, LINEAGE_MAX);
    /* Derived data has no acquisition instant of its own; STAC requires a
     * datetime, and the publication time is the honest one. */
    if (!cJSON_AddStringToObject(props, "datetime", created) ||
        !cJSON_AddStringToObject(props, "created", created) ||
        !cJSON_AddStringToObject(props, "terrane:namespace", t->namespace_) ||
        !cJSON_AddStringToObject(props, "terrane:assetKey", t->asset_key) ||
        !cJSON_AddStringToObject(props, "terrane:dataVersion", t->data_version) ||
        !cJSON_AddStringToObject(props, "terrane:operation", t->operation) ||
        !(sw = cJSON_AddObjectToObject(props, "processing:software")) ||
        !cJSON_AddStringToObject(sw, "terrane-worker", TERRANE_VERSION) ||
        !cJSON_AddStringToObject(sw, "GDAL", GDALVersionInfo("RELEASE_NAME")) ||
        !cJSON_AddStringToObject(props, "processing:lineage", lineage) ||
        !cJSON_AddStringToObject(props, "processing:datetime", created)) {
        err_oom();
        goto cleanup;
    }
    /* A partition's key, and for a time partition its window as STAC's
     * common start/end_datetime. */
    if (t->has_partition &&
        (!cJSON_AddStringToObject(props, "terrane:partition", t->partition.key) ||
         (t->partition.start &&
          (!cJSON_AddStringToObject(props, "start_datetime", t->partition.start) ||
           !cJSON_AddStringToObject(props, "end_datetime", t->partition.end))))) {
        err_oom();
        goto cleanup;
    }
    rc = 0;
cleanup:
    mem_free(lineage);
    return rc;
}

int stac_item_build(const task *t, const stac_file *files, size_t n_files, const char *self_href,
                    const char *created, cJSON **out)
{
    int rc = -1;
    char id[320];
    /* Parts are built apart and assembled at the end, for the usual key
     * order (geometry and bbox before properties); unattached parts are
     * freed at cleanup. */
    cJSON *item = NULL, *props = NULL, *assets = NULL, *links = NULL, *exts = NULL;
    footprint fp = {0};
    bool used_proj = false, used_raster = false;
    *out = NULL;

    item = cJSON_CreateObject();
    props = cJSON_CreateObject();
    assets = cJSON_CreateObject();
    links = cJSON_CreateArray();
    exts = cJSON_CreateArray();
    if (!item || !props || !assets || !links || !exts) goto oom;
    if (add_properties(props, t, created) < 0) goto cleanup;

    /* The footprint comes from the first COG, else the first GeoJSON. */
    size_t fp_src = n_files;
    for (size_t i = 0; i < n_files && fp_src == n_files; i++)
        if (files[i].is_cog && files[i].local_path) fp_src = i;
    for (size_t i = 0; i < n_files && fp_src == n_files; i++)
        if (files[i].local_path && files[i].media_type &&
            !strcmp(files[i].media_type, "application/geo+json"))
            fp_src = i;
    if (add_assets(assets, props, files, n_files, fp_src, &fp, &used_proj, &used_raster) < 0)
        goto cleanup;
    if (add_links(links, t, self_href) < 0) goto cleanup;

    const char *ext_urls[4];
    size_t n_ext = 0;
    if (used_proj) ext_urls[n_ext++] = STAC_EXT_PROJECTION;
    ext_urls[n_ext++] = STAC_EXT_FILE;
    ext_urls[n_ext++] = STAC_EXT_PROCESSING;
    if (used_raster) ext_urls[n_ext++] = STAC_EXT_RASTER;
    for (size_t i = 0; i < n_ext; i++) {
        cJSON *s = cJSON_CreateString(ext_urls[i]);
        if (!s) goto oom;
        cJSON_AddItemToArray(exts, s);
    }

    stac_item_id(t, id, sizeof id);
    if (!cJSON_AddStringToObject(item, "type", "Feature") ||
        !cJSON_AddStringToObject(item, "stac_version", STAC_VERSION))
        goto oom;
    bool ok = attach(item, "stac_extensions", exts);
    exts = NULL;
    if (!ok || !cJSON_AddStringToObject(item, "id", id) || !add_geometry(item, &fp)) goto oom;
    ok = attach(item, "properties", props);
    props = NULL;
    if (!ok) goto oom;
    ok = attach(item, "links", links);
    links = NULL;
    if (!ok) goto oom;
    ok = attach(item, "assets", assets);
    assets = NULL;
    if (!ok) goto oom;
    *out = item;
    item = NULL;
    rc = 0;
    goto cleanup;
oom:
    err_oom();
cleanup:
    cJSON_Delete(item);
    cJSON_Delete(props);
    cJSON_Delete(assets);
    cJSON_Delete(links);
    cJSON_Delete(exts);
    return rc;
}
