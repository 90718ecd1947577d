/*
 * metrics.c - Prometheus registry and text exposition (format 0.0.4).
 *
 * Counter and gauge values are doubles stored as their bit patterns in
 * 64-bit atomics (add is a compare-and-swap loop). A family finds its
 * series in an open-addressing hash table keyed by the label values; the
 * series themselves are never freed before the registry, which is what
 * lets render copy the pointers and format without the family's lock.
 */
#include "lib/metrics.h"

#include "lib/cerr.h"
#include "lib/cmem.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct metrics_series {
    metrics_family *fam;
    uint64_t hash;
    _Atomic uint64_t bits; /* counter or gauge value (a double's bits) */
    _Atomic bool hidden;   /* metrics_hide_all and not set since: not rendered */
    /* Histogram: under mu, so one scrape sees a consistent set. */
    pthread_mutex_t mu;
    double sum;
    uint64_t count;
    uint64_t *buckets; /* n_buckets + 1 (the last is +Inf), not cumulative */
    const char *values[METRICS_MAX_LABELS];
};

struct metrics_family {
    metrics_registry *reg;
    metrics_type type;
    char *name, *help;
    size_t n_labels;
    char *labels[METRICS_MAX_LABELS];
    size_t n_buckets;
    double *bounds;
    char (*le)[32]; /* bounds as printed */
    pthread_mutex_t mu;
    metrics_series **table; /* open addressing, n_table a power of two */
    size_t n_table;
    metrics_series **list; /* creation order */
    size_t n, cap;
};

typedef struct {
    void (*fn)(void *ctx);
    void *ctx;
} collector;

struct metrics_registry {
    pthread_mutex_t mu;    /* fams */
    metrics_family **fams; /* sorted by name */
    size_t n_fams, cap_fams;
    size_t max_series;
    metrics_family *dropped;
    pthread_mutex_t collect_mu; /* cols, and one render's collection at a time */
    collector *cols;
    size_t n_cols, cap_cols;
};

/* --- numbers ------------------------------------------------------------ */

static double bits_to_double(uint64_t b)
{
    double d;
    memcpy(&d, &b, sizeof d);
    return d;
}

static uint64_t double_to_bits(double d)
{
    uint64_t b;
    memcpy(&b, &d, sizeof b);
    return b;
}

size_t metrics_format_double(double v, char buf[32])
{
    if (isnan(v)) return (size_t)snprintf(buf, 32, "NaN");
    if (isinf(v)) return (size_t)snprintf(buf, 32, v > 0 ? "+Inf" : "-Inf");
    if (v == 0) return (size_t)snprintf(buf, 32, signbit(v) ? "-0" : "0");
    /* Fewest significant digits that read back as v. */
    char e[32];
    int prec;
    for (prec = 1; prec < 17; prec++) {
        snprintf(e, sizeof e, "%.*e", prec - 1, v);
        if (strtod(e, NULL) == v) break;
    }
    if (prec == 17) snprintf(e, sizeof e, "%.16e", v);
    const char *ep = strchr(e, 'e');
    int exp10 = ep ? atoi(ep + 1) : 0;
    /* Go's strconv 'g' with shortest precision: exponent form when the
     * exponent is below -4 or at least 6, else plain decimals. */
    if (exp10 < -4 || exp10 >= 6) return (size_t)snprintf(buf, 32, "%s", e);
    int decimals = prec - 1 - exp10;
    if (decimals < 0) decimals = 0;
    return (size_t)snprintf(buf, 32, "%.*f", decimals, v);
}

void metrics_exponential_buckets(double start, double factor, size_t n, double *out)
{
    for (size_t i = 0; i < n; i++) {
        out[i] = start;
        start *= factor;
    }
}

/* --- registration --------------------------------------------------------- */

static bool valid_metric_name(const char *s)
{
    if (!s || !*s) return false;
    for (const char *p = s; *p; p++) {
        char c = *p;
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
        if (!alpha && !(p > s && c >= '0' && c <= '9')) return false;
    }
    return true;
}

static bool valid_label_name(const char *s)
{
    if (!s || !*s || !strncmp(s, "__", 2)) return false;
    for (const char *p = s; *p; p++) {
        char c = *p;
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        if (!alpha && !(p > s && c >= '0' && c <= '9')) return false;
    }
    return true;
}

