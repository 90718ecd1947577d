/*
 * main.c - terrane-controller: command line, configuration files, then the
 * manager (manager.h) until SIGTERM / SIGINT.
 *
 * Signals are blocked before any thread starts, so every thread inherits
 * the mask and only the manager's sigtimedwait receives them (the POSIX
 * way to handle signals in a threaded program); SIGPIPE is ignored because
 * a peer closing a connection is an error return, not a reason to die.
 */
#include "ctlmetrics.h"
#include "lib/cerr.h"
#include "lib/clog.h"
#include "lib/cmem.h"
#include "lib/jschema.h"
#include "manager.h"
#include "podspec.h"
#include "pools.h"
#include "uiapi.h"
#include "uiserver.h"
#include "uisource.h"

#include <errno.h>
#include <limits.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char task_schema_json[] =
#include "task_schema.inc"
    ;
static const char result_schema_json[] =
#include "result_schema.inc"
    ;

static const char USAGE[] =
    "Usage: terrane-controller --pools FILE [options]\n"
    "\n"
    "Materializes AssetMaterializations (terrane.io/v1alpha1) by running terrane-worker pods.\n"
    "\n"
    "Cluster:\n"
    "  --kubeconfig PATH            kubeconfig file (default: in-cluster service account)\n"
    "  --context NAME               kubeconfig context (default: current-context)\n"
    "  --namespace NS               watch one namespace (default: all)\n"
    "  --qps N, --burst N           client-side API rate limit (default 50 / 100)\n"
    "Pools and workers:\n"
    "  --pools FILE                 node pools configuration (JSON; required)\n"
    "  --worker-image IMAGE         worker image (default terrane-worker:" TERRANE_VERSION ")\n"
    "  --worker-image-pull-policy P IfNotPresent (default), Always or Never\n"
    "  --worker-command CMD         JSON array, or the path of the worker binary (run as PATH "
    "run);\n"
    "                               default [\"terrane-worker\",\"run\"]\n"
    "  --worker-env FILE            JSON object of environment variables for worker pods\n"
    "  --worker-service-account SA  service account of worker pods\n"
    "  --worker-version V           worker code version, part of every data version\n"
    "                               (default " TERRANE_VERSION ")\n"
    "  --worker-active-deadline S   activeDeadlineSeconds of worker pods (default: none)\n"
    "  --pod-gc-delay S             delete finished pods S seconds after they end (default 60)\n"
    "  --keep-failed-pods=BOOL      keep failed pods until the asset succeeds (default true)\n"
    "Controller:\n"
    "  --workers N                  reconcile threads (default 4)\n"
    "  --resync S                   informer resync period (default 300)\n"
    "  --shutdown-timeout S         bound on in-flight reconciles at shutdown (default 30)\n"
    "  --leader-elect=BOOL          leader election on a Lease (default true)\n"
    "  --lease-name NAME            default terrane-controller\n"
    "  --lease-namespace NS         default: the kubeconfig's or the pod's namespace\n"
    "  --lease-duration S, --renew-deadline S, --retry-period S   (default 15 / 10 / 2)\n"
    "  --identity ID                leader election identity (default hostname_pid)\n"
    "  --log-level LEVEL            debug, info (default), warn, error\n"
    "  --metrics-addr HOST:PORT     serve /metrics, /healthz, /readyz (default :8080; \"\" or 0: "
    "off)\n"
    "  --ui-addr HOST:PORT          serve the lineage UI (/ui/) and its API (/api/v1/) (default: "
    "off;\n"
    "                               127.0.0.1:8081 keeps it on this host, :8081 on every "
    "interface)\n"
    "  --ui-s3-endpoint URL         where browsers read outputs for map previews, path-style\n"
    "                               (http://127.0.0.1:4568, https://s3.eu-west-1.amazonaws.com);\n"
    "                               the bucket must allow this origin (CORS)\n"
    "  --emf=BOOL                   one CloudWatch EMF line per materialization on stdout (default "
    "false)\n"
    "  --version, --help\n"
    "\n"
    "Logs are JSON lines on stderr. SIGTERM or SIGINT: finish in-flight work, release the\n"
    "Lease, exit 0.\n";

