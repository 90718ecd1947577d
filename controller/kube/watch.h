/*
 * watch.h - splits a Kubernetes watch response body into events.
 *
 * A watch body (GET ...?watch=1) is a stream of JSON objects, one per line:
 *   {"type":"ADDED","object":{...}}\n{"type":"BOOKMARK","object":{...}}\n...
 * The informer feeds whatever chunks libcurl delivers to watch_feed; the
 * splitter joins lines broken across chunks, decodes each complete line and
 * calls the callback once per line, in stream order. Lines inside one chunk
 * are decoded in place (no copy); only a line split across chunks is
 * buffered, and never beyond max_line bytes: a longer line is reported
 * (CERR_TOOBIG) and skipped up to the next newline, so a hostile or broken
 * server cannot grow memory without bound. Empty and blank lines and a
 * trailing "\r" (CRLF) are ignored; watch_finish decodes a last line that
 * lacks its newline when the body ends.
 *
 * What the callback sees (watch_event):
 *  - ADDED / MODIFIED / DELETED: object and its metadata.resourceVersion.
 *  - BOOKMARK: object.metadata.resourceVersion (required: the informer
 *    resumes the watch from it).
 *  - ERROR: object is a metav1.Status; status_code, reason and message are
 *    extracted and result says what to do: CERR_GONE for 410 / Expired
 *    (the resourceVersion is too old: relist), CERR_AGAIN for 5xx and 429
 *    (watch again after a backoff), another CERR_* otherwise
 *    (kobj_status_cerr).
 *  - WATCH_INVALID: a line the splitter rejected, with result CERR_TOOBIG
 *    (over max_line) or CERR_INVALID (invalid JSON, not an object, unknown
 *    event type, missing object, BOOKMARK without resourceVersion), offset
 *    the stream byte it is about (for invalid JSON, jansson's error
 *    position), and message saying what and where. The stream goes on.
 *
 * One splitter per watch connection, used by the one thread that reads it;
 * no locking. jansson reference rule: ev->object is borrowed for the
 * duration of the callback (the splitter decrefs it afterwards); the
 * callback calls json_incref on it to keep it. The event's strings are
 * borrowed likewise.
 */
#ifndef KUBE_WATCH_H
#define KUBE_WATCH_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define WATCH_MAX_LINE_DEFAULT (16u * 1024 * 1024)

typedef enum {
    WATCH_INVALID = 0, /* not an event: a line the splitter rejected */
    WATCH_ADDED,
    WATCH_MODIFIED,
    WATCH_DELETED,
    WATCH_BOOKMARK,
    WATCH_ERROR,
} watch_type;

typedef struct {
    watch_type type;
    json_t *object;               /* borrowed; NULL for WATCH_INVALID */
    const char *resource_version; /* object.metadata.resourceVersion or NULL */
    int result;                   /* 0 for ADDED..BOOKMARK; a CERR_* for ERROR and INVALID */
    int status_code;              /* ERROR: the Status code (0 when absent) */
    const char *reason;           /* ERROR: the Status reason or NULL */
    const char *message;          /* ERROR: Status message; INVALID: what went wrong; else NULL */
    uint64_t offset;              /* stream byte: line start, or the error's position */
} watch_event;

/* Return 0 to go on; anything else stops the stream: watch_feed returns it
 * and so does every later watch_feed / watch_finish until watch_reset. */
typedef int (*watch_event_fn)(void *ctx, const watch_event *ev);

typedef struct watch_splitter watch_splitter;

/* max_line 0 selects WATCH_MAX_LINE_DEFAULT. NULL when out of memory. */
watch_splitter *watch_new(size_t max_line, watch_event_fn cb, void *ctx);
void watch_free(watch_splitter *w);
/* Forgets buffered bytes, the stop state and the offset: a new connection. */
void watch_reset(watch_splitter *w);

/* 0, or the callback's non-zero return. A line lost because memory ran out
 * (buffering or decoding it) is reported as WATCH_INVALID with result
 * CERR_NOMEM and skipped; the informer should then relist, as for any
 * invalid line. */
int watch_feed(watch_splitter *w, const void *data, size_t len);
/* End of the body: decodes a final line without newline. Same returns. The
 * splitter is then empty, ready for watch_reset or watch_free. */
int watch_finish(watch_splitter *w);

/* Bytes fed since watch_new / watch_reset. */
uint64_t watch_offset(const watch_splitter *w);
/* "ADDED", ..., "ERROR", "INVALID". */
const char *watch_type_name(watch_type t);

#endif
