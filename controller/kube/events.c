/*
 * events.c - Kubernetes Events (core/v1) about objects, sent in the
 * background (see events.h).
 *
 * events_record copies what it needs into a bounded queue (1024 entries;
 * when it is full the event is dropped and counted) and returns at once;
 * one thread per recorder sends them. Like client-go's legacy recorder
 * (tools/record), an Event is named "<object name>.<hex timestamp>", lives
 * in the object's namespace ("default" for cluster-scoped objects), and a
 * repeat of the same object, type, reason and message within ten minutes
 * is folded into the Event already sent: a merge patch raises its count and
 * lastTimestamp. The recorder remembers the last 256 distinct events for
 * that (client-go's correlator keeps more; a controller repeating more
 * than 256 different messages per ten minutes creates a few more Events).
 * An Event deleted meanwhile (the API server expires them after an hour)
 * is simply created again.
 *
 * Every request of the sending thread is bounded to 5 s, so events_free's
 * flush wait is bounded too.
 */
#include "kube/events.h"

#include "kube/kobj.h"
#include "lib/cerr.h"
#include "lib/cmem.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define QUEUE_MAX 1024
#define MESSAGE_MAX 1024 /* bytes, cut on a UTF-8 boundary */
#define REASON_MAX 128
#define LRU_SIZE 256
#define AGGREGATE_S 600 /* the API conventions' ten minutes */
#define FLUSH_WAIT_MS 5000
#define REQUEST_TIMEOUT_MS 5000
#define NAME_MAX_LEN 253

typedef struct pending {
    struct pending *next;
    char *api_version, *kind, *ns, *name, *uid, *rv;
    char *type, *reason, *message;
    struct timespec when;
} pending;

typedef struct {
    char *key; /* NULL: free slot */
    char *ev_ns, *ev_name;
    long long count;
    time_t last;
    uint64_t used; /* LRU clock */
} seen;

struct event_recorder {
    kube_client *c;
    char *component, *host;
    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* queue changes, both ways */
    pending *head, *tail;
    size_t len;
    bool busy;    /* the thread is sending one */
    bool closing; /* drain, then exit */
    bool abandon; /* exit now */
    atomic_ulong dropped;
    /* sending thread only */
    seen lru[LRU_SIZE];
    uint64_t clock;
    unsigned seq;
};

static void pending_free(pending *p)
{
    if (!p) return;
    cmem_free(p->api_version);
    cmem_free(p->kind);
    cmem_free(p->ns);
    cmem_free(p->name);
    cmem_free(p->uid);
    cmem_free(p->rv);
    cmem_free(p->type);
    cmem_free(p->reason);
    cmem_free(p->message);
    cmem_free(p);
}

static void seen_clear(seen *s)
{
    cmem_free(s->key);
    cmem_free(s->ev_ns);
    cmem_free(s->ev_name);
    memset(s, 0, sizeof *s);
}

/* The longest prefix of s within max bytes that does not split a UTF-8
 * sequence. */
static size_t utf8_cut(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n <= max) return n;
    n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    return n;
}

/* --- the sending thread -------------------------------------------------------------------- */

static seen *lru_find(event_recorder *r, const char *key)
{
    for (size_t i = 0; i < LRU_SIZE; i++)
        if (r->lru[i].key && strcmp(r->lru[i].key, key) == 0) return &r->lru[i];
    return NULL;
}

/* A free slot or the least recently used one, cleared. */
static seen *lru_slot(event_recorder *r)
{
    seen *best = &r->lru[0];
    for (size_t i = 0; i < LRU_SIZE; i++) {
        if (!r->lru[i].key) {
            best = &r->lru[i];
            break;
        }
        if (r->lru[i].used < best->used) best = &r->lru[i];
    }
    seen_clear(best);
    return best;
}