typedef struct {
    const char *kubeconfig, *context, *namespace_, *pools, *image, *pull_policy, *command,
        *env_file;
    const char *service_account, *worker_version, *lease_name, *lease_namespace, *identity,
        *log_level;
    const char *metrics_addr, *ui_addr, *ui_s3_endpoint;
    long qps, burst, workers, resync, shutdown_timeout, lease_duration, renew_deadline,
        retry_period;
    long gc_delay, active_deadline;
    bool leader_elect, keep_failed, emf;
} options;

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    fputs("terrane-controller: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n(see --help)\n", stderr);
    return 64; /* EX_USAGE */
}

static bool parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return false;
    *out = v;
    return true;
}

static bool parse_bool(const char *s, bool *out)
{
    if (!strcmp(s, "true") || !strcmp(s, "1") || !strcmp(s, "yes"))
        *out = true;
    else if (!strcmp(s, "false") || !strcmp(s, "0") || !strcmp(s, "no"))
        *out = false;
    else
        return false;
    return true;
}

static int parse_args(int argc, char **argv, options *o)
{
    static const struct {
        const char *name;
        int kind; /* 0 string, 1 long, 2 bool */
        size_t off;
        long lo, hi;
    } opts[] = {
#define S(n, f) {n, 0, offsetof(options, f), 0, 0}
#define L(n, f, lo, hi)                                                                            \
    {                                                                                              \
        n, 1, offsetof(options, f), lo, hi                                                         \
    }
#define B(n, f)                                                                                    \
    {                                                                                              \
        n, 2, offsetof(options, f), 0, 0                                                           \
    }
        S("kubeconfig", kubeconfig),
        S("context", context),
        S("namespace", namespace_),
        S("pools", pools),
        S("worker-image", image),
        S("worker-image-pull-policy", pull_policy),
        S("worker-command", command),
        S("worker-env", env_file),
        S("worker-service-account", service_account),
        S("worker-version", worker_version),
        S("lease-name", lease_name),
        S("lease-namespace", lease_namespace),
        S("identity", identity),
        S("log-level", log_level),
        S("metrics-addr", metrics_addr),
        S("ui-addr", ui_addr),
        S("ui-s3-endpoint", ui_s3_endpoint),
        L("qps", qps, 1, 100000),
        L("burst", burst, 1, 100000),
        L("workers", workers, 1, 256),
        L("resync", resync, 0, 86400),
        L("shutdown-timeout", shutdown_timeout, 1, 3600),
        L("lease-duration", lease_duration, 1, 3600),
        L("renew-deadline", renew_deadline, 1, 3600),
        L("retry-period", retry_period, 1, 3600),
        L("pod-gc-delay", gc_delay, 0, 30 * 86400),
        L("worker-active-deadline", active_deadline, 0, 30 * 86400),
        B("leader-elect", leader_elect),
        B("keep-failed-pods", keep_failed),
        B("emf", emf),
#undef S
#undef L
#undef B
    };
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            fputs(USAGE, stdout);
            return -1;
        }
        if (!strcmp(arg, "--version")) {
            printf("terrane-controller %s\n", TERRANE_VERSION);
            return -1;
        }
        if (strncmp(arg, "--", 2)) return usage_error("unexpected argument \"%s\"", arg);
        const char *name = arg + 2, *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        size_t k;
        for (k = 0; k < sizeof opts / sizeof opts[0]; k++)
            if (strlen(opts[k].name) == nlen && !strncmp(opts[k].name, name, nlen)) break;
        if (k == sizeof opts / sizeof opts[0]) return usage_error("unknown option \"%s\"", arg);
        const char *val = eq ? eq + 1 : NULL;
        if (!val && opts[k].kind == 2) val = "true"; /* --leader-elect alone */
        if (!val) {
            if (i + 1 >= argc) return usage_error("--%s needs a value", opts[k].name);
            val = argv[++i];
        }
        char *field = (char *)o + opts[k].off;
        switch (opts[k].kind) {
        case 0:
            *(const char **)field = val;
            break;
        case 1:
            if (!parse_long(val, opts[k].lo, opts[k].hi, (long *)field))
                return usage_error("--%s: \"%s\" is not a number in %ld..%ld", opts[k].name, val,
                                   opts[k].lo, opts[k].hi);
            break;
        default:
            if (!parse_bool(val, (bool *)field))
                return usage_error("--%s: \"%s\" is not true or false", opts[k].name, val);
        }
    }
    return 0;
}

