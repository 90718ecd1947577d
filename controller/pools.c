/*
 * pools.c - pools configuration: loading, validation, selection, resources
 * and resource.Quantity parsing (see pools.h).
 */
#include "pools.h"

#include "kube/kobj.h"
#include "lib/cerr.h"
#include "lib/cmem.h"
#include "lib/jtype.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Room for the longest JSON path in a message: parent paths are cut at 300
 * bytes, names at 100. */
#define PATH_LEN 512

struct pool {
    char *name;
    json_t *node_selector, *tolerations, *requests, *limits; /* owned references */
    char *escalation_name;
    const pool *escalation;
    long max_partition_pods; /* 0: no cap */
};

struct pools {
    pool *list; /* sorted by name */
    size_t n;
    const pool *dflt;
};

/* --- quantities ------------------------------------------------------------------ */

typedef unsigned __int128 u128;

int pools_quantity_parse(const char *s, long long *milli)
{
    const char *p = s;
    bool neg = false;
    uint64_t mant = 0;
    int sig = 0, frac = 0, ndigits = 0, exp10 = 0, bin = 0;
    *milli = 0;
    if (!s || !*s) return cerr_set(CERR_INVALID, "empty quantity");
    if (*p == '+' || *p == '-') neg = *p++ == '-';
    bool point = false;
    for (;; p++) {
        if (*p == '.' && !point) {
            point = true;
            continue;
        }
        if (*p < '0' || *p > '9') break;
        ndigits++;
        if (mant == 0 && *p == '0') {
            if (point) frac++;
            continue; /* leading zeros are not significant */
        }
        if (++sig > 18) return cerr_set(CERR_INVALID, "quantity \"%.64s\": too many digits", s);
        mant = mant * 10 + (uint64_t)(*p - '0');
        if (point) frac++;
    }
    if (!ndigits) goto bad;
    /* suffix */
    if (*p == 'e' || (*p == 'E' && p[1] && p[1] != 'i')) {
        const char *q = p + 1;
        int esign = 1, nd = 0;
        if (*q == '+' || *q == '-') esign = *q++ == '-' ? -1 : 1;
        for (; *q >= '0' && *q <= '9'; q++, nd++) {
            if (nd >= 4) goto bad; /* |exponent| < 10000 */
            exp10 = exp10 * 10 + (*q - '0');
        }
        if (!nd || *q) goto bad;
        exp10 *= esign;
    } else if (p[0] && p[1] == 'i' && !p[2]) {
        const char *bs = strchr("KMGTPE", p[0]);
        if (!bs || !p[0]) goto bad;
        bin = 10 * (int)(bs - "KMGTPE" + 1);
    } else if (!p[0] || !p[1]) {
        switch (p[0]) {
        case '\0':
            break;
        case 'n':
            exp10 = -9;
            break;
        case 'u':
            exp10 = -6;
            break;
        case 'm':
            exp10 = -3;
            break;
        case 'k':
            exp10 = 3;
            break;
        case 'M':
            exp10 = 6;
            break;
        case 'G':
            exp10 = 9;
            break;
        case 'T':
            exp10 = 12;
            break;
        case 'P':
            exp10 = 15;
            break;
        case 'E':
            exp10 = 18;
            break;
        default:
            goto bad;
        }
    } else {
        goto bad;
    }
    /* value * 1000 = mant * 2^bin * 10^(exp10 + 3 - frac) */
    int e = exp10 + 3 - frac;
    u128 v = (u128)mant << bin; /* mant < 10^18 < 2^60, bin <= 60 */
    if (mant && e > 0) {
        if (e > 40) goto big;
        for (int i = 0; i < e; i++) {
            v *= 10;
            if (v > (u128)INT64_MAX) goto big;
        }
    } else if (e < 0) {
        if (-e > 38) {     /* 10^39 > 2^120 > v */
            v = v ? 1 : 0; /* less than one milli-unit: rounds up */
        } else {
            u128 d = 1;
            for (int i = 0; i < -e; i++)
                d *= 10;
            v = v / d + (v % d != 0); /* round up, as MilliValue */
        }
    }
    if (v > (u128)INT64_MAX) goto big;
    *milli = neg ? -(long long)v : (long long)v;
    return 0;
big:
    return cerr_set(CERR_INVALID, "quantity \"%.64s\" is too large", s);
bad:
    return cerr_set(CERR_INVALID,
                    "quantity \"%.64s\": expected a number with an optional suffix "
                    "(m, k, M, G, Ki, Mi, Gi, ...)",
                    s);
}

