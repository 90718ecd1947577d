/*
 * objvec.h - a growing array of json_t references, filled from an
 * informer or cache walk (the pods of an asset or a source, the upstreams
 * of a decision). The vector holds one reference per element; objvec_clear
 * drops them. Not thread-safe (one caller's stack).
 */
#ifndef TERRANE_OBJVEC_H
#define TERRANE_OBJVEC_H

#include <jansson.h>
#include <stddef.h>

typedef struct {
    const json_t **v;
    size_t n, cap;
    int rc; /* the first failure of objvec_push, so a walk's callback can stop */
} objvec;

/* Appends obj with a new reference. 0, or CERR_NOMEM (also kept in v->rc). */
int objvec_push(objvec *v, const json_t *obj);
/* Drops the references and the array; v is empty (zeroed) afterwards. */
void objvec_clear(objvec *v);
/* objvec_push with the signature of the caches' and informers' walks
 * (ctx is the objvec). */
int objvec_collect(void *ctx, const json_t *obj);

#endif
