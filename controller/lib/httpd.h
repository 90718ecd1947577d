/*
 * httpd.h - the controller's HTTP endpoint: /metrics, /healthz, /readyz.
 *
 * Plain HTTP/1.1 on libwebsockets (no websockets), served by one thread of
 * its own that httpd_start creates and httpd_stop joins; the manager starts
 * it before the informers and stops it last, so probes and scrapes work for
 * the whole life of the process.
 *
 *   GET /metrics  200, the registry's exposition,
 *                 Content-Type: text/plain; version=0.0.4; charset=utf-8
 *   GET /healthz  200 "ok" while the process is alive (liveness)
 *   GET /readyz   200 "ok" when the readiness callback says ready, else 503
 *                 with its reason as the body (readiness)
 *   HEAD of each  the same status and headers, no body
 *   other paths   404; other methods 405 (Allow: GET, HEAD), connection closed
 *
 * Bounds: request headers (URI included) up to 4 KiB, at most 64 open
 * connections, 5 s to send a request and 5 s idle keep-alive; a request
 * body (only refused methods have one) is discarded, and the connection cut
 * after 64 KiB of it. The callbacks run on the server's thread and must be
 * quick and thread-safe (the metrics registry is; a readiness callback
 * should read atomics or call informer_has_synced / lease_is_leader).
 */
#ifndef LIB_HTTPD_H
#define LIB_HTTPD_H

#include "lib/metrics.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct httpd httpd;

/* true when ready; otherwise writes a short reason ("informers not synced")
 * into reason (cap bytes, NUL-terminated) and returns false. */
typedef bool (*httpd_ready_fn)(void *ctx, char *reason, size_t cap);

typedef struct httpd_config {
    /* "host:port": ":8080" listens on all interfaces (IPv6 and IPv4 where
     * available), "127.0.0.1:8080", "[::1]:8080", "localhost:8080"; port 0
     * picks a free port (httpd_port tells which). */
    const char *addr;
    metrics_registry *registry; /* NULL: /metrics is 404 */
    httpd_ready_fn ready;       /* NULL: always ready */
    void *ready_ctx;
} httpd_config;

/* Binds, then starts the server thread. 0 with *out set, or CERR_INVALID
 * (bad address), CERR_IO (cannot listen: the message names the address),
 * CERR_NOMEM. The registry and ready_ctx must outlive the server. */
int httpd_start(const httpd_config *cfg, httpd **out);
/* The port listened on (the chosen one when the address said 0). */
int httpd_port(const httpd *h);
/* Stops serving, joins the thread and frees everything; requests in flight
 * are cut. NULL is a no-op. */
void httpd_stop(httpd *h);

/* Splits "host:port" (see httpd_config.addr) into host (brackets removed;
 * "" for all interfaces) and port. 0 or CERR_INVALID. */
int httpd_parse_addr(const char *addr, char *host, size_t cap, int *port);
/* The numeric address lws binds to for host (a name is resolved, IPv4
 * preferred); *ipv6 tells the family. 0 or CERR_INVALID. */
int httpd_numeric_host(const char *host, char *out, size_t cap, bool *ipv6);
/* libwebsockets' log lines as the controller's JSON log lines (an emitter
 * for lws_set_log_level; every server of the process shares it). */
void httpd_lws_log(int level, const char *line);

/* From LWS_CALLBACK_HTTP_WRITEABLE: sends the next piece of a response body
 * (at most chunk bytes from *sent, copied through wbuf, which has LWS_PRE +
 * chunk bytes) and asks to be called again while some remain. 1 when the
 * body is complete, 0 when more remains, -1 when the write failed. */
struct lws;
int httpd_write_next(struct lws *wsi, unsigned char *wbuf, size_t chunk, const void *body,
                     size_t len, size_t *sent);

#endif
