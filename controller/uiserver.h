/*
 * uiserver.h - the lineage UI's own listener: the page, the JSON API and a
 * websocket of changes (libwebsockets; its own thread, its own address,
 * --ui-addr, apart from /metrics).
 *
 *   GET /                 302 to /ui/
 *   GET /ui/              the page; /ui/app.js, /ui/app.css its bundle and
 *                         /ui/preview.js the map preview's (loaded on use),
 *                         compiled into the binary (controller/ui/, built
 *                         with esbuild at build time)
 *   GET /api/v1/config    {"s3Endpoint", "version"}: where the browser reads
 *                         COGs for previews
 *   GET /api/v1/assets[?namespace=NS]            uiapi_assets, plus "seq"
 *   GET /api/v1/namespaces/NS/assets/NAME        uiapi_asset
 *   GET /api/v1/namespaces/NS/sources/NAME       uiapi_source (AssetSources)
 *   GET /api/v1/watch     websocket, subprotocol "terrane-ui.v1": first
 *                         {"type":"hello","seq":N}, then one message per batch
 *                         of changes: {"type":"changes","seq":N,"assets":
 *                         [summary...],"deleted":[{"namespace","name"}],
 *                         "touched":[{"namespace","name"}]} (touched: its
 *                         pods or Events changed; an AssetSource's summary
 *                         and refs carry "kind":"AssetSource"), or {"type":"resync",...}
 *                         when a batch is too large to be worth sending as a
 *                         diff (the page lists again). A page applies a
 *                         message only when its seq is above the seq of the
 *                         list it holds.
 *
 * Read-only: every other method is 405. Every response carries a
 * Content-Security-Policy (scripts, styles and connections to this origin,
 * plus connections to the S3 endpoint for previews), nosniff, no framing,
 * no referrer. The websocket upgrade is refused unless its Origin is this
 * server's own (the Host it was asked for), so another site open in the same
 * browser cannot read the stream; a client that falls more than
 * UISERVER_BACKLOG messages behind is disconnected (it reconnects and
 * lists again).
 *
 * Bounds: request headers 4 KiB, 256 connections, 5 s to send a request.
 */
#ifndef TERRANE_UISERVER_H
#define TERRANE_UISERVER_H

#include "uiapi.h"
#include "uisource.h"

#define UISERVER_BACKLOG 256
#define UISERVER_DIFF_MAX 2000 /* assets in one changes message */

typedef struct uiserver uiserver;

typedef struct uiserver_config {
    const char *addr;        /* "host:port", as httpd_config.addr */
    uiapi *api;              /* documents; must outlive the server */
    const char *s3_endpoint; /* "http://127.0.0.1:4568", path-style; NULL: no previews */
} uiserver_config;

int uiserver_start(const uiserver_config *cfg, uiserver **out);
int uiserver_port(const uiserver *s);
void uiserver_stop(uiserver *s);

/* A uisrc_change_fn (ctx is the uiserver): queues the change for the
 * websocket clients and wakes the server. Any thread. */
void uiserver_notify(void *ctx, uisrc_kind kind, const json_t *obj, bool deleted);

/* Messages broadcast so far (tests). */
unsigned long uiserver_seq(uiserver *s);

#endif