static void family_free(metrics_family *f)
{
    if (!f) return;
    for (size_t i = 0; i < f->n; i++) {
        metrics_series *s = f->list[i];
        if (f->type == METRICS_HISTOGRAM) pthread_mutex_destroy(&s->mu);
        cmem_free(s);
    }
    cmem_free(f->list);
    cmem_free(f->table);
    for (size_t i = 0; i < f->n_labels; i++)
        cmem_free(f->labels[i]);
    cmem_free(f->bounds);
    cmem_free(f->le);
    cmem_free(f->name);
    cmem_free(f->help);
    pthread_mutex_destroy(&f->mu);
    cmem_free(f);
}

static int family_new(metrics_registry *r, metrics_type type, const char *name, const char *help,
                      const char *const *labels, const double *buckets, size_t n_buckets,
                      metrics_family **out)
{
    metrics_family *f = NULL;
    int rc;
    *out = NULL;
    if (!r) return cerr_set(CERR_INVALID, "metrics: no registry");
    if (!valid_metric_name(name))
        return cerr_set(CERR_INVALID, "metrics: invalid metric name \"%s\"", name ? name : "");
    if (!help) return cerr_set(CERR_INVALID, "metrics %s: help text missing", name);
    size_t n_labels = 0;
    for (; labels && labels[n_labels]; n_labels++) {
        const char *l = labels[n_labels];
        if (n_labels == METRICS_MAX_LABELS)
            return cerr_set(CERR_INVALID, "metrics %s: more than %d labels", name,
                            METRICS_MAX_LABELS);
        if (!valid_label_name(l))
            return cerr_set(CERR_INVALID, "metrics %s: invalid label name \"%s\"", name, l);
        if (type == METRICS_HISTOGRAM && !strcmp(l, "le"))
            return cerr_set(CERR_INVALID, "metrics %s: a histogram cannot have a label \"le\"",
                            name);
        for (size_t j = 0; j < n_labels; j++)
            if (!strcmp(labels[j], l))
                return cerr_set(CERR_INVALID, "metrics %s: label \"%s\" given twice", name, l);
    }
    if (type == METRICS_HISTOGRAM) {
        if (n_buckets > 0 && isinf(buckets[n_buckets - 1]) && buckets[n_buckets - 1] > 0)
            n_buckets--; /* +Inf is implied */
        if (n_buckets > METRICS_MAX_BUCKETS)
            return cerr_set(CERR_INVALID, "metrics %s: more than %d buckets", name,
                            METRICS_MAX_BUCKETS);
        for (size_t i = 0; i < n_buckets; i++) {
            if (isnan(buckets[i]) || (i > 0 && !(buckets[i] > buckets[i - 1])))
                return cerr_set(CERR_INVALID,
                                "metrics %s: bucket %zu is not above the one before it", name, i);
        }
    } else {
        n_buckets = 0;
    }

    f = cmem_calloc(1, sizeof *f);
    if (!f) return cerr_oom();
    pthread_mutex_init(&f->mu, NULL);
    f->reg = r;
    f->type = type;
    f->name = cmem_strdup(name);
    f->help = cmem_strdup(help);
    if (!f->name || !f->help) goto oom;
    for (; f->n_labels < n_labels; f->n_labels++) {
        f->labels[f->n_labels] = cmem_strdup(labels[f->n_labels]);
        if (!f->labels[f->n_labels]) goto oom;
    }
    f->n_buckets = n_buckets;
    if (n_buckets) {
        f->bounds = cmem_calloc(n_buckets, sizeof *f->bounds);
        f->le = cmem_calloc(n_buckets, sizeof *f->le);
        if (!f->bounds || !f->le) goto oom;
        for (size_t i = 0; i < n_buckets; i++) {
            f->bounds[i] = buckets[i];
            metrics_format_double(buckets[i], f->le[i]);
        }
    }

    pthread_mutex_lock(&r->mu);
    size_t pos = 0;
    for (; pos < r->n_fams; pos++) {
        int c = strcmp(r->fams[pos]->name, name);
        if (c == 0) {
            pthread_mutex_unlock(&r->mu);
            rc = cerr_set(CERR_CONFLICT, "metrics: %s is already registered", name);
            goto fail;
        }
        if (c > 0) break;
    }
    if (r->n_fams == r->cap_fams) {
        size_t cap = r->cap_fams ? r->cap_fams * 2 : 16;
        metrics_family **nf = cmem_reallocarray(r->fams, cap, sizeof *nf);
        if (!nf) {
            pthread_mutex_unlock(&r->mu);
            goto oom;
        }
        r->fams = nf;
        r->cap_fams = cap;
    }
    memmove(r->fams + pos + 1, r->fams + pos, (r->n_fams - pos) * sizeof *r->fams);
    r->fams[pos] = f;
    r->n_fams++;
    pthread_mutex_unlock(&r->mu);
    *out = f;
    return 0;

oom:
    rc = cerr_oom();
fail:
    family_free(f);
    return rc;
}

