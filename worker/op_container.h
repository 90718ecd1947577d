/*
 * op_container.h - the `container` operation: the user's own image.
 *
 * The worker does not run the user's code: the pod does, between the
 * worker's `fetch` step (fetch.h) and its `publish-outputs` step
 * (outputs.h). This module checks the operation's params (image, command,
 * args, env, workingDir, primaryOutput) and holds the naming rules the
 * controller must follow too (proto/README.md, "Container assets"): where an
 * input lands under /inputs and the environment variable naming it.
 */
#ifndef TERRANE_OP_CONTAINER_H
#define TERRANE_OP_CONTAINER_H

#include "task.h"

#include <stddef.h>

/* Longest file name fetch gives an input (its URI's last segment). */
#define CONTAINER_INPUT_FILE_MAX 128

/* The file name of in under <inputs dir>/<input name>/: the URI's last path
 * segment when it is 1..128 of [A-Za-z0-9._-] and not "." or "..", else
 * "data". Writes at most cap bytes. */
void container_input_file(const task_input *in, char *buf, size_t cap);
/* "TERRANE_INPUT_" + the input's name upper-cased. */
void container_input_env(const task_input *in, char *buf, size_t cap);
/* params.primaryOutput, or NULL for the default rule (outputs.h). */
const char *container_primary_output(const task *t);
/* params.image. */
const char *container_image(const task *t);

#endif
