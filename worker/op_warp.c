/*
 * op_warp.c - the `warp` operation: reproject, resample and clip one raster.
 *
 * Two steps in scratch: GDALWarp writes a tiled, lightly compressed GTiff
 * (warp.tif), then cog_write turns it into asset.tif. Warping straight into
 * the COG driver would run the warper twice, once for the overviews and once
 * for the full resolution, and warping is the expensive part.
 *
 * The cutline is another input holding polygons. It is opened through the
 * vector allowlist (input.h) like any input, its polygons are copied into a
 * private /vsimem/ FlatGeobuf, and only that copy's name is given to
 * GDALWarp's -cutline: GDALWarp opens cutlines by name with any driver, so
 * the user's URI must never reach it. Cropping, reprojecting the cutline and
 * burning it are then gdalwarp's own, same as `gdalwarp -cutline`.
 */
#include "cog.h"
#include "err.h"
#include "input.h"
#include "log.h"
#include "mem.h"
#include "op.h"
#include "podres.h"
#include "terrane_proto.h"

#include <cpl_conv.h>
#include <cpl_string.h>
#include <cpl_vsi.h>
#include <ctype.h>
#include <gdal_alg.h>
#include <gdal_utils.h>
#include <ogr_api.h>
#include <ogr_srs_api.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static const char *const resamplings[] = {"nearest", "bilinear", "cubic", "cubicspline", "lanczos",
                                          "average", "rms",      "mode",  "max",         "min",
                                          "med",     "q1",       "q3",    "sum",         NULL};

static const param_spec warp_params[] = {
    {"dstCrs", PARAM_STRING, false, NULL, 0, 0, 32768},
    {"resolution", PARAM_NUMBER_OR_PAIR},
    {"resampling", PARAM_ENUM, false, resamplings},
    {"cutline", PARAM_STRING, false, NULL, 0, 0, 63},
    {"cropToCutline", PARAM_BOOL},
    {NULL},
};

static const char *const cutline_param[] = {"cutline", NULL};

/* Authorities whose codes PROJ resolves from its own database. */
static const char *const crs_authorities[] = {"EPSG", "ESRI", "OGC", "IAU_2015", "IGNF", NULL};
/* Leading keywords of WKT1 and WKT2 CRS definitions. */
static const char *const wkt_keywords[] = {
    "GEOGCS",         "PROJCS",         "GEOCCS",      "COMPD_CS",
    "VERT_CS",        "GEOGCRS",        "GEODCRS",     "PROJCRS",
    "BOUNDCRS",       "VERTCRS",        "ENGCRS",      "GEODETICCRS",
    "GEOGRAPHICCRS",  "PROJECTEDCRS",   "COMPOUNDCRS", "VERTICALCRS",
    "ENGINEERINGCRS", "DERIVEDPROJCRS", NULL};

/*
 * GDAL's SetFromUserInput (behind OSRSetFromUserInput and gdalwarp -t_srs)
 * also accepts file names, http:// URLs and DICT:file,code, which would let a
 * task read local files or the network. Only three forms are let through,
 * none of which it resolves with I/O beyond PROJ's own database:
 * AUTH:CODE, WKT, and PROJ strings without +init= (which reads init files).
 */
static bool crs_syntax_ok(const char *s)
{
    const char *colon = strchr(s, ':');
    if (colon) {
        size_t n = (size_t)(colon - s);
        bool auth = false;
        for (size_t i = 0; crs_authorities[i]; i++)
            if (strlen(crs_authorities[i]) == n && !strncasecmp(crs_authorities[i], s, n))
                auth = true;
        const char *c = colon + 1;
        if (auth && *c) {
            for (; *c; c++)
                if (!isalnum((unsigned char)*c) && *c != '_' && *c != '+' && *c != '.')
                    return false;
            return true;
        }
    }
    if (!strncmp(s, "+proj=", 6)) return !strstr(s, "+init=");
    for (size_t i = 0; wkt_keywords[i]; i++) {
        size_t n = strlen(wkt_keywords[i]);
        if (!strncasecmp(s, wkt_keywords[i], n) && (s[n] == '[' || s[n] == '(')) return true;
    }
    return false;
}

