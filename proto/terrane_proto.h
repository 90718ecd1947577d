/*
 * terrane_proto.h - constants shared by terrane-controller and terrane-worker.
 *
 * The contract between the two binaries is the pair of JSON Schemas in
 * proto/schema/ (task.v1.json, result.v1.json); this header only carries the
 * names and numbers both sides must agree on. No structs are shared on
 * purpose: each side decodes the JSON with its own library and is tested
 * against the golden documents in proto/examples/.
 */
#ifndef TERRANE_PROTO_H
#define TERRANE_PROTO_H

/* apiVersion / kind of the two documents. A breaking change bumps the
 * version and adds a new schema file next to the old one. */
#define TERRANE_PROTO_API_VERSION "terrane.io/v1"
#define TERRANE_PROTO_KIND_TASK "Task"
#define TERRANE_PROTO_KIND_RESULT "Result"

/* Environment variables read by the worker. */
#define TERRANE_ENV_TASK "TERRANE_TASK"                       /* the task JSON */
#define TERRANE_ENV_TERMINATION_LOG "TERRANE_TERMINATION_LOG" /* result path override */
#define TERRANE_ENV_SCRATCH_DIR "TERRANE_SCRATCH_DIR"         /* local scratch, default $TMPDIR */
#define TERRANE_ENV_ALLOWED_BUCKETS "TERRANE_ALLOWED_BUCKETS" /* comma list, "*" = any */
#define TERRANE_ENV_ALLOWED_HOSTS "TERRANE_ALLOWED_HOSTS"     /* comma list of https hosts */
#define TERRANE_ENV_ALLOW_LOCAL "TERRANE_ALLOW_LOCAL_PATHS"   /* "1": local paths allowed */
#define TERRANE_ENV_LOG_LEVEL "TERRANE_LOG_LEVEL"             /* debug|info|warn|error */
#define TERRANE_ENV_THREADS "TERRANE_THREADS"                 /* GDAL/worker threads, 1..1024 */
#define TERRANE_ENV_CACHE_MB "TERRANE_CACHE_MB"               /* GDAL block cache, MiB */
#define TERRANE_ENV_MEMORY_LIMIT "TERRANE_MEMORY_LIMIT"       /* bytes, when no cgroup shows it */
#define TERRANE_ENV_CPU_LIMIT "TERRANE_CPU_LIMIT"             /* millicores, when no cgroup shows it */

/* Container assets (operation "container"): the pod runs the worker's
 * `fetch` step, the user's image, then the worker's `publish-outputs` step,
 * sharing two emptyDir volumes (proto/README.md, "Container assets"). */
#define TERRANE_INPUTS_DIR_DEFAULT "/inputs"  /* fetch writes <dir>/<input name>/<file> */
#define TERRANE_OUTPUTS_DIR_DEFAULT "/outputs" /* publish-outputs reads everything here */
#define TERRANE_ENV_INPUTS_DIR "TERRANE_INPUTS_DIR" /* worker steps: where /inputs is mounted */
/* The user's container gets these (and the worker steps read the last two): */
#define TERRANE_ENV_INPUT_PREFIX "TERRANE_INPUT_"     /* + NAME upper-cased: the fetched file */
#define TERRANE_ENV_OUTPUT_DIR "TERRANE_OUTPUT_DIR"   /* where to write outputs */
#define TERRANE_ENV_ASSET_KEY "TERRANE_ASSET_KEY"     /* the asset key */
#define TERRANE_ENV_DATA_VERSION "TERRANE_DATA_VERSION" /* sha256:<hex> of this version */
#define TERRANE_ENV_PARTITION_KEY "TERRANE_PARTITION_KEY" /* only when partitioned */
#define TERRANE_ENV_PARTITION_INDEX "TERRANE_PARTITION_INDEX" /* its 0-based index */
#define TERRANE_ENV_PARTITION_START "TERRANE_PARTITION_START" /* time window [start, */
#define TERRANE_ENV_PARTITION_END "TERRANE_PARTITION_END"     /*   end), RFC 3339 UTC */
#define TERRANE_ENV_PARTITION_TILE "TERRANE_PARTITION_TILE"   /* tile window, compact JSON */
/* An optional file the user's code writes: merged into the STAC Item's
 * properties; its compact form travels in the result up to the cap below. */
#define TERRANE_OUTPUT_METADATA "metadata.json"
#define TERRANE_METADATA_MAX (64 * 1024)        /* larger: published, not merged, said so */
#define TERRANE_METADATA_RESULT_MAX 1024       /* larger: left out of the result, said so */
/* Limits of one container asset's outputs. */
#define TERRANE_OUTPUT_FILES_MAX 100000
#define TERRANE_OUTPUT_NAME_MAX 512            /* a relative path under /outputs */
/* The STAC Item of the primary raster lists at most this many other files
 * as assets; the manifest always lists all of them. */
#define TERRANE_ITEM_ASSETS_MAX 1000
/* Object names of additional rasters' Items: items/<raster name>.json */
#define TERRANE_OBJ_ITEMS_DIR "items"

/* Where Kubernetes reads a container's termination message from. */
#define TERRANE_TERMINATION_LOG_DEFAULT "/dev/termination-log"

/* Kubernetes truncates termination messages at 4096 bytes; the result
 * document must fit whole or the controller cannot parse it. */
#define TERRANE_TERMINATION_MAX 4096

/* Largest task document a worker accepts (it travels in an env var). */
#define TERRANE_TASK_MAX (128 * 1024)

/* Worker exit codes (sysexits.h values, so shells and humans know them).
 * The controller branches on these: BAD_INPUT is never retried, TRANSIENT
 * is retried with backoff, INTERNAL is retried like TRANSIENT but counted
 * separately. USAGE means the pod itself is misconfigured. */
#define TERRANE_EXIT_OK 0
#define TERRANE_EXIT_USAGE 64     /* EX_USAGE: bad command line */
#define TERRANE_EXIT_BAD_INPUT 65 /* EX_DATAERR: task, params or input data invalid */
#define TERRANE_EXIT_INTERNAL 70  /* EX_SOFTWARE: a bug or an unexpected state */
#define TERRANE_EXIT_TRANSIENT 75 /* EX_TEMPFAIL: S3, network, scratch space */

/* Object names under <prefix>/<namespace>/<assetKey>/<dataVersion>/ */
#define TERRANE_OBJ_COG "asset.tif"
#define TERRANE_OBJ_STAC "item.json"
#define TERRANE_OBJ_MANIFEST "manifest.json"

#endif
