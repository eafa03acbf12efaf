/* Helpers shared by the cmocka tests. Include after <cmocka.h>. */
#ifndef NABLA_TESTING_H
#define NABLA_TESTING_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nabla/nabla.h"

/* Fails unless the last error contains every string of want (NULL-ended). */
static inline void expect_msg(const char *call, const char *const *want)
{
    const char *msg = nb_last_error();
    if (!msg) {
        fail_msg("%s: no error message", call);
        return; /* fail_msg is not declared noreturn */
    }
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

/* An allocator that fails once alloc_budget more allocations are made, for
 * out-of-memory tests: alloc_budget = k; nb_set_allocator(&failing_allocator). */
static int64_t alloc_budget;
static inline void *budget_alloc(size_t n, void *ctx)
{
    (void)ctx;
    return alloc_budget-- > 0 ? malloc(n) : NULL;
}
static inline void plain_free(void *p, void *ctx)
{
    (void)ctx;
    free(p);
}
static const nb_allocator failing_allocator = {budget_alloc, plain_free, NULL};

/* ---- gradient checks (test_gradcheck.c, test_gradcheck_user.c) ---- */

/* The three runs of every example: f64 first and second order, f32 first. */
static const struct {
    int order;
    nb_dtype dtype;
} runs[] = {{1, NB_F64}, {2, NB_F64}, {1, NB_F32}};
#define NRUNS (int)(sizeof runs / sizeof runs[0])

/* A standard normal f64 input that requires grad. */
static inline nb_tensor *rand_input(int ndim, const int64_t *shape, uint64_t seed)
{
    nb_rng rng = nb_rng_new(seed);
    nb_tensor *t = nb_randn(NB_F64, ndim, shape, &rng);
    return nb_set_requires_grad(t, true);
}

/* tanh(a * b) / (1 + a^2), broadcasting b over a's rows. */
static inline nb_tensor *f_mix(nb_tensor *const x[], int n, void *ctx)
{
    (void)n, (void)ctx;
    nb_tensor *a = x[0], *b = x[1];
    return nb_div(nb_tanh(nb_mul(a, b)), nb_add(nb_scalar_like(a, 1.0), nb_square(a)));
}

/* open_memstream is POSIX: only for files defining _POSIX_C_SOURCE first. */
#if defined(_POSIX_C_SOURCE) && _POSIX_C_SOURCE >= 200809L
/* The report as text (for print_error and for checking the format). */
static inline char *report_text(const nb_check_report *r)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    nb_check_report_print(r, f);
    fclose(f);
    return buf;
}

static inline void print_report(const char *what, const nb_check_report *r)
{
    char *t = report_text(r);
    print_error("%s\n%s", what, t);
    free(t);
}
#endif

/* After each test, even a failed one: no graph left current, the default
 * allocator, recording on, so one failure does not cascade into the next
 * (a cmocka teardown). */
static inline int cleanup(void **state)
{
    (void)state;
    while (nb_graph_current())
        nb_graph_free(nb_graph_current());
    nb_set_allocator(NULL);
    nb_set_grad_enabled(true);
    nb_error_scope_end(NULL); /* a test that crashed inside a scope left it open */
    return 0;
}

/* a and b hold the same values bit for bit: dtype, element count and the
 * bytes of their (packed) data. */
static inline bool same_bits(const nb_tensor *a, const nb_tensor *b)
{
    return nb_dtype_of(a) == nb_dtype_of(b) && nb_numel(a) == nb_numel(b) &&
           memcmp(nb_data(a), nb_data(b), (size_t)nb_numel(a) * nb_dtype_size(nb_dtype_of(a))) == 0;
}

/* Models a and b have the same parameters, bit for bit. */
static inline bool same_weights(nb_model *a, nb_model *b)
{
    nb_tensor *const *pa, *const *pb;
    int n = nb_model_params(a, &pa);
    assert_int_equal(nb_model_params(b, &pb), n);
    for (int i = 0; i < n; i++)
        if (!same_bits(pa[i], pb[i]))
            return false;
    return true;
}

/* A model's loss on fixed data, as an nb_check_fn of its parameters (which
 * the model reads itself): nb_gradcheck(model_loss, &c, np, params, ...). */
typedef struct {
    nb_model *m;
    nb_tensor *x, *y;
} model_ctx;

static inline nb_tensor *model_loss(nb_tensor *const params[], int n, void *ctx)
{
    (void)params, (void)n;
    model_ctx *c = ctx;
    return nb_model_loss(c->m, nb_model_forward(c->m, c->x), c->y);
}

/* Gradient-checks c's model in its parameters (there must be np of them;
 * -1: any number), printing the report to stderr when it fails. */
static inline bool model_gradcheck(model_ctx *c, int np)
{
    nb_tensor *const *p;
    int n = nb_model_params(c->m, &p);
    if (np >= 0)
        assert_int_equal(n, np);
    nb_check_report rep;
    bool ok = nb_gradcheck(model_loss, c, n, p, NULL, &rep);
    if (!ok)
        nb_check_report_print(&rep, stderr);
    return ok;
}

/* A separable 3-class problem of n rows of 4 features: the class is which
 * of three blobs (spread by noise) a row sits in; y one-hot (n, 3), or
 * the labels (n,). */
static inline void three_blobs(int64_t n, uint64_t seed, nb_dtype dt, double noise, bool labels,
                               nb_tensor **x, nb_tensor **y)
{
    nb_rng rng = nb_rng_new(seed);
    *x = nb_zeros(dt, 2, (const int64_t[]){n, 4});
    *y = labels ? nb_zeros(dt, 1, &n) : nb_zeros(dt, 2, (const int64_t[]){n, 3});
    for (int64_t i = 0; i < n; i++) {
        int c = (int)nb_rng_below(&rng, 3);
        for (int j = 0; j < 4; j++)
            nb_set(*x, NB_AT(i, j), (j == c ? 2.0 : 0.0) + noise * nb_rng_normal(&rng));
        if (labels)
            nb_set(*y, NB_AT(i), c);
        else
            nb_set(*y, NB_AT(i, c), 1.0);
    }
}

/* What was written to f (from its start to where it is), as a malloc'ed
 * string (caller frees). */
static inline char *text_of(FILE *f)
{
    long len = ftell(f);
    assert_true(len >= 0);
    char *buf = malloc((size_t)len + 1);
    assert_non_null(buf);
    rewind(f);
    assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
    buf[len] = '\0';
    return buf;
}

/* nb_summary's text, as a malloc'ed string (caller frees). */
static inline char *summary_of(const nb_model *m)
{
    FILE *f = tmpfile();
    assert_non_null(f);
    assert_int_equal(nb_summary(m, f), 0);
    char *buf = text_of(f);
    fclose(f);
    return buf;
}

/* A heap tensor of dtype (f32 or f64) holding the doubles v. */
static inline nb_tensor *tensor_of(nb_dtype dt, int ndim, const int64_t *shape, const double *v)
{
    nb_tensor *t = nb_zeros(dt, ndim, shape);
    assert_non_null(t);
    for (int64_t i = 0; i < nb_numel(t); i++) {
        if (dt == NB_F64)
            ((double *)nb_data(t))[i] = v[i];
        else
            ((float *)nb_data(t))[i] = (float)v[i];
    }
    nb_bump_version(t);
    return t;
}

#endif
