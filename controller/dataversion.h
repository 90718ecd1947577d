/*
 * dataversion.h - data versions of assets (as in Dagster): a hash of what
 * determines an asset's bytes, so that the same data version means the same
 * output and a repeated materialization is a cache hit.
 *
 *   dataVersion = "sha256:" + hex(SHA-256(canonical JSON of D))
 *   D = {"codeVersion": <worker code version>,
 *        "format": 1,
 *        "inputs": [ {"dataVersion": <upstream's data version>, "name": <input name>}
 *                  | {"name": <input name>, "uri": <external source URI>}, ...
 *                    sorted by name ],
 *        "operation": <operation>,
 *        "params": <spec.params, {} when absent>}
 *
 * An upstream input (from:) contributes its data version; an external
 * source (uri:) has none and contributes its URI. "format" is the version of
 * this definition: changing anything here changes every data version, so it
 * changes only with a new format number.
 *
 * Canonical JSON (dv_canonical), the exact bytes hashed:
 *  - no whitespace anywhere;
 *  - object members sorted by key, keys compared as byte strings (UTF-8
 *    order; a key sorts before its extensions); arrays keep their order;
 *  - strings: the UTF-8 bytes as they are, escaping only '"' as \", '\' as
 *    \\ and U+0000..U+001F as \b \f \n \r \t or \u00xx (lowercase hex);
 *    '/' and non-ASCII characters are never escaped;
 *  - numbers: an integer, or a real with an integral value and magnitude
 *    below 2^63, is written as a decimal integer ("-0", 1.0 and 1e0 become
 *    "0", "1", "1"); any other real is written with the fewest significant
 *    digits (1..17) that read back as the same IEEE double, in C's %g style
 *    with the exponent as e<digits> or e-<digits> (0.5, 1.5e-7, 1e300);
 *  - true, false, null as such.
 *
 * Test vector (tests/unit/controller/test_dataversion.c checks it):
 *   operation "terrain", params {"scale": 1.0, "mode": "slope"}, inputs
 *   mask (uri s3://raw/catchments.gpkg) and dem (data version "sha256:" +
 *   64 'a'), code version "0.1.0" give
 *   {"codeVersion":"0.1.0","format":1,"inputs":[{"dataVersion":"sha256:aaaa...","name":"dem"},
 *    {"name":"mask","uri":"s3://raw/catchments.gpkg"}],"operation":"terrain",
 *    "params":{"mode":"slope","scale":1}}
 *   and sha256:d004177eec7652f26fab489a3927daadbd8be1a18cd5e44af55db231700a326b
 *
 * Pure functions, any thread; the process must not change LC_NUMERIC
 * (the controller never calls setlocale). jansson reference rule: params is
 * borrowed; nothing here keeps or returns a jansson reference.
 */
#ifndef TERRANE_DATAVERSION_H
#define TERRANE_DATAVERSION_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define DV_PREFIX "sha256:"
#define DV_LEN 71 /* "sha256:" + 64 lowercase hex digits */
#define DV_SHORT_LEN 12
#define DV_FORMAT 1

typedef struct {
    const char *name;         /* the input's name, unique among inputs */
    const char *data_version; /* upstream asset: its data version */
    const char *uri;          /* external source (used when data_version is NULL) */
} dv_input;

/* Computes the data version into out. 0, or CERR_INVALID (empty operation
 * or code version, params not an object, an input without name or without
 * both data version and uri, a duplicate input name, JSON nested deeper than
 * 2048) or CERR_NOMEM. The inputs array is not modified. */
int dv_compute(const char *operation, const json_t *params, const dv_input *inputs, size_t n_inputs,
               const char *code_version, char out[DV_LEN + 1]);

/* The canonical JSON of v into *out (NUL-terminated, length in *len when
 * len is non-NULL); *out belongs to the caller (cmem_free). 0, CERR_INVALID
 * (too deep) or CERR_NOMEM. */
int dv_canonical(const json_t *v, char **out, size_t *len);

/* true for "sha256:" followed by exactly 64 lowercase hex digits. */
bool dv_valid(const char *s);
/* The first 12 hex digits, for printer columns and pod names. 0, or
 * CERR_INVALID when dv is not valid (out is then ""). */
int dv_short(const char *dv, char out[DV_SHORT_LEN + 1]);

#endif
