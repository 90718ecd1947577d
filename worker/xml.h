/*
 * xml.h - a small, strict scanner for the flat XML documents AWS answers
 * with (S3's lists and errors, STS's query API).
 *
 * Those documents have a root, a few levels of plain elements, text in the
 * leaves, no mixed content, no CDATA. The scanner walks the tags once;
 * callers keep the open element names on the cursor's short stack and
 * decode the text of the leaves they care about straight into fixed
 * buffers, with XML entities (named and numeric, to UTF-8) decoded and every
 * field capped. Processing instructions and comments are skipped, a DTD or
 * CDATA section is refused. No allocation, no I/O; any thread (a cursor is
 * the caller's).
 */
#ifndef TERRANE_XML_H
#define TERRANE_XML_H

#include <stdbool.h>
#include <stddef.h>

#define XML_DEPTH_MAX 8
#define XML_NAME_MAX 64

/* A cursor over one document; on the caller's stack. */
typedef struct xml {
    const char *base, *p, *end;
    int depth; /* the caller's: names pushed on stack[] */
    char stack[XML_DEPTH_MAX][XML_NAME_MAX];
    char why[128]; /* first structural problem, "" when none */
    size_t at;     /* its byte offset */
} xml;

typedef enum { XML_OPEN, XML_CLOSE, XML_EMPTY, XML_END } xml_tag;

void xml_init(xml *x, const char *doc, size_t len);
/* Records the first structural problem (why, at); returns -1. */
int xml_fail(xml *x, const char *why);
/* Moves past the next tag, setting *kind and name (XML_NAME_MAX bytes);
 * XML_END when no tag is left. Attributes are skipped, quotes respected. */
int xml_next_tag(xml *x, xml_tag *kind, char *name);
/* Enters the element just opened (name): pushes it on the stack. Fails
 * past XML_DEPTH_MAX levels. */
int xml_push(xml *x, const char *name);
/* Leaves the innermost element at its closing tag name. Fails if it is
 * not the one open. */
int xml_pop(xml *x, const char *name);
/* Decodes the text of the element just opened (name) into out (cap
 * includes the NUL) and consumes its closing tag. Fails if the element has
 * children, holds a NUL byte, or its decoded text does not fit. */
int xml_leaf_text(xml *x, const char *name, char *out, size_t cap);

#endif
