/*
 * emf.h - CloudWatch Embedded Metric Format lines for the controller.
 *
 * One JSON object per finished materialization, on its own line, which
 * CloudWatch Logs turns into metrics when the log stream is ingested as EMF
 * (the CloudWatch agent or Fluent Bit's cloudwatch_logs output with
 * log_format json/emf on EKS), so the controller itself needs no AWS
 * credentials:
 *
 *   {"_aws":{"Timestamp":1714557600123,"CloudWatchMetrics":[{"Namespace":"Terrane",
 *     "Dimensions":[["Pool","Operation"]],"Metrics":[{"Name":"MaterializationDuration",
 *     "Unit":"Seconds"},{"Name":"Materializations","Unit":"Count"},...]}]},
 *    "Pool":"cpu","Operation":"terrain","MaterializationDuration":12.3,
 *    "Materializations":1,"Failures":0,"CacheHits":0,"Attempts":1,"OutputBytes":123,
 *    "namespace":"hydro","name":"dem-slope","assetKey":"hydrology/dem_slope",
 *    "dataVersion":"sha256:...","result":"succeeded"}
 *
 * Metrics (namespace "Terrane", dimensions Pool and Operation):
 *   MaterializationDuration  Seconds  first attempt created -> finished
 *   Materializations         Count    1 per line
 *   Failures                 Count    1 when result is "failed", else 0
 *   CacheHits                Count    1 when result is "cache_hit", else 0
 *   Attempts                 Count    worker pods it took (omitted when 0)
 *   OutputBytes              Bytes    size of the output (omitted when failed)
 * The other members are plain properties: searchable in CloudWatch Logs
 * Insights, not metrics, so they cost no metric cardinality.
 *
 * Any thread; a line is written with one fwrite under the stream's lock.
 * Strings are escaped by jansson (cmem allocation, cmem_init first).
 */
#ifndef LIB_EMF_H
#define LIB_EMF_H

#include <stdio.h>

#define EMF_NAMESPACE "Terrane"

typedef struct emf_materialization {
    const char *pool, *operation; /* dimensions; NULL or "" becomes "unknown" */
    const char *result;           /* "succeeded", "failed" or "cache_hit" */
    double duration_s;
    unsigned attempts;
    unsigned long long output_bytes;
    /* Properties, omitted when NULL. */
    const char *namespace_, *name, *asset_key, *data_version;
    long long timestamp_ms; /* milliseconds since the epoch; 0: now */
} emf_materialization;

/* The line without its newline, in a new string (cmem_free). 0 or CERR_NOMEM. */
int emf_materialization_render(const emf_materialization *m, char **out);
/* Renders and writes the line plus "\n" to out, then flushes. 0, CERR_NOMEM
 * or CERR_IO. */
int emf_materialization_write(FILE *out, const emf_materialization *m);

#endif
