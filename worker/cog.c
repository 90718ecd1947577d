/*
 * cog.c - the shared COG options and writing a COG with GDAL's COG driver.
 *
 * Every raster operation ends here (or, for terrain, passes the same options
 * to gdaldem's library entry point), so the options are spelled out in full
 * every time, defaults included: the bytes of an asset then depend on the
 * task alone and not on a GDAL default that a newer release might change.
 * The COG driver writes no timestamp (no TIFFTAG_DATETIME unless the source
 * carries one as metadata), and its multi-threaded compression emits tiles in
 * a fixed order, so identical input and options give identical files.
 *
 * Called from the run thread only; CSL lists are GDAL's (CSLDestroy).
 */
#include "cog.h"

#include "err.h"
#include "mem.h"
#include "podres.h"

#include <cpl_conv.h>
#include <cpl_error.h>
#include <cpl_vsi.h>
#include <gdal_utils.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>

static const char *const compressions[] = {"DEFLATE", "ZSTD", "LZW", "NONE", NULL};
static const char *const overview_resamplings[] = {
    "nearest", "average", "bilinear", "cubic", "cubicspline", "lanczos", "mode", "rms", NULL};
static const char *const bigtiffs[] = {"YES", "NO", "IF_NEEDED", "IF_SAFER", NULL};

const param_spec cog_param_specs[] = {
    {"compression", PARAM_ENUM, false, compressions},
    {"level", PARAM_INT, false, NULL, 1, 22},
    {"predictor", PARAM_INT, false, NULL, 1, 3},
    {"blockSize", PARAM_INT, false, NULL, 16, 4096},
    {"overviewResampling", PARAM_ENUM, false, overview_resamplings},
    {"bigtiff", PARAM_ENUM, false, bigtiffs},
    {"nodata", PARAM_NUMBER_OR_NONE, false},
    /* Not COG options, but every operation that writes a COG takes them. */
    PODRES_PARAM_THREADS,
    PODRES_PARAM_CACHE_MB,
    {NULL},
};

#define COG_DEFAULT_COMPRESSION "DEFLATE"
#define COG_DEFAULT_BLOCKSIZE 512
/* The COG driver's own default is IF_NEEDED, which guesses from the
 * uncompressed size and can fail at 4 GiB after hours of work when
 * compression does not shrink the data as hoped; IF_SAFER errs towards
 * BigTIFF for large rasters instead. */
#define COG_DEFAULT_BIGTIFF "IF_SAFER"

/* Free space below which a failed write is blamed on scratch, not the input. */
#define SCRATCH_LOW_BYTES (16ULL * 1024 * 1024)

int cog_check_params(const cJSON *params)
{
    const char *compression = params_str(params, "compression", COG_DEFAULT_COMPRESSION);
    int block = params_int(params, "blockSize", COG_DEFAULT_BLOCKSIZE);

    /* TIFF tiles must be multiples of 16 pixels (TIFF 6.0, TileWidth). */
    if (block % 16 != 0)
        return err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, "params.blockSize",
                       "params.blockSize: %d is not a multiple of 16", block);
    if (params_has(params, "level")) {
        int level = params_int(params, "level", 0);
        /* libdeflate (GDAL's DEFLATE codec) goes to 12, zstd to 22; LZW and
         * NONE have no level, and silently ignoring one would hide a typo. */
        int max = !strcmp(compression, "DEFLATE") ? 12 : !strcmp(compression, "ZSTD") ? 22 : 0;
        if (max == 0)
            return err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, "params.level",
                           "params.level: compression %s has no level (only DEFLATE and ZSTD)",
                           compression);
        if (level < 1 || level > max)
            return err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, "params.level",
                           "params.level: %d is out of range [1, %d] for %s", level, max,
                           compression);
    }
    if (params_int(params, "predictor", 1) != 1 && !strcmp(compression, "NONE"))
        return err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, "params.predictor",
                       "params.predictor: a predictor needs compression (compression is NONE)");
    return 0;
}

static const char *predictor_name(int predictor)
{
    switch (predictor) {
    case 2:
        return "STANDARD";
    case 3:
        return "FLOATING_POINT";
    default:
        return "NO";
    }
}

/* Appends one creation option, as "-co" "K=V" when as_argv. */
static char **add_option(char **list, bool as_argv, const char *key, const char *value)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s=%s", key, value);
    if (as_argv) list = CSLAddString(list, "-co");
    return CSLAddString(list, buf);
}

