/*
 * hydro_io.c - reading hydrology grids from GDAL and writing their results
 * (hydro_io.h).
 *
 * Bands are read whole into one array (the algorithms need the whole grid),
 * masks and direction codes in strips of HYDRO_STRIP rows so no second
 * full-size buffer is needed. A COG is written from the caller's array
 * through a MEM dataset that wraps it (DATAPOINTER), without a copy.
 */
#include "hydro_io.h"

#include "cog.h"
#include "err.h"
#include "mem.h"

#include <cpl_conv.h>
#include <cpl_string.h>
#include <gdal_alg.h>
#include <math.h>
#include <ogr_api.h>
#include <ogr_srs_api.h>
#include <stdio.h>
#include <string.h>

#define HYDRO_STRIP 256

int hydro_raster_open(GDALDatasetH ds, const char *field, hydro_raster *out)
{
    hydro_raster *r = out;
    OGRSpatialReferenceH srs = NULL;
    memset(r, 0, sizeof *r);
    snprintf(r->field, sizeof r->field, "%s", field);
    r->g.w = (size_t)GDALGetRasterXSize(ds);
    r->g.h = (size_t)GDALGetRasterYSize(ds);
    if (r->g.w * r->g.h >= UINT32_MAX)
        return err_set(ERR_BAD_INPUT, ERR_INPUT_INVALID, field,
                       "%s: %zu x %zu cells; hydrology operations take fewer than 2^32 - 1 "
                       "(tile the raster)",
                       field, r->g.w, r->g.h);
    if (GDALGetGeoTransform(ds, r->gt) != CE_None)
        return err_set(ERR_BAD_INPUT, ERR_INPUT_INVALID, field,
                       "%s: the raster has no geotransform, so cell sizes are unknown", field);
    if (r->gt[2] != 0 || r->gt[4] != 0)
        return err_set(ERR_BAD_INPUT, ERR_INPUT_INVALID, field,
                       "%s: rotated or sheared rasters are not supported (warp it first)", field);
    if (!(r->dx = mem_malloc(r->g.h * sizeof *r->dx))) return err_oom();
    r->g.dx = r->dx;
    const char *wkt = GDALGetProjectionRef(ds);
    double unit = 1;
    bool geographic = false;
    if (wkt && *wkt) {
        if (!(r->wkt = mem_strdup(wkt))) goto oom;
        srs = OSRNewSpatialReference(wkt);
        if (srs) {
            geographic = OSRIsGeographic(srs);
            if (!geographic) unit = OSRGetLinearUnits(srs, NULL);
            OSRDestroySpatialReference(srs);
        }
    }
    double px = fabs(r->gt[1]), py = fabs(r->gt[5]);
    if (geographic) {
        double rad = M_PI / 180;
        r->g.dy = HYDRO_EARTH_RADIUS * py * rad;
        for (size_t y = 0; y < r->g.h; y++) {
            double lat = r->gt[3] + ((double)y + 0.5) * r->gt[5];
            r->dx[y] = HYDRO_EARTH_RADIUS * cos(lat * rad) * px * rad;
        }
    } else {
        r->g.dy = py * unit;
        for (size_t y = 0; y < r->g.h; y++)
            r->dx[y] = px * unit;
    }
    return 0;
oom:
    hydro_raster_free(r);
    return err_oom();
}

void hydro_raster_free(hydro_raster *r)
{
    if (!r) return;
    mem_free(r->wkt);
    mem_free(r->dx);
    r->wkt = NULL;
    r->dx = NULL;
}

int hydro_raster_same_grid(const hydro_raster *r, const hydro_raster *other)
{
    bool same = r->g.w == other->g.w && r->g.h == other->g.h;
    double tol = fabs(r->gt[1]) * 1e-3;
    for (int k = 0; k < 6 && same; k++)
        same = fabs(r->gt[k] - other->gt[k]) <= tol;
    if (!same)
        return err_set(ERR_BAD_INPUT, ERR_CRS_MISMATCH, other->field,
                       "%s: %zu x %zu cells from (%.10g, %.10g) by %.10g, but %s is %zu x %zu "
                       "from (%.10g, %.10g) by %.10g; the inputs must share one grid",
                       other->field, other->g.w, other->g.h, other->gt[0], other->gt[3],
                       other->gt[1], r->field, r->g.w, r->g.h, r->gt[0], r->gt[3], r->gt[1]);
    return 0;
}