static int warp_validate(const task *t)
{
    const char *cutline = params_str(t->params, "cutline", NULL);
    const char *crs = params_str(t->params, "dstCrs", NULL);
    const cJSON *res = cJSON_GetObjectItemCaseSensitive(t->params, "resolution");

    if (cutline && !task_input_find(t, cutline))
        return err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, "params.cutline",
                       "params.cutline: no input named \"%s\"", cutline);
    if (!op_single_input(t, cutline_param)) return -1;
    if (!cutline && params_has(t->params, "cropToCutline"))
        return err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, "params.cropToCutline",
                       "params.cropToCutline: only applies with params.cutline");
    if (crs && !crs_syntax_ok(crs))
        return err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, "params.dstCrs",
                       "params.dstCrs: expected AUTHORITY:CODE (e.g. EPSG:32631), WKT or a "
                       "+proj= string");
    for (int i = 0; res && i < (cJSON_IsArray(res) ? 2 : 1); i++) {
        const cJSON *v = cJSON_IsArray(res) ? cJSON_GetArrayItem(res, i) : res;
        if (!(v->valuedouble > 0))
            return err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, "params.resolution",
                           "params.resolution: must be greater than 0");
    }
    return cog_check_params(t->params);
}

static bool is_polygonal(OGRwkbGeometryType type)
{
    switch (wkbFlatten(type)) {
    case wkbPolygon:
    case wkbMultiPolygon:
    case wkbCurvePolygon:
    case wkbMultiSurface:
        return true;
    default:
        return false;
    }
}

static bool has_crs(GDALDatasetH ds)
{
    return GDALGetSpatialRef(ds) || (GDALGetGCPCount(ds) > 0 && GDALGetGCPSpatialRef(ds));
}

/* The raster's footprint as a polygon in its own CRS, or NULL without a
 * geotransform (GCP-georeferenced rasters: gdalwarp checks those itself). */
static OGRGeometryH footprint(GDALDatasetH ds)
{
    double gt[6];
    if (GDALGetGeoTransform(ds, gt) != CE_None) return NULL;
    double w = GDALGetRasterXSize(ds), h = GDALGetRasterYSize(ds);
    const double px[5] = {0, w, w, 0, 0}, ln[5] = {0, 0, h, h, 0};
    OGRGeometryH ring = OGR_G_CreateGeometry(wkbLinearRing);
    OGRGeometryH poly = OGR_G_CreateGeometry(wkbPolygon);
    for (int i = 0; i < 5; i++)
        OGR_G_AddPoint_2D(ring, gt[0] + px[i] * gt[1] + ln[i] * gt[2],
                          gt[3] + px[i] * gt[4] + ln[i] * gt[5]);
    OGR_G_AddGeometryDirectly(poly, ring);
    return poly;
}

/*
 * Copies the cutline input's polygons to mem_path (a FlatGeobuf in /vsimem/)
 * and checks that they overlap the raster. raster_field/cut_field name the
 * two inputs in errors.
 */