/* A quantity given as string or JSON number, as a new string. */
static int quantity_value(const json_t *v, const char *path, char **str, long long *milli)
{
    char tmp[64];
    const char *s;
    *str = NULL;
    if (json_is_string(v)) {
        s = json_string_value(v);
    } else if (json_is_integer(v)) {
        snprintf(tmp, sizeof tmp, "%lld", (long long)json_integer_value(v));
        s = tmp;
    } else if (json_is_real(v)) {
        snprintf(tmp, sizeof tmp, "%.15g", json_real_value(v));
        s = tmp;
    } else {
        return cerr_set(CERR_INVALID, "%s: expected a quantity (string or number), got %s", path,
                        jtype_name(v));
    }
    if (pools_quantity_parse(s, milli)) {
        cerr_prefix("%s", path);
        return CERR_INVALID;
    }
    if (*milli < 0) return cerr_set(CERR_INVALID, "%s: quantity \"%.64s\" is negative", path, s);
    *str = cmem_strdup(s);
    return *str ? 0 : cerr_oom();
}

/* --- validation helpers -------------------------------------------------------------- */

static bool dns_label(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-') return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
            return false;
    return true;
}

/* Fails on members of obj not listed in allowed (NULL-terminated). */
static int only_fields(const json_t *obj, const char *path, const char *const *allowed)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        bool ok = false;
        for (size_t i = 0; allowed[i] && !ok; i++)
            ok = strcmp(key, allowed[i]) == 0;
        if (!ok)
            return cerr_set(CERR_INVALID, "%s%s%.100s: unknown field", path, path[0] ? "." : "",
                            key);
    }
    return 0;
}

static int expect(const json_t *v, json_type t, const char *path)
{
    static const char *const names[] = {"object", "array",   "string",  "integer",
                                        "real",   "boolean", "boolean", "null"};
    if (v && json_typeof(v) == t) return 0;
    return cerr_set(CERR_INVALID, "%s: expected %s, got %s", path, names[t], jtype_name(v));
}

static int check_node_selector(const json_t *ns, const char *path)
{
    int rc = expect(ns, JSON_OBJECT, path);
    if (rc) return rc;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)ns, k, v)
    {
        if (!k[0]) return cerr_set(CERR_INVALID, "%s: empty label key", path);
        if (!json_is_string(v))
            return cerr_set(CERR_INVALID, "%s.%.100s: expected string, got %s", path, k,
                            jtype_name(v));
    }
    return 0;
}

static int check_toleration(const json_t *t, const char *path)
{
    static const char *const fields[] = {"key",    "operator",          "value",
                                         "effect", "tolerationSeconds", NULL};
    char fp[PATH_LEN];
    int rc;
    if ((rc = expect(t, JSON_OBJECT, path)) || (rc = only_fields(t, path, fields))) return rc;
    const char *sv[4] = {"", "Equal", "", ""}; /* key, operator, value, effect */
    for (int i = 0; i < 4; i++) {
        const json_t *v = json_object_get(t, fields[i]);
        if (!v) continue;
        snprintf(fp, sizeof fp, "%.300s.%s", path, fields[i]);
        if ((rc = expect(v, JSON_STRING, fp))) return rc;
        sv[i] = json_string_value(v);
    }
    if (strcmp(sv[1], "Exists") && strcmp(sv[1], "Equal"))
        return cerr_set(CERR_INVALID, "%s.operator: must be Exists or Equal (got \"%.64s\")", path,
                        sv[1]);
    if (!strcmp(sv[1], "Exists") && sv[2][0])
        return cerr_set(CERR_INVALID, "%s.value: must be empty when operator is Exists", path);
    if (!sv[0][0] && strcmp(sv[1], "Exists"))
        return cerr_set(CERR_INVALID, "%s.operator: must be Exists when key is empty", path);
    if (sv[3][0] && strcmp(sv[3], "NoSchedule") && strcmp(sv[3], "PreferNoSchedule") &&
        strcmp(sv[3], "NoExecute"))
        return cerr_set(CERR_INVALID,
                        "%s.effect: must be one of NoSchedule, PreferNoSchedule, NoExecute (got "
                        "\"%.64s\")",
                        path, sv[3]);
    const json_t *secs = json_object_get(t, "tolerationSeconds");
    if (secs) {
        snprintf(fp, sizeof fp, "%.300s.tolerationSeconds", path);
        if ((rc = expect(secs, JSON_INTEGER, fp))) return rc;
        if (strcmp(sv[3], "NoExecute"))
            return cerr_set(CERR_INVALID, "%s: only allowed with effect NoExecute", fp);
    }
    return 0;
}