char **cog_options(const cJSON *params, char **list, bool as_argv)
{
    char num[32], upper[32];
    const char *compression = params_str(params, "compression", COG_DEFAULT_COMPRESSION);
    const char *ovr = params_str(params, "overviewResampling", "nearest");

    if (as_argv) {
        list = CSLAddString(list, "-of");
        list = CSLAddString(list, "COG");
    }
    list = add_option(list, as_argv, "COMPRESS", compression);
    if (params_has(params, "level")) {
        snprintf(num, sizeof num, "%d", params_int(params, "level", 6));
        list = add_option(list, as_argv, "LEVEL", num);
    }
    list =
        add_option(list, as_argv, "PREDICTOR", predictor_name(params_int(params, "predictor", 1)));
    snprintf(num, sizeof num, "%d", params_int(params, "blockSize", COG_DEFAULT_BLOCKSIZE));
    list = add_option(list, as_argv, "BLOCKSIZE", num);
    size_t i;
    for (i = 0; ovr[i] && i + 1 < sizeof upper; i++)
        upper[i] = (char)(ovr[i] >= 'a' && ovr[i] <= 'z' ? ovr[i] - 'a' + 'A' : ovr[i]);
    upper[i] = '\0';
    list = add_option(list, as_argv, "OVERVIEW_RESAMPLING", upper);
    /* The driver's OVERVIEWS=AUTO copies a source's existing overviews and
     * ignores the resampling; a task that names one gets what it asked for. */
    if (!params_bool(params, "overviews", true))
        list = add_option(list, as_argv, "OVERVIEWS", "NONE");
    else if (params_has(params, "overviewResampling"))
        list = add_option(list, as_argv, "OVERVIEWS", "IGNORE_EXISTING");
    list = add_option(list, as_argv, "BIGTIFF", params_str(params, "bigtiff", COG_DEFAULT_BIGTIFF));
    /* Compression threads, as many as the pod has CPUs (podres.h; ALL_CPUS
     * would be the node's cores): the driver hands tiles to a pool but
     * writes them in tile order, so the file is byte-identical to a
     * single-threaded one (tests compare 1 thread with several). */
    list = add_option(list, as_argv, "NUM_THREADS", podres_threads_str(num, sizeof num));
    return list;
}

/* Shortest decimal that reads back as v, so "-a_nodata" round-trips. */
static void format_number(double v, char *buf, size_t cap)
{
    snprintf(buf, cap, "%.15g", v);
    if (strtod(buf, NULL) != v) snprintf(buf, cap, "%.17g", v);
}

char **cog_nodata_argv(const cJSON *params, char **argv)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(params, "nodata");
    char num[40];
    if (cJSON_IsString(v)) {
        /* gdal_translate's "-a_nodata none" removes the source's nodata. */
        argv = CSLAddString(argv, "-a_nodata");
        return CSLAddString(argv, "none");
    }
    if (!cJSON_IsNumber(v)) return argv;
    format_number(v->valuedouble, num, sizeof num);
    argv = CSLAddString(argv, "-a_nodata");
    return CSLAddString(argv, num);
}

/* Checks that need the source: the predictor and nodata against the data
 * type (the COG keeps the source's type). */
static int check_source(GDALDatasetH src, const cJSON *params)
{
    GDALDataType dt = GDALGetRasterDataType(GDALGetRasterBand(src, 1));
    const cJSON *nodata = cJSON_GetObjectItemCaseSensitive(params, "nodata");

    if (params_int(params, "predictor", 1) == 3 && !GDALDataTypeIsFloating(dt))
        return err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, "params.predictor",
                       "params.predictor: 3 (floating point) needs floating-point data, the "
                       "raster is %s",
                       GDALGetDataTypeName(dt));
    if (cJSON_IsNumber(nodata) && !GDALDataTypeIsComplex(dt)) {
        int clamped = 0, rounded = 0;
        GDALAdjustValueToDataType(dt, nodata->valuedouble, &clamped, &rounded);
        if (clamped || rounded)
            return err_set(ERR_BAD_INPUT, ERR_INVALID_PARAM, "params.nodata",
                           "params.nodata: %g cannot be represented in the raster's data type %s",
                           nodata->valuedouble, GDALGetDataTypeName(dt));
    }
    return 0;
}

static bool scratch_low(const char *out_path)
{
    char dir[4096];
    struct statvfs st;
    snprintf(dir, sizeof dir, "%s", out_path ? out_path : ".");
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir)
        *slash = '\0';
    else if (slash)
        dir[1] = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    if (statvfs(dir, &st) != 0) return false;
    return (unsigned long long)st.f_bavail * st.f_frsize < SCRATCH_LOW_BYTES;
}

