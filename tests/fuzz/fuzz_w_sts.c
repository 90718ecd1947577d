/* Fuzz target: what IRSA reads from STS, on arbitrary bytes: an
 * AssumeRoleWithWebIdentity answer (sts_parse) and an <ErrorResponse>
 * (sts_parse_error). The parser's promises are checked: on success every
 * credential field is non-empty, within its cap and free of control
 * characters (they become HTTP headers); error fields are bounded and on
 * one line; on failure nothing of the secret is left in *out. */
#include "creds.h"
#include "err.h"
#include "mem.h"
#include "sts.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static void check_field(const char *s, size_t cap)
{
    size_t n = strnlen(s, cap);
    if (n == 0 || n >= cap) __builtin_trap();
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) __builtin_trap();
}

static void check_line(const char *s, size_t cap)
{
    size_t n = strnlen(s, cap);
    if (n >= cap) __builtin_trap();
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    static creds_set c;
    static char arn[STS_ARN_MAX], code[STS_CODE_MAX], msg[STS_MESSAGE_MAX];
    if (!ready) {
        mem_init();
        ready = 1;
    }
    const char *doc = (const char *)data;

    err_clear();
    if (sts_parse(doc, size, "fuzz", &c, arn) == 0) {
        check_field(c.access_key_id, sizeof c.access_key_id);
        check_field(c.secret_access_key, sizeof c.secret_access_key);
        check_field(c.session_token, sizeof c.session_token);
        if (strnlen(arn, sizeof arn) >= sizeof arn) __builtin_trap();
    } else {
        if (c.access_key_id[0] || c.secret_access_key[0] || c.session_token[0] || arn[0])
            __builtin_trap();
    }
    creds_wipe(&c);
    sts_parse_error(doc, size, code, msg);
    check_line(code, sizeof code);
    check_line(msg, sizeof msg);
    return 0;
}