/* Validates a requests/limits map, storing normalised strings in *out. */
static int load_quantities(const json_t *m, const char *path, json_t **out)
{
    char fp[PATH_LEN];
    const char *k;
    json_t *v;
    int rc = expect(m, JSON_OBJECT, path);
    if (rc) return rc;
    *out = json_object();
    if (!*out) return cerr_oom();
    json_object_foreach((json_t *)m, k, v)
    {
        char *str;
        long long milli;
        snprintf(fp, sizeof fp, "%.300s.%.100s", path, k);
        if (!k[0]) return cerr_set(CERR_INVALID, "%s: empty resource name", path);
        if ((rc = quantity_value(v, fp, &str, &milli))) return rc;
        rc = json_object_set_new(*out, k, json_string(str)) ? cerr_oom() : 0;
        cmem_free(str);
        if (rc) return rc;
    }
    return 0;
}

static long long milli_of(const json_t *q)
{
    long long m = 0;
    pools_quantity_parse(json_string_value(q), &m); /* validated on load */
    return m;
}

static int load_resources(pool *pl, const json_t *r, const char *path)
{
    static const char *const fields[] = {"requests", "limits", NULL};
    char fp[PATH_LEN];
    int rc;
    if ((rc = expect(r, JSON_OBJECT, path)) || (rc = only_fields(r, path, fields))) return rc;
    const json_t *req = json_object_get(r, "requests"), *lim = json_object_get(r, "limits");
    if (req) {
        json_decref(pl->requests);
        pl->requests = NULL;
        snprintf(fp, sizeof fp, "%.300s.requests", path);
        if ((rc = load_quantities(req, fp, &pl->requests))) return rc;
    }
    if (lim) {
        json_decref(pl->limits);
        pl->limits = NULL;
        snprintf(fp, sizeof fp, "%.300s.limits", path);
        if ((rc = load_quantities(lim, fp, &pl->limits))) return rc;
    }
    const char *k;
    json_t *v;
    json_object_foreach(pl->requests, k, v)
    {
        json_t *l = json_object_get(pl->limits, k);
        if (l && milli_of(v) > milli_of(l))
            return cerr_set(CERR_INVALID, "%s.requests.%.100s: %s exceeds limits.%.100s %s", path,
                            k, json_string_value(v), k, json_string_value(l));
    }
    return 0;
}