/* --worker-command: a JSON array of strings, or the worker binary's path. */
static int load_command(const char *arg, json_t **out)
{
    *out = NULL;
    if (!arg) return 0;
    if (arg[0] != '[') {
        *out = json_pack("[s, s]", arg, "run");
        return *out ? 0 : cerr_oom();
    }
    json_error_t e;
    json_t *v = json_loads(arg, 0, &e);
    if (!json_is_array(v) || !json_array_size(v)) {
        json_decref(v);
        return cerr_set(CERR_INVALID, "--worker-command: expected a JSON array of strings%s%s",
                        v ? "" : ": ", v ? "" : e.text);
    }
    for (size_t i = 0; i < json_array_size(v); i++)
        if (!json_is_string(json_array_get(v, i))) {
            json_decref(v);
            return cerr_set(CERR_INVALID, "--worker-command[%zu]: expected a string", i);
        }
    *out = v;
    return 0;
}

static int load_env(const char *path, json_t **out)
{
    *out = NULL;
    if (!path) return 0;
    json_error_t e;
    json_t *v = json_load_file(path, 0, &e);
    if (!v) return cerr_set(CERR_INVALID, "--worker-env %s: line %d: %s", path, e.line, e.text);
    int rc = podspec_check_env(v);
    if (rc) {
        cerr_prefix("--worker-env %s", path);
        json_decref(v);
        return rc;
    }
    *out = v;
    return 0;
}

typedef struct {
    uisource *src;
    uiapi *api;
    uiserver *server;
} ui;

static void ui_stop(ui *u)
{
    uisource_stop(u->src);
    uiserver_stop(u->server);
    uiapi_free(u->api);
    uisource_free(u->src);
    *u = (ui){0};
}

/* The lineage UI on the manager's caches; before manager_run. */
static int ui_start(ui *u, manager *m, const options *o)
{
    int rc;
    if ((rc = uisource_new(manager_client(m), o->namespace_, manager_caches(m), &u->src)) ||
        (rc = uiapi_new(u->src, &u->api)))
        goto fail;
    uiserver_config uc = {.addr = o->ui_addr, .api = u->api, .s3_endpoint = o->ui_s3_endpoint};
    if ((rc = uiserver_start(&uc, &u->server))) goto fail;
    uisource_subscribe(u->src, uiserver_notify, u->server);
    if ((rc = uisource_start(u->src))) goto fail;
    clog_info("serving the lineage UI", "{s:s, s:i, s:s?}", "addr", o->ui_addr, "port",
              uiserver_port(u->server), "s3Endpoint", o->ui_s3_endpoint);
    return 0;
fail:
    ui_stop(u);
    return rc;
}

