/*
 * fixture.h - helpers shared by the worker's GDAL-backed unit tests.
 *
 * Header-only and static: each test file is its own binary.
 */
#ifndef TERRANE_TEST_FIXTURE_H
#define TERRANE_TEST_FIXTURE_H

#include "mem.h"

#include <cpl_conv.h>
#include <cpl_error.h>
#include <ftw.h>
#include <gdal.h>
#include <ogr_srs_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* A GDAL error handler that keeps expected failures out of the test output. */
static void fixture_quiet_gdal(CPLErr cls, CPLErrorNum num, const char *msg)
{
    (void)cls;
    (void)num;
    (void)msg;
}

static int fixture_rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Removes a test's temporary directory and everything in it. */
static void fixture_rmtree(const char *dir)
{
    nftw(dir, fixture_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Makes a new temporary directory NAME.XXXXXX in $TMPDIR, else on tmpfs
 * (/dev/shm) when there is one: publishing fsyncs every file, which is free
 * there. Returns buf or NULL. */
static inline char *fixture_tmpdir(char *buf, size_t cap, const char *name)
{
    const char *base = getenv("TMPDIR");
    struct stat st;
    if (!base || !base[0])
        base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : "/tmp";
    snprintf(buf, cap, "%s/%s.XXXXXX", base, name);
    return mkdtemp(buf);
}

/* The group setup of the GDAL-backed tests, as the worker runs (main.c):
 * the allocator, every driver, expected GDAL errors kept quiet, no .aux.xml
 * sidecars, local paths allowed as inputs and outputs. */
static inline void fixture_gdal_init(void)
{
    mem_init();
    GDALAllRegister();
    CPLSetErrorHandler(fixture_quiet_gdal);
    CPLSetConfigOption("GDAL_PAM_ENABLED", "NO");
    setenv("TERRANE_ALLOW_LOCAL_PATHS", "1", 1);
}

/* The whole of a file, NUL-terminated, in a new buffer (mem_free), *len its
 * size when len is not NULL; NULL when it cannot be read. */
static inline char *fixture_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    long n = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    if (n >= 0 && fseek(f, 0, SEEK_SET) == 0 && (buf = mem_malloc((size_t)n + 1))) {
        if (fread(buf, 1, (size_t)n, f) == (size_t)n) {
            buf[n] = '\0';
            if (len) *len = (size_t)n;
        } else {
            mem_free(buf);
            buf = NULL;
        }
    }
    fclose(f);
    return buf;
}

/* The multihash ("1220" + 64 hex digits) of a file's SHA-256 as the
 * system's sha256sum computes it, into out (at least 69 bytes). Returns 0,
 * or -1. */
static inline int fixture_sha256_multihash(const char *path, char *out, size_t cap)
{
    char cmd[4200], hex[65] = {0};
    if (strlen(path) > 4096) return -1;
    snprintf(cmd, sizeof cmd, "sha256sum '%s'", path);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    int got = fscanf(p, "%64s", hex);
    pclose(p);
    if (got != 1 || strlen(hex) != 64) return -1;
    snprintf(out, cap, "1220%s", hex);
    return 0;
}

/* A small georeferenced GeoTIFF (UTM 31N, 30 m, a byte ramp): w x h. */
static inline int fixture_make_raster(const char *path, int w, int h)
{
    GDALDatasetH ds = GDALCreate(GDALGetDriverByName("GTiff"), path, w, h, 1, GDT_Byte, NULL);
    if (!ds) return -1;
    double gt[6] = {500000, 30, 0, 4500000, 0, -30};
    GDALSetGeoTransform(ds, gt);
    OGRSpatialReferenceH srs = OSRNewSpatialReference(NULL);
    OSRImportFromEPSG(srs, 32631);
    GDALSetSpatialRef(ds, srs);
    OSRDestroySpatialReference(srs);
    CPLErr e = CE_None;
    unsigned char row[4096];
    for (int y = 0; y < h && e == CE_None; y++) {
        for (int x = 0; x < w && x < 4096; x++)
            row[x] = (unsigned char)((y * w + x) * 3);
        e = GDALRasterIO(GDALGetRasterBand(ds, 1), GF_Write, 0, y, w, 1, row, w, 1, GDT_Byte, 0, 0);
    }
    GDALClose(ds);
    return e == CE_None ? 0 : -1;
}

#endif