static int prepare_cutline(GDALDatasetH raster, GDALDatasetH vec, const char *mem_path,
                           const char *raster_field, const char *cut_field, const char *cut_uri)
{
    GDALDriverH fgb = GDALGetDriverByName("FlatGeobuf");
    GDALDatasetH dst = NULL;
    OGRCoordinateTransformationH ct = NULL;
    OGRGeometryH fp = NULL;
    OGRFeatureH f = NULL, nf = NULL;
    OGRGeometryH g = NULL;
    char **lco = NULL;
    int rc = -1;
    long n_polygons = 0;
    bool intersects = false;

    int n_layers = GDALDatasetGetLayerCount(vec);
    if (n_layers != 1) {
        err_set(ERR_BAD_INPUT, ERR_INPUT_INVALID, cut_field,
                "%s: %s has %d layers; a cutline needs exactly one", cut_field, cut_uri, n_layers);
        goto cleanup;
    }
    OGRLayerH layer = GDALDatasetGetLayer(vec, 0);
    OGRSpatialReferenceH cut_srs = OGR_L_GetSpatialRef(layer);
    OGRSpatialReferenceH ras_srs = GDALGetSpatialRef(raster);
    if (cut_srs && !has_crs(raster)) {
        err_set(ERR_BAD_INPUT, ERR_CRS_MISMATCH, raster_field,
                "%s: the raster has no CRS, so the cutline (which has one) cannot be placed on "
                "it",
                raster_field);
        goto cleanup;
    }
    if (!cut_srs)
        log_kv(LOG_WARN, "cutline has no CRS; assuming the raster's", "uri", cut_uri,
               (const char *)NULL);
    /* Both SRS carry GDAL's data axis mapping (x = easting/longitude), so the
     * transformation works on the coordinates as stored. */
    if (cut_srs && ras_srs && !OSRIsSame(cut_srs, ras_srs)) {
        ct = OCTNewCoordinateTransformation(cut_srs, ras_srs);
        if (!ct) {
            err_set_gdal(ERR_BAD_INPUT, ERR_CRS_MISMATCH, cut_field,
                         "%s: no transformation from the cutline's CRS to the raster's", cut_field);
            goto cleanup;
        }
    }
    fp = footprint(raster);

    if (!fgb) {
        err_set(ERR_INTERNAL, ERR_INTERNAL_CODE, NULL, "GDAL has no FlatGeobuf driver");
        goto cleanup;
    }
    dst = GDALCreate(fgb, mem_path, 0, 0, 0, GDT_Unknown, NULL);
    lco = CSLSetNameValue(lco, "SPATIAL_INDEX", "NO");
    OGRLayerH out =
        dst ? GDALDatasetCreateLayer(dst, "cutline", cut_srs, wkbMultiPolygon, lco) : NULL;
    if (!out) {
        err_set_gdal(ERR_INTERNAL, ERR_INTERNAL_CODE, NULL, "cannot create the cutline copy");
        goto cleanup;
    }
    OGR_L_ResetReading(layer);
    for (long i = 0; (f = OGR_L_GetNextFeature(layer)) != NULL; i++) {
        OGRGeometryH src_g = OGR_F_GetGeometryRef(f);
        if (src_g && !OGR_G_IsEmpty(src_g)) {
            if (!is_polygonal(OGR_G_GetGeometryType(src_g))) {
                err_set(ERR_BAD_INPUT, ERR_INPUT_INVALID, cut_field,
                        "%s: feature %ld of %s is a %s; a cutline needs polygons", cut_field, i,
                        cut_uri, OGRGeometryTypeToName(OGR_G_GetGeometryType(src_g)));
                goto cleanup;
            }
            g = OGR_G_ForceToMultiPolygon(OGR_G_Clone(src_g));
            if (g) OGR_G_FlattenTo2D(g);
            nf = OGR_F_Create(OGR_L_GetLayerDefn(out));
            if (!g || !nf || OGR_F_SetGeometry(nf, g) != OGRERR_NONE ||
                OGR_L_CreateFeature(out, nf) != OGRERR_NONE) {
                err_set_gdal(ERR_INTERNAL, ERR_INTERNAL_CODE, NULL,
                             "cannot copy the cutline's features");
                goto cleanup;
            }
            OGR_F_Destroy(nf);
            nf = NULL;
            n_polygons++;
            if (!intersects && fp) {
                if (ct && OGR_G_Transform(g, ct) != OGRERR_NONE) {
                    err_set_gdal(ERR_BAD_INPUT, ERR_CRS_MISMATCH, cut_field,
                                 "%s: feature %ld of %s cannot be transformed to the raster's CRS",
                                 cut_field, i, cut_uri);
                    goto cleanup;
                }
                intersects = OGR_G_Intersects(fp, g);
            }
            OGR_G_DestroyGeometry(g);
            g = NULL;
        }
        OGR_F_Destroy(f);
        f = NULL;
    }
    if (n_polygons == 0) {
        err_set(ERR_BAD_INPUT, ERR_INPUT_INVALID, cut_field, "%s: %s holds no polygons", cut_field,
                cut_uri);
        goto cleanup;
    }
    if (fp && !intersects) {
        err_set(ERR_BAD_INPUT, ERR_EMPTY_INTERSECTION, cut_field,
                "%s: the cutline %s does not intersect the raster", cut_field, cut_uri);
        goto cleanup;
    }
    rc = 0;
cleanup:
    if (g) OGR_G_DestroyGeometry(g);
    if (nf) OGR_F_Destroy(nf);
    if (f) OGR_F_Destroy(f);
    if (fp) OGR_G_DestroyGeometry(fp);
    if (ct) OCTDestroyCoordinateTransformation(ct);
    if (dst) GDALClose(dst);
    CSLDestroy(lco);
    return rc;
}