static int load_pool(pool *pl, const char *name, const json_t *def)
{
    static const char *const fields[] = {"nodeSelector",  "tolerations",      "resources",
                                         "oomEscalation", "maxPartitionPods", NULL};
    char path[PATH_LEN], fp[PATH_LEN];
    int rc;
    snprintf(path, sizeof path, "pools.%.100s", name);
    pl->name = cmem_strdup(name);
    pl->node_selector = json_object();
    pl->tolerations = json_array();
    pl->requests = json_object();
    pl->limits = json_object();
    if (!pl->name || !pl->node_selector || !pl->tolerations || !pl->requests || !pl->limits)
        return cerr_oom();
    if (!dns_label(name))
        return cerr_set(CERR_INVALID, "%s: pool names are DNS labels (a-z, 0-9, '-', at most 63)",
                        path);
    if ((rc = expect(def, JSON_OBJECT, path)) || (rc = only_fields(def, path, fields))) return rc;

    const json_t *ns = json_object_get(def, "nodeSelector");
    if (ns) {
        snprintf(fp, sizeof fp, "%.300s.nodeSelector", path);
        if ((rc = check_node_selector(ns, fp))) return rc;
        json_decref(pl->node_selector);
        if (!(pl->node_selector = json_deep_copy(ns))) return cerr_oom();
    }
    const json_t *tols = json_object_get(def, "tolerations");
    if (tols) {
        snprintf(fp, sizeof fp, "%.300s.tolerations", path);
        if ((rc = expect(tols, JSON_ARRAY, fp))) return rc;
        for (size_t i = 0; i < json_array_size(tols); i++) {
            snprintf(fp, sizeof fp, "%.300s.tolerations[%zu]", path, i);
            if ((rc = check_toleration(json_array_get(tols, i), fp))) return rc;
        }
        json_decref(pl->tolerations);
        if (!(pl->tolerations = json_deep_copy(tols))) return cerr_oom();
    }
    const json_t *res = json_object_get(def, "resources");
    if (res) {
        snprintf(fp, sizeof fp, "%.300s.resources", path);
        if ((rc = load_resources(pl, res, fp))) return rc;
    }
    const json_t *esc = json_object_get(def, "oomEscalation");
    if (esc && !json_is_null(esc)) {
        snprintf(fp, sizeof fp, "%.300s.oomEscalation", path);
        if ((rc = expect(esc, JSON_STRING, fp))) return rc;
        if (!(pl->escalation_name = cmem_strdup(json_string_value(esc)))) return cerr_oom();
    }
    const json_t *cap = json_object_get(def, "maxPartitionPods");
    if (cap && !json_is_null(cap)) {
        if (!json_is_integer(cap) || json_integer_value(cap) < 0 ||
            json_integer_value(cap) > POOLS_PARTITION_PODS_MAX)
            return cerr_set(CERR_INVALID,
                            "%.300s.maxPartitionPods: an integer from 0 (no cap) to %d", path,
                            POOLS_PARTITION_PODS_MAX);
        pl->max_partition_pods = (long)json_integer_value(cap);
    }
    return 0;
}

static void pool_clear(pool *pl)
{
    cmem_free(pl->name);
    json_decref(pl->node_selector);
    json_decref(pl->tolerations);
    json_decref(pl->requests);
    json_decref(pl->limits);
    cmem_free(pl->escalation_name);
}

void pools_free(pools *ps)
{
    if (!ps) return;
    /* list is NULL (and n 0) when its allocation failed */
    for (size_t i = 0; ps->list && i < ps->n; i++)
        pool_clear(&ps->list[i]);
    cmem_free(ps->list);
    cmem_free(ps);
}

static int pool_cmp(const void *a, const void *b)
{
    return strcmp(((const pool *)a)->name, ((const pool *)b)->name);
}

const pool *pools_find(const pools *ps, const char *name)
{
    if (!name) return NULL;
    pool key = {.name = (char *)name};
    return bsearch(&key, ps->list, ps->n, sizeof *ps->list, pool_cmp);
}

/* Resolves oomEscalation names and rejects cycles (each chain is followed
 * at most n steps: a longer walk must repeat a pool). */