int metrics_counter_new(metrics_registry *r, const char *name, const char *help,
                        const char *const *labels, metrics_family **out)
{
    return family_new(r, METRICS_COUNTER, name, help, labels, NULL, 0, out);
}

int metrics_gauge_new(metrics_registry *r, const char *name, const char *help,
                      const char *const *labels, metrics_family **out)
{
    return family_new(r, METRICS_GAUGE, name, help, labels, NULL, 0, out);
}

int metrics_histogram_new(metrics_registry *r, const char *name, const char *help,
                          const char *const *labels, const double *buckets, size_t n_buckets,
                          metrics_family **out)
{
    if (n_buckets && !buckets) return cerr_set(CERR_INVALID, "metrics %s: no buckets", name);
    return family_new(r, METRICS_HISTOGRAM, name, help, labels, buckets, n_buckets, out);
}

metrics_registry *metrics_registry_new(size_t max_series)
{
    metrics_registry *r = cmem_calloc(1, sizeof *r);
    if (!r) return NULL;
    pthread_mutex_init(&r->mu, NULL);
    pthread_mutex_init(&r->collect_mu, NULL);
    r->max_series = max_series ? max_series : METRICS_DEFAULT_MAX_SERIES;
    static const char *const labels[] = {"metric", NULL};
    if (metrics_counter_new(r, METRICS_DROPPED_NAME,
                            "Series not created because their metric already had the maximum "
                            "number of series; each refused update counts once.",
                            labels, &r->dropped) < 0) {
        metrics_registry_free(r);
        return NULL;
    }
    return r;
}

void metrics_registry_free(metrics_registry *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->n_fams; i++)
        family_free(r->fams[i]);
    cmem_free(r->fams);
    cmem_free(r->cols);
    pthread_mutex_destroy(&r->mu);
    pthread_mutex_destroy(&r->collect_mu);
    cmem_free(r);
}

/* --- series lookup ---------------------------------------------------------- */

static uint64_t hash_values(const metrics_family *f, const char *const *values)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a; the NUL separates values */
    for (size_t i = 0; i < f->n_labels; i++) {
        for (const unsigned char *p = (const unsigned char *)values[i];; p++) {
            h ^= *p;
            h *= 1099511628211ULL;
            if (!*p) break;
        }
    }
    return h;
}

/* n_labels: the family's, as the caller read it when it checked values. */
static bool same_values(size_t n_labels, const metrics_series *s, const char *const *values)
{
    for (size_t i = 0; i < n_labels; i++)
        if (strcmp(s->values[i], values[i])) return false;
    return true;
}

/* Under f->mu. Grows the table to keep it at most half full. */
static int table_insert(metrics_family *f, metrics_series *s)
{
    if ((f->n + 1) * 2 > f->n_table) {
        size_t nt = f->n_table ? f->n_table * 2 : 16;
        metrics_series **t = cmem_calloc(nt, sizeof *t);
        if (!t) return CERR_NOMEM;
        for (size_t i = 0; i < f->n_table; i++) {
            metrics_series *o = f->table[i];
            if (!o) continue;
            size_t j = o->hash & (nt - 1);
            while (t[j])
                j = (j + 1) & (nt - 1);
            t[j] = o;
        }
        cmem_free(f->table);
        f->table = t;
        f->n_table = nt;
    }
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 8;
        metrics_series **l = cmem_reallocarray(f->list, cap, sizeof *l);
        if (!l) return CERR_NOMEM;
        f->list = l;
        f->cap = cap;
    }
    size_t j = s->hash & (f->n_table - 1);
    while (f->table[j])
        j = (j + 1) & (f->n_table - 1);
    f->table[j] = s;
    f->list[f->n++] = s;
    return 0;
}