static char **add_num(char **argv, double v)
{
    char buf[40];
    snprintf(buf, sizeof buf, "%.17g", v);
    return CSLAddString(argv, buf);
}

/* gdalwarp arguments for the intermediate GTiff. */
static char **warp_argv(const cJSON *params, const char *cutline_path)
{
    char **argv = NULL;
    const char *crs = params_str(params, "dstCrs", NULL);
    const cJSON *res = cJSON_GetObjectItemCaseSensitive(params, "resolution");
    const cJSON *nodata = cJSON_GetObjectItemCaseSensitive(params, "nodata");
    static const char *const fixed[] = {
        "-of", "GTiff", "-co", "TILED=YES", "-co", "BLOCKXSIZE=512", "-co", "BLOCKYSIZE=512",
        /* Scratch only: fast compression keeps the temporary small. */
        "-co", "COMPRESS=ZSTD", "-co", "ZSTD_LEVEL=1", "-co", "BIGTIFF=IF_SAFER",
        /* -multi overlaps reading/writing with warping. */
        "-multi", NULL};
    char threads[16], opt[32];

    for (size_t i = 0; fixed[i]; i++)
        argv = CSLAddString(argv, fixed[i]);
    /* The pod's threads (podres.h), not ALL_CPUS (the node's cores), for the
     * scratch file's compression and the warper. The warper splits the
     * output in chunks computed independently, so threads change the speed,
     * not the pixels. */
    podres_threads_str(threads, sizeof threads);
    snprintf(opt, sizeof opt, "NUM_THREADS=%s", threads);
    argv = CSLAddString(argv, "-co");
    argv = CSLAddString(argv, opt);
    argv = CSLAddString(argv, "-wo");
    argv = CSLAddString(argv, opt);
    argv = CSLAddString(argv, "-r");
    argv = CSLAddString(argv, params_str(params, "resampling", "nearest"));
    if (crs) {
        argv = CSLAddString(argv, "-t_srs");
        argv = CSLAddString(argv, crs);
    }
    if (res) {
        argv = CSLAddString(argv, "-tr");
        if (cJSON_IsArray(res)) {
            argv = add_num(argv, cJSON_GetArrayItem(res, 0)->valuedouble);
            argv = add_num(argv, cJSON_GetArrayItem(res, 1)->valuedouble);
        } else {
            argv = add_num(argv, res->valuedouble);
            argv = add_num(argv, res->valuedouble);
        }
    }
    if (cutline_path) {
        argv = CSLAddString(argv, "-cutline");
        argv = CSLAddString(argv, cutline_path);
        if (params_bool(params, "cropToCutline", true))
            argv = CSLAddString(argv, "-crop_to_cutline");
    }
    /* The warp decides which output pixels are empty, so params.nodata is
     * the warp's destination nodata ("None": none is set). */
    if (cJSON_IsNumber(nodata)) {
        argv = CSLAddString(argv, "-dstnodata");
        argv = add_num(argv, nodata->valuedouble);
    } else if (cJSON_IsString(nodata)) {
        argv = CSLAddString(argv, "-dstnodata");
        argv = CSLAddString(argv, "None");
    }
    return argv;
}

