/*
 * fetch.h - the first step of a container asset's pod: its inputs on disk.
 *
 *   terrane-worker fetch [--task FILE] [--inputs DIR]
 *
 * Every input of the task is copied to <dir>/<input name>/<file> (file:
 * container_input_file, op_container.h) through the same allowlists as the
 * raster operations' inputs (input.h: schemes, buckets, hosts, no
 * link-local or metadata address), hashed with SHA-256 in the same pass,
 * and compared with the checksum the upstream recorded (task input
 * `checksum`). Bytes that differ are removed again and the step fails with
 * ChecksumMismatch, class BadInput (exit 65): the object changed after its
 * upstream published it, the data version no longer names these bytes, and
 * a retry would read the same bytes again. A read that fails part-way is
 * Transient (75). A file appears under its final name only when complete
 * and verified (temporary name, rename). Main thread only.
 */
#ifndef TERRANE_FETCH_H
#define TERRANE_FETCH_H

#include "task.h"

/* Fetches and verifies every input of t below dir (created if missing).
 * On failure the error names the input (inputs[i].uri or inputs[i].checksum)
 * and nothing unverified is left under dir. */
int fetch_inputs(const task *t, const char *dir);

#endif
