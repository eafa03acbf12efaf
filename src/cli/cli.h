/* Subcommands of the nabla tool that live in their own files. */
#ifndef NABLA_CLI_H
#define NABLA_CLI_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

int cli_train(int argc, char **argv);
int cli_gradcheck(int argc, char **argv);

/* Parses all of s as a whole number in [lo, hi] (decimal; an unsigned
 * value up to UINT64_MAX when lo is 0 and hi is -1, i.e. u64). False for
 * anything else: empty, trailing characters, a sign where none fits, or a
 * value out of range (never a silently truncated one). */
static inline bool cli_parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    char *end;
    if (!s || !*s)
        return false;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*end || errno == ERANGE || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static inline bool cli_parse_u64(const char *s, int base, uint64_t *out)
{
    char *end;
    if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
        return false;
    errno = 0;
    unsigned long long v = strtoull(s, &end, base);
    if (*end || errno == ERANGE)
        return false;
    *out = v;
    return true;
}

#endif
