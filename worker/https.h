/*
 * https.h - reading https inputs through the worker's own libcurl.
 *
 * GDAL's /vsicurl/ resolves the host again and follows HTTP redirects to any
 * host, plain http included, so an allowlisted host answering
 * "302 Location: http://127.0.0.1/..." (or the metadata address) would make
 * the worker read what the allowlist refuses. https inputs are read instead
 * through a GDAL file system of our own (installed once, on the prefix
 * HTTPS_VSI_PREFIX): range GETs with libcurl's redirect following off; a 3xx
 * is followed by hand only when its Location passes input_check_uri, and
 * every connection is checked after DNS resolution, so neither a redirect nor
 * a DNS answer reaches a link-local or metadata address.
 *
 * Configuration read from GDAL's options, so one setting serves both:
 * CURL_CA_BUNDLE (or SSL_CERT_FILE), GDAL_HTTP_MAX_RETRY,
 * GDAL_HTTP_RETRY_DELAY. Side files (.ovr, .aux.xml, .msk) are not probed.
 */
#ifndef TERRANE_HTTPS_H
#define TERRANE_HTTPS_H

#define HTTPS_VSI_PREFIX "/vsiterrane_https/"
/* Redirects followed per request, each checked against the allowlist. */
#define HTTPS_MAX_REDIRECTS 5

/* Installs the file system (idempotent, thread-safe). 0 or -1 with the
 * error set. */
int https_install(void);
/* GDAL path for https://host/path: HTTPS_VSI_PREFIX "https://host/path".
 * A new string (mem_free) or NULL on OOM. */
char *https_gdal_path(const char *uri);
/* Finds uri's size with one ranged GET, following allowed redirects. On
 * failure the error is set naming field: InputNotAllowed for a refused
 * redirect or address, InputUnreadable otherwise (Transient for 5xx, 429 and
 * network failures, BadInput for 4xx). */
int https_probe(const char *uri, const char *field);

#endif
