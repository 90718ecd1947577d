/*
 * fixture.h - helpers shared by the worker's GDAL-backed unit tests.
 *
 * Header-only and static: each test file is its own binary.
 */
#ifndef TERRANE_TEST_FIXTURE_H
#define TERRANE_TEST_FIXTURE_H

#include <cpl_error.h>
#include <ftw.h>
#include <stdio.h>
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

#endif