static metrics_series *series_new(metrics_family *f, uint64_t hash, const char *const *values)
{
    size_t nb = f->type == METRICS_HISTOGRAM ? f->n_buckets + 1 : 0;
    size_t size = sizeof(metrics_series) + nb * sizeof(uint64_t);
    for (size_t i = 0; i < f->n_labels; i++)
        size += strlen(values[i]) + 1;
    metrics_series *s = cmem_calloc(1, size);
    if (!s) return NULL;
    s->fam = f;
    s->hash = hash;
    atomic_init(&s->bits, double_to_bits(0.0));
    char *p = (char *)(s + 1);
    if (nb) {
        s->buckets = (uint64_t *)p;
        p += nb * sizeof(uint64_t);
        pthread_mutex_init(&s->mu, NULL);
    }
    for (size_t i = 0; i < f->n_labels; i++) {
        size_t n = strlen(values[i]) + 1;
        memcpy(p, values[i], n);
        s->values[i] = p;
        p += n;
    }
    return s;
}

metrics_series *metrics_get(metrics_family *f, const char *const *values)
{
    if (!f) return NULL;
    static const char *const none[1] = {NULL};
    if (!values) values = none;
    const size_t n_labels = f->n_labels; /* fixed when the family is made */
    for (size_t i = 0; i < n_labels; i++)
        if (!values[i]) return NULL;
    uint64_t h = hash_values(f, values);
    metrics_series *found = NULL;
    bool full = false;

    pthread_mutex_lock(&f->mu);
    if (f->n_table) {
        for (size_t j = h & (f->n_table - 1); f->table[j]; j = (j + 1) & (f->n_table - 1)) {
            metrics_series *s = f->table[j];
            if (s->hash == h && same_values(n_labels, s, values)) {
                found = s;
                break;
            }
        }
    }
    if (!found) {
        if (f->n >= f->reg->max_series) {
            full = true;
        } else {
            found = series_new(f, h, values);
            if (found && table_insert(f, found) < 0) {
                if (f->type == METRICS_HISTOGRAM) pthread_mutex_destroy(&found->mu);
                cmem_free(found);
                found = NULL;
            }
        }
    }
    pthread_mutex_unlock(&f->mu);
    if (full && f != f->reg->dropped) metrics_inc(metrics_with(f->reg->dropped, f->name));
    return found;
}

metrics_series *metrics_with(metrics_family *f, ...)
{
    if (!f) return NULL;
    const char *values[METRICS_MAX_LABELS + 1] = {NULL};
    va_list ap;
    va_start(ap, f);
    for (size_t i = 0; i < f->n_labels; i++)
        values[i] = va_arg(ap, const char *);
    va_end(ap);
    return metrics_get(f, values);
}

/* --- updates ------------------------------------------------------------------ */

static void atomic_add_double(_Atomic uint64_t *a, double v)
{
    uint64_t old = atomic_load_explicit(a, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(a, &old, double_to_bits(bits_to_double(old) + v),
                                                  memory_order_relaxed, memory_order_relaxed)) {
    }
}

void metrics_add(metrics_series *s, double v)
{
    if (!s || s->fam->type == METRICS_HISTOGRAM) return;
    if (s->fam->type == METRICS_COUNTER && !(v >= 0)) return;
    atomic_add_double(&s->bits, v);
    atomic_store_explicit(&s->hidden, false, memory_order_relaxed);
}

void metrics_inc(metrics_series *s)
{
    metrics_add(s, 1.0);
}

void metrics_set(metrics_series *s, double v)
{
    if (!s || s->fam->type == METRICS_HISTOGRAM) return;
    atomic_store_explicit(&s->bits, double_to_bits(v), memory_order_relaxed);
    atomic_store_explicit(&s->hidden, false, memory_order_relaxed);
}

void metrics_hide_all(metrics_family *f)
{
    if (!f || f->type == METRICS_HISTOGRAM) return;
    pthread_mutex_lock(&f->mu);
    for (size_t i = 0; i < f->n; i++)
        atomic_store_explicit(&f->list[i]->hidden, true, memory_order_relaxed);
    pthread_mutex_unlock(&f->mu);
}

