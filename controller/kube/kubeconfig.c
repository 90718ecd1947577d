/*
 * kubeconfig.c - where the controller finds its API server: a kubeconfig
 * file (clusters / contexts / users, as kubectl reads it) or the in-cluster
 * service account. Produces a kube_config (kubeconfig.h) for kube_client_new.
 *
 * The parser (libyaml's document loader) takes bytes that may come from
 * anywhere a user points KUBECONFIG at, so the input is capped, every field
 * is type-checked, and each error names the YAML path it is about
 * ("users[0].user.client-key-data: invalid base64 at byte 17"). Settings
 * the client cannot honour safely are refused rather than ignored:
 * insecure-skip-tls-verify (TLS verification is always on), exec and
 * auth-provider credential plugins, basic auth, proxies, tls-server-name.
 * The parser reads no files: paths are resolved against the kubeconfig's
 * directory and read by kube_client_new (kube.c), so it is safe to fuzz.
 *
 * libyaml allocates with its own malloc (it has no allocator hooks); every
 * string that survives into kube_config is copied through cmem.
 * Pure functions apart from the file and environment reads; any thread.
 */
#include "kube/kubeconfig.h"

#include "lib/cerr.h"
#include "lib/cmem.h"

#include <stdbool.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#define KUBECONFIG_MAX (4u << 20) /* far above any real kubeconfig */
#define SA_FILE_MAX (1u << 20)    /* a service account token, CA bundle or namespace */
#define SA_DIR_DEFAULT "/var/run/secrets/kubernetes.io/serviceaccount"
#define PATH_MAX_LEN 4096

/* client-go's defaults are 5 qps / burst 10; a controller that schedules
 * thousands of pods needs more, and the API server's priority and fairness
 * protects it anyway. */
#define DEFAULT_QPS 50.0
#define DEFAULT_BURST 100u
#define DEFAULT_TIMEOUT_MS 30000L

void kube_config_free(kube_config *cfg)
{
    if (!cfg) return;
    /* Credentials should not linger in freed heap blocks. */
    if (cfg->token) explicit_bzero(cfg->token, strlen(cfg->token));
    if (cfg->key_data) explicit_bzero(cfg->key_data, strlen(cfg->key_data));
    cmem_free(cfg->server);
    cmem_free(cfg->ca_file);
    cmem_free(cfg->ca_data);
    cmem_free(cfg->token);
    cmem_free(cfg->token_file);
    cmem_free(cfg->cert_file);
    cmem_free(cfg->cert_data);
    cmem_free(cfg->key_file);
    cmem_free(cfg->key_data);
    cmem_free(cfg->namespace_);
    cmem_free(cfg->user_agent);
    cmem_free(cfg);
}

static kube_config *config_new(void)
{
    kube_config *cfg = cmem_calloc(1, sizeof *cfg);
    if (!cfg) return NULL;
    cfg->qps = DEFAULT_QPS;
    cfg->burst = DEFAULT_BURST;
    cfg->timeout_ms = DEFAULT_TIMEOUT_MS;
    return cfg;
}

/* Reads a whole file of at most max bytes into a NUL-terminated string. */
static int read_file(const char *path, size_t max, char **out, size_t *len_out)
{
    int rc = 0;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return cerr_set(errno == ENOENT ? CERR_NOTFOUND : CERR_IO, "%s: %s", path, strerror(errno));
    for (;;) {
        if (len == cap) {
            if (cap > max) {
                rc = cerr_set(CERR_TOOBIG, "%s: larger than %zu bytes", path, max);
                goto cleanup;
            }
            size_t ncap = cap ? cap * 2 : 4096;
            if (ncap > max + 1) ncap = max + 1;
            char *nb = cmem_realloc(buf, ncap + 1);
            if (!nb) {
                rc = cerr_oom();
                goto cleanup;
            }
            buf = nb;
            cap = ncap;
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            rc = cerr_set(CERR_IO, "%s: %s", path, strerror(errno));
            goto cleanup;
        }
        if (n == 0) break;
        len += (size_t)n;
        if (len > max) {
            rc = cerr_set(CERR_TOOBIG, "%s: larger than %zu bytes", path, max);
            goto cleanup;
        }
    }
    if (!buf && !(buf = cmem_malloc(1))) {
        rc = cerr_oom();
        goto cleanup;
    }
    buf[len] = '\0';
    *out = buf;
    buf = NULL;
    if (len_out) *len_out = len;
cleanup:
    close(fd);
    cmem_free(buf);
    return rc;
}

