/*
 * opdoc.h - what `terrane-worker --help` and `terrane-worker ops` print
 * about the operations: one line each, and each operation's params read
 * from the task contract (proto/schema/task.v1.json, compiled in), so the
 * text cannot drift from what the worker and the controller check.
 *
 * The schema's per-operation blocks (allOf entries whose `if` fixes
 * operation) say which params schema belongs to which operation; an
 * operation added to the schema is listed without a change here.
 * Any thread; allocates through mem.h and frees before returning.
 */
#ifndef TERRANE_OPDOC_H
#define TERRANE_OPDOC_H

#include <stdio.h>

/* One line per operation of op_all(): "  name   summary". */
void opdoc_list(FILE *f);

/* Each operation's params (only operation `only` unless NULL): name, type
 * and allowed values, default and description, from the schema. 0, or -1
 * with the error set (unknown operation, schema unreadable). */
int opdoc_params(FILE *f, const char *only);

#endif
