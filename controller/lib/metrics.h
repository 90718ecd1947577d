/*
 * metrics.h - a small, thread-safe Prometheus metrics registry.
 *
 * A registry holds metric families (counter, gauge, histogram), each with a
 * fixed set of label names. A family's series ("children") are created on
 * first use of a label-value combination and live as long as the registry,
 * so a metrics_series pointer may be cached and used from any thread until
 * metrics_registry_free. Cardinality is bounded: once a family has
 * max_series children, further new combinations are refused (metrics_get
 * returns NULL, every update function ignores NULL) and counted in the
 * registry's own counter terrane_metrics_series_dropped_total{metric}.
 *
 * metrics_render writes the Prometheus text exposition format 0.0.4:
 * families sorted by name, series sorted by label values, a HELP and a TYPE
 * line per family, label values escaped (backslash, double quote, newline),
 * histograms as cumulative _bucket{le=...} lines ending with le="+Inf",
 * then _sum and _count. Numbers are printed in the shortest form that reads
 * back to the same double, as Go's client does ("1e-08", "0.005", "+Inf").
 *
 * Threads: updates are lock-free atomics for counters and gauges and a
 * short per-series mutex for histograms (so _count, _sum and the buckets of
 * one scrape agree); creating a series takes its family's mutex. Rendering
 * copies the list of series under that mutex and formats outside it, so a
 * scrape never blocks updates for longer than a pointer copy. Collectors
 * (callbacks that refresh gauges from other modules' statistics right before
 * a scrape) run at the start of metrics_render, one render at a time.
 *
 * Ownership: strings passed in are copied; metrics_render's buffer belongs
 * to the caller (cmem_free). Families and series belong to the registry.
 */
#ifndef LIB_METRICS_H
#define LIB_METRICS_H

#include <stdbool.h>
#include <stddef.h>

#define METRICS_MAX_LABELS 8
#define METRICS_MAX_BUCKETS 64
#define METRICS_DEFAULT_MAX_SERIES 2000
/* Name of the registry's own counter of refused series. */
#define METRICS_DROPPED_NAME "terrane_metrics_series_dropped_total"

typedef enum { METRICS_COUNTER, METRICS_GAUGE, METRICS_HISTOGRAM } metrics_type;

typedef struct metrics_registry metrics_registry;
typedef struct metrics_family metrics_family;
typedef struct metrics_series metrics_series;

/* max_series: cap per family (0: METRICS_DEFAULT_MAX_SERIES). NULL when out
 * of memory. */
metrics_registry *metrics_registry_new(size_t max_series);
/* Only when no other thread uses the registry or any of its series. */
void metrics_registry_free(metrics_registry *r);

/*
 * Registers a family. name must match [a-zA-Z_:][a-zA-Z0-9_:]*, label
 * names [a-zA-Z_][a-zA-Z0-9_]* without a leading "__", distinct, at most
 * METRICS_MAX_LABELS, and not "le" for a histogram. labels is a
 * NULL-terminated array (NULL: no labels). Histogram buckets are upper
 * bounds, strictly increasing, without NaN; a trailing +Inf is implied and
 * may be omitted. 0 with *out set (borrowed from the registry), or
 * CERR_INVALID (message names the problem), CERR_CONFLICT (name taken),
 * CERR_NOMEM.
 */
int metrics_counter_new(metrics_registry *r, const char *name, const char *help,
                        const char *const *labels, metrics_family **out);
int metrics_gauge_new(metrics_registry *r, const char *name, const char *help,
                      const char *const *labels, metrics_family **out);
int metrics_histogram_new(metrics_registry *r, const char *name, const char *help,
                          const char *const *labels, const double *buckets, size_t n_buckets,
                          metrics_family **out);

/* Fills out[0..n) with start, start*factor, ... (computed by repeated
 * multiplication, as Prometheus' Go client does, so the bounds are the
 * same doubles and print the same). */
void metrics_exponential_buckets(double start, double factor, size_t n, double *out);

/* The series for these label values (as many as the family has labels; any
 * bytes but NUL), created on first use. NULL when the family is full (the
 * drop is counted) or memory runs out. NULL f gives NULL. */
metrics_series *metrics_get(metrics_family *f, const char *const *values);
/* The same with the values as arguments: metrics_with(f, "a", "b"). Exactly
 * as many const char * arguments as the family has labels. */
metrics_series *metrics_with(metrics_family *f, ...);

/* Updates. All accept NULL (no-op). Counters ignore negative or NaN
 * increments. metrics_set works on counters too, to mirror a monotonic
 * count kept elsewhere (a collector copying wq_stats.adds). metrics_observe
 * applies to histograms only (NaN is ignored), the others to counters and
 * gauges only. */
void metrics_inc(metrics_series *s);
void metrics_add(metrics_series *s, double v);
void metrics_set(metrics_series *s, double v);
void metrics_observe(metrics_series *s, double v);
/* Hides every series of a counter or gauge family from the exposition
 * until it is next set or added to: a collector that mirrors a set of
 * objects calls it first and then sets the series of the objects that
 * exist, so a deleted object's series disappears. A hidden series keeps
 * its memory and its place under the family's cap (it is reused when its
 * labels come back). NULL and histograms: no-op. */
void metrics_hide_all(metrics_family *f);
/* Current value of a counter or gauge (0 for NULL or a histogram). */
double metrics_value(const metrics_series *s);
/* A histogram's observation count (0 for NULL or other types). */
unsigned long long metrics_hist_count(const metrics_series *s);

/* Collectors run at the start of each render, in registration order, one
 * render at a time; they refresh series from other modules' statistics.
 * metrics_remove_collector returns only when no render is running it, so
 * its ctx may be freed afterwards. */
int metrics_add_collector(metrics_registry *r, void (*fn)(void *ctx), void *ctx);
void metrics_remove_collector(metrics_registry *r, void (*fn)(void *ctx), void *ctx);

/* Renders the exposition into a new NUL-terminated buffer (*out, cmem_free)
 * of *len bytes. 0 or CERR_NOMEM. */
int metrics_render(metrics_registry *r, char **out, size_t *len);

/* The exposition format's spelling of v: shortest round-trip decimal, Go's
 * %g layout, "+Inf", "-Inf", "NaN". buf needs 32 bytes; returns the length. */
size_t metrics_format_double(double v, char buf[32]);

#endif