/* Largest warp output accepted, in pixels: a resolution given in the wrong
 * unit (metres for degrees) asks for 10^10 times the pixels and would fill
 * scratch for hours before failing as "transient" and being retried. */
#define WARP_MAX_PIXELS 1e12

/* With params.resolution set, estimates the output size from the raster's
 * extent in the target CRS and refuses absurd ones. Without a usable
 * estimate (GCPs, a transform GDAL cannot bound), gdalwarp decides. */
static int check_output_size(GDALDatasetH src, OGRSpatialReferenceH dst_srs, const cJSON *params)
{
    const cJSON *res = cJSON_GetObjectItemCaseSensitive(params, "resolution");
    char *wkt = NULL;
    char **to = NULL;
    void *tr = NULL;
    double gt[6], ext[4];
    int px = 0, ln = 0, rc = 0;
    if (!res) return 0;
    double rx = cJSON_IsArray(res) ? cJSON_GetArrayItem(res, 0)->valuedouble : res->valuedouble;
    double ry = cJSON_IsArray(res) ? cJSON_GetArrayItem(res, 1)->valuedouble : res->valuedouble;
    if (dst_srs && OSRExportToWkt(dst_srs, &wkt) == OGRERR_NONE)
        to = CSLSetNameValue(to, "DST_SRS", wkt);
    tr = GDALCreateGenImgProjTransformer2(src, NULL, to);
    if (tr && GDALSuggestedWarpOutput2(src, GDALGenImgProjTransform, tr, gt, &px, &ln, ext, 0) ==
                  CE_None) {
        double w = (ext[2] - ext[0]) / rx, h = (ext[3] - ext[1]) / ry;
        if (w * h > WARP_MAX_PIXELS)
            rc = err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, "params.resolution",
                         "params.resolution: the output would be %.3g x %.3g pixels; is the "
                         "resolution in the units of the target CRS?",
                         w, h);
    }
    CPLErrorReset();
    if (tr) GDALDestroyGenImgProjTransformer(tr);
    CSLDestroy(to);
    CPLFree(wkt);
    return rc;
}