static int read_fail(const hydro_raster *r)
{
    return err_set_gdal(ERR_BAD_INPUT, ERR_INPUT_INVALID, r->field, "%s: reading the raster failed",
                        r->field);
}

/* Calls set(buf, i) for every masked-out cell of band. */
static int apply_mask(GDALRasterBandH band, const hydro_raster *r, void *buf,
                      void (*set)(void *, size_t))
{
    int flags = GDALGetMaskFlags(band);
    if (flags & GMF_ALL_VALID) return 0;
    GDALRasterBandH mask = GDALGetMaskBand(band);
    size_t w = r->g.w;
    uint8_t *strip = mem_malloc(w * HYDRO_STRIP);
    if (!strip) return err_oom();
    for (size_t y0 = 0; y0 < r->g.h; y0 += HYDRO_STRIP) {
        size_t rows = r->g.h - y0 < HYDRO_STRIP ? r->g.h - y0 : HYDRO_STRIP;
        if (GDALRasterIO(mask, GF_Read, 0, (int)y0, (int)w, (int)rows, strip, (int)w, (int)rows,
                         GDT_Byte, 0, 0) != CE_None) {
            mem_free(strip);
            return read_fail(r);
        }
        for (size_t k = 0; k < rows * w; k++)
            if (!strip[k]) set(buf, y0 * w + k);
    }
    mem_free(strip);
    return 0;
}

static void set_nan_f(void *buf, size_t i)
{
    ((float *)buf)[i] = NAN;
}

static void set_nan_d(void *buf, size_t i)
{
    ((double *)buf)[i] = NAN;
}

static int read_whole(GDALDatasetH ds, int band_no, const hydro_raster *r, GDALDataType type,
                      size_t size, void (*set)(void *, size_t), void **out)
{
    GDALRasterBandH band = GDALGetRasterBand(ds, band_no);
    void *buf = mem_malloc(r->g.w * r->g.h * size);
    if (!buf)
        return err_set(ERR_TRANSIENT, ERR_NO_MEMORY, r->field, "%s: no memory for %zu x %zu cells",
                       r->field, r->g.w, r->g.h);
    hydro_hint_huge(buf, r->g.w * r->g.h * size);
    if (GDALRasterIO(band, GF_Read, 0, 0, (int)r->g.w, (int)r->g.h, buf, (int)r->g.w, (int)r->g.h,
                     type, 0, 0) != CE_None) {
        mem_free(buf);
        return read_fail(r);
    }
    if (apply_mask(band, r, buf, set) < 0) {
        mem_free(buf);
        return -1;
    }
    *out = buf;
    return 0;
}

int hydro_read_float(GDALDatasetH ds, int band, const hydro_raster *r, float **out)
{
    void *buf = NULL;
    if (read_whole(ds, band, r, GDT_Float32, sizeof(float), set_nan_f, &buf) < 0) return -1;
    *out = buf;
    return 0;
}

int hydro_read_double(GDALDatasetH ds, int band, const hydro_raster *r, double **out)
{
    void *buf = NULL;
    if (read_whole(ds, band, r, GDT_Float64, sizeof(double), set_nan_d, &buf) < 0) return -1;
    *out = buf;
    return 0;
}

static void set_nodata_dir(void *buf, size_t i)
{
    ((uint8_t *)buf)[i] = HYDRO_NODATA;
}