/* Strips surrounding whitespace in place (files written by `echo`). */
static void trim(char *s)
{
    size_t n = strlen(s), i = 0;
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    memmove(s, s + i, n - i);
    s[n - i] = '\0';
}

/* --- YAML document access ------------------------------------------------------------ */

/* The loaded document; node accessors need it to follow node ids. */
typedef struct {
    yaml_document_t *doc;
} ydoc;

static const char *node_kind(const yaml_node_t *n)
{
    if (!n) return "nothing";
    switch (n->type) {
    case YAML_SCALAR_NODE:
        return "a string";
    case YAML_SEQUENCE_NODE:
        return "a list";
    case YAML_MAPPING_NODE:
        return "a mapping";
    default:
        return "nothing";
    }
}

/* YAML's null: an empty or "~"/"null" plain scalar. kubeconfigs written by
 * hand often have "namespace:" with nothing after it. */
static bool is_null(const yaml_node_t *n)
{
    if (!n) return true;
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *v = (const char *)n->data.scalar.value;
    size_t len = n->data.scalar.length;
    return len == 0 || (len == 1 && v[0] == '~') ||
           (len == 4 && (!memcmp(v, "null", 4) || !memcmp(v, "Null", 4) || !memcmp(v, "NULL", 4)));
}

static bool scalar_is(const yaml_node_t *n, const char *s)
{
    size_t len = strlen(s);
    return n && n->type == YAML_SCALAR_NODE && n->data.scalar.length == len &&
           memcmp(n->data.scalar.value, s, len) == 0;
}

/* The value of key in a mapping node, or NULL (also for null values). */
static yaml_node_t *map_get(ydoc *d, yaml_node_t *map, const char *key)
{
    if (!map || map->type != YAML_MAPPING_NODE) return NULL;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(d->doc, p->key);
        if (scalar_is(k, key)) {
            yaml_node_t *v = yaml_document_get_node(d->doc, p->value);
            return is_null(v) ? NULL : v;
        }
    }
    return NULL;
}

/* An optional string field: *out borrowed from the document, NULL when
 * absent. Errors name path.key. */
static int get_str(ydoc *d, yaml_node_t *map, const char *path, const char *key, const char **out,
                   size_t *len)
{
    *out = NULL;
    if (len) *len = 0;
    yaml_node_t *v = map_get(d, map, key);
    if (!v) return 0;
    const char *dot = path[0] ? "." : "";
    if (v->type != YAML_SCALAR_NODE)
        return cerr_set(CERR_INVALID, "%s%s%s: expected a string, got %s", path, dot, key,
                        node_kind(v));
    if (memchr(v->data.scalar.value, '\0', v->data.scalar.length))
        return cerr_set(CERR_INVALID, "%s%s%s: contains a NUL byte", path, dot, key);
    *out = (const char *)v->data.scalar.value;
    if (len) *len = v->data.scalar.length;
    return 0;
}

/* An optional mapping field; "{}" and absent both give an empty answer. */
static int get_map(ydoc *d, yaml_node_t *map, const char *path, const char *key, yaml_node_t **out)
{
    *out = map_get(d, map, key);
    if (*out && (*out)->type != YAML_MAPPING_NODE)
        return cerr_set(CERR_INVALID, "%s%s%s: expected a mapping, got %s", path,
                        path[0] ? "." : "", key, node_kind(*out));
    return 0;
}

