/*
 * zonal.c - zonal statistics of a raster band over polygons (zonal.h).
 *
 * For each feature: its geometry is reprojected to the raster's CRS,
 * burnt into a Byte MEM dataset laid over one tile of its bounding window
 * with GDALRasterizeGeometries (default rule: cell centres), and the
 * raster's values under the burnt cells are accumulated. The output files
 * are streamed feature by feature, so memory does not grow with the layer.
 */
#include "zonal.h"

#include "cog.h"
#include "err.h"
#include "log.h"
#include "mem.h"
#include "tpool.h"

#include <cpl_conv.h>
#include <cpl_error.h>
#include <cpl_string.h>
#include <errno.h>
#include <float.h>
#include <gdal_alg.h>
#include <math.h>
#include <ogr_srs_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const stat_names[ZONAL_N_STATS] = {"count", "min", "max",
                                                      "mean",  "sum", "stddev"};

const char *zonal_stat_name(unsigned i)
{
    return i < ZONAL_N_STATS ? stat_names[i] : NULL;
}

/* ---- accumulator ------------------------------------------------------------ */

void zonal_acc_init(zonal_acc *a)
{
    memset(a, 0, sizeof *a);
    a->min = HUGE_VAL;
    a->max = -HUGE_VAL;
}

void zonal_acc_add(zonal_acc *a, double v)
{
    double t, d;
    a->count++;
    if (v < a->min) a->min = v;
    if (v > a->max) a->max = v;
    /* Neumaier's variant of Kahan summation: also exact when the new term
     * is larger than the running sum. */
    t = a->sum + v;
    if (fabs(a->sum) >= fabs(v))
        a->comp += (a->sum - t) + v;
    else
        a->comp += (v - t) + a->sum;
    a->sum = t;
    /* Welford: no catastrophic cancellation in the variance. */
    d = v - a->mean;
    a->mean += d / (double)a->count;
    a->m2 += d * (v - a->mean);
}

double zonal_acc_sum(const zonal_acc *a)
{
    return a->sum + a->comp;
}

double zonal_acc_mean(const zonal_acc *a)
{
    /* The compensated sum is the more accurate of the two means. */
    return a->count ? zonal_acc_sum(a) / (double)a->count : 0;
}

double zonal_acc_stddev(const zonal_acc *a)
{
    return a->count ? sqrt(a->m2 / (double)a->count) : 0;
}

/* ---- one polygon ---------------------------------------------------------- */

enum { MASK_NONE, MASK_VALUE, MASK_BAND };

/* Pixel window [x0, x1) x [y0, y1) of the raster covered by env; false when
 * it is empty. Clamps in double before converting, so coordinates far
 * outside the raster (or NaN) cannot overflow an int. */
static bool envelope_window(const double inv[6], const OGREnvelope *env, int w, int h, int win[4])
{
    const double xs[2] = {env->MinX, env->MaxX}, ys[2] = {env->MinY, env->MaxY};
    double px0 = HUGE_VAL, px1 = -HUGE_VAL, py0 = HUGE_VAL, py1 = -HUGE_VAL;
    for (int i = 0; i < 2; i++) {
        for (int j = 0; j < 2; j++) {
            double px = inv[0] + xs[i] * inv[1] + ys[j] * inv[2];
            double py = inv[3] + xs[i] * inv[4] + ys[j] * inv[5];
            px0 = fmin(px0, px);
            px1 = fmax(px1, px);
            py0 = fmin(py0, py);
            py1 = fmax(py1, py);
        }
    }
    px0 = fmax(0, floor(px0));
    py0 = fmax(0, floor(py0));
    px1 = fmin(w, ceil(px1));
    py1 = fmin(h, ceil(py1));
    if (!(px0 < px1 && py0 < py1)) return false;
    win[0] = (int)px0;
    win[1] = (int)py0;
    win[2] = (int)px1;
    win[3] = (int)py1;
    return true;
}