int hydro_read_dirs(GDALDatasetH ds, const hydro_raster *r, hydro_encoding enc, uint8_t **out)
{
    GDALRasterBandH band = GDALGetRasterBand(ds, 1);
    size_t w = r->g.w, n = r->g.w * r->g.h;
    uint8_t *dir = mem_malloc(n ? n : 1);
    if (dir) hydro_hint_huge(dir, n);
    int32_t *strip = mem_malloc(w * HYDRO_STRIP * sizeof *strip);
    int has_nd = 0, rc = -1;
    double nd = GDALGetRasterNoDataValue(band, &has_nd);
    if (!dir || !strip) {
        err_oom();
        goto cleanup;
    }
    for (size_t y0 = 0; y0 < r->g.h; y0 += HYDRO_STRIP) {
        size_t rows = r->g.h - y0 < HYDRO_STRIP ? r->g.h - y0 : HYDRO_STRIP;
        if (GDALRasterIO(band, GF_Read, 0, (int)y0, (int)w, (int)rows, strip, (int)w, (int)rows,
                         GDT_Int32, 0, 0) != CE_None) {
            read_fail(r);
            goto cleanup;
        }
        for (size_t k = 0; k < rows * w; k++) {
            if (has_nd && strip[k] == nd) {
                dir[y0 * w + k] = HYDRO_NODATA;
                continue;
            }
            int d = hydro_dir_decode(strip[k], enc);
            if (d < 0) {
                err_set(ERR_BAD_INPUT, ERR_INPUT_INVALID, r->field,
                        "%s: %d at row %zu, column %zu is not a %s flow direction code", r->field,
                        (int)strip[k], y0 + k / w, k % w, enc == HYDRO_ENC_ESRI ? "esri" : "grass");
                goto cleanup;
            }
            dir[y0 * w + k] = (uint8_t)d;
        }
    }
    if (apply_mask(band, r, dir, set_nodata_dir) < 0) goto cleanup;
    hydro_d8_normalize(&r->g, dir);
    *out = dir;
    dir = NULL;
    rc = 0;
cleanup:
    mem_free(dir);
    mem_free(strip);
    return rc;
}

hydro_encoding hydro_dirs_encoding(GDALDatasetH ds, hydro_encoding dflt)
{
    const char *v = GDALGetMetadataItem(ds, "TERRANE_FLOW_ENCODING", NULL);
    if (v && !strcmp(v, "esri")) return HYDRO_ENC_ESRI;
    if (v && !strcmp(v, "grass")) return HYDRO_ENC_GRASS;
    return dflt;
}

/* A MEM dataset over data (no copy), on r's grid. */
static GDALDatasetH wrap(const hydro_raster *r, void *data, GDALDataType type)
{
    GDALDriverH mem = GDALGetDriverByName("MEM");
    GDALDatasetH ds = mem ? GDALCreate(mem, "", (int)r->g.w, (int)r->g.h, 0, type, NULL) : NULL;
    char opt[64];
    char *opts[2] = {opt, NULL};
    if (!ds) return NULL;
    snprintf(opt, sizeof opt, "DATAPOINTER=%p", data);
    if (GDALAddBand(ds, type, opts) != CE_None) {
        GDALClose(ds);
        return NULL;
    }
    GDALSetGeoTransform(ds, (double *)r->gt);
    if (r->wkt) GDALSetProjection(ds, r->wkt);
    return ds;
}

cJSON *hydro_cog_params(const cJSON *params, GDALDataType type, bool overviews)
{
    cJSON *p = params ? cJSON_Duplicate(params, true) : cJSON_CreateObject();
    bool ok = p != NULL;
    if (ok && !params_has(p, "compression")) {
        /* The hydrology grids are written once and read whole by the next
         * step: ZSTD at level 1 costs a fifth of DEFLATE's CPU at a similar
         * size; a surface compresses a third better with the floating-point
         * predictor, codes and counts gain nothing from one. */
        ok = cJSON_AddStringToObject(p, "compression", "ZSTD") &&
             (params_has(p, "level") || cJSON_AddNumberToObject(p, "level", 1)) &&
             (params_has(p, "predictor") || type != GDT_Float32 || !overviews ||
              cJSON_AddNumberToObject(p, "predictor", 3));
    }
    if (ok && !params_has(p, "overviews")) ok = cJSON_AddBoolToObject(p, "overviews", overviews);
    if (!ok) {
        cJSON_Delete(p);
        err_oom();
        return NULL;
    }
    return p;
}

int hydro_write_cog(const hydro_raster *r, void *data, GDALDataType type, bool has_nodata,
                    double nodata, char **meta, bool overviews, const cJSON *params,
                    const char *path, GDALProgressFunc progress, void *progress_arg)
{
    cJSON *p = hydro_cog_params(params, type, overviews);
    if (!p) return -1;
    GDALDatasetH ds = wrap(r, data, type);
    int rc;
    if (!ds) {
        cJSON_Delete(p);
        return err_set_gdal(ERR_TRANSIENT, ERR_NO_MEMORY, NULL, "wrapping the result grid");
    }
    if (has_nodata) GDALSetRasterNoDataValue(GDALGetRasterBand(ds, 1), nodata);
    if (meta) GDALSetMetadata(ds, meta, NULL);
    rc = cog_write(ds, p, path, progress, progress_arg);
    GDALClose(ds);
    cJSON_Delete(p);
    return rc;
}

