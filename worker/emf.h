/*
 * emf.h - one CloudWatch Embedded Metric Format line per worker run.
 *
 *   {"_aws":{"Timestamp":1714557600123,"CloudWatchMetrics":[{"Namespace":"Terrane/Worker",
 *     "Dimensions":[["Operation"]],"Metrics":[{"Name":"Duration","Unit":"Milliseconds"},
 *     {"Name":"ComputeDuration","Unit":"Milliseconds"},{"Name":"PublishDuration",
 *     "Unit":"Milliseconds"},{"Name":"BytesWritten","Unit":"Bytes"},
 *     {"Name":"CellsPerSecond","Unit":"Count/Second"}]}]},
 *    "Operation":"terrain","Duration":5120,"ComputeDuration":4000,"PublishDuration":1100,
 *    "BytesWritten":123456,"CellsPerSecond":2500000,"Threads":2,"GdalCacheMB":384,
 *    "result":"succeeded","workerVersion":"0.1.0"}
 *
 * Threads and GdalCacheMB (units Count and Megabytes) are what podres.h sized
 * the run to; they are left out when threads is 0 (the run failed before
 * sizing, e.g. on an invalid task).
 * CellsPerSecond is left out (both the value and its declaration, as the
 * specification requires them to go together) when the cells or the
 * compute time are unknown or zero.
 *
 * stdout carries the result document, so the line goes to stderr, where it
 * is one more JSON line among the logs (log.h) and the CloudWatch agent or
 * Fluent Bit extracts the metrics from it. Metrics never change a run's
 * outcome: these functions do not touch the error slot (err.h).
 * Allocation through mem.h (cJSON is hooked there).
 */
#ifndef TERRANE_WORKER_EMF_H
#define TERRANE_WORKER_EMF_H

#include <stdio.h>

#define EMF_WORKER_NAMESPACE "Terrane/Worker"

/* The line without its newline, in a new string (mem_free), or NULL when
 * out of memory. operation and result may be NULL ("unknown").
 * timestamp_ms: milliseconds since the epoch, 0 for now. */
char *emf_worker_render(const char *operation, const char *result, long total_ms, long compute_ms,
                        long publish_ms, unsigned long long bytes_written, double cells,
                        int threads, unsigned long long cache_mb, long long timestamp_ms);
/* Renders the line and writes it plus "\n" to out with one fwrite, then
 * flushes. 0, or -1 when out of memory or the write failed. */
int emf_worker_run(const char *operation, const char *result, long total_ms, long compute_ms,
                   long publish_ms, unsigned long long bytes_written, double cells, int threads,
                   unsigned long long cache_mb, FILE *out);
/* Cells (width x height) of the raster at path, for CellsPerSecond; 0 when
 * it cannot be opened. Reads the header only. */
double emf_raster_cells(const char *path);

#endif
