/* Helpers shared by the cmocka tests. Include after <cmocka.h>. */
#ifndef NABLA_TESTING_H
#define NABLA_TESTING_H

#include <stdlib.h>
#include <string.h>

#include "nabla/nabla.h"

/* Fails unless the last error contains every string of want (NULL-ended). */
static inline void expect_msg(const char *call, const char *const *want)
{
    const char *msg = nb_last_error();
    if (!msg)
        fail_msg("%s: no error message", call);
    for (const char *w; (w = *want) != NULL; want++)
        if (!strstr(msg, w))
            fail_msg("%s: message \"%s\" lacks \"%s\"", call, msg, w);
}

/* The call returns NULL (FAILS) or -1 (FAILS_RC) with a message containing
 * each given string. */
#define FAILS(call, ...)                                                       \
    do {                                                                       \
        nb_clear_error();                                                      \
        assert_null(call);                                                     \
        expect_msg(#call, (const char *[]){__VA_ARGS__, NULL});                \
    } while (0)
#define FAILS_RC(call, ...)                                                    \
    do {                                                                       \
        nb_clear_error();                                                      \
        assert_int_equal((call), -1);                                          \
        expect_msg(#call, (const char *[]){__VA_ARGS__, NULL});                \
    } while (0)
/* The last error contains s. */
#define ERR_HAS(s) expect_msg("last error", (const char *[]){(s), NULL})

/* An allocator that counts, for "no allocation per step" tests:
 * nb_set_allocator(&counting_allocator) ... nb_set_allocator(NULL). */
static long allocs, frees;
static inline void *count_alloc(size_t n, void *ctx)
{
    (void)ctx;
    allocs++;
    return malloc(n);
}
static inline void count_free(void *p, void *ctx)
{
    (void)ctx;
    frees++;
    free(p);
}
static const nb_allocator counting_allocator = {count_alloc, count_free, NULL};

#endif