static int link_escalations(pools *ps)
{
    for (size_t i = 0; i < ps->n; i++) {
        pool *pl = &ps->list[i];
        if (!pl->escalation_name) continue;
        pl->escalation = pools_find(ps, pl->escalation_name);
        if (!pl->escalation)
            return cerr_set(CERR_INVALID, "pools.%s.oomEscalation: unknown pool \"%.64s\"",
                            pl->name, pl->escalation_name);
        if (pl->escalation == pl)
            return cerr_set(CERR_INVALID,
                            "pools.%s.oomEscalation: a pool cannot escalate to itself", pl->name);
    }
    for (size_t i = 0; i < ps->n; i++) {
        const pool *p = &ps->list[i];
        size_t steps = 0;
        while (p && steps <= ps->n) {
            p = p->escalation;
            steps++;
        }
        if (!p) continue;
        /* A cycle: print it from its first pool in name order, so the
         * message does not depend on where the walk entered it. */
        char chain[512];
        size_t off = 0;
        const pool *start = p;
        for (const pool *q = p->escalation; q != p; q = q->escalation)
            if (strcmp(q->name, start->name) < 0) start = q;
        p = start;
        do {
            int w = snprintf(chain + off, sizeof chain - off, "%s -> ", p->name);
            if (w < 0 || (size_t)w >= sizeof chain - off) break;
            off += (size_t)w;
            p = p->escalation;
        } while (p != start);
        snprintf(chain + off, sizeof chain - off, "%s", start->name);
        return cerr_set(CERR_INVALID, "pools.%s.oomEscalation: escalation cycle %s", start->name,
                        chain);
    }
    return 0;
}

int pools_load_json(const json_t *root, pools **out)
{
    static const char *const fields[] = {"defaultPool", "pools", NULL};
    int rc;
    *out = NULL;
    if ((rc = expect(root, JSON_OBJECT, "pools configuration")) ||
        (rc = only_fields(root, "", fields)))
        return rc;
    const json_t *defs = json_object_get(root, "pools"),
                 *dflt = json_object_get(root, "defaultPool");
    if ((rc = expect(defs, JSON_OBJECT, "pools"))) return rc;
    if (json_object_size(defs) == 0)
        return cerr_set(CERR_INVALID, "pools: at least one pool is needed");
    if ((rc = expect(dflt, JSON_STRING, "defaultPool"))) return rc;

    pools *ps = cmem_calloc(1, sizeof *ps);
    if (!ps) return cerr_oom();
    ps->list = cmem_calloc(json_object_size(defs), sizeof *ps->list);
    if (!ps->list) {
        rc = cerr_oom();
        goto fail;
    }
    const char *name;
    json_t *def;
    json_object_foreach((json_t *)defs, name, def)
    {
        rc = load_pool(&ps->list[ps->n++], name, def);
        if (rc) goto fail;
    }
    qsort(ps->list, ps->n, sizeof *ps->list, pool_cmp);
    ps->dflt = pools_find(ps, json_string_value(dflt));
    if (!ps->dflt) {
        rc = cerr_set(CERR_INVALID, "defaultPool: unknown pool \"%.64s\"", json_string_value(dflt));
        goto fail;
    }
    if ((rc = link_escalations(ps))) goto fail;
    *out = ps;
    return 0;
fail:
    pools_free(ps);
    return rc;
}

int pools_load_bytes(const char *buf, size_t len, pools **out)
{
    json_error_t jerr;
    memset(&jerr, 0, sizeof jerr); /* jansson leaves parts unset on some failures */
    *out = NULL;
    if (len > POOLS_FILE_MAX)
        return cerr_set(CERR_TOOBIG, "pools configuration is larger than %d bytes", POOLS_FILE_MAX);
    unsigned long failures = cmem_failures();
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        /* jansson reports a failed allocation as a syntax error. */
        if (cmem_failures() != failures || json_error_code(&jerr) == json_error_out_of_memory)
            return cerr_oom();
        return cerr_set(CERR_INVALID, "pools configuration: line %d column %d (byte %d): %s",
                        jerr.line, jerr.column, jerr.position, jerr.text);
    }
    int rc = pools_load_json(root, out);
    json_decref(root);
    return rc;
}

int pools_load_file(const char *path, pools **out)
{
    char *buf = NULL;
    size_t len = 0;
    int rc;
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return cerr_set(CERR_IO, "%s: %s", path, strerror(errno));
    buf = cmem_malloc(POOLS_FILE_MAX + 1);
    if (!buf) {
        rc = cerr_oom();
        goto cleanup;
    }
    len = fread(buf, 1, POOLS_FILE_MAX + 1, f);
    if (ferror(f)) {
        rc = cerr_set(CERR_IO, "%s: read error", path);
        goto cleanup;
    }
    rc = pools_load_bytes(buf, len, out);
    if (rc) cerr_prefix("%s", path);
cleanup:
    cmem_free(buf);
    fclose(f);
    return rc;
}