static int create_event(event_recorder *r, const pending *p, const char *ns, const char *ts,
                        char **name_out)
{
    int rc;
    json_t *ev = NULL, *ref = NULL;
    char *name = NULL;
    *name_out = NULL;
    /* client-go: "<name>.<UnixNano in hex>"; the sequence number keeps two
     * events of one object in the same nanosecond apart. */
    unsigned long long unique = (unsigned long long)p->when.tv_sec * 1000000000ull +
                                (unsigned long long)p->when.tv_nsec + r->seq++;
    int keep = NAME_MAX_LEN - 17;
    if (!(name = cmem_printf("%.*s.%llx", keep, p->name, unique))) return cerr_oom();
    ref = json_pack("{s:s*, s:s*, s:s*, s:s, s:s*, s:s*}", "apiVersion", p->api_version, "kind",
                    p->kind, "namespace", p->ns, "name", p->name, "uid", p->uid, "resourceVersion",
                    p->rv);
    ev = json_pack(
        "{s:s, s:s, s:{s:s, s:s}, s:O, s:s, s:s, s:s, s:{s:s, s:s*}, s:s, s:s, s:i, s:s, s:s}",
        "apiVersion", "v1", "kind", "Event", "metadata", "name", name, "namespace", ns,
        "involvedObject", ref, "reason", p->reason, "message", p->message, "type", p->type,
        "source", "component", r->component, "host", r->host, "firstTimestamp", ts, "lastTimestamp",
        ts, "count", 1, "reportingComponent", r->component, "reportingInstance",
        r->host ? r->host : "");
    if (!ref || !ev) {
        rc = cerr_oom();
        goto cleanup;
    }
    if ((rc = kube_create(r->c, &KUBE_EVENTS, ns, ev, NULL))) goto cleanup;
    *name_out = name;
    name = NULL;
cleanup:
    json_decref(ev);
    json_decref(ref);
    cmem_free(name);
    return rc;
}

static void send_one(event_recorder *r, const pending *p)
{
    char ts[KOBJ_TIME_LEN];
    char *key = NULL, *name = NULL;
    json_t *patch = NULL;
    const char *ns = p->ns && p->ns[0] ? p->ns : "default";
    if (kobj_time_format(p->when.tv_sec, ts)) return;
    /* Without a uid (an object never stored), its identity is kind/ns/name. */
    key = cmem_printf("%s\x1f%s\x1f%s\x1f%s\x1f%s\x1f%s\x1f%s", p->uid ? p->uid : "",
                      p->kind ? p->kind : "", ns, p->name, p->type, p->reason, p->message);
    if (!key) goto dropped;
    seen *s = lru_find(r, key);
    if (s && p->when.tv_sec - s->last < AGGREGATE_S) {
        if (!(patch = json_pack("{s:I, s:s}", "count", (json_int_t)(s->count + 1), "lastTimestamp",
                                ts)))
            goto dropped;
        int rc = kube_patch(r->c, &KUBE_EVENTS, s->ev_ns, s->ev_name, KUBE_PATCH_MERGE, patch,
                            false, NULL);
        if (rc == 0) {
            s->count++;
            s->last = p->when.tv_sec;
            s->used = ++r->clock;
            goto cleanup;
        }
        if (rc != CERR_NOTFOUND) goto dropped; /* repeating it could double-count */
    }
    if (s) seen_clear(s);
    if (create_event(r, p, ns, ts, &name)) goto dropped;
    s = lru_slot(r);
    s->key = key;
    key = NULL;
    s->ev_name = name;
    name = NULL;
    if (!(s->ev_ns = cmem_strdup(ns))) {
        seen_clear(s);
        goto cleanup;
    }
    s->count = 1;
    s->last = p->when.tv_sec;
    s->used = ++r->clock;
    goto cleanup;
dropped:
    atomic_fetch_add(&r->dropped, 1);
cleanup:
    json_decref(patch);
    cmem_free(key);
    cmem_free(name);
}

