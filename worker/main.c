/*
 * main.c - terrane-worker: runs one task and reports one result.
 *
 *   terrane-worker run [--task FILE] [--termination-log PATH]
 *   terrane-worker observe [--task FILE] [--termination-log PATH]
 *   terrane-worker validate [--task FILE]
 *   terrane-worker fetch [--task FILE] [--inputs DIR] [--termination-log PATH]
 *   terrane-worker publish-outputs [--task FILE] [--outputs DIR] [--termination-log PATH]
 *   terrane-worker ops [OPERATION]
 *   terrane-worker --version
 *
 * The task comes from $TERRANE_TASK unless --task is given. `run` decodes
 * and validates it, starts credentials, returns an earlier publication of
 * the same data version when there is one (cache hit), else runs the
 * operation in a private scratch directory and publishes its files.
 * `observe` runs an observe task (observe.h): lists or HEADs a source and
 * reports its data version. The
 * result goes to the termination log and stdout; the exit code tells the
 * controller whether to retry (proto/terrane_proto.h). Logs are JSON lines
 * on stderr. fetch and publish-outputs are the first and last steps of a
 * container asset's pod (fetch.h, outputs.h; the pod's shape is in
 * proto/README.md): fetch writes a Result only when it fails, publish-outputs
 * always, like run.
 */
#include "cog.h"
#include "creds.h"
#include "emf.h"
#include "err.h"
#include "fetch.h"
#include "log.h"
#include "mem.h"
#include "grid.h"
#include "observe.h"
#include "op.h"
#include "outputs.h"
#include "opdoc.h"
#include "podres.h"
#include "publish.h"
#include "result.h"
#include "srccheck.h"
#include "task.h"
#include "terrane_proto.h"

#include <cpl_conv.h>
#include <errno.h>
#include <ftw.h>
#include <gdal.h>
#include <ogr_api.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* Progress callback for operations: logs, and cancels GDAL's work when the
 * pod is being stopped so scratch is cleaned up before the kill. */
static int run_progress(double complete, const char *msg, void *arg)
{
    log_progress(complete, msg, arg);
    return !stop_requested;
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: terrane-worker run [--task FILE] [--termination-log PATH]\n"
            "       terrane-worker observe [--task FILE] [--termination-log PATH]\n"
            "       terrane-worker validate [--task FILE]\n"
            "       terrane-worker fetch [--task FILE] [--inputs DIR] [--termination-log PATH]\n"
            "       terrane-worker publish-outputs [--task FILE] [--outputs DIR]\n"
            "                      [--termination-log PATH]\n"
            "       terrane-worker ops [OPERATION]\n"
            "       terrane-worker --version\n"
            "\n"
            "The task is read from $%s unless --task is given.\n"
            "run: runs the task and writes the result to the termination log and stdout.\n"
            "observe: runs an observe task (operation observe): lists or HEADs the source,\n"
            "         publishes the listing and reports the source's data version.\n"
            "validate: checks the task without any I/O; prints {\"valid\":true,...} or a\n"
            "          failed result naming the field, exits 0 or %d.\n"
            "fetch: (container assets) copies every input to DIR/<name>/ (default $%s or\n"
            "       %s) and checks it against its recorded checksum.\n"
            "publish-outputs: (container assets) publishes everything under DIR (default\n"
            "       $%s or %s) and writes the result.\n"
            "ops: prints each operation's params (type, values, description) from the task\n"
            "     contract, proto/schema/task.v1.json.\n"
            "\n"
            "Operations:\n",
            TERRANE_ENV_TASK, TERRANE_EXIT_BAD_INPUT, TERRANE_ENV_INPUTS_DIR,
            TERRANE_INPUTS_DIR_DEFAULT, TERRANE_ENV_OUTPUT_DIR, TERRANE_OUTPUTS_DIR_DEFAULT);
    opdoc_list(f);
    fprintf(f, "\nEnvironment: %s, %s, %s, %s, %s,\n             %s, %s, %s\n",
            TERRANE_ENV_ALLOWED_BUCKETS, TERRANE_ENV_ALLOWED_HOSTS, TERRANE_ENV_ALLOW_LOCAL,
            TERRANE_ENV_SCRATCH_DIR, TERRANE_ENV_LOG_LEVEL, TERRANE_ENV_THREADS,
            TERRANE_ENV_CACHE_MB, TERRANE_ENV_MEMORY_LIMIT);
}