/* Finds the entry of a named list (clusters, contexts, users): a sequence
 * of {name: X, <field>: {...}}. *index gets its position for error paths.
 * The first entry of that name wins, as in kubectl. */
static int find_named(ydoc *d, yaml_node_t *root, const char *list, const char *field,
                      const char *name, yaml_node_t **out, size_t *index)
{
    *out = NULL;
    yaml_node_t *seq = map_get(d, root, list);
    if (seq && seq->type != YAML_SEQUENCE_NODE)
        return cerr_set(CERR_INVALID, "%s: expected a list, got %s", list, node_kind(seq));
    size_t i = 0;
    if (seq) {
        for (yaml_node_item_t *it = seq->data.sequence.items.start;
             it < seq->data.sequence.items.top; it++, i++) {
            yaml_node_t *e = yaml_document_get_node(d->doc, *it);
            if (!e || e->type != YAML_MAPPING_NODE)
                return cerr_set(CERR_INVALID, "%s[%zu]: expected a mapping, got %s", list, i,
                                node_kind(e));
            char path[64];
            snprintf(path, sizeof path, "%s[%zu]", list, i);
            const char *n;
            int rc = get_str(d, e, path, "name", &n, NULL);
            if (rc) return rc;
            if (!n || strcmp(n, name) != 0) continue;
            yaml_node_t *body;
            if ((rc = get_map(d, e, path, field, &body))) return rc;
            if (!body) return cerr_set(CERR_INVALID, "%s.%s: missing", path, field);
            *out = body;
            *index = i;
            return 0;
        }
    }
    return cerr_set(CERR_NOTFOUND, "%s: no entry named \"%.200s\"", list, name);
}

/* --- values ------------------------------------------------------------------------- */

static int b64val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* Standard base64 (RFC 4648) of a *-data field into a NUL-terminated
 * string. Whitespace is skipped (a folded YAML scalar turns line breaks
 * into spaces); padding is optional but nothing may follow it. */
static int b64_decode(const char *path, const char *key, const char *in, size_t len, char **out)
{
    *out = NULL;
    char *buf = cmem_malloc(len / 4 * 3 + 4);
    if (!buf) return cerr_oom();
    size_t n = 0, pad = 0, nbits = 0;
    unsigned acc = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') continue;
        if (c == '=') {
            pad++;
            continue;
        }
        int v = b64val(c);
        if (v < 0 || pad) {
            cmem_free(buf);
            return cerr_set(CERR_INVALID, "%s.%s: invalid base64 at byte %zu", path, key, i);
        }
        acc = (acc << 6) | (unsigned)v;
        nbits += 6;
        if (nbits >= 8) {
            nbits -= 8;
            buf[n++] = (char)((acc >> nbits) & 0xff);
        }
    }
    /* Left-over bits: 0 (complete), 2 (one padding char) or 4 (two); 6
     * means a lone character, which encodes no byte. */
    if (nbits == 6 || pad > 2 || (pad && pad != nbits / 2)) {
        cmem_free(buf);
        return cerr_set(CERR_INVALID, "%s.%s: invalid base64 (bad length or padding)", path, key);
    }
    buf[n] = '\0';
    *out = buf;
    return 0;
}

/* TLS material must be PEM: catching a DER blob or a base64-twice mistake
 * here gives a far better message than OpenSSL's at connect time. */
static int check_pem(const char *path, const char *key, const char *data)
{
    if (!strstr(data, "-----BEGIN "))
        return cerr_set(CERR_INVALID, "%s.%s: not PEM (no \"-----BEGIN\" line)", path, key);
    return 0;
}

/* An absolute path, or one relative to base_dir (kubectl resolves paths in a
 * kubeconfig against the file's own directory). */
