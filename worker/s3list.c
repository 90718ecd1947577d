/*
 * s3list.c - a small, strict pull parser for S3's XML.
 *
 * S3's list and error documents are flat (xml.h scans them): the parser
 * walks the tags once, keeps the open element names on the cursor's stack,
 * and decodes the text of the leaves it cares about straight into fixed
 * buffers. Anything else that is well formed is skipped.
 */
#include "s3list.h"

#include "err.h"
#include "xml.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse_u64(xml *x, const char *s, unsigned long long *out)
{
    if (!*s || strlen(s) > 20) return xml_fail(x, "bad number");
    char *end = NULL;
    for (const char *c = s; *c; c++)
        if (*c < '0' || *c > '9') return xml_fail(x, "bad number");
    *out = strtoull(s, &end, 10);
    return 0;
}

static void unquote(char *s)
{
    size_t n = strlen(s);
    if (n >= 2 && s[0] == '"' && s[n - 1] == '"') {
        memmove(s, s + 1, n - 2);
        s[n - 2] = '\0';
    }
}

int s3list_parse(const char *doc, size_t len, s3list_cb cb, void *arg, s3list_page *page)
{
    xml x;
    xml_init(&x, doc, len);
    s3list_object o;
    bool in_obj = false, has_key = false, has_size = false, saw_root = false;
    char name[XML_NAME_MAX], buf[S3LIST_TOKEN_MAX + 1];
    xml_tag kind;
    int rc;

    memset(page, 0, sizeof *page);
    for (;;) {
        if (xml_next_tag(&x, &kind, name) < 0) goto malformed;
        if (kind == XML_END) break;
        if (kind == XML_CLOSE) {
            if (xml_pop(&x, name) < 0) goto malformed;
            if (in_obj && x.depth == 1) {
                if (!has_key || !has_size) {
                    xml_fail(&x, "<Contents> without <Key> or <Size>");
                    goto malformed;
                }
                in_obj = false;
                page->n_objects++;
                if (cb && (rc = cb(arg, &o)) < 0) return rc;
            }
            continue;
        }
        if (x.depth == 0) {
            if (saw_root || strcmp(name, "ListBucketResult")) {
                xml_fail(&x, "root element is not <ListBucketResult>");
                goto malformed;
            }
            saw_root = true;
        }
        if (kind == XML_EMPTY) continue;
        /* Leaves we read, by depth and parent. */
        if (x.depth == 1 && !strcmp(name, "IsTruncated")) {
            if (xml_leaf_text(&x, name, buf, sizeof buf) < 0) goto malformed;
            if (strcmp(buf, "true") && strcmp(buf, "false")) {
                xml_fail(&x, "IsTruncated is neither true nor false");
                goto malformed;
            }
            page->truncated = !strcmp(buf, "true");
            continue;
        }
        if (x.depth == 1 && !strcmp(name, "NextContinuationToken")) {
            if (xml_leaf_text(&x, name, page->next_token, sizeof page->next_token) < 0)
                goto malformed;
            continue;
        }
        if (x.depth == 2 && in_obj) {
            if (!strcmp(name, "Key")) {
                if (xml_leaf_text(&x, name, o.key, sizeof o.key) < 0) goto malformed;
                has_key = o.key[0] != '\0';
                continue;
            }
            if (!strcmp(name, "ETag")) {
                if (xml_leaf_text(&x, name, o.etag, sizeof o.etag) < 0) goto malformed;
                unquote(o.etag);
                continue;
            }
            if (!strcmp(name, "LastModified")) {
                if (xml_leaf_text(&x, name, o.last_modified, sizeof o.last_modified) < 0)
                    goto malformed;
                continue;
            }
            if (!strcmp(name, "Size")) {
                if (xml_leaf_text(&x, name, buf, sizeof buf) < 0 || parse_u64(&x, buf, &o.size) < 0)
                    goto malformed;
                has_size = true;
                continue;
            }
        }
        if (x.depth == 1 && !strcmp(name, "Contents")) {
            memset(&o, 0, sizeof o);
            in_obj = true;
            has_key = has_size = false;
        }
        if (x.depth == 1 && !strcmp(name, "CommonPrefixes")) page->n_prefixes++;
        if (xml_push(&x, name) < 0) goto malformed;
    }
    if (!saw_root || x.depth != 0) {
        xml_fail(&x, saw_root ? "document ends inside an element" : "no <ListBucketResult>");
        goto malformed;
    }
    if (page->truncated && !page->next_token[0]) {
        xml_fail(&x, "IsTruncated without NextContinuationToken");
        goto malformed;
    }
    return 0;
malformed:
    return err_set(ERR_TRANSIENT, ERR_S3_SERVER, NULL,
                   "malformed ListObjectsV2 response at byte %zu: %s", x.at, x.why);
}

void s3list_parse_error(const char *doc, size_t len, char *code, size_t code_cap, char *msg,
                        size_t msg_cap)
{
    xml x;
    xml_init(&x, doc, len);
    char name[XML_NAME_MAX];
    xml_tag kind;
    code[0] = msg[0] = '\0';
    for (;;) {
        if (xml_next_tag(&x, &kind, name) < 0 || kind == XML_END) return;
        if (kind == XML_CLOSE) {
            if (x.depth == 0) return;
            x.depth--;
            continue;
        }
        if (kind == XML_EMPTY) continue;
        if (x.depth == 0 && strcmp(name, "Error")) return;
        if (x.depth == 1 && !strcmp(name, "Code")) {
            if (xml_leaf_text(&x, name, code, code_cap) < 0) code[0] = '\0';
            continue;
        }
        if (x.depth == 1 && !strcmp(name, "Message")) {
            if (xml_leaf_text(&x, name, msg, msg_cap) < 0) msg[0] = '\0';
            continue;
        }
        if (x.depth >= XML_DEPTH_MAX) return;
        x.depth++;
    }
}