int zonal_polygon(GDALDatasetH raster, int band, OGRGeometryH geom, unsigned tile,
                  const char *raster_field, zonal_acc *acc, bool *overlaps)
{
    GDALRasterBandH rb = GDALGetRasterBand(raster, band);
    GDALRasterBandH mask_band = NULL, mem_band;
    GDALDatasetH mem = NULL;
    GDALDriverH mem_drv = GDALGetDriverByName("MEM");
    OGREnvelope env;
    double gt[6], inv[6], nodata = 0;
    double *vals = NULL;
    unsigned char *sel = NULL, *mask = NULL;
    int win[4], tw_max, th_max, mask_kind = MASK_NONE, flags, has_nd = 0;
    int bands[1] = {1};
    double burn[1] = {1.0};
    int rc = -1;

    *overlaps = false;
    if (!tile) tile = ZONAL_TILE;
    if (!rb || !mem_drv)
        return err_set(ERR_INTERNAL, ERR_INTERNAL_CODE, NULL, "zonal: band or MEM driver missing");
    /* Without a geotransform GDAL reports the identity one, which is what
     * pixel-space zones need. */
    GDALGetGeoTransform(raster, gt);
    if (!GDALInvGeoTransform(gt, inv))
        return err_set(ERR_BAD_INPUT, ERR_INPUT_INVALID, raster_field,
                       "%s: the raster's geotransform cannot be inverted", raster_field);
    OGR_G_GetEnvelope(geom, &env);
    if (!envelope_window(inv, &env, GDALGetRasterXSize(raster), GDALGetRasterYSize(raster), win))
        return 0;
    *overlaps = true;

    flags = GDALGetMaskFlags(rb);
    if (!(flags & GMF_ALL_VALID)) {
        if (flags & GMF_NODATA) {
            nodata = GDALGetRasterNoDataValue(rb, &has_nd);
            /* Float32 cells read as doubles are exact floats; round the
             * nodata value the same way so the two compare equal. */
            if (GDALGetRasterDataType(rb) == GDT_Float32 && fabs(nodata) <= FLT_MAX)
                nodata = (double)(float)nodata;
            mask_kind = MASK_VALUE;
        } else if ((mask_band = GDALGetMaskBand(rb))) {
            mask_kind = MASK_BAND;
        }
    }

    tw_max = win[2] - win[0] < (int)tile ? win[2] - win[0] : (int)tile;
    th_max = win[3] - win[1] < (int)tile ? win[3] - win[1] : (int)tile;
    vals = mem_malloc((size_t)tw_max * (size_t)th_max * sizeof *vals);
    sel = mem_malloc((size_t)tw_max * (size_t)th_max);
    mask = mem_malloc((size_t)tw_max * (size_t)th_max);
    if (!vals || !sel || !mask) {
        err_oom();
        goto cleanup;
    }
    mem = GDALCreate(mem_drv, "", tw_max, th_max, 1, GDT_Byte, NULL);
    if (!mem) {
        err_set_gdal(ERR_TRANSIENT, ERR_NO_MEMORY, NULL, "zonal: cannot create a %dx%d mask",
                     tw_max, th_max);
        goto cleanup;
    }
    mem_band = GDALGetRasterBand(mem, 1);

    for (int ty = win[1]; ty < win[3]; ty += th_max) {
        int th = win[3] - ty < th_max ? win[3] - ty : th_max;
        for (int tx = win[0]; tx < win[2]; tx += tw_max) {
            int tw = win[2] - tx < tw_max ? win[2] - tx : tw_max;
            size_t n = (size_t)tw * (size_t)th, i;
            bool any = false;
            /* The MEM dataset is laid over this tile; cells burnt beyond the
             * raster's edge in a short edge tile are never read. */
            double tgt[6] = {gt[0] + tx * gt[1] + ty * gt[2], gt[1], gt[2],
                             gt[3] + tx * gt[4] + ty * gt[5], gt[4], gt[5]};
            GDALSetGeoTransform(mem, tgt);
            CPLErrorReset();
            if (GDALFillRaster(mem_band, 0, 0) != CE_None ||
                GDALRasterizeGeometries(mem, 1, bands, 1, &geom, NULL, NULL, burn, NULL, NULL,
                                        NULL) != CE_None ||
                GDALRasterIO(mem_band, GF_Read, 0, 0, tw, th, sel, tw, th, GDT_Byte, 0, 0) !=
                    CE_None) {
                err_set_gdal(ERR_INTERNAL, ERR_INTERNAL_CODE, NULL, "zonal: rasterizing failed");
                goto cleanup;
            }
            for (i = 0; i < n && !any; i++)
                any = sel[i] != 0;
            if (!any) continue;
            CPLErrorReset();
            if (GDALRasterIO(rb, GF_Read, tx, ty, tw, th, vals, tw, th, GDT_Float64, 0, 0) !=
                    CE_None ||
                (mask_kind == MASK_BAND && GDALRasterIO(mask_band, GF_Read, tx, ty, tw, th, mask,
                                                        tw, th, GDT_Byte, 0, 0) != CE_None)) {
                cog_gdal_fail(raster_field, NULL, "reading the raster");
                goto cleanup;
            }
            for (i = 0; i < n; i++) {
                double v = vals[i];
                if (!sel[i] || !(fabs(v) <= DBL_MAX)) continue;
                if (mask_kind == MASK_VALUE && v == nodata) continue;
                if (mask_kind == MASK_BAND && mask[i] == 0) continue;
                zonal_acc_add(acc, v);
            }
        }
    }
    rc = 0;
cleanup:
    if (mem) GDALClose(mem);
    mem_free(vals);
    mem_free(sel);
    mem_free(mask);
    return rc;
}