static OGRSpatialReferenceH raster_srs(const hydro_raster *r)
{
    OGRSpatialReferenceH srs = r->wkt ? OSRNewSpatialReference(r->wkt) : NULL;
    if (srs) OSRSetAxisMappingStrategy(srs, OAMS_TRADITIONAL_GIS_ORDER);
    return srs;
}

/* GeoJSON as RFC 7946 has it: the driver reprojects from the layer's CRS
 * to WGS 84 longitude/latitude (7 decimals, about 1 cm), the only CRS the
 * format names; a CRS without an EPSG code could not be written at all. */
static char *const geojson_layer_opts[] = {"RFC7946=YES", NULL};

static GDALDatasetH geojson_create(const char *path)
{
    GDALDriverH drv = GDALGetDriverByName("GeoJSON");
    return drv ? GDALCreate(drv, path, 0, 0, 0, GDT_Unknown, NULL) : NULL;
}

int hydro_write_polygons(const hydro_raster *r, uint32_t *label, const char *layer_name,
                         const char *path)
{
    size_t n = r->g.w * r->g.h;
    uint32_t max = 0;
    double *area = NULL;
    GDALDatasetH src = NULL, mem = NULL, out = NULL;
    OGRSpatialReferenceH srs = raster_srs(r);
    OGRFeatureH f = NULL;
    char *opts[] = {"8CONNECTED=8", NULL};
    int rc = -1;

    for (size_t i = 0; i < n; i++)
        if (label[i] > max) max = label[i];
    if (max > INT32_MAX) {
        err_set(ERR_BAD_INPUT, ERR_INPUT_INVALID, NULL, "too many catchments to polygonize");
        goto cleanup;
    }
    if (!(area = mem_calloc((size_t)max + 1, sizeof *area))) {
        err_oom();
        goto cleanup;
    }
    for (size_t i = 0; i < n; i++)
        area[label[i]] += r->g.dx[i / r->g.w] * r->g.dy;
    if (!(src = wrap(r, label, GDT_UInt32))) goto gdal_fail;
    GDALRasterBandH band = GDALGetRasterBand(src, 1);
    GDALSetRasterNoDataValue(band, 0);
    GDALDriverH mdrv = GDALGetDriverByName("Memory");
    if (!mdrv || !(mem = GDALCreate(mdrv, "", 0, 0, 0, GDT_Unknown, NULL))) goto gdal_fail;
    OGRLayerH ml = GDALDatasetCreateLayer(mem, layer_name, srs, wkbPolygon, NULL);
    OGRFieldDefnH fd = OGR_Fld_Create("id", OFTInteger);
    if (!ml || OGR_L_CreateField(ml, fd, TRUE) != OGRERR_NONE) {
        OGR_Fld_Destroy(fd);
        goto gdal_fail;
    }
    OGR_Fld_Destroy(fd);
    if (GDALPolygonize(band, GDALGetMaskBand(band), ml, 0, opts, NULL, NULL) != CE_None)
        goto gdal_fail;
    if (!(out = geojson_create(path))) goto gdal_fail;
    OGRLayerH ol =
        GDALDatasetCreateLayer(out, layer_name, srs, wkbPolygon, (char **)geojson_layer_opts);
    if (!ol) goto gdal_fail;
    fd = OGR_Fld_Create("id", OFTInteger);
    OGRFieldDefnH fa = OGR_Fld_Create("area", OFTReal);
    bool ok = OGR_L_CreateField(ol, fd, TRUE) == OGRERR_NONE &&
              OGR_L_CreateField(ol, fa, TRUE) == OGRERR_NONE;
    OGR_Fld_Destroy(fd);
    OGR_Fld_Destroy(fa);
    if (!ok) goto gdal_fail;
    OGR_L_ResetReading(ml);
    while ((f = OGR_L_GetNextFeature(ml))) {
        int id = OGR_F_GetFieldAsInteger(f, 0);
        OGRFeatureH o = OGR_F_Create(OGR_L_GetLayerDefn(ol));
        OGR_F_SetFieldInteger(o, 0, id);
        OGR_F_SetFieldDouble(o, 1, area[id]);
        OGR_F_SetGeometry(o, OGR_F_GetGeometryRef(f));
        OGRErr e = OGR_L_CreateFeature(ol, o);
        OGR_F_Destroy(o);
        OGR_F_Destroy(f);
        f = NULL;
        if (e != OGRERR_NONE) goto gdal_fail;
    }
    CPLErrorReset();
    GDALClose(out);
    out = NULL;
    if (CPLGetLastErrorType() >= CE_Failure) goto gdal_fail;
    rc = 0;
    goto cleanup;
gdal_fail:
    err_set_gdal(ERR_TRANSIENT, ERR_OUTPUT, NULL, "writing polygons to %s", path);
cleanup:
    if (f) OGR_F_Destroy(f);
    if (out) GDALClose(out);
    if (mem) GDALClose(mem);
    if (src) GDALClose(src);
    if (srs) OSRDestroySpatialReference(srs);
    mem_free(area);
    return rc;
}