size_t pools_count(const pools *ps)
{
    return ps->n;
}

const pool *pools_at(const pools *ps, size_t i)
{
    return i < ps->n ? &ps->list[i] : NULL;
}

const pool *pools_default(const pools *ps)
{
    return ps->dflt;
}

int pools_select(const pools *ps, const json_t *tags, const pool **out)
{
    *out = NULL;
    if (tags && !json_is_null(tags) && !json_is_object(tags))
        return cerr_set(CERR_INVALID, "spec.tags: expected object, got %s", jtype_name(tags));
    const json_t *tag = json_is_object(tags) ? json_object_get(tags, POOLS_TAG) : NULL;
    if (!tag || json_is_null(tag)) {
        *out = ps->dflt;
        return 0;
    }
    if (!json_is_string(tag))
        return cerr_set(CERR_INVALID, "spec.tags.%s: expected string, got %s", POOLS_TAG,
                        jtype_name(tag));
    *out = pools_find(ps, json_string_value(tag));
    if (*out) return 0;
    char known[512];
    size_t off = 0;
    known[0] = '\0';
    for (size_t i = 0; i < ps->n; i++) {
        int w = snprintf(known + off, sizeof known - off, "%s%s", i ? ", " : "", ps->list[i].name);
        if (w < 0 || (size_t)w >= sizeof known - off) break;
        off += (size_t)w;
    }
    return cerr_set(CERR_NOTFOUND, "spec.tags.%s: unknown pool \"%.64s\" (pools: %s)", POOLS_TAG,
                    json_string_value(tag), known);
}

int pools_resources(const pool *p, const json_t *overrides, json_t **out)
{
    static const char *const fields[] = {"cpu", "memory", NULL};
    json_t *req = NULL, *lim = NULL, *res = NULL;
    char *str = NULL;
    int rc;
    *out = NULL;
    if (overrides && !json_is_null(overrides)) {
        if ((rc = expect(overrides, JSON_OBJECT, "spec.resources")) ||
            (rc = only_fields(overrides, "spec.resources", fields)))
            return rc;
    }
    req = json_deep_copy(p->requests);
    lim = json_deep_copy(p->limits);
    if (!req || !lim) goto oom;
    for (size_t i = 0; fields[i] && json_is_object(overrides); i++) {
        const json_t *v = json_object_get(overrides, fields[i]);
        if (!v || json_is_null(v)) continue;
        char path[PATH_LEN];
        long long milli;
        snprintf(path, sizeof path, "spec.resources.%s", fields[i]);
        if ((rc = quantity_value(v, path, &str, &milli))) goto fail;
        if (milli == 0) {
            rc = cerr_set(CERR_INVALID, "%s: must be greater than zero", path);
            goto fail;
        }
        if (json_object_set_new(req, fields[i], json_string(str))) goto oom;
        json_t *l = json_object_get(lim, fields[i]);
        if (l && milli_of(l) < milli && json_object_set_new(lim, fields[i], json_string(str)))
            goto oom;
        cmem_free(str);
        str = NULL;
    }
    res = json_object();
    if (!res) goto oom;
    if (json_object_size(req) && json_object_set(res, "requests", req)) goto oom;
    if (json_object_size(lim) && json_object_set(res, "limits", lim)) goto oom;
    json_decref(req);
    json_decref(lim);
    *out = res;
    return 0;
oom:
    rc = cerr_oom();
fail:
    cmem_free(str);
    json_decref(req);
    json_decref(lim);
    json_decref(res);
    return rc;
}

const char *pool_name(const pool *p)
{
    return p->name;
}

const json_t *pool_node_selector(const pool *p)
{
    return p->node_selector;
}

const json_t *pool_tolerations(const pool *p)
{
    return p->tolerations;
}

const json_t *pool_requests(const pool *p)
{
    return p->requests;
}

const json_t *pool_limits(const pool *p)
{
    return p->limits;
}

const pool *pool_escalation(const pool *p)
{
    return p->escalation;
}

long pool_max_partition_pods(const pool *p)
{
    return p->max_partition_pods;
}