/* ---- output -------------------------------------------------------------------- */

/* Shortest of %.15g and %.17g that reads back as v. */
static void format_number(double v, char *buf, size_t cap)
{
    snprintf(buf, cap, "%.15g", v);
    if (strtod(buf, NULL) != v) snprintf(buf, cap, "%.17g", v);
}

static void json_string(FILE *fp, const char *s)
{
    fputc('"', fp);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(fp, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", fp);
        else if (c == '\r')
            fputs("\\r", fp);
        else if (c == '\t')
            fputs("\\t", fp);
        else if (c < 0x20)
            fprintf(fp, "\\u%04x", c);
        else
            fputc(c, fp);
    }
    fputc('"', fp);
}

static void csv_string(FILE *fp, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, fp);
        return;
    }
    fputc('"', fp);
    for (; *s; s++) {
        if (*s == '"') fputc('"', fp);
        fputc(*s, fp);
    }
    fputc('"', fp);
}

/* A key value as text for both files; *quoted tells whether it is a string.
 * *out is NULL for a null value, else the caller's (mem_free). */
static int key_text(OGRFeatureH f, int idx, OGRFieldType type, bool *quoted, char **out)
{
    char num[40];
    const char *s;
    char *ascii = NULL;
    *quoted = false;
    *out = NULL;
    if (!OGR_F_IsFieldSetAndNotNull(f, idx)) return 0;
    switch (type) {
    case OFTInteger:
        snprintf(num, sizeof num, "%d", OGR_F_GetFieldAsInteger(f, idx));
        s = num;
        break;
    case OFTInteger64:
        snprintf(num, sizeof num, "%lld", (long long)OGR_F_GetFieldAsInteger64(f, idx));
        s = num;
        break;
    case OFTReal: {
        double v = OGR_F_GetFieldAsDouble(f, idx);
        if (!(fabs(v) <= DBL_MAX)) return 0;
        format_number(v, num, sizeof num);
        s = num;
        break;
    }
    default:
        *quoted = true;
        s = OGR_F_GetFieldAsString(f, idx);
        /* JSON must be UTF-8; drivers recode to UTF-8 when they know the
         * source encoding, and anything else is flattened rather than
         * emitted as invalid JSON. */
        if (!CPLIsUTF8(s, -1)) s = ascii = CPLForceToASCII(s, -1, '?');
        break;
    }
    *out = mem_strdup(s);
    CPLFree(ascii);
    return *out ? 0 : err_oom();
}

static void write_headers(const zonal_job *job, FILE *gj, FILE *csv)
{
    fputs("{\"type\":\"FeatureCollection\",\"features\":[", gj);
    csv_string(csv, job->key);
    for (unsigned s = 0; s < ZONAL_N_STATS; s++)
        if (job->stats & (1u << s)) fprintf(csv, ",%s", stat_names[s]);
    fputc('\n', csv);
}

/* Statistic bit s of acc; false when it is null (no cells, or a sum that
 * overflowed: JSON has no Infinity). */
static bool stat_value(const zonal_acc *acc, unsigned s, double *v)
{
    switch (1u << s) {
    case ZONAL_COUNT:
        *v = (double)acc->count;
        return true;
    case ZONAL_MIN:
        *v = acc->min;
        break;
    case ZONAL_MAX:
        *v = acc->max;
        break;
    case ZONAL_MEAN:
        *v = zonal_acc_mean(acc);
        break;
    case ZONAL_SUM:
        *v = zonal_acc_sum(acc);
        break;
    default:
        *v = zonal_acc_stddev(acc);
        break;
    }
    return acc->count > 0 && fabs(*v) <= DBL_MAX;
}

