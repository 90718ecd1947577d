/*
 * input.h - where a worker may read from, and opening inputs safely.
 *
 * A task comes from a user's resource, so its URIs are untrusted. Allowed:
 *   s3://bucket/key   bucket in TERRANE_ALLOWED_BUCKETS ("*" = any; default "*")
 *   https://host/path host in TERRANE_ALLOWED_HOSTS (default: none)
 *   /abs/path         only when TERRANE_ALLOW_LOCAL_PATHS=1 (local runs, tests)
 * Link-local and instance-metadata addresses are refused always, also after
 * DNS resolution at open time. Datasets are opened with a driver allowlist:
 * no VRT (user-supplied VRTs can point anywhere), no raw-binary or
 * network-service drivers.
 */
#ifndef TERRANE_INPUT_H
#define TERRANE_INPUT_H

#include <gdal.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "task.h"

/* Checks uri against the allowlists without I/O; field names it in errors. */
int input_check_uri(const char *uri, const char *field);
/* Same rules for an output prefix (s3:// or, when local paths are allowed,
 * an absolute directory). */
int input_check_output_uri(const char *uri, const char *field);
/* input_check_uri, then for https the resolved addresses (no link-local or
 * metadata address): what opening an input checks before any I/O. */
int input_check_reachable(const char *uri, const char *field);
/* True for link-local and instance-metadata addresses (also IPv4-mapped). */
bool input_addr_forbidden(const struct sockaddr *sa);
/* GDAL path for a URI: s3://b/k -> /vsis3/b/k, https://h/p -> HTTPS_VSI_PREFIX "https://h/p",
 * /p -> /p. Returns a new string (mem_free) or NULL on OOM. */
char *input_gdal_path(const char *uri);

/* Opens an input raster read-only with the raster driver allowlist. Errors
 * name "inputs[i].uri". *out is the caller's (GDALClose). */
int input_open_raster(const task *t, const task_input *in, GDALDatasetH *out);
/* Opens an input vector (polygons) with the vector driver allowlist. */
int input_open_vector(const task *t, const task_input *in, GDALDatasetH *out);

#endif