void metrics_observe(metrics_series *s, double v)
{
    if (!s || s->fam->type != METRICS_HISTOGRAM || isnan(v)) return;
    const metrics_family *f = s->fam;
    /* First bucket whose upper bound is >= v (bounds are inclusive). */
    size_t lo = 0, hi = f->n_buckets;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (v <= f->bounds[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    pthread_mutex_lock(&s->mu);
    s->buckets[lo]++;
    s->count++;
    s->sum += v;
    pthread_mutex_unlock(&s->mu);
}

double metrics_value(const metrics_series *s)
{
    if (!s || s->fam->type == METRICS_HISTOGRAM) return 0;
    return bits_to_double(atomic_load_explicit(&s->bits, memory_order_relaxed));
}

unsigned long long metrics_hist_count(const metrics_series *s)
{
    if (!s || s->fam->type != METRICS_HISTOGRAM) return 0;
    metrics_series *m = (metrics_series *)s; /* the lock is not part of the value */
    pthread_mutex_lock(&m->mu);
    unsigned long long n = m->count;
    pthread_mutex_unlock(&m->mu);
    return n;
}

/* --- collectors --------------------------------------------------------------- */

int metrics_add_collector(metrics_registry *r, void (*fn)(void *ctx), void *ctx)
{
    int rc = 0;
    pthread_mutex_lock(&r->collect_mu);
    if (r->n_cols == r->cap_cols) {
        size_t cap = r->cap_cols ? r->cap_cols * 2 : 4;
        collector *c = cmem_reallocarray(r->cols, cap, sizeof *c);
        if (!c) {
            rc = cerr_oom();
            goto out;
        }
        r->cols = c;
        r->cap_cols = cap;
    }
    r->cols[r->n_cols++] = (collector){fn, ctx};
out:
    pthread_mutex_unlock(&r->collect_mu);
    return rc;
}

void metrics_remove_collector(metrics_registry *r, void (*fn)(void *ctx), void *ctx)
{
    pthread_mutex_lock(&r->collect_mu);
    for (size_t i = 0; i < r->n_cols; i++) {
        if (r->cols[i].fn == fn && r->cols[i].ctx == ctx) {
            memmove(r->cols + i, r->cols + i + 1, (r->n_cols - i - 1) * sizeof *r->cols);
            r->n_cols--;
            break;
        }
    }
    pthread_mutex_unlock(&r->collect_mu);
}

/* --- rendering ------------------------------------------------------------------ */

typedef struct {
    char *p;
    size_t len, cap;
    bool oom;
} buf;

static void buf_put(buf *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (n > SIZE_MAX / 4 - 1 - b->len) { /* the doubling below would wrap */
        b->oom = true;
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = cmem_realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void buf_str(buf *b, const char *s)
{
    buf_put(b, s, strlen(s));
}

static void buf_double(buf *b, double v)
{
    char tmp[32];
    size_t n = metrics_format_double(v, tmp);
    buf_put(b, tmp, n);
}

static void buf_u64(buf *b, uint64_t v)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)v);
    buf_put(b, tmp, (size_t)n);
}

/* Label values: backslash, double quote and line feed are escaped; HELP
 * text: backslash and line feed (the format's two escaping rules). */
static void buf_escaped(buf *b, const char *s, bool quote)
{
    const char *run = s;
    for (const char *p = s; *p; p++) {
        const char *esc = NULL;
        if (*p == '\\')
            esc = "\\\\";
        else if (*p == '\n')
            esc = "\\n";
        else if (quote && *p == '"')
            esc = "\\\"";
        if (!esc) continue;
        buf_put(b, run, (size_t)(p - run));
        buf_str(b, esc);
        run = p + 1;
    }
    buf_str(b, run);
}

static int cmp_series(const void *a, const void *b)
{
    const metrics_series *x = *(metrics_series *const *)a, *y = *(metrics_series *const *)b;
    for (size_t i = 0; i < x->fam->n_labels; i++) {
        int c = strcmp(x->values[i], y->values[i]);
        if (c) return c;
    }
    return 0;
}

/* name{labels[,le="x"]} -- labels already rendered as `a="1",b="2"` or "". */
static void sample_start(buf *b, const char *name, const char *suffix, const char *labels,
                         const char *le)
{
    buf_str(b, name);
    buf_str(b, suffix);
    if (*labels || le) {
        buf_str(b, "{");
        buf_str(b, labels);
        if (le) {
            if (*labels) buf_str(b, ",");
            buf_str(b, "le=\"");
            buf_str(b, le);
            buf_str(b, "\"");
        }
        buf_str(b, "}");
    }
    buf_str(b, " ");
}

static void render_series(buf *b, const metrics_family *f, metrics_series *s, buf *lbl)
{
    lbl->len = 0;
    if (lbl->p) lbl->p[0] = '\0';
    for (size_t i = 0; i < f->n_labels; i++) {
        if (i) buf_str(lbl, ",");
        buf_str(lbl, f->labels[i]);
        buf_str(lbl, "=\"");
        buf_escaped(lbl, s->values[i], true);
        buf_str(lbl, "\"");
    }
    if (lbl->oom) {
        b->oom = true;
        return;
    }
    const char *labels = lbl->p ? lbl->p : "";
    if (f->type != METRICS_HISTOGRAM) {
        sample_start(b, f->name, "", labels, NULL);
        buf_double(b, metrics_value(s));
        buf_str(b, "\n");
        return;
    }
    uint64_t counts[METRICS_MAX_BUCKETS + 1];
    pthread_mutex_lock(&s->mu);
    memcpy(counts, s->buckets, (f->n_buckets + 1) * sizeof *counts);
    double sum = s->sum;
    uint64_t count = s->count;
    pthread_mutex_unlock(&s->mu);
    uint64_t cum = 0;
    for (size_t i = 0; i < f->n_buckets; i++) {
        cum += counts[i];
        sample_start(b, f->name, "_bucket", labels, f->le[i]);
        buf_u64(b, cum);
        buf_str(b, "\n");
    }
    sample_start(b, f->name, "_bucket", labels, "+Inf");
    buf_u64(b, count);
    buf_str(b, "\n");
    sample_start(b, f->name, "_sum", labels, NULL);
    buf_double(b, sum);
    buf_str(b, "\n");
    sample_start(b, f->name, "_count", labels, NULL);
    buf_u64(b, count);
    buf_str(b, "\n");
}

static const char *type_name(metrics_type t)
{
    return t == METRICS_COUNTER ? "counter" : t == METRICS_GAUGE ? "gauge" : "histogram";
}

int metrics_render(metrics_registry *r, char **out, size_t *len)
{
    buf b = {0}, lbl = {0};
    metrics_family **fams = NULL;
    metrics_series **series = NULL;
    size_t n_fams = 0;
    int rc = 0;
    *out = NULL;
    *len = 0;

    /* held until the text is formatted: a collector of another render
     * hiding series (metrics_hide_all) must not blank this one's */
    pthread_mutex_lock(&r->collect_mu);
    for (size_t i = 0; i < r->n_cols; i++)
        r->cols[i].fn(r->cols[i].ctx);

    pthread_mutex_lock(&r->mu);
    n_fams = r->n_fams;
    fams = cmem_calloc(n_fams, sizeof *fams);
    if (fams) memcpy(fams, r->fams, n_fams * sizeof *fams);
    pthread_mutex_unlock(&r->mu);
    if (!fams) goto oom;

    for (size_t i = 0; i < n_fams; i++) {
        metrics_family *f = fams[i];
        pthread_mutex_lock(&f->mu);
        size_t n = f->n;
        bool oom = false;
        if (n) {
            metrics_series **ns = cmem_reallocarray(series, n, sizeof *ns);
            if (ns) {
                series = ns;
                memcpy(series, f->list, n * sizeof *series);
            }
            oom = !ns;
        }
        pthread_mutex_unlock(&f->mu);
        if (oom) goto oom;
        if (n > 1) qsort(series, n, sizeof *series, cmp_series);

        buf_str(&b, "# HELP ");
        buf_str(&b, f->name);
        buf_str(&b, " ");
        buf_escaped(&b, f->help, false);
        buf_str(&b, "\n# TYPE ");
        buf_str(&b, f->name);
        buf_str(&b, " ");
        buf_str(&b, type_name(f->type));
        buf_str(&b, "\n");
        for (size_t j = 0; j < n; j++)
            if (!atomic_load_explicit(&series[j]->hidden, memory_order_relaxed))
                render_series(&b, f, series[j], &lbl);
        if (b.oom) goto oom;
    }
    if (!b.p) buf_str(&b, ""); /* an empty registry still returns a buffer */
    if (b.oom) goto oom;
    *out = b.p;
    *len = b.len;
    b.p = NULL;
    goto done;
oom:
    rc = cerr_oom();
done:
    pthread_mutex_unlock(&r->collect_mu);
    cmem_free(b.p);
    cmem_free(lbl.p);
    cmem_free(series);
    cmem_free(fams);
    return rc;
}