static int warp_run(const op_ctx *ctx, op_result *out)
{
    static unsigned long serial;
    const task *t = ctx->task;
    const char *cutline = params_str(t->params, "cutline", NULL);
    const char *crs = params_str(t->params, "dstCrs", NULL);
    const task_input *in = NULL, *cut_in = NULL;
    GDALDatasetH src = NULL, vec = NULL, warped = NULL;
    OGRSpatialReferenceH dst_srs = NULL;
    GDALWarpAppOptions *opts = NULL;
    void *scaled = NULL;
    char **argv = NULL;
    char *warp_path = NULL, *cog_path = NULL, *cut_path = NULL;
    char field[48], cut_field[48];
    int rc = -1, usage_error = 0;

    if (!(in = op_single_input(t, cutline_param))) goto cleanup;
    snprintf(field, sizeof field, "inputs[%d].uri", task_input_index(t, in));
    if (input_open_raster(t, in, &src) < 0) goto cleanup;

    if (crs) {
        if (!has_crs(src)) {
            err_set(ERR_BAD_INPUT, ERR_CRS_MISMATCH, field,
                    "%s: %s has no CRS, so it cannot be reprojected to %s", field, in->uri, crs);
            goto cleanup;
        }
        /* Syntax was checked in validate: only forms resolved from PROJ's
         * database, so this does no file or network access. */
        dst_srs = OSRNewSpatialReference(NULL);
        if (!dst_srs || OSRSetFromUserInput(dst_srs, crs) != OGRERR_NONE) {
            err_set_gdal(ERR_BAD_INPUT, ERR_INVALID_PARAM, "params.dstCrs",
                         "params.dstCrs: unknown CRS \"%.200s\"", crs);
            goto cleanup;
        }
    }
    if (check_output_size(src, dst_srs, t->params) < 0) goto cleanup;
    if (cutline) {
        cut_in = task_input_find(t, cutline);
        snprintf(cut_field, sizeof cut_field, "inputs[%d].uri", task_input_index(t, cut_in));
        if (input_open_vector(t, cut_in, &vec) < 0) goto cleanup;
        cut_path = mem_printf("/vsimem/terrane-cutline-%ld-%lu.fgb", (long)getpid(), ++serial);
        if (!cut_path) {
            err_oom();
            goto cleanup;
        }
        if (prepare_cutline(src, vec, cut_path, field, cut_field, cut_in->uri) < 0) goto cleanup;
    }

    warp_path = mem_printf("%s/warp.tif", ctx->scratch);
    cog_path = mem_printf("%s/%s", ctx->scratch, TERRANE_OBJ_COG);
    if (!warp_path || !cog_path) {
        err_oom();
        goto cleanup;
    }
    argv = warp_argv(t->params, cut_path);
    if (!(opts = GDALWarpAppOptionsNew(argv, NULL))) {
        err_set_gdal(ERR_INTERNAL, ERR_INTERNAL_CODE, NULL, "warp options rejected");
        goto cleanup;
    }
    /* Warping is most of the work; the COG step gets the second half. */
    scaled = GDALCreateScaledProgress(0.0, 0.6, ctx->progress, ctx->progress_arg);
    GDALWarpAppOptionsSetProgress(opts, GDALScaledProgress, scaled);
    CPLErrorReset();
    warped = GDALWarp(warp_path, NULL, 1, &src, opts, &usage_error);
    if (!warped) {
        cog_gdal_fail(field, warp_path, "warping");
        goto cleanup;
    }
    /* Reopen read-only so everything the warper wrote is on disk and read
     * back through a clean cache; the file is ours, no allowlist needed. */
    GDALClose(warped);
    static const char *const gtiff[] = {"GTiff", NULL};
    warped = GDALOpenEx(warp_path, GDAL_OF_RASTER | GDAL_OF_READONLY, gtiff, NULL, NULL);
    if (!warped) {
        err_set_gdal(ERR_TRANSIENT, ERR_SCRATCH, NULL, "cannot reopen the warped raster");
        goto cleanup;
    }
    GDALDestroyScaledProgress(scaled);
    scaled = GDALCreateScaledProgress(0.6, 1.0, ctx->progress, ctx->progress_arg);
    if (cog_write_from(warped, t->params, cog_path, field, GDALScaledProgress, scaled) < 0)
        goto cleanup;
    if (op_result_add(out, cog_path, TERRANE_OBJ_COG, MEDIA_COG, "data", true) < 0) goto cleanup;
    rc = 0;
cleanup:
    if (warped) GDALClose(warped);
    if (warp_path) VSIUnlink(warp_path);
    if (cut_path) VSIUnlink(cut_path);
    if (scaled) GDALDestroyScaledProgress(scaled);
    if (opts) GDALWarpAppOptionsFree(opts);
    if (dst_srs) OSRDestroySpatialReference(dst_srs);
    if (vec) GDALClose(vec);
    if (src) GDALClose(src);
    CSLDestroy(argv);
    mem_free(warp_path);
    mem_free(cog_path);
    mem_free(cut_path);
    return rc;
}

const op_def op_warp = {
    .name = "warp",
    .params = warp_params,
    .cog_options = true,
    .validate = warp_validate,
    .run = warp_run,
};