/* Reads the task from FILE or the environment into a new buffer. */
static int read_task(const char *file, char **out, size_t *len)
{
    *out = NULL;
    if (!file) {
        const char *env = getenv(TERRANE_ENV_TASK);
        if (!env)
            return err_set(ERR_BAD_INPUT, ERR_INVALID_TASK, "task",
                           "no task: set $%s or pass --task FILE", TERRANE_ENV_TASK);
        *len = strlen(env);
        *out = mem_strdup(env);
        return *out ? 0 : err_oom();
    }
    FILE *f = fopen(file, "rb");
    if (!f)
        return err_set(ERR_BAD_INPUT, ERR_INVALID_TASK, "task", "cannot open task file %s: %s",
                       file, strerror(errno));
    char *buf = mem_malloc(TERRANE_TASK_MAX + 1);
    if (!buf) {
        fclose(f);
        return err_oom();
    }
    size_t n = fread(buf, 1, TERRANE_TASK_MAX + 1, f);
    int bad_read = ferror(f);
    fclose(f);
    if (bad_read) {
        mem_free(buf);
        return err_set(ERR_BAD_INPUT, ERR_INVALID_TASK, "task", "cannot read task file %s", file);
    }
    if (n > TERRANE_TASK_MAX) {
        mem_free(buf);
        return err_set(ERR_BAD_INPUT, ERR_INVALID_TASK, "task",
                       "task file %s is over the %d-byte limit", file, TERRANE_TASK_MAX);
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void scratch_remove(const char *dir)
{
    if (dir) nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int scratch_create(char **out)
{
    const char *base = getenv(TERRANE_ENV_SCRATCH_DIR);
    if (!base || !base[0]) base = getenv("TMPDIR");
    if (!base || !base[0]) base = "/tmp";
    char *dir = mem_printf("%s/terrane-XXXXXX", base);
    if (!dir) return err_oom();
    if (!mkdtemp(dir)) {
        int e = errno;
        mem_free(dir);
        return err_set(ERR_TRANSIENT, ERR_SCRATCH, NULL,
                       "cannot create scratch directory in %s: %s", base, strerror(e));
    }
    *out = dir;
    return 0;
}

/* After a failed operation: if scratch is (nearly) full, that is the cause,
 * whatever error GDAL surfaced on the way (a short write, a corrupt tile). */
static void reclassify_scratch_full(const char *dir)
{
    struct statvfs vfs;
    if (!dir || statvfs(dir, &vfs) != 0) return;
    unsigned long long free_bytes = (unsigned long long)vfs.f_bavail * vfs.f_frsize;
    if (free_bytes < (1u << 20)) {
        char prev[512];
        snprintf(prev, sizeof prev, "%s", err_get_message());
        err_set(ERR_TRANSIENT, ERR_SCRATCH, NULL, "scratch space in %s is full (%s)", dir, prev);
    }
}

/* After a failed operation: if an observed input was replaced while it was
 * read, that is the cause (a mix of old and new bytes can look like any
 * decoding error). Keeps the first error otherwise; true when reclassified. */
static bool reclassify_source_changed(const task *t)
{
    if (!srccheck_needed(t)) return false;
    err_class cls = err_get_class();
    char code[64], field[256], msg[2048];
    snprintf(code, sizeof code, "%s", err_get_code());
    snprintf(field, sizeof field, "%s", err_get_field());
    snprintf(msg, sizeof msg, "%s", err_get_message());
    err_clear();
    if (srccheck_all(t) < 0 && !strcmp(err_get_code(), ERR_SOURCE_CHANGED)) return true;
    err_set(cls, code, field[0] ? field : NULL, "%s", msg);
    return false;
}

static void configure_gdal(const char *scratch)
{
    /* No .aux.xml side files: outputs stay deterministic and nothing is
     * written next to inputs. */
    CPLSetConfigOption("GDAL_PAM_ENABLED", "NO");
    /* Retry S3/HTTP 429 and 5xx a few times before calling it transient. */
    if (!CPLGetConfigOption("GDAL_HTTP_MAX_RETRY", NULL))
        CPLSetConfigOption("GDAL_HTTP_MAX_RETRY", "3");
    if (!CPLGetConfigOption("GDAL_HTTP_RETRY_DELAY", NULL))
        CPLSetConfigOption("GDAL_HTTP_RETRY_DELAY", "1");
    if (scratch) CPLSetConfigOption("CPL_TMPDIR", scratch);
}

static int cmd_validate(const char *task_file)
{
    char *buf = NULL;
    size_t len = 0;
    task *t = NULL;
    result r = {0};
    if (read_task(task_file, &buf, &len) == 0 && task_decode(buf, len, &t) == 0 &&
        task_validate(t) == 0) {
        printf("{\"valid\":true,\"operation\":\"%s\",\"inputs\":%zu}\n", t->operation, t->n_inputs);
    } else {
        if (t) {
            r.asset_key = t->asset_key;
            r.data_version = t->data_version;
        }
        char out[TERRANE_TERMINATION_MAX];
        result_render(&r, out, sizeof out);
        puts(out);
        log_kv(LOG_ERROR, "task invalid", "code", err_get_code(), "field", err_get_field(), "error",
               err_get_message(), (const char *)NULL);
    }
    int code = err_exit_code();
    task_free(t);
    mem_free(buf);
    return code;
}

/* The end of run and publish-outputs: removes scratch, stops credentials,
 * writes the result, frees the task; returns the exit code. */
static int end_run(const result *r, const char *term_log, task *t, char *buf, char *scratch)
{
    scratch_remove(scratch);
    mem_free(scratch);
    creds_stop();
    int code = err_exit_code();
    if (result_write(r, term_log) < 0)
        log_kv(LOG_WARN, "could not write the termination log", (const char *)NULL);
    task_free(t);
    mem_free(buf);
    return code;
}

static int cmd_run(const char *task_file, const char *term_log)
{
    char *buf = NULL, *scratch = NULL;
    size_t len = 0;
    task *t = NULL;
    result r = {0};
    op_result files = {0};
    bool hit = false;
    long t0 = now_ms(), t1 = t0, t2 = t0;
    char grid_json_buf[GRID_JSON_MAX];

    if (read_task(task_file, &buf, &len) < 0) goto done;
    if (task_decode(buf, len, &t) < 0 || task_validate(t) < 0) goto done;
    r.asset_key = t->asset_key;
    r.data_version = t->data_version;
    if (t->op == &op_observe) {
        err_set(ERR_BAD_INPUT, ERR_INVALID_TASK, "operation",
                "operation: observe tasks run with `terrane-worker observe`");
        goto done;
    }
    log_set_context(t->asset_key, t->data_version);
    log_kv(LOG_INFO, "task accepted", "operation", t->operation, "namespace", t->namespace_,
           "output", t->output_uri, (const char *)NULL);
    if (t->op == &op_grid) { /* a header read, answered in the result; nothing published */
        configure_gdal(NULL);
        if (creds_start() == 0 && op_grid_compute(t, grid_json_buf, sizeof grid_json_buf) == 0)
            r.grid = grid_json_buf;
        t1 = t2 = now_ms();
        goto done;
    }

    if (creds_start() < 0) goto done;
    if (publish_lookup(t, &r, &hit) < 0) goto done;
    if (hit) {
        log_kv(LOG_INFO, "cache hit: this data version is already published", "uri", r.output_uri,
               "checksum", r.checksum, (const char *)NULL);
        r.cache_hit = true;
        t1 = t2 = now_ms();
        goto done;
    }

    if (scratch_create(&scratch) < 0) goto done;
    configure_gdal(scratch);
    if (podres_init(t->params) < 0) goto done;
    r.threads = podres_threads();
    r.cache_mb = podres_cache_bytes() >> 20;
    op_ctx ctx = {.task = t,
                  .scratch = scratch,
                  .progress = run_progress,
                  .progress_arg = (void *)t->operation};
    log_progress_reset();
    if (t->op->run(&ctx, &files) < 0) {
        if (stop_requested)
            err_set(ERR_TRANSIENT, ERR_INTERNAL_CODE, NULL, "stopped by a signal before finishing");
        else if (!reclassify_source_changed(t))
            reclassify_scratch_full(scratch);
        goto done;
    }
    /* Everything is read: the inputs must still be what was observed. */
    if (srccheck_all(t) < 0) goto done;
    if (files.n_files == 0) {
        err_set(ERR_INTERNAL, ERR_INTERNAL_CODE, NULL, "operation %s produced no output",
                t->operation);
        goto done;
    }
    t1 = now_ms();
    if (publish(t, &files, &r) < 0) goto done;
    t2 = now_ms();
    log_kv(LOG_INFO, "published", "uri", r.output_uri, "checksum", r.checksum, "stacItem",
           r.stac_item, (const char *)NULL);

done:
    if (err_is_set()) {
        log_kv(LOG_ERROR, "task failed", "class", err_class_name(err_get_class()), "code",
               err_get_code(), "field", err_get_field(), "error", err_get_message(),
               (const char *)NULL);
        t1 = t1 > t0 ? t1 : now_ms();
        t2 = now_ms();
    }
    r.compute_ms = t1 - t0;
    r.publish_ms = t2 - t1;
    r.total_ms = now_ms() - t0;
    /* One metrics line among the logs on stderr (stdout is the result's). */
    bool ok = !err_is_set();
    double cells =
        ok && files.n_files && files.files[0].is_cog ? emf_raster_cells(files.files[0].path) : 0;
    emf_worker_run(t ? t->operation : NULL,
                   !ok           ? "failed"
                   : r.cache_hit ? "cache_hit"
                                 : "succeeded",
                   r.total_ms, r.compute_ms, r.publish_ms, ok ? r.size_bytes : 0, cells, r.threads,
                   r.cache_mb, stderr);
    op_result_free(&files);
    return end_run(&r, term_log, t, buf, scratch);
}

/* Logs the error slot once, as "<what> failed". */
static void log_failure(const char *what)
{
    log_kv(LOG_ERROR, what, "class", err_class_name(err_get_class()), "code", err_get_code(),
           "field", err_get_field(), "error", err_get_message(), (const char *)NULL);
}

/* dir, else $env, else dflt. */
static const char *dir_or(const char *dir, const char *env, const char *dflt)
{
    const char *v = dir ? dir : getenv(env);
    return v && v[0] ? v : dflt;
}

/* Decodes and validates the task of a container step. */
static int container_task(const char *task_file, char **buf, task **t, result *r)
{
    size_t len = 0;
    if (read_task(task_file, buf, &len) < 0) return -1;
    if (task_decode(*buf, len, t) < 0 || task_validate(*t) < 0) return -1;
    r->asset_key = (*t)->asset_key;
    r->data_version = (*t)->data_version;
    log_set_context((*t)->asset_key, (*t)->data_version);
    if ((*t)->op != &op_container)
        return err_set(ERR_INTERNAL, ERR_INTERNAL_CODE, "operation",
                       "operation %s is not a container asset: its pod runs `terrane-worker run`",
                       (*t)->operation);
    return 0;
}

static int cmd_fetch(const char *task_file, const char *dir, const char *term_log)
{
    char *buf = NULL;
    task *t = NULL;
    result r = {0};
    dir = dir_or(dir, TERRANE_ENV_INPUTS_DIR, TERRANE_INPUTS_DIR_DEFAULT);
    if (container_task(task_file, &buf, &t, &r) == 0 && creds_start() == 0 &&
        fetch_inputs(t, dir) == 0)
        log_kv(LOG_INFO, "inputs fetched", "dir", dir, (const char *)NULL);
    creds_stop();
    int code = err_exit_code();
    if (err_is_set()) {
        log_failure("fetch failed");
        /* The controller reads why from this init container's message. */
        if (result_write(&r, term_log) < 0)
            log_kv(LOG_WARN, "could not write the termination log", (const char *)NULL);
    }
    task_free(t);
    mem_free(buf);
    return code;
}

static int cmd_publish_outputs(const char *task_file, const char *dir, const char *term_log)
{
    char *buf = NULL, *scratch = NULL;
    task *t = NULL;
    result r = {0};
    bool hit = false;
    long t0 = now_ms();
    dir = dir_or(dir, TERRANE_ENV_OUTPUT_DIR, TERRANE_OUTPUTS_DIR_DEFAULT);
    if (container_task(task_file, &buf, &t, &r) < 0 || creds_start() < 0) goto done;
    if (publish_lookup(t, &r, &hit) < 0) goto done;
    if (hit) {
        log_kv(LOG_INFO, "cache hit: this data version is already published", "uri", r.output_uri,
               (const char *)NULL);
        r.cache_hit = true;
        goto done;
    }
    if (scratch_create(&scratch) < 0) goto done;
    configure_gdal(scratch);
    if (podres_init(t->params) < 0) goto done; /* GDAL's threads and cache for the COGs */
    r.threads = podres_threads();
    r.cache_mb = podres_cache_bytes() >> 20;
    if (outputs_publish(t, dir, scratch, &r) < 0) goto done;
    log_kv(LOG_INFO, "published", "uri", r.output_uri, "checksum", r.checksum, "stacItem",
           r.stac_item, (const char *)NULL);
done:
    if (err_is_set()) log_failure("publish-outputs failed");
    r.total_ms = r.publish_ms = now_ms() - t0;
    emf_worker_run(t ? t->operation : NULL,
                   err_is_set()  ? "failed"
                   : r.cache_hit ? "cache_hit"
                                 : "succeeded",
                   r.total_ms, 0, r.publish_ms, err_is_set() ? 0 : r.size_bytes, 0, r.threads,
                   r.cache_mb, stderr);
    return end_run(&r, term_log, t, buf, scratch);
}

static int cmd_observe(const char *task_file, const char *term_log)
{
    char *buf = NULL, *scratch = NULL;
    size_t len = 0;
    task *t = NULL;
    result r = {0};
    result_observation obs = {0};
    long t0 = now_ms(), t1 = t0, t2 = t0;

    if (read_task(task_file, &buf, &len) < 0) goto done;
    if (task_decode(buf, len, &t) < 0 || task_validate(t) < 0) goto done;
    r.asset_key = t->asset_key;
    r.data_version = t->data_version;
    if (t->op != &op_observe) {
        err_set(ERR_BAD_INPUT, ERR_INVALID_TASK, "operation",
                "operation: `terrane-worker observe` runs observe tasks, not %s", t->operation);
        goto done;
    }
    r.observation = &obs;
    log_set_context(t->asset_key, t->data_version);
    log_kv(LOG_INFO, "observation accepted", "namespace", t->namespace_, "source", t->inputs[0].uri,
           (const char *)NULL);
    if (creds_start() < 0) goto done;
    if (scratch_create(&scratch) < 0) goto done;
    configure_gdal(scratch);
    if (observe_run(t, scratch, &obs) < 0) goto done;
    t1 = t2 = now_ms();

done:
    if (err_is_set()) {
        log_kv(LOG_ERROR, "observation failed", "class", err_class_name(err_get_class()), "code",
               err_get_code(), "field", err_get_field(), "error", err_get_message(),
               (const char *)NULL);
        t1 = t2 = now_ms();
    }
    r.compute_ms = t1 - t0;
    r.publish_ms = t2 - t1;
    r.total_ms = now_ms() - t0;
    emf_worker_run("observe", err_is_set() ? "failed" : "succeeded", r.total_ms, r.compute_ms,
                   r.publish_ms, 0, 0, 0, 0, stderr);
    return end_run(&r, term_log, t, buf, scratch);
}

int main(int argc, char **argv)
{
    const char *task_file = NULL, *term_log = NULL, *cmd = NULL, *dir = NULL;

    mem_init();
    log_init();

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--version") || !strcmp(argv[i], "version")) {
            printf("terrane-worker %s (GDAL %s)\n", TERRANE_VERSION,
                   GDALVersionInfo("RELEASE_NAME"));
            return TERRANE_EXIT_OK;
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return TERRANE_EXIT_OK;
        } else if (!strcmp(argv[i], "--task") && i + 1 < argc) {
            task_file = argv[++i];
        } else if (!strcmp(argv[i], "--termination-log") && i + 1 < argc) {
            term_log = argv[++i];
        } else if ((!strcmp(argv[i], "--inputs") || !strcmp(argv[i], "--outputs")) &&
                   i + 1 < argc) {
            dir = argv[++i];
        } else if (!cmd && !strcmp(argv[i], "ops")) {
            if (i + 2 < argc) {
                usage(stderr);
                return TERRANE_EXIT_USAGE;
            }
            if (opdoc_params(stdout, i + 1 < argc ? argv[i + 1] : NULL) < 0) {
                fprintf(stderr, "terrane-worker: %s\n", err_get_message());
                return TERRANE_EXIT_USAGE;
            }
            return TERRANE_EXIT_OK;
        } else if (!cmd && (!strcmp(argv[i], "run") || !strcmp(argv[i], "validate") ||
                            !strcmp(argv[i], "fetch") || !strcmp(argv[i], "publish-outputs") ||
                            !strcmp(argv[i], "observe"))) {
            cmd = argv[i];
        } else {
            fprintf(stderr, "terrane-worker: unknown argument '%s'\n", argv[i]);
            usage(stderr);
            return TERRANE_EXIT_USAGE;
        }
    }
    if (!cmd) {
        usage(stderr);
        return TERRANE_EXIT_USAGE;
    }

    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    GDALAllRegister();
    configure_gdal(NULL);
    int code = !strcmp(cmd, "validate")          ? cmd_validate(task_file)
               : !strcmp(cmd, "fetch")           ? cmd_fetch(task_file, dir, term_log)
               : !strcmp(cmd, "publish-outputs") ? cmd_publish_outputs(task_file, dir, term_log)
               : !strcmp(cmd, "observe")         ? cmd_observe(task_file, term_log)
                                                 : cmd_run(task_file, term_log);
    GDALDestroyDriverManager();
    OGRCleanupAll();
    return code;
}