/* One feature's line in each file. key and geom_json may be NULL (null). */
static void write_feature(const zonal_job *job, FILE *gj, FILE *csv, bool first, const char *key,
                          bool key_quoted, const zonal_acc *acc, const char *geom_json)
{
    fputs(first ? "\n" : ",\n", gj);
    fputs("{\"type\":\"Feature\",\"properties\":{", gj);
    json_string(gj, job->key);
    fputc(':', gj);
    if (!key) {
        fputs("null", gj);
    } else if (key_quoted) {
        json_string(gj, key);
        csv_string(csv, key);
    } else {
        fputs(key, gj);
        fputs(key, csv);
    }
    for (unsigned s = 0; s < ZONAL_N_STATS; s++) {
        char num[40] = "";
        double v;
        bool valid;
        if (!(job->stats & (1u << s))) continue;
        valid = stat_value(acc, s, &v);
        if (valid && (1u << s) == ZONAL_COUNT)
            snprintf(num, sizeof num, "%llu", acc->count);
        else if (valid)
            format_number(v, num, sizeof num);
        fprintf(gj, ",\"%s\":%s", stat_names[s], valid ? num : "null");
        fprintf(csv, ",%s", num);
    }
    fprintf(gj, "},\"geometry\":%s}", geom_json ? geom_json : "null");
    fputc('\n', csv);
}

static bool is_polygonal(OGRwkbGeometryType t)
{
    t = OGR_GT_Flatten(t);
    return t == wkbPolygon || t == wkbMultiPolygon || t == wkbCurvePolygon || t == wkbMultiSurface;
}

static int list_fields(OGRFeatureDefnH defn, char *buf, size_t cap)
{
    size_t o = 0;
    int n = OGR_FD_GetFieldCount(defn);
    buf[0] = '\0';
    for (int i = 0; i < n && o + 8 < cap; i++) {
        int k = snprintf(buf + o, cap - o, "%s%s", i ? ", " : "",
                         OGR_Fld_GetNameRef(OGR_FD_GetFieldDefn(defn, i)));
        if (k < 0 || (size_t)k >= cap - o) break;
        o += (size_t)k;
    }
    return n;
}

static int close_file(FILE **fp, const char *path, int rc)
{
    int bad;
    if (!*fp) return rc;
    bad = ferror(*fp);
    if (fclose(*fp) != 0) bad = 1;
    *fp = NULL;
    if (bad && rc == 0)
        return err_set(ERR_TRANSIENT, ERR_SCRATCH, NULL, "zonal: writing %s failed: %s", path,
                       strerror(errno));
    return rc;
}

/* Features per batch: enough to keep the threads busy, few enough that
 * their geometries stay small next to GDAL's cache. */
#define ZONAL_BATCH 64

typedef struct zone_item {
    OGRFeatureH f;
    OGRGeometryH gr; /* in the raster's CRS; NULL for an empty geometry */
    char *geom_json; /* output geometry (CPLFree) */
    zonal_acc acc;
    bool overlaps;
} zone_item;

typedef struct zone_batch {
    const zonal_job *job;
    zone_item *items;
} zone_batch;

static int zone_one(size_t i, int worker, void *arg)
{
    const zone_batch *b = arg;
    const zonal_job *job = b->job;
    zone_item *it = &b->items[i];
    GDALDatasetH r =
        worker > 0 && worker <= job->n_more ? job->more_rasters[worker - 1] : job->raster;
    zonal_acc_init(&it->acc);
    it->overlaps = false;
    if (!it->gr) return 0;
    return zonal_polygon(r, job->band, it->gr, job->tile, job->raster_field, &it->acc,
                         &it->overlaps);
}

static void zone_item_clear(zone_item *it)
{
    if (it->f) OGR_F_Destroy(it->f);
    if (it->gr) OGR_G_DestroyGeometry(it->gr);
    CPLFree(it->geom_json);
    memset(it, 0, sizeof *it);
}

