/*
 * emf.c - CloudWatch Embedded Metric Format lines (see emf.h).
 *
 * The document is built with jansson so asset keys and namespaces are
 * escaped correctly whatever they contain. Every metric declared in
 * CloudWatchMetrics is present as a top-level number, as the
 * specification requires; optional ones are left out of both together.
 */
#include "lib/emf.h"

#include "lib/cerr.h"
#include "lib/cmem.h"

#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *dim(const char *s)
{
    return s && *s ? s : "unknown";
}

/* Adds {"Name":name,"Unit":unit} to defs and name:value to root. */
static int add_metric(json_t *defs, json_t *root, const char *name, const char *unit, json_t *value)
{
    if (!value) return CERR_NOMEM;
    if (json_object_set_new(root, name, value) < 0) return CERR_NOMEM;
    json_t *d = json_pack("{s:s, s:s}", "Name", name, "Unit", unit);
    if (!d || json_array_append_new(defs, d) < 0) return CERR_NOMEM;
    return 0;
}

/* json_string refuses bytes that are not UTF-8 as well as failing when
 * memory runs out; cmem_failures tells the two apart. A value that is not
 * UTF-8 becomes the fallback, so the line stays valid JSON. */
static json_t *string_or(const char *s, const char *fallback)
{
    unsigned long failures = cmem_failures();
    json_t *v = json_string(s);
    if (v || cmem_failures() != failures) return v;
    return json_string(fallback);
}

static int add_property(json_t *root, const char *key, const char *value)
{
    if (!value) return 0;
    return json_object_set_new(root, key, string_or(value, "(not UTF-8)")) < 0 ? CERR_NOMEM : 0;
}

/* Serialises doc into a new string with room for two more bytes (the
 * newline emf_materialization_write adds). json_dumps is not used: jansson
 * 2.14 ignores a failed write of an object key while growing its buffer
 * and returns a corrupt document instead of NULL; json_dumpb into a buffer
 * of the measured size allocates nothing while writing. */
static int dump(const json_t *doc, char **out)
{
    const size_t flags = JSON_COMPACT | JSON_REAL_PRECISION(15);
    size_t need = json_dumpb(doc, NULL, 0, flags);
    if (!need) return CERR_NOMEM;
    char *buf = cmem_malloc(need + 2);
    if (!buf) return CERR_NOMEM;
    if (json_dumpb(doc, buf, need, flags) != need) {
        cmem_free(buf);
        return CERR_NOMEM;
    }
    buf[need] = '\0';
    *out = buf;
    return 0;
}

int emf_materialization_render(const emf_materialization *m, char **out)
{
    *out = NULL;
    const char *result = m->result ? m->result : "succeeded";
    bool failed = !strcmp(result, "failed");
    bool hit = !strcmp(result, "cache_hit");
    int rc = CERR_NOMEM;

    json_t *defs = json_array();
    json_t *root =
        json_pack("{s:{s:I, s:[{s:s, s:[[s, s]], s:O}]}}", "_aws", "Timestamp",
                  (json_int_t)(m->timestamp_ms ? m->timestamp_ms : now_ms()), "CloudWatchMetrics",
                  "Namespace", EMF_NAMESPACE, "Dimensions", "Pool", "Operation", "Metrics", defs);
    if (!defs || !root) goto done;
    if (json_object_set_new(root, "Pool", string_or(dim(m->pool), "unknown")) < 0 ||
        json_object_set_new(root, "Operation", string_or(dim(m->operation), "unknown")) < 0)
        goto done;
    if (add_metric(defs, root, "MaterializationDuration", "Seconds",
                   json_real(isfinite(m->duration_s) ? m->duration_s : 0)) < 0 ||
        add_metric(defs, root, "Materializations", "Count", json_integer(1)) < 0 ||
        add_metric(defs, root, "Failures", "Count", json_integer(failed)) < 0 ||
        add_metric(defs, root, "CacheHits", "Count", json_integer(hit)) < 0)
        goto done;
    if (m->attempts &&
        add_metric(defs, root, "Attempts", "Count", json_integer((json_int_t)m->attempts)) < 0)
        goto done;
    if (!failed && add_metric(defs, root, "OutputBytes", "Bytes",
                              json_integer((json_int_t)m->output_bytes)) < 0)
        goto done;
    if (add_property(root, "namespace", m->namespace_) < 0 ||
        add_property(root, "name", m->name) < 0 ||
        add_property(root, "assetKey", m->asset_key) < 0 ||
        add_property(root, "dataVersion", m->data_version) < 0 ||
        add_property(root, "result", result) < 0)
        goto done;
    rc = dump(root, out);
done:
    json_decref(defs);
    json_decref(root);
    return rc == 0 ? 0 : cerr_oom();
}

int emf_materialization_write(FILE *out, const emf_materialization *m)
{
    char *line = NULL;
    int rc = emf_materialization_render(m, &line);
    if (rc < 0) return rc;
    size_t n = strlen(line);
    line[n] = '\n'; /* render leaves room: the line goes out in one write */
    line[n + 1] = '\0';
    flockfile(out);
    size_t w = fwrite(line, 1, n + 1, out);
    int fr = fflush(out);
    funlockfile(out);
    cmem_free(line);
    if (w != n + 1 || fr != 0) return cerr_set(CERR_IO, "EMF: cannot write the metrics line");
    return 0;
}