int cog_gdal_fail(const char *input_field, const char *out_path, const char *what)
{
    CPLErrorNum no = CPLGetLastErrorNo();
    const char *msg = CPLGetLastErrorMsg();
    const char *field = input_field ? input_field : "inputs";

    if (no == CPLE_OutOfMemory) return err_oom();
    if (no == CPLE_UserInterrupt)
        return err_set(ERR_TRANSIENT, ERR_INTERNAL_CODE, NULL, "%s: interrupted", what);
    if (no == CPLE_NoWriteAccess || strstr(msg, "No space left") || scratch_low(out_path))
        return err_set_gdal(ERR_TRANSIENT, ERR_SCRATCH, NULL, "%s: scratch space", what);
    /* /vsis3/ and /vsicurl/ report failed range requests with the HTTP
     * status in the message; a 5xx or a dropped connection may well work on
     * the next attempt. */
    if (no == CPLE_HttpResponse || no == CPLE_AWSError || strstr(msg, "HTTP") ||
        strstr(msg, "curl"))
        return err_set_gdal(ERR_TRANSIENT, ERR_INPUT_UNREADABLE, field, "%s: %s: reading failed",
                            field, what);
    if (no == CPLE_AWSInvalidCredentials || no == CPLE_AWSSignatureDoesNotMatch)
        return err_set_gdal(ERR_TRANSIENT, ERR_CREDENTIALS, field, "%s: %s", field, what);
    if (no == CPLE_AWSObjectNotFound || no == CPLE_AWSBucketNotFound || no == CPLE_AWSAccessDenied)
        return err_set_gdal(ERR_BAD_INPUT, ERR_INPUT_UNREADABLE, field, "%s: %s", field, what);
    /* What is left is GDAL failing to decode the input's bytes (a truncated
     * or corrupt file): retrying cannot help. */
    return err_set_gdal(ERR_BAD_INPUT, ERR_INPUT_INVALID, field,
                        "%s: %s: the input data cannot be read", field, what);
}

/* Thread-local GDAL config options set for one write and restored after. */
typedef struct tl_option {
    const char *key;
    char *saved; /* the previous value, or NULL */
    bool set;
} tl_option;

static int tl_option_set(tl_option *o, const char *key, const char *value)
{
    const char *old = CPLGetThreadLocalConfigOption(key, NULL);
    o->key = key;
    o->saved = NULL;
    o->set = false;
    if (old && !(o->saved = mem_strdup(old))) return err_oom();
    CPLSetThreadLocalConfigOption(key, value);
    o->set = true;
    return 0;
}

static void tl_option_restore(tl_option *o)
{
    if (o->set) CPLSetThreadLocalConfigOption(o->key, o->saved);
    mem_free(o->saved);
    o->saved = NULL;
    o->set = false;
}

int cog_write_from(GDALDatasetH src, const cJSON *params, const char *path, const char *input_field,
                   GDALProgressFunc progress, void *progress_arg)
{
    char **argv = NULL;
    GDALTranslateOptions *opts = NULL;
    GDALDatasetH out = NULL;
    tl_option pam = {0}, ovr_tmp = {0};
    int rc = -1, usage_error = 0;

    if (check_source(src, params) < 0) goto cleanup;
    argv = cog_options(params, NULL, true);
    argv = cog_nodata_argv(params, argv);
    opts = GDALTranslateOptionsNew(argv, NULL);
    if (!opts) {
        err_set_gdal(ERR_INTERNAL, ERR_INTERNAL_CODE, NULL, "COG options rejected");
        goto cleanup;
    }
    GDALTranslateOptionsSetProgress(opts, progress, progress_arg);

    /* No .aux.xml sidecar next to the output: only asset.tif is published,
     * so anything GDAL would keep there must not exist at all. */
    if (tl_option_set(&pam, "GDAL_PAM_ENABLED", "NO") < 0) goto cleanup;
    /* The COG driver computes the overviews into a temporary file in
     * scratch, ZSTD-compressed by default, then reads them back and
     * compresses them again with the task's codec. Uncompressed, that file
     * costs scratch space (a third of the raster, uncompressed) instead of a
     * quarter of the CPU time of a DEFLATE COG; the published bytes are the
     * same (the pixels are, and so is the final compression). */
    if (!CPLGetConfigOption("COG_TMP_COMPRESSION", NULL) &&
        tl_option_set(&ovr_tmp, "COG_TMP_COMPRESSION", "NONE") < 0)
        goto cleanup;
    CPLErrorReset();
    out = GDALTranslate(path, src, opts, &usage_error);
    if (!out) {
        cog_gdal_fail(input_field, path, "writing the COG");
        VSIUnlink(path);
        goto cleanup;
    }
    /* GDALClose flushes the last tiles and cannot return an error in GDAL
     * 3.6; a failed write (a full scratch disk) shows only as GDAL's last
     * error, and must not pass as a good, truncated COG. */
    CPLErrorReset();
    GDALClose(out);
    out = NULL;
    if (CPLGetLastErrorType() >= CE_Failure) {
        cog_gdal_fail(input_field, path, "writing the COG");
        VSIUnlink(path);
        goto cleanup;
    }
    rc = 0;
cleanup:
    if (out) GDALClose(out);
    tl_option_restore(&ovr_tmp);
    tl_option_restore(&pam);
    if (opts) GDALTranslateOptionsFree(opts);
    CSLDestroy(argv);
    return rc;
}

int cog_write(GDALDatasetH src, const cJSON *params, const char *path, GDALProgressFunc progress,
              void *progress_arg)
{
    return cog_write_from(src, params, path, NULL, progress, progress_arg);
}