static int resolve_path(const char *path, const char *key, const char *base_dir, const char *p,
                        char **out)
{
    *out = NULL;
    if (!p[0]) return cerr_set(CERR_INVALID, "%s.%s: empty path", path, key);
    if (strlen(p) > PATH_MAX_LEN) return cerr_set(CERR_INVALID, "%s.%s: path too long", path, key);
    if (p[0] == '/' || !base_dir || !base_dir[0])
        *out = cmem_strdup(p);
    else
        *out = cmem_printf("%s%s%s", base_dir, base_dir[strlen(base_dir) - 1] == '/' ? "" : "/", p);
    return *out ? 0 : cerr_oom();
}

/* A file field and its -data twin: at most one of them. */
static int file_or_data(ydoc *d, yaml_node_t *map, const char *path, const char *file_key,
                        const char *data_key, const char *base_dir, char **file_out,
                        char **data_out)
{
    const char *f, *data;
    size_t data_len;
    int rc;
    if ((rc = get_str(d, map, path, file_key, &f, NULL)) ||
        (rc = get_str(d, map, path, data_key, &data, &data_len)))
        return rc;
    if (f && data)
        return cerr_set(CERR_INVALID, "%s: both %s and %s are set; keep one", path, file_key,
                        data_key);
    if (f) return resolve_path(path, file_key, base_dir, f, file_out);
    if (data) {
        if ((rc = b64_decode(path, data_key, data, data_len, data_out))) return rc;
        if ((rc = check_pem(path, data_key, *data_out))) {
            cmem_free(*data_out);
            *data_out = NULL;
            return rc;
        }
    }
    return 0;
}

static bool yaml_true(const yaml_node_t *n)
{
    return scalar_is(n, "true") || scalar_is(n, "True") || scalar_is(n, "TRUE") ||
           scalar_is(n, "yes") || scalar_is(n, "on");
}

/* "https://host:port[/prefix]" without a trailing slash. kubectl accepts
 * "host:port" and means https. */
static int normalise_server(const char *path, const char *s, char **out)
{
    *out = NULL;
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return cerr_set(CERR_INVALID, "%s.server: contains whitespace or control characters",
                            path);
    bool has_scheme = strncmp(s, "https://", 8) == 0 || strncmp(s, "http://", 7) == 0;
    if (!has_scheme && strstr(s, "://"))
        return cerr_set(CERR_INVALID,
                        "%s.server: \"%.200s\": only http:// and https:// are supported", path, s);
    char *v = has_scheme ? cmem_strdup(s) : cmem_printf("https://%s", s);
    if (!v) return cerr_oom();
    size_t host = (size_t)(strstr(v, "://") + 3 - v), n = strlen(v);
    while (n > host && v[n - 1] == '/')
        v[--n] = '\0';
    if (!v[host] || v[host] == '/') {
        cmem_free(v);
        return cerr_set(CERR_INVALID, "%s.server: \"%.200s\" has no host", path, s);
    }
    *out = v;
    return 0;
}

/* Sets *dst to a cmem copy of s (NULL stays NULL). */
static int dup_opt(char **dst, const char *s)
{
    if (!s) return 0;
    *dst = cmem_strdup(s);
    return *dst ? 0 : cerr_oom();
}

/* --- the cluster, user and context ---------------------------------------------------- */