struct hydro_lines {
    const hydro_raster *r;
    GDALDatasetH ds;
    OGRLayerH layer;
    int next_id;
    bool failed;
};

int hydro_lines_open(const hydro_raster *r, const char *path, hydro_lines **out)
{
    hydro_lines *l = mem_calloc(1, sizeof *l);
    OGRSpatialReferenceH srs = raster_srs(r);
    OGRFieldDefnH fid = OGR_Fld_Create("id", OFTInteger),
                  ford = OGR_Fld_Create("order", OFTInteger);
    int rc = -1;
    if (!l) {
        err_oom();
        goto cleanup;
    }
    l->r = r;
    if (!(l->ds = geojson_create(path)) ||
        !(l->layer = GDALDatasetCreateLayer(l->ds, "streams", srs, wkbLineString,
                                            (char **)geojson_layer_opts)) ||
        OGR_L_CreateField(l->layer, fid, TRUE) != OGRERR_NONE ||
        OGR_L_CreateField(l->layer, ford, TRUE) != OGRERR_NONE) {
        err_set_gdal(ERR_TRANSIENT, ERR_OUTPUT, NULL, "creating %s", path);
        goto cleanup;
    }
    *out = l;
    l = NULL;
    rc = 0;
cleanup:
    if (l) {
        if (l->ds) GDALClose(l->ds);
        mem_free(l);
    }
    OGR_Fld_Destroy(fid);
    OGR_Fld_Destroy(ford);
    if (srs) OSRDestroySpatialReference(srs);
    return rc;
}

int hydro_lines_add(const uint32_t *cells, size_t n, unsigned order, void *arg)
{
    hydro_lines *l = arg;
    const hydro_raster *r = l->r;
    OGRGeometryH line = OGR_G_CreateGeometry(wkbLineString);
    OGRFeatureH f = OGR_F_Create(OGR_L_GetLayerDefn(l->layer));
    int rc = -1;
    if (!line || !f) {
        err_oom();
        goto cleanup;
    }
    for (size_t k = 0; k < n; k++) {
        size_t y = cells[k] / r->g.w, x = cells[k] - y * r->g.w;
        OGR_G_AddPoint_2D(line, r->gt[0] + ((double)x + 0.5) * r->gt[1],
                          r->gt[3] + ((double)y + 0.5) * r->gt[5]);
    }
    OGR_F_SetFieldInteger(f, 0, ++l->next_id);
    OGR_F_SetFieldInteger(f, 1, (int)order);
    OGR_F_SetGeometryDirectly(f, line);
    line = NULL;
    if (OGR_L_CreateFeature(l->layer, f) != OGRERR_NONE) {
        err_set_gdal(ERR_TRANSIENT, ERR_OUTPUT, NULL, "writing a stream line");
        l->failed = true;
        goto cleanup;
    }
    rc = 0;
cleanup:
    if (line) OGR_G_DestroyGeometry(line);
    if (f) OGR_F_Destroy(f);
    return rc;
}

int hydro_lines_close(hydro_lines *l)
{
    if (!l) return 0;
    CPLErrorReset();
    GDALClose(l->ds);
    bool failed = l->failed || CPLGetLastErrorType() >= CE_Failure;
    mem_free(l);
    if (failed) return err_set_gdal(ERR_TRANSIENT, ERR_OUTPUT, NULL, "writing the stream lines");
    return 0;
}