static void *run(void *arg)
{
    event_recorder *r = arg;
    kube_set_thread_timeout(REQUEST_TIMEOUT_MS);
    pthread_mutex_lock(&r->mu);
    for (;;) {
        while (!r->head && !r->closing && !r->abandon)
            pthread_cond_wait(&r->cv, &r->mu);
        if (r->abandon || !r->head) break;
        pending *p = r->head;
        r->head = p->next;
        if (!r->head) r->tail = NULL;
        r->len--;
        r->busy = true;
        pthread_mutex_unlock(&r->mu);
        send_one(r, p);
        pending_free(p);
        pthread_mutex_lock(&r->mu);
        r->busy = false;
        pthread_cond_broadcast(&r->cv);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

/* --- API ------------------------------------------------------------------------------------ */

int events_new(kube_client *c, const char *component, const char *host, event_recorder **out)
{
    event_recorder *r = NULL;
    *out = NULL;
    if (!c || !component || !component[0])
        return cerr_set(CERR_INVALID, "events: client and component required");
    if (!(r = cmem_calloc(1, sizeof *r))) return cerr_oom();
    r->c = c;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    if (!(r->component = cmem_strdup(component)) || (host && !(r->host = cmem_strdup(host)))) {
        events_free(r);
        return cerr_oom();
    }
    int e = pthread_create(&r->thread, NULL, run, r);
    if (e) {
        events_free(r);
        return cerr_set(CERR_ERROR, "events: pthread_create: %s", strerror(e));
    }
    r->started = true;
    *out = r;
    return 0;
}

static char *dup_str(const char *s)
{
    return s ? cmem_strdup(s) : NULL;
}

void events_record(event_recorder *r, const json_t *obj, const char *type, const char *reason,
                   const char *fmt, ...)
{
    if (!r) return;
    pending *p = NULL;
    char msg[MESSAGE_MAX + 4];
    const char *name = kobj_name(obj);
    if (!name || !type || !reason || !fmt) goto dropped;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    msg[utf8_cut(msg, MESSAGE_MAX)] = '\0';
    const json_t *av = json_object_get(obj, "apiVersion"), *kind = json_object_get(obj, "kind");
    if (!(p = cmem_calloc(1, sizeof *p))) goto dropped;
    clock_gettime(CLOCK_REALTIME, &p->when);
    if (!(p->name = cmem_strdup(name)) || !(p->type = cmem_strdup(type)) ||
        !(p->reason = cmem_strndup(reason, utf8_cut(reason, REASON_MAX))) ||
        !(p->message = cmem_strdup(msg)) ||
        (json_is_string(av) && !(p->api_version = dup_str(json_string_value(av)))) ||
        (json_is_string(kind) && !(p->kind = dup_str(json_string_value(kind)))) ||
        (kobj_namespace(obj) && !(p->ns = dup_str(kobj_namespace(obj)))) ||
        (kobj_uid(obj) && !(p->uid = dup_str(kobj_uid(obj)))) ||
        (kobj_resource_version(obj) && !(p->rv = dup_str(kobj_resource_version(obj)))))
        goto dropped;
    pthread_mutex_lock(&r->mu);
    if (r->len >= QUEUE_MAX || r->closing) {
        pthread_mutex_unlock(&r->mu);
        goto dropped;
    }
    if (r->tail)
        r->tail->next = p;
    else
        r->head = p;
    r->tail = p;
    r->len++;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    return;
dropped:
    pending_free(p);
    atomic_fetch_add(&r->dropped, 1);
}

void events_free(event_recorder *r)
{
    if (!r) return;
    if (r->started) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += FLUSH_WAIT_MS / 1000;
        pthread_mutex_lock(&r->mu);
        r->closing = true;
        pthread_cond_broadcast(&r->cv);
        while ((r->head || r->busy) && pthread_cond_timedwait(&r->cv, &r->mu, &ts) == 0) {
        }
        /* Whatever is still queued after the wait is given up. */
        r->abandon = true;
        pthread_cond_broadcast(&r->cv);
        pthread_mutex_unlock(&r->mu);
        pthread_join(r->thread, NULL);
    }
    while (r->head) {
        pending *p = r->head;
        r->head = p->next;
        atomic_fetch_add(&r->dropped, 1);
        pending_free(p);
    }
    for (size_t i = 0; i < LRU_SIZE; i++)
        seen_clear(&r->lru[i]);
    cmem_free(r->component);
    cmem_free(r->host);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    cmem_free(r);
}

unsigned long events_dropped(event_recorder *r)
{
    return r ? atomic_load(&r->dropped) : 0;
}
