/*
 * statuspatch.h - a status write as a JSON merge patch (RFC 7386) of only
 * what changed.
 *
 * A whole-object PUT of the status subresource sends (and the server
 * decodes) the spec and metadata it ignores, and the controller copies and
 * serialises all of it. The patch carries metadata.uid and
 * metadata.resourceVersion, which the API server treats as preconditions
 * (409 Conflict when the object changed since it was read, as a PUT does),
 * and the difference between the old and the new status: members that
 * changed (objects recursively, everything else replaced whole) and
 * members removed (null). A new status holding a JSON null inside an
 * object cannot be said in a merge patch (null removes); the caller then
 * writes the whole object.
 */
#ifndef TERRANE_STATUSPATCH_H
#define TERRANE_STATUSPATCH_H

#include <jansson.h>

/* The patch turning obj's status into status: 0 with *out (a new
 * reference), 1 when no merge patch can express it (a null inside
 * status, or obj without metadata.uid and resourceVersion), CERR_NOMEM. */
int statuspatch_build(const json_t *obj, const json_t *status, json_t **out);

#endif