static int parse_cluster(ydoc *d, yaml_node_t *cl, size_t idx, const char *base_dir,
                         kube_config *cfg)
{
    char path[64];
    snprintf(path, sizeof path, "clusters[%zu].cluster", idx);
    const char *server;
    int rc;
    if ((rc = get_str(d, cl, path, "server", &server, NULL))) return rc;
    if (!server || !server[0]) return cerr_set(CERR_INVALID, "%s.server: missing", path);
    yaml_node_t *insecure = map_get(d, cl, "insecure-skip-tls-verify");
    if (insecure && yaml_true(insecure))
        return cerr_set(CERR_INVALID,
                        "%s.insecure-skip-tls-verify: refused: this client always verifies the "
                        "API server's certificate; set certificate-authority(-data) instead",
                        path);
    if (map_get(d, cl, "tls-server-name"))
        return cerr_set(CERR_INVALID,
                        "%s.tls-server-name: not supported; point server at a name the "
                        "certificate covers",
                        path);
    if (map_get(d, cl, "proxy-url"))
        return cerr_set(CERR_INVALID, "%s.proxy-url: not supported", path);
    if ((rc = normalise_server(path, server, &cfg->server))) return rc;
    return file_or_data(d, cl, path, "certificate-authority", "certificate-authority-data",
                        base_dir, &cfg->ca_file, &cfg->ca_data);
}

static int parse_user(ydoc *d, yaml_node_t *u, size_t idx, const char *base_dir, kube_config *cfg)
{
    char path[64];
    snprintf(path, sizeof path, "users[%zu].user", idx);
    static const struct {
        const char *key, *why;
    } refused[] = {
        {"exec",
         "exec credential plugins are not supported; use token, tokenFile or a client certificate"},
        {"auth-provider",
         "auth-provider plugins are not supported; use token, tokenFile or a client certificate"},
        {"username", "basic authentication is not supported"},
        {"password", "basic authentication is not supported"},
        {"as", "impersonation is not supported"},
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        if (map_get(d, u, refused[i].key))
            return cerr_set(CERR_INVALID, "%s.%s: %s", path, refused[i].key, refused[i].why);
    const char *token, *token_file;
    int rc;
    if ((rc = get_str(d, u, path, "token", &token, NULL)) ||
        (rc = get_str(d, u, path, "tokenFile", &token_file, NULL)))
        return rc;
    if (token && token[0] && (rc = dup_opt(&cfg->token, token))) return rc;
    /* As client-go: a tokenFile is re-read and wins over token once read. */
    if (token_file &&
        (rc = resolve_path(path, "tokenFile", base_dir, token_file, &cfg->token_file)))
        return rc;
    if ((rc = file_or_data(d, u, path, "client-certificate", "client-certificate-data", base_dir,
                           &cfg->cert_file, &cfg->cert_data)) ||
        (rc = file_or_data(d, u, path, "client-key", "client-key-data", base_dir, &cfg->key_file,
                           &cfg->key_data)))
        return rc;
    bool cert = cfg->cert_file || cfg->cert_data, key = cfg->key_file || cfg->key_data;
    if (cert != key)
        return cerr_set(CERR_INVALID, "%s: %s without %s", path,
                        cert ? "client-certificate" : "client-key",
                        cert ? "client-key" : "client-certificate");
    return 0;
}

int kube_config_parse(const char *yaml, size_t len, const char *base_dir, const char *context,
                      kube_config **out)
{
    int rc = 0;
    yaml_parser_t parser;
    yaml_document_t doc;
    bool parser_ready = false, doc_ready = false;
    kube_config *cfg = NULL;
    ydoc d = {.doc = &doc};
    *out = NULL;

    if (len > KUBECONFIG_MAX)
        return cerr_set(CERR_TOOBIG, "kubeconfig: larger than %u bytes", KUBECONFIG_MAX);
    if (!yaml_parser_initialize(&parser)) return cerr_oom();
    parser_ready = true;
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
    if (!yaml_parser_load(&parser, &doc)) {
        if (parser.error == YAML_MEMORY_ERROR)
            rc = cerr_oom();
        else
            rc = cerr_set(CERR_INVALID, "kubeconfig: line %zu column %zu: %s%s%s",
                          parser.problem_mark.line + 1, parser.problem_mark.column + 1,
                          parser.problem ? parser.problem : "invalid YAML",
                          parser.context ? " " : "", parser.context ? parser.context : "");
        goto cleanup;
    }
    doc_ready = true;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root) {
        rc = cerr_set(CERR_INVALID, "kubeconfig: empty document");
        goto cleanup;
    }
    if (root->type != YAML_MAPPING_NODE) {
        rc = cerr_set(CERR_INVALID, "kubeconfig: expected a mapping at the top, got %s",
                      node_kind(root));
        goto cleanup;
    }
    const char *kind;
    if ((rc = get_str(&d, root, "", "kind", &kind, NULL))) goto cleanup;
    if (kind && strcmp(kind, "Config") != 0) {
        rc = cerr_set(CERR_INVALID, "kind: expected Config, got \"%.64s\"", kind);
        goto cleanup;
    }

    const char *ctx_name = context;
    if (!ctx_name || !ctx_name[0]) {
        if ((rc = get_str(&d, root, "", "current-context", &ctx_name, NULL))) goto cleanup;
        if (!ctx_name || !ctx_name[0]) {
            rc = cerr_set(CERR_INVALID, "current-context: not set, and no context was named");
            goto cleanup;
        }
    }
    yaml_node_t *ctx, *cl, *user = NULL;
    size_t ctx_i = 0, cl_i = 0, user_i = 0;
    if ((rc = find_named(&d, root, "contexts", "context", ctx_name, &ctx, &ctx_i))) goto cleanup;
    char ctx_path[64];
    snprintf(ctx_path, sizeof ctx_path, "contexts[%zu].context", ctx_i);
    const char *cl_name, *user_name, *ns;
    if ((rc = get_str(&d, ctx, ctx_path, "cluster", &cl_name, NULL)) ||
        (rc = get_str(&d, ctx, ctx_path, "user", &user_name, NULL)) ||
        (rc = get_str(&d, ctx, ctx_path, "namespace", &ns, NULL)))
        goto cleanup;
    if (!cl_name || !cl_name[0]) {
        rc = cerr_set(CERR_INVALID, "%s.cluster: missing", ctx_path);
        goto cleanup;
    }
    if ((rc = find_named(&d, root, "clusters", "cluster", cl_name, &cl, &cl_i))) goto cleanup;
    if (user_name && user_name[0] &&
        (rc = find_named(&d, root, "users", "user", user_name, &user, &user_i)))
        goto cleanup;

    if (!(cfg = config_new())) {
        rc = cerr_oom();
        goto cleanup;
    }
    if ((rc = parse_cluster(&d, cl, cl_i, base_dir, cfg))) goto cleanup;
    if (user && (rc = parse_user(&d, user, user_i, base_dir, cfg))) goto cleanup;
    if (ns && ns[0] && (rc = dup_opt(&cfg->namespace_, ns))) goto cleanup;
    *out = cfg;
    cfg = NULL;
cleanup:
    kube_config_free(cfg);
    if (doc_ready) yaml_document_delete(&doc);
    if (parser_ready) yaml_parser_delete(&parser);
    return rc;
}