int zonal_run(const zonal_job *job)
{
    OGRLayerH layer;
    OGRFeatureDefnH defn;
    OGRwkbGeometryType ltype;
    OGRFieldType key_type;
    OGRSpatialReferenceH lsrs, rsrs, wgs84 = NULL;
    OGRCoordinateTransformationH to_raster = NULL, to_out = NULL;
    OGRGeometryH gr = NULL, go = NULL;
    zone_item *items = NULL;
    FILE *gj = NULL, *csv = NULL;
    char *key = NULL;
    char **json_opts = NULL;
    GIntBig n_features;
    unsigned long long done = 0;
    bool any_overlap = false;
    int key_idx, rc = -1;

    if (GDALDatasetGetLayerCount(job->zones) < 1) {
        err_set(ERR_BAD_INPUT, ERR_INPUT_INVALID, job->zones_field, "%s: has no vector layer",
                job->zones_field);
        goto cleanup;
    }
    layer = GDALDatasetGetLayer(job->zones, 0);
    defn = OGR_L_GetLayerDefn(layer);
    ltype = OGR_GT_Flatten(OGR_L_GetGeomType(layer));
    /* Formats without a declared type (GeoJSON, some GPKG) say wkbUnknown;
     * their features are checked one by one below. */
    if (ltype != wkbUnknown && !is_polygonal(ltype)) {
        err_set(ERR_BAD_INPUT, ERR_INPUT_INVALID, job->zones_field,
                "%s: layer '%s' has %s geometries; zones must be polygons", job->zones_field,
                OGR_L_GetName(layer), OGRGeometryTypeToName(ltype));
        goto cleanup;
    }
    /* OGR matches field names case-insensitively; the key is also the
     * output's column name, so it must be spelt as in the layer. */
    key_idx = -1;
    for (int i = 0; i < OGR_FD_GetFieldCount(defn) && key_idx < 0; i++)
        if (!strcmp(OGR_Fld_GetNameRef(OGR_FD_GetFieldDefn(defn, i)), job->key)) key_idx = i;
    if (key_idx < 0) {
        char fields[512];
        list_fields(defn, fields, sizeof fields);
        err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, "params.key",
                "params.key: layer '%s' of %s has no attribute '%s' (attributes: %s)",
                OGR_L_GetName(layer), job->zones_field, job->key, fields[0] ? fields : "none");
        goto cleanup;
    }
    key_type = OGR_Fld_GetType(OGR_FD_GetFieldDefn(defn, key_idx));

    lsrs = OGR_L_GetSpatialRef(layer);
    rsrs = GDALGetSpatialRef(job->raster);
    if (lsrs && rsrs && !OSRIsSame(lsrs, rsrs)) {
        CPLErrorReset();
        if (!(to_raster = OCTNewCoordinateTransformation(lsrs, rsrs))) {
            err_set_gdal(ERR_BAD_INPUT, ERR_CRS_MISMATCH, job->zones_field,
                         "%s: the zones' CRS cannot be transformed to the raster's",
                         job->zones_field);
            goto cleanup;
        }
    } else if (!lsrs != !rsrs) {
        log_kv(LOG_WARN,
               "zonal-stats: only one of raster and zones has a CRS; assuming both "
               "use the same coordinates",
               "zones", job->zones_field, (const char *)NULL);
    }
    if (lsrs) {
        /* RFC 7946: GeoJSON is WGS 84 longitude, latitude. */
        wgs84 = OSRNewSpatialReference(NULL);
        if (!wgs84 || OSRImportFromEPSG(wgs84, 4326) != OGRERR_NONE) {
            err_set_gdal(ERR_INTERNAL, ERR_INTERNAL_CODE, NULL, "zonal: EPSG:4326 unavailable");
            goto cleanup;
        }
        OSRSetAxisMappingStrategy(wgs84, OAMS_TRADITIONAL_GIS_ORDER);
        if (!OSRIsSame(lsrs, wgs84) && !(to_out = OCTNewCoordinateTransformation(lsrs, wgs84))) {
            err_set_gdal(ERR_BAD_INPUT, ERR_CRS_MISMATCH, job->zones_field,
                         "%s: the zones' CRS cannot be transformed to EPSG:4326", job->zones_field);
            goto cleanup;
        }
        json_opts = CSLAddString(json_opts, "COORDINATE_PRECISION=7");
    }

    gj = fopen(job->geojson_path, "w");
    csv = fopen(job->csv_path, "w");
    if (!gj || !csv) {
        err_set(ERR_TRANSIENT, ERR_SCRATCH, NULL, "zonal: cannot create %s: %s",
                gj ? job->csv_path : job->geojson_path, strerror(errno));
        goto cleanup;
    }
    write_headers(job, gj, csv);

    n_features = OGR_L_GetFeatureCount(layer, FALSE);
    OGR_L_ResetReading(layer);
    if (!(items = mem_calloc(ZONAL_BATCH, sizeof *items))) {
        err_oom();
        goto cleanup;
    }
    for (bool end = false; !end;) {
        size_t nb = 0;
        /* Read and prepare a batch on this thread (OGR layers and coordinate
         * transformations are not shared). */
        while (nb < ZONAL_BATCH) {
            zone_item *it = &items[nb];
            OGRGeometryH g;
            CPLErrorReset();
            if (!(it->f = OGR_L_GetNextFeature(layer))) {
                if (CPLGetLastErrorType() == CE_Failure) {
                    cog_gdal_fail(job->zones_field, NULL, "reading the zones");
                    goto cleanup;
                }
                end = true;
                break;
            }
            nb++;
            g = OGR_F_GetGeometryRef(it->f);
            if (!g || OGR_G_IsEmpty(g)) continue;
            if (!is_polygonal(OGR_G_GetGeometryType(g))) {
                err_set(ERR_BAD_INPUT, ERR_INPUT_INVALID, job->zones_field,
                        "%s: feature %lld is a %s; zones must be polygons", job->zones_field,
                        (long long)OGR_F_GetFID(it->f), OGR_G_GetGeometryName(g));
                goto cleanup;
            }
            /* The rasterizer wants straight edges; GeoJSON has no curves. */
            gr = OGR_G_HasCurveGeometry(g, FALSE) ? OGR_G_GetLinearGeometry(g, 0, NULL)
                                                  : OGR_G_Clone(g);
            go = gr ? OGR_G_Clone(gr) : NULL;
            if (!gr || !go) {
                err_oom();
                goto cleanup;
            }
            if ((to_raster && OGR_G_Transform(gr, to_raster) != OGRERR_NONE) ||
                (to_out && OGR_G_Transform(go, to_out) != OGRERR_NONE)) {
                err_set_gdal(ERR_BAD_INPUT, ERR_INPUT_INVALID, job->zones_field,
                             "%s: feature %lld cannot be reprojected", job->zones_field,
                             (long long)OGR_F_GetFID(it->f));
                goto cleanup;
            }
            if (!(it->geom_json = OGR_G_ExportToJsonEx(go, json_opts))) {
                err_set_gdal(ERR_BAD_INPUT, ERR_INPUT_INVALID, job->zones_field,
                             "%s: feature %lld cannot be written as GeoJSON", job->zones_field,
                             (long long)OGR_F_GetFID(it->f));
                goto cleanup;
            }
            it->gr = gr;
            gr = NULL;
            OGR_G_DestroyGeometry(go);
            go = NULL;
        }
        zone_batch batch = {.job = job, .items = items};
        if (tpool_for(job->n_more + 1, nb, zone_one, &batch) < 0) goto cleanup;
        for (size_t i = 0; i < nb; i++) {
            zone_item *it = &items[i];
            bool quoted = false;
            any_overlap |= it->overlaps;
            if (key_text(it->f, key_idx, key_type, &quoted, &key) < 0) goto cleanup;
            write_feature(job, gj, csv, done == 0, key, quoted, &it->acc, it->geom_json);
            mem_free(key);
            key = NULL;
            zone_item_clear(it);
            done++;
        }
        if (job->progress && n_features > 0 &&
            !job->progress((double)done / (double)n_features, NULL, job->progress_arg)) {
            err_set(ERR_TRANSIENT, ERR_INTERNAL_CODE, NULL, "zonal-stats: cancelled");
            goto cleanup;
        }
    }
    if (!any_overlap) {
        err_set(ERR_BAD_INPUT, ERR_EMPTY_INTERSECTION, job->zones_field,
                done ? "%s: no zone overlaps the raster (%s)"
                     : "%s: the zones layer has no features (raster %s)",
                job->zones_field, job->raster_field);
        goto cleanup;
    }
    fputs("\n]}\n", gj);
    rc = 0;
cleanup:
    rc = close_file(&gj, job->geojson_path, rc);
    rc = close_file(&csv, job->csv_path, rc);
    for (size_t i = 0; items && i < ZONAL_BATCH; i++)
        zone_item_clear(&items[i]);
    mem_free(items);
    if (gr) OGR_G_DestroyGeometry(gr);
    if (go) OGR_G_DestroyGeometry(go);
    mem_free(key);
    CSLDestroy(json_opts);
    if (to_raster) OCTDestroyCoordinateTransformation(to_raster);
    if (to_out) OCTDestroyCoordinateTransformation(to_out);
    if (wgs84) OSRRelease(wgs84);
    return rc;
}
