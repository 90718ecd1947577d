/*
 * jregex.h - the regular expressions of JSON Schema's "pattern" keyword.
 *
 * JSON Schema patterns are ECMA-262 regular expressions, and the contract's
 * schemas use the subset json-schema.org recommends for portability
 * ("Regular Expressions"), which tests/proto/validate.mjs enforces:
 * literals, '.', character classes with ranges and negation, the escapes
 * \n \r \t \f \v \d \D \w \W \s \S \uXXXX and escaped punctuation, '^' and
 * '$', groups ( ) and (?: ), lookahead (?= ) and (?! ), alternation, and the
 * quantifiers * + ? {n} {n,} {n,m} (greedy or lazy). POSIX regcomp cannot
 * express lookahead, which task.v1.json needs ("no '..' segment", "no /vsi
 * path"), so this is a small engine of its own.
 *
 * Matching works on Unicode code points of UTF-8 text, as ECMA-262 does
 * with the "u" flag (ajv's default), and a pattern is unanchored (JSON
 * Schema: a string is valid when the pattern matches anywhere in it).
 * The engine is a Thompson NFA simulation (Pike VM), so time is linear in
 * the subject for a fixed pattern and there is no catastrophic
 * backtracking; a lookahead is a nested simulation whose result is
 * memoised per position. Nothing recurses on the subject's length.
 *
 * A compiled jregex is immutable: any thread may match with it
 * concurrently. Matching allocates its scratch through cmem.
 */
#ifndef LIB_JREGEX_H
#define LIB_JREGEX_H

#include <stdbool.h>
#include <stddef.h>

typedef struct jregex jregex;

/* Compiles a UTF-8 pattern. 0 with *out (free with jregex_free), or
 * CERR_INVALID naming the byte offset and what is wrong (unsupported
 * syntax included: backreferences, lookbehind, named groups), or
 * CERR_TOOBIG (the compiled program would exceed an internal cap), or
 * CERR_NOMEM. */
int jregex_compile(const char *pattern, jregex **out);
void jregex_free(jregex *re);

/* Searches s (len bytes of UTF-8; invalid bytes never match a character
 * class or literal) for a match anywhere. 1 match, 0 no match, or
 * CERR_NOMEM. */
int jregex_search(const jregex *re, const char *s, size_t len);

#endif