int kube_config_load(const char *path, const char *context, kube_config **out)
{
    int rc;
    char *owned_path = NULL, *text = NULL, *dir = NULL;
    size_t len = 0;
    *out = NULL;
    if (!path || !path[0]) {
        /* kubectl's lookup: the first file in $KUBECONFIG, else ~/.kube/config. */
        const char *env = getenv("KUBECONFIG"), *home = getenv("HOME");
        if (env && env[0])
            owned_path = cmem_strndup(env, strcspn(env, ":"));
        else if (home && home[0])
            owned_path = cmem_printf("%s/.kube/config", home);
        else
            return cerr_set(CERR_NOTFOUND, "kubeconfig: no path, $KUBECONFIG or $HOME");
        if (!owned_path) return cerr_oom();
        path = owned_path;
    }
    if ((rc = read_file(path, KUBECONFIG_MAX, &text, &len))) {
        cerr_prefix("kubeconfig");
        goto cleanup;
    }
    const char *slash = strrchr(path, '/');
    dir = slash ? cmem_strndup(path, slash == path ? 1 : (size_t)(slash - path)) : cmem_strdup(".");
    if (!dir) {
        rc = cerr_oom();
        goto cleanup;
    }
    if ((rc = kube_config_parse(text, len, dir, context, out))) cerr_prefix("%.200s", path);
cleanup:
    if (text) explicit_bzero(text, len);
    cmem_free(text);
    cmem_free(dir);
    cmem_free(owned_path);
    return rc;
}