int main(int argc, char **argv)
{
#ifdef __GLIBC__
    /* glibc gives each allocating thread its own arena (up to 8 per core);
     * the informers decode on their threads and the workers free on
     * theirs, so memory freed in one arena sits unused while another grows.
     * Two arenas: 41 -> 39 MB RSS with 10,000 AssetMaterializations cached,
     * no change in CPU per reconcile. A MALLOC_ARENA_MAX in the
     * environment is left to decide. */
    if (!getenv("MALLOC_ARENA_MAX")) mallopt(M_ARENA_MAX, 2);
#endif
    cmem_init();
    options o = {.qps = 0,
                 .burst = 0,
                 .workers = 4,
                 .resync = 300,
                 .shutdown_timeout = 30,
                 .lease_duration = 15,
                 .renew_deadline = 10,
                 .retry_period = 2,
                 .gc_delay = 60,
                 .leader_elect = true,
                 .keep_failed = true,
                 .metrics_addr = ":8080"};
    int rc = parse_args(argc, argv, &o);
    if (rc < 0) return 0;
    if (rc) return rc;
    if (o.log_level) {
        clog_level lvl;
        if (!clog_parse_level(o.log_level, &lvl)) return usage_error("--log-level: unknown level");
        clog_set_level(lvl);
    }
    if (!o.pools) return usage_error("--pools is required");
    if (o.pull_policy && strcmp(o.pull_policy, "IfNotPresent") && strcmp(o.pull_policy, "Always") &&
        strcmp(o.pull_policy, "Never"))
        return usage_error("--worker-image-pull-policy: IfNotPresent, Always or Never");

    /* Block the termination signals in every thread to come. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    pools *ps = NULL;
    jschema *task = NULL, *result = NULL;
    json_t *command = NULL, *env = NULL;
    manager *m = NULL;
    ui u = {0};
    int status = 1;
    const char *task_texts[] = {task_schema_json};
    const char *result_texts[] = {result_schema_json, task_schema_json};
    if (pools_load_file(o.pools, &ps)) {
        clog_error("invalid --pools", "{s:s, s:s}", "file", o.pools, "error", cerr_message());
        goto done;
    }
    if (jschema_new_text(task_texts, 1, &task) || jschema_new_text(result_texts, 2, &result)) {
        clog_error("cannot compile the contract's schemas", "{s:s}", "error", cerr_message());
        goto done;
    }
    if (load_command(o.command, &command) || load_env(o.env_file, &env)) {
        clog_error("invalid worker configuration", "{s:s}", "error", cerr_message());
        goto done;
    }
    const char *pool_names[65] = {NULL};
    for (size_t i = 0; i < pools_count(ps) && i < 64; i++)
        pool_names[i] = pool_name(pools_at(ps, i));
    if (ctlm_init(&(ctlm_config){.emf_out = o.emf ? stdout : NULL, .pools = pool_names})) {
        clog_error("cannot set up metrics", "{s:s}", "error", cerr_message());
        goto done;
    }
    podspec_config pod = {.image = o.image ? o.image : "terrane-worker:" TERRANE_VERSION,
                          .pull_policy = o.pull_policy,
                          .command = command,
                          .env = env,
                          .service_account = o.service_account,
                          .active_deadline_s = o.active_deadline};
    manager_config mc = {
        .kubeconfig = o.kubeconfig,
        .context = o.context,
        .namespace_ = o.namespace_,
        .workers = (int)o.workers,
        .leader_elect = o.leader_elect,
        .lease_name = o.lease_name,
        .lease_namespace = o.lease_namespace,
        .identity = o.identity,
        .lease_duration_s = (int)o.lease_duration,
        .renew_deadline_s = (int)o.renew_deadline,
        .retry_period_s = (int)o.retry_period,
        .qps = (double)o.qps,
        .burst = (unsigned)o.burst,
        .resync_s = (int)o.resync,
        .shutdown_timeout_s = (int)o.shutdown_timeout,
        .metrics_addr = o.metrics_addr && o.metrics_addr[0] && strcmp(o.metrics_addr, "0")
                            ? o.metrics_addr
                            : NULL,
        .reconcile = {.pools = ps,
                      .task_schema = task,
                      .result_schema = result,
                      .pod = &pod,
                      .worker_version = o.worker_version ? o.worker_version : TERRANE_VERSION,
                      .pod_gc_delay_s = o.gc_delay,
                      .keep_failed_pods = o.keep_failed}};
    if (manager_new(&mc, &m)) {
        clog_error("cannot start", "{s:s}", "error", cerr_message());
        goto done;
    }
    if (o.ui_addr && o.ui_addr[0] && strcmp(o.ui_addr, "0") && ui_start(&u, m, &o)) {
        clog_error("cannot serve the lineage UI", "{s:s}", "error", cerr_message());
        goto done;
    }
    status = manager_run(m);
done:
    ui_stop(&u); /* before the manager: it reads the manager's caches */
    manager_free(m);
    json_decref(command);
    json_decref(env);
    jschema_free(task);
    jschema_free(result);
    pools_free(ps);
    ctlm_shutdown(); /* after manager_free: the client's observer points into it */
    return status;
}