/* --- in-cluster ------------------------------------------------------------------------ */

int kube_config_in_cluster(const char *sa_dir, kube_config **out)
{
    int rc = 0;
    kube_config *cfg = NULL;
    char *ns_path = NULL, *ns = NULL;
    *out = NULL;
    /* The kubelet sets these for every container (the "kubernetes" Service
     * in the default namespace); without them we are not in a pod. */
    const char *host = getenv("KUBERNETES_SERVICE_HOST"), *port = getenv("KUBERNETES_SERVICE_PORT");
    if (!host || !host[0] || !port || !port[0])
        return cerr_set(CERR_NOTFOUND, "not running in a pod: KUBERNETES_SERVICE_HOST and "
                                       "KUBERNETES_SERVICE_PORT are not set");
    const char *dir = sa_dir && sa_dir[0] ? sa_dir : SA_DIR_DEFAULT;

    size_t plen = strlen(port);
    if (plen > 5 || strspn(port, "0123456789") != plen || atoi(port) < 1 || atoi(port) > 65535)
        return cerr_set(CERR_INVALID, "KUBERNETES_SERVICE_PORT: \"%.16s\" is not a port", port);
    for (const char *p = host; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == '/' || *p == '@' || *p == '[' || *p == ']')
            return cerr_set(CERR_INVALID, "KUBERNETES_SERVICE_HOST: \"%.64s\" is not a host", host);
    if (!(cfg = config_new())) return cerr_oom();
    /* An IPv6 address needs brackets in a URL (RFC 3986 section 3.2.2). */
    cfg->server = strchr(host, ':') ? cmem_printf("https://[%s]:%s", host, port)
                                    : cmem_printf("https://%s:%s", host, port);
    cfg->token_file = cmem_printf("%s/token", dir);
    cfg->ca_file = cmem_printf("%s/ca.crt", dir);
    ns_path = cmem_printf("%s/namespace", dir);
    if (!cfg->server || !cfg->token_file || !cfg->ca_file || !ns_path) {
        rc = cerr_oom();
        goto cleanup;
    }
    if ((rc = read_file(cfg->token_file, SA_FILE_MAX, &cfg->token, NULL))) {
        cerr_prefix("in-cluster service account token");
        goto cleanup;
    }
    trim(cfg->token);
    if (!cfg->token[0]) {
        rc = cerr_set(CERR_INVALID, "in-cluster service account token: %s is empty",
                      cfg->token_file);
        goto cleanup;
    }
    if (access(cfg->ca_file, R_OK) != 0) {
        rc = cerr_set(CERR_IO, "in-cluster CA bundle: %s: %s", cfg->ca_file, strerror(errno));
        goto cleanup;
    }
    /* The namespace file is optional (projected volumes can leave it out). */
    rc = read_file(ns_path, SA_FILE_MAX, &ns, NULL);
    if (rc == 0) {
        trim(ns);
        if (ns[0]) {
            cfg->namespace_ = ns;
            ns = NULL;
        }
    } else if (rc != CERR_NOTFOUND) {
        cerr_prefix("in-cluster namespace");
        goto cleanup;
    }
    rc = 0;
    *out = cfg;
    cfg = NULL;
cleanup:
    kube_config_free(cfg);
    cmem_free(ns_path);
    cmem_free(ns);
    return rc;
}
