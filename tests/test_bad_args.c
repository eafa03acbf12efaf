/* Every public function, called with each class of bad argument that
 * applies: NULL (and NULL after a first error, which must be kept), bad
 * shapes and overflowing sizes, wrong dtypes, out-of-range axes, indices and
 * labels, and the wrong state (no current graph, a tensor of a reset graph,
 * a tensor freed while a graph uses it, fit before compile, ...). A case
 * passes when the call
 *   - returns the documented failure value (NULL, -1, NAN, false, 0),
 *   - leaves a message starting with the public function called
 *     ("nb_reshape: ...") and the documented code (nb_last_error_code),
 *   - keeps no partial result (nb_live_tensors unchanged) and prints nothing
 *     (stdout and stderr are redirected to a file that must stay empty),
 * and it must not crash or abort (cmocka fails the test on a signal); leaks
 * show in the ASan and valgrind runs. The last test prints
 *   "# bad arguments: N cases tried, N gave the documented error".
 *
 * Deliberately not called with bad arguments (nothing to get wrong, or no
 * error channel by design):
 *   nb_last_error, nb_last_error_code, nb_clear_error, nb_rng_new,
 *   nb_set_grad_enabled, nb_is_grad_enabled, nb_set_flush_subnormals,
 *   nb_flush_subnormals, nb_graph_current, nb_scope_pop, nb_live_tensors,
 *   nb_builtin_ops, nb_dot_can_render (no arguments, or any value is valid);
 *   nb_error_code_name, nb_dtype_name, nb_dtype_size, nb_check_layout_name,
 *   nb_check_verdict_name, nb_check_pattern_name, nb_mutation_name,
 *   nb_contract_name, nb_shape_str, nb_dims_str, nb_op_find (documented
 *   fallbacks: "?", 0, "(null)", NULL for an unknown name; checked in the
 *   last test, not counted); nb_error_scope_begin/end, nb_mem_free,
 *   nb_dot_free, nb_check_report_free, nb_optimizer_free (NULL is a no-op
 *   like free(NULL)); nb_check_report_print (a NULL file is a no-op, a
 *   NULL report prints "(no report)"); nb_batch_rows, nb_iter_init, nb_iter_next,
 *   nb_reduce_init, nb_view_contiguous and the NB_MAP / NB_REDUCE macros
 *   (kernel helpers over views the engine made: no error channel, and a
 *   check would cost in inner loops); nb_dot_render's Graphviz failures
 *   (need a broken Graphviz). nb_graph_reset/free/nodes/bytes/generation and
 *   nb_free, nb_zero_grad, nb_bump_version take NULL as a no-op (documented)
 *   and are called here with freed or stale handles instead. */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "testing.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

enum {
    INV = NB_ERR_INVALID,
    SHP = NB_ERR_SHAPE,
    DTY = NB_ERR_DTYPE,
    MEM = NB_ERR_MEMORY,
    IOE = NB_ERR_IO,
    FMT = NB_ERR_FORMAT,
    STA = NB_ERR_STATE,
};

/* ---- the case runner ---- */

static int tried, passed, section_failed;
static int64_t live0;
static FILE *capture;
static int saved_out, saved_err;

/* The message of a pending error that a NULL argument must keep. */
static const char *const PENDING = "pending: the first error";

static void begin(void)
{
    nb_clear_error();
    live0 = nb_live_tensors();
    fflush(NULL);
    saved_out = dup(1);
    saved_err = dup(2);
    dup2(fileno(capture), 1);
    dup2(fileno(capture), 2);
}

/* Restores stdout and stderr; what was written to them meanwhile, into out. */
static long restore(char *out, size_t cap)
{
    fflush(NULL);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(saved_out);
    close(saved_err);
    int fd = fileno(capture);
    long n = (long)lseek(fd, 0, SEEK_END);
    out[0] = '\0';
    if (n > 0) {
        lseek(fd, 0, SEEK_SET);
        ssize_t k = read(fd, out, cap - 1);
        out[k > 0 ? k : 0] = '\0';
        if (ftruncate(fd, 0) != 0)
            n = -n;
        lseek(fd, 0, SEEK_SET);
    }
    return n;
}

static void end(const char *fn, int code, bool failed_as_documented, const char *what, int line)
{
    char printed[256];
    long n = restore(printed, sizeof printed);
    const char *m = nb_last_error();
    size_t k = strlen(fn);
    bool keep = fn == PENDING;
    char why[512] = "";
    if (!failed_as_documented)
        snprintf(why, sizeof why, "did not return the failure value");
    else if (!m)
        snprintf(why, sizeof why, "no error message");
    else if (keep ? strcmp(m, PENDING) != 0 : strncmp(m, fn, k) != 0 || m[k] != ':')
        snprintf(why, sizeof why, "the message does not %s \"%s\"",
                 keep ? "keep the first error" : "start with", fn);
    else if ((int)nb_last_error_code() != code)
        snprintf(why, sizeof why, "code %s, not %s", nb_error_code_name(nb_last_error_code()),
                 nb_error_code_name((nb_error_code)code));
    else if (nb_live_tensors() != live0)
        snprintf(why, sizeof why, "%lld live tensors, %lld before (a partial result kept)",
                 (long long)nb_live_tensors(), (long long)live0);
    else if (n != 0)
        snprintf(why, sizeof why, "printed %ld bytes: %s", n, printed);
    tried++;
    if (!why[0]) {
        passed++;
        return;
    }
    section_failed++;
    print_error("line %d: %s [%s]: %s (message: %s)\n", line, what, keep ? "keep" : fn, why,
                m ? m : "none");
}

/* CASE("nb_add", SHP, nb_add(a, b) == NULL): the call, compared with its
 * failure value; the function its message must name; the code. */
#define CASE(fn, code, test)                                                   \
    do {                                                                       \
        begin();                                                               \
        bool ok_ = (test);                                                     \
        end((fn), (code), ok_, #test, __LINE__);                               \
    } while (0)
/* With an error pending, a NULL argument fails and keeps that error. */
#define KEEP(test)                                                             \
    do {                                                                       \
        begin();                                                               \
        nb_set_error_code(NB_ERR_IO, "%s", PENDING);                           \
        bool ok_ = (test);                                                     \
        end(PENDING, NB_ERR_IO, ok_, #test, __LINE__);                         \
    } while (0)

/* Each area is one cmocka test, failing when any of its cases did; it
 * prints how many it tried. */
static int section_start;
#define SECTION_BEGIN() (section_failed = 0, section_start = tried)
#define SECTION_END()                                                          \
    do {                                                                       \
        printf("# %s: %d cases\n", __func__ + 5, tried - section_start);      \
        assert_int_equal(section_failed, 0);                                   \
    } while (0)

/* ---- fixtures ---- */

static nb_graph *outer, *g;
static nb_tensor *f23, *d23, *f4, *f32_, *s0, *f13, *e03, *lab, *frac, *lab64, *idx2d, *p23;
static nb_tensor *stale, *stale_view, *zombie, *zombie_view, *bcast;
static nb_tensor *f8d; /* 8 dimensions */
static nb_tensor *idx01, *lab01; /* valid indices, valid labels of 3 classes */

static int setup(void **state)
{
    (void)state;
    capture = tmpfile();
    if (!capture)
        return -1;
    f23 = nb_ones(NB_F32, NB_SHAPE(2, 3));
    d23 = nb_ones(NB_F64, NB_SHAPE(2, 3));
    f4 = nb_ones(NB_F32, NB_SHAPE(4));
    f32_ = nb_ones(NB_F32, NB_SHAPE(3, 2));
    s0 = nb_scalar(NB_F32, 1);
    f13 = nb_ones(NB_F32, NB_SHAPE(1, 3));
    e03 = nb_zeros(NB_F32, NB_SHAPE(0, 3));
    lab = nb_from_array(NB_F32, NB_SHAPE(2), (float[]){0, 5});
    frac = nb_from_array(NB_F32, NB_SHAPE(2), (float[]){0, 0.5f});
    lab64 = nb_from_array(NB_F64, NB_SHAPE(2), (double[]){0, 1});
    idx2d = nb_zeros(NB_F32, NB_SHAPE(1, 2));
    p23 = nb_param(nb_ones(NB_F32, NB_SHAPE(2, 3)));
    f8d = nb_zeros(NB_F32, NB_SHAPE(1, 1, 1, 1, 1, 1, 1, 1));
    idx01 = nb_from_array(NB_F32, NB_SHAPE(2), (float[]){0, 1});
    lab01 = nb_from_array(NB_F32, NB_SHAPE(2), (float[]){0, 2});
    /* A tensor of a reset generation, and a live view (in g) of a tensor of
     * a graph reset since (outer). */
    outer = nb_graph_new();
    stale = nb_add(f23, f23);
    nb_tensor *base = nb_add(f23, f23);
    g = nb_graph_new();
    stale_view = nb_slice(base, 0, 0, 1, 1);
    nb_graph_reset(outer);
    /* A heap leaf freed while g's node still holds it, and a view of a heap
     * tensor freed since. */
    zombie = nb_param(nb_ones(NB_F32, NB_SHAPE(2, 3)));
    if (!nb_mul(zombie, zombie))
        return -1;
    nb_free(zombie);
    nb_tensor *h = nb_ones(NB_F32, NB_SHAPE(2, 3));
    zombie_view = nb_slice(h, 0, 0, 2, 1);
    nb_free(h);
    bcast = nb_broadcast_to(f4, NB_SHAPE(3, 4));
    nb_clear_error();
    return stale && stale_view && zombie_view && bcast && f8d && p23 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    while (nb_graph_current())
        nb_graph_free(nb_graph_current());
    nb_graph_free(outer);
    nb_tensor *all[] = {f23,   d23,   f4,  f32_, s0,  f13,   e03,
                        lab,   frac,  lab64, idx2d, p23, f8d, idx01, lab01};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        nb_free(all[i]);
    fclose(capture);
    nb_set_allocator(NULL);
    nb_clear_error();
    return 0;
}

/* ---- shapes that cannot be ---- */

typedef struct {
    int ndim;
    const int64_t *dims;
    int code;
} bad_shape;

#define BIG ((int64_t)1 << 40)
static const bad_shape bad_shapes[] = {
    {-1, (const int64_t[]){2}, SHP},
    {9, (const int64_t[]){1, 1, 1, 1, 1, 1, 1, 1, 1}, SHP},
    {INT_MAX, (const int64_t[]){1}, SHP},
    {2, NULL, INV},
    {2, (const int64_t[]){2, -3}, SHP},
    {1, (const int64_t[]){INT64_MIN}, SHP},
    {2, (const int64_t[]){BIG, BIG}, SHP},                   /* 2^80 */
    {2, (const int64_t[]){9, 6148914691236517206}, SHP},     /* wraps to 6 */
    {3, (const int64_t[]){0, BIG, BIG}, SHP},                /* empty, but too many */
    {1, (const int64_t[]){INT64_MAX}, SHP},
    {1, (const int64_t[]){NB_MAX_NUMEL + 1}, SHP},
};
#define NBAD (int)(sizeof bad_shapes / sizeof bad_shapes[0])
static const nb_dtype bad_dtypes[] = {(nb_dtype)0, (nb_dtype)3, (nb_dtype)-1};

/* ---- factories ---- */

static nb_rng rng_;
static nb_tensor *mk_zeros(nb_dtype d, int n, const int64_t *s) { return nb_zeros(d, n, s); }
static nb_tensor *mk_ones(nb_dtype d, int n, const int64_t *s) { return nb_ones(d, n, s); }
static nb_tensor *mk_full(nb_dtype d, int n, const int64_t *s) { return nb_full(d, n, s, 2); }
static nb_tensor *mk_rand(nb_dtype d, int n, const int64_t *s) { return nb_rand(d, n, s, &rng_); }
static nb_tensor *mk_randn(nb_dtype d, int n, const int64_t *s) { return nb_randn(d, n, s, &rng_); }
static nb_tensor *mk_array(nb_dtype d, int n, const int64_t *s)
{
    static const double data[64];
    return nb_from_array(d, n, s, data);
}
static const struct {
    const char *fn;
    nb_tensor *(*make)(nb_dtype, int, const int64_t *);
} factories[] = {
    {"nb_zeros", mk_zeros}, {"nb_ones", mk_ones},   {"nb_full", mk_full},
    {"nb_rand", mk_rand},   {"nb_randn", mk_randn}, {"nb_from_array", mk_array},
};
#define NFACT (int)(sizeof factories / sizeof factories[0])

static void test_factories(void **state)
{
    (void)state;
    SECTION_BEGIN();
    rng_ = nb_rng_new(1);
    for (int f = 0; f < NFACT; f++) {
        for (int i = 0; i < NBAD; i++)
            CASE(factories[f].fn, bad_shapes[i].code,
                 factories[f].make(NB_F32, bad_shapes[i].ndim, bad_shapes[i].dims) == NULL);
        for (int i = 0; i < 3; i++)
            CASE(factories[f].fn, DTY, factories[f].make(bad_dtypes[i], NB_SHAPE(2)) == NULL);
    }
    /* Huge but valid: 2^47 elements (NB_MAX_NUMEL is 2^48), 512 TB as f32:
     * out of memory, cleanly (the arrays are not filled). */
    CASE("nb_zeros", MEM, nb_zeros(NB_F32, NB_SHAPE(BIG, 128)) == NULL);
    CASE("nb_full", MEM, nb_full(NB_F64, NB_SHAPE(BIG, 64), 1) == NULL);
    CASE("nb_rand", INV, nb_rand(NB_F32, NB_SHAPE(2), NULL) == NULL);
    CASE("nb_randn", INV, nb_randn(NB_F32, NB_SHAPE(2), NULL) == NULL);
    CASE("nb_from_array", INV, nb_from_array(NB_F32, NB_SHAPE(2), NULL) == NULL);
    for (int i = 0; i < 3; i++)
        CASE("nb_scalar", DTY, nb_scalar(bad_dtypes[i], 1) == NULL);
    CASE("nb_arange", INV, nb_arange(NB_F32, 0, 1, 0) == NULL);
    CASE("nb_arange", INV, nb_arange(NB_F32, NAN, 1, 1) == NULL);
    CASE("nb_arange", INV, nb_arange(NB_F32, 0, INFINITY, 1) == NULL);
    CASE("nb_arange", INV, nb_arange(NB_F32, 0, 1, NAN) == NULL);
    CASE("nb_arange", SHP, nb_arange(NB_F32, 0, 1e300, 1) == NULL);
    CASE("nb_arange", SHP, nb_arange(NB_F64, 0, 1, 1e-300) == NULL);
    CASE("nb_arange", DTY, nb_arange((nb_dtype)5, 0, 3, 1) == NULL);
    CASE("nb_clone", INV, nb_clone(NULL) == NULL);
    KEEP(nb_clone(NULL) == NULL);
    CASE("nb_clone", STA, nb_clone(stale) == NULL);
    CASE("nb_clone", STA, nb_clone(zombie) == NULL);
    CASE("nb_clone", STA, nb_clone(stale_view) == NULL);
    CASE("nb_free", STA, (nb_free(zombie), true)); /* freed once already */
    CASE("nb_rng_next", INV, nb_rng_next(NULL) == 0);
    CASE("nb_rng_uniform", INV, isnan(nb_rng_uniform(NULL)));
    CASE("nb_rng_normal", INV, isnan(nb_rng_normal(NULL)));
    CASE("nb_rng_below", INV, nb_rng_below(NULL, 10) == 0);
    SECTION_END();
}

/* ---- inspection and element access: NULL, stale, freed ---- */

static nb_tensor *const *bad_tensors(void)
{
    static nb_tensor *t[4];
    t[0] = stale, t[1] = stale_view, t[2] = zombie, t[3] = zombie_view;
    return t;
}

static void test_inspection(void **state)
{
    (void)state;
    SECTION_BEGIN();
    double out[8];
    char name[] = "x";
    for (int k = -1; k < 4; k++) {
        nb_tensor *t = k < 0 ? NULL : bad_tensors()[k];
        int c = k < 0 ? INV : STA;
        CASE("nb_dtype_of", c, nb_dtype_of(t) == 0);
        CASE("nb_ndim", c, nb_ndim(t) == -1);
        CASE("nb_dim", c, nb_dim(t, 0) == -1);
        CASE("nb_shape", c, nb_shape(t) == NULL);
        CASE("nb_strides", c, nb_strides(t) == NULL);
        CASE("nb_offset", c, nb_offset(t) == -1);
        CASE("nb_numel", c, nb_numel(t) == -1);
        CASE("nb_is_contiguous", c, !nb_is_contiguous(t));
        CASE("nb_is_heap", c, !nb_is_heap(t));
        CASE("nb_data", c, nb_data(t) == NULL);
        CASE("nb_name", c, nb_name(t) == NULL);
        CASE("nb_set_name", c, nb_set_name(t, name) == NULL);
        CASE("nb_requires_grad", c, !nb_requires_grad(t));
        CASE("nb_is_param", c, !nb_is_param(t));
        CASE("nb_grad_of", c, nb_grad_of(t) == NULL);
        CASE("nb_set_requires_grad", c, nb_set_requires_grad(t, true) == NULL);
        CASE("nb_param", c, nb_param(t) == NULL);
        CASE("nb_get", c, isnan(nb_get(t, NB_AT(0, 0))));
        CASE("nb_get_flat", c, isnan(nb_get_flat(t, 0)));
        CASE("nb_set", c, nb_set(t, NB_AT(0, 0), 1) == -1);
        CASE("nb_item", c, isnan(nb_item(t)));
        CASE("nb_to_doubles", c, nb_to_doubles(t, out) == -1);
        CASE("nb_print", c, nb_print(t, stdout) == -1);
        CASE("nb_allclose", c, !nb_allclose(t, f23, 1, 1));
        CASE("nb_allclose", c, !nb_allclose(f23, t, 1, 1));
        CASE("nb_op_of", c, nb_op_of(t) == NULL);
        CASE("nb_check_tensor", c, nb_check_tensor(NULL, "x", t) == -1);
        CASE("my_fn", c, nb_check_tensor("my_fn", "x", t) == -1);
        if (k >= 0) {
            CASE("nb_zero_grad", STA, (nb_zero_grad(t), true));
            CASE("nb_bump_version", STA, (nb_bump_version(t), true));
        }
    }
    KEEP(nb_ndim(NULL) == -1);
    KEEP(nb_item(NULL) != nb_item(NULL)); /* NAN */
    /* Out of range, wrong ranks, the wrong state. */
    int bad_axes[] = {2, -3, INT_MAX, INT_MIN};
    for (int i = 0; i < 4; i++)
        CASE("nb_dim", INV, nb_dim(f23, bad_axes[i]) == -1);
    CASE("nb_get", INV, isnan(nb_get(f23, NB_AT(2, 0))));
    CASE("nb_get", INV, isnan(nb_get(f23, NB_AT(0, -4))));
    CASE("nb_get", INV, isnan(nb_get(f23, NB_AT(0))));
    CASE("nb_get", INV, isnan(nb_get(f23, 2, NULL)));
    CASE("nb_get", INV, isnan(nb_get(f23, -1, NULL)));
    CASE("nb_get_flat", INV, isnan(nb_get_flat(f23, 6)));
    CASE("nb_get_flat", INV, isnan(nb_get_flat(f23, -1)));
    CASE("nb_get_flat", INV, isnan(nb_get_flat(f23, INT64_MIN)));
    CASE("nb_set", INV, nb_set(f23, NB_AT(0, 3), 1) == -1);
    CASE("nb_set", INV, nb_set(f23, NB_AT(0, 0, 0), 1) == -1);
    CASE("nb_set", INV, nb_set(bcast, NB_AT(0, 0), 1) == -1); /* elements share memory */
    CASE("nb_set", STA, nb_set(p23, NB_AT(0, 0), 1) == -1);   /* requires grad, recording */
    CASE("nb_item", SHP, isnan(nb_item(f23)));
    CASE("nb_item", SHP, isnan(nb_item(e03)));
    CASE("nb_to_doubles", INV, nb_to_doubles(f23, NULL) == -1);
    CASE("nb_print", INV, nb_print(f23, NULL) == -1);
    CASE("nb_set_requires_grad", INV, nb_set_requires_grad(nb_add(p23, p23), false) == NULL);
    CASE("nb_param", INV, nb_param(nb_add(p23, p23)) == NULL);
    /* Errors set by code built on nabla. */
    CASE("nb_set_error", INV, nb_set_error(NULL) == -1);
    CASE("my_fn", INV, nb_set_error_code((nb_error_code)99, "my_fn: bad") == -1);
    CASE("my_fn", INV, nb_set_error_code(NB_OK, "my_fn: bad") == -1);
    CASE("my_fn", SHP, nb_set_error_code(NB_ERR_SHAPE, "my_fn: bad") == -1);
    SECTION_END();
}

/* ---- ops ---- */

/* The inputs of an op, with the index of the one under test. */
typedef struct {
    const char *fn;
    nb_tensor *(*op)(nb_tensor *const x[]);
    int n;               /* inputs */
    nb_tensor **good[3]; /* a valid call's inputs */
} op_case;

#define OP1(name, call)                                                        \
    static nb_tensor *op_##name(nb_tensor *const x[]) { return call; }
#define OP2 OP1
OP1(neg, nb_neg(x[0]))
OP1(exp, nb_exp(x[0]))
OP1(log, nb_log(x[0]))
OP1(sqrt, nb_sqrt(x[0]))
OP1(abs, nb_abs(x[0]))
OP1(sign, nb_sign(x[0]))
OP1(tanh, nb_tanh(x[0]))
OP1(sigmoid, nb_sigmoid(x[0]))
OP1(erf, nb_erf(x[0]))
OP1(relu, nb_relu(x[0]))
OP1(square, nb_square(x[0]))
OP1(detach, nb_detach(x[0]))
OP1(contiguous, nb_contiguous(x[0]))
OP1(zeros_like, nb_zeros_like(x[0]))
OP1(ones_like, nb_ones_like(x[0]))
OP1(full_like, nb_full_like(x[0], 2))
OP1(scalar_like, nb_scalar_like(x[0], 2))
OP1(clamp, nb_clamp(x[0], -1, 1))
OP1(cast, nb_cast(x[0], NB_F64))
OP1(sum, nb_sum(x[0]))
OP1(max, nb_max(x[0]))
OP1(min, nb_min(x[0]))
OP1(mean, nb_mean(x[0]))
OP1(var, nb_var(x[0]))
OP1(logsumexp, nb_logsumexp(x[0]))
OP1(argmax, nb_argmax(x[0], 1))
OP1(softmax, nb_softmax(x[0], -1))
OP1(log_softmax, nb_log_softmax(x[0], -1))
OP1(reshape, nb_reshape(x[0], NB_SHAPE(3, 2)))
OP1(squeeze, nb_squeeze(x[0], 0))
OP1(unsqueeze, nb_unsqueeze(x[0], 0))
OP1(permute, nb_permute(x[0], 2, (const int[]){1, 0}))
OP1(transpose, nb_transpose(x[0], 0, 1))
OP1(broadcast_to, nb_broadcast_to(x[0], NB_SHAPE(2, 2, 3)))
OP1(sum_to, nb_sum_to(x[0], NB_SHAPE(3)))
OP1(slice, nb_slice(x[0], 1, 0, 2, 1))
OP1(one_hot, nb_one_hot(x[0], 3))
OP1(leaky_relu, nb_leaky_relu(x[0], 0.2))
OP1(elu, nb_elu(x[0], 1))
OP1(gelu, nb_gelu(x[0]))
OP1(softplus, nb_softplus(x[0]))
OP1(activate, nb_activate(x[0], NB_TANH))
OP2(add, nb_add(x[0], x[1]))
OP2(sub, nb_sub(x[0], x[1]))
OP2(mul, nb_mul(x[0], x[1]))
OP2(div, nb_div(x[0], x[1]))
OP2(pow, nb_pow(x[0], x[1]))
OP2(maximum, nb_maximum(x[0], x[1]))
OP2(minimum, nb_minimum(x[0], x[1]))
OP2(eq, nb_eq(x[0], x[1]))
OP2(ne, nb_ne(x[0], x[1]))
OP2(lt, nb_lt(x[0], x[1]))
OP2(le, nb_le(x[0], x[1]))
OP2(gt, nb_gt(x[0], x[1]))
OP2(ge, nb_ge(x[0], x[1]))
OP2(matmul, nb_matmul(x[0], x[1]))
OP2(slice_scatter, nb_slice_scatter(x[0], x[1], 0, 0, 1, 1))
OP2(index_select, nb_index_select(x[0], 1, x[1]))
OP2(concat, nb_concat(2, x, 0))
OP2(mse, nb_mse(x[0], x[1]))
OP2(mae, nb_mae(x[0], x[1]))
OP2(huber, nb_huber(x[0], x[1], 1))
OP2(bce, nb_binary_crossentropy(x[0], x[1]))
OP2(bce_logits, nb_binary_crossentropy_logits(x[0], x[1]))
OP2(cce, nb_categorical_crossentropy(x[0], x[1]))
OP2(cce_logits, nb_categorical_crossentropy_logits(x[0], x[1]))
OP2(scce, nb_sparse_categorical_crossentropy(x[0], x[1]))
OP2(scce_logits, nb_sparse_categorical_crossentropy_logits(x[0], x[1]))
OP2(cacc, nb_categorical_accuracy(x[0], x[1]))
OP2(sacc, nb_sparse_categorical_accuracy(x[0], x[1]))
OP1(where, nb_where(x[0], x[1], x[2]))
OP1(index_add, nb_index_add(x[0], 0, x[1], x[2]))


static const op_case op_cases[] = {
    {"nb_neg", op_neg, 1, {&f23}},
    {"nb_exp", op_exp, 1, {&f23}},
    {"nb_log", op_log, 1, {&f23}},
    {"nb_sqrt", op_sqrt, 1, {&f23}},
    {"nb_abs", op_abs, 1, {&f23}},
    {"nb_sign", op_sign, 1, {&f23}},
    {"nb_tanh", op_tanh, 1, {&f23}},
    {"nb_sigmoid", op_sigmoid, 1, {&f23}},
    {"nb_erf", op_erf, 1, {&f23}},
    {"nb_relu", op_relu, 1, {&f23}},
    {"nb_square", op_square, 1, {&f23}},
    {"nb_detach", op_detach, 1, {&f23}},
    {"nb_contiguous", op_contiguous, 1, {&f23}},
    {"nb_zeros_like", op_zeros_like, 1, {&f23}},
    {"nb_ones_like", op_ones_like, 1, {&f23}},
    {"nb_full_like", op_full_like, 1, {&f23}},
    {"nb_scalar_like", op_scalar_like, 1, {&f23}},
    {"nb_clamp", op_clamp, 1, {&f23}},
    {"nb_cast", op_cast, 1, {&f23}},
    {"nb_sum", op_sum, 1, {&f23}},
    {"nb_max", op_max, 1, {&f23}},
    {"nb_min", op_min, 1, {&f23}},
    {"nb_mean", op_mean, 1, {&f23}},
    {"nb_var", op_var, 1, {&f23}},
    {"nb_logsumexp", op_logsumexp, 1, {&f23}},
    {"nb_argmax", op_argmax, 1, {&f23}},
    {"nb_softmax", op_softmax, 1, {&f23}},
    {"nb_log_softmax", op_log_softmax, 1, {&f23}},
    {"nb_reshape", op_reshape, 1, {&f23}},
    {"nb_squeeze", op_squeeze, 1, {&f13}},
    {"nb_unsqueeze", op_unsqueeze, 1, {&f23}},
    {"nb_permute", op_permute, 1, {&f23}},
    {"nb_transpose", op_transpose, 1, {&f23}},
    {"nb_broadcast_to", op_broadcast_to, 1, {&f23}},
    {"nb_sum_to", op_sum_to, 1, {&f23}},
    {"nb_slice", op_slice, 1, {&f23}},
    {"nb_one_hot", op_one_hot, 1, {&lab01}},
    {"nb_leaky_relu", op_leaky_relu, 1, {&f23}},
    {"nb_elu", op_elu, 1, {&f23}},
    {"nb_gelu", op_gelu, 1, {&f23}},
    {"nb_softplus", op_softplus, 1, {&f23}},
    {"nb_activate", op_activate, 1, {&f23}},
    {"nb_add", op_add, 2, {&f23, &f23}},
    {"nb_sub", op_sub, 2, {&f23, &f23}},
    {"nb_mul", op_mul, 2, {&f23, &f23}},
    {"nb_div", op_div, 2, {&f23, &f23}},
    {"nb_pow", op_pow, 2, {&f23, &f23}},
    {"nb_maximum", op_maximum, 2, {&f23, &f23}},
    {"nb_minimum", op_minimum, 2, {&f23, &f23}},
    {"nb_eq", op_eq, 2, {&f23, &f23}},
    {"nb_ne", op_ne, 2, {&f23, &f23}},
    {"nb_lt", op_lt, 2, {&f23, &f23}},
    {"nb_le", op_le, 2, {&f23, &f23}},
    {"nb_gt", op_gt, 2, {&f23, &f23}},
    {"nb_ge", op_ge, 2, {&f23, &f23}},
    {"nb_matmul", op_matmul, 2, {&f23, &f32_}},
    {"nb_slice_scatter", op_slice_scatter, 2, {&f23, &f13}},
    {"nb_index_select", op_index_select, 2, {&f23, &idx01}},
    {"nb_concat", op_concat, 2, {&f23, &f23}},
    {"nb_mse", op_mse, 2, {&f23, &f23}},
    {"nb_mae", op_mae, 2, {&f23, &f23}},
    {"nb_huber", op_huber, 2, {&f23, &f23}},
    {"nb_binary_crossentropy", op_bce, 2, {&f23, &f23}},
    {"nb_binary_crossentropy_logits", op_bce_logits, 2, {&f23, &f23}},
    {"nb_categorical_crossentropy", op_cce, 2, {&f23, &f23}},
    {"nb_categorical_crossentropy_logits", op_cce_logits, 2, {&f23, &f23}},
    {"nb_sparse_categorical_crossentropy", op_scce, 2, {&f23, &lab01}},
    {"nb_sparse_categorical_crossentropy_logits", op_scce_logits, 2, {&f23, &lab01}},
    {"nb_categorical_accuracy", op_cacc, 2, {&f23, &f23}},
    {"nb_sparse_categorical_accuracy", op_sacc, 2, {&f23, &lab01}},
    {"nb_where", op_where, 3, {&f23, &f23, &f23}},
    {"nb_index_add", op_index_add, 3, {&f23, &idx01, &f23}},
};
#define NOPS (int)(sizeof op_cases / sizeof op_cases[0])

/* Every op, with each input in turn NULL (alone and after a first error),
 * of a reset graph, a view into a reset graph, freed, a view of a freed
 * tensor. */
static void test_ops_bad_inputs(void **state)
{
    (void)state;
    SECTION_BEGIN();
    for (int k = 0; k < NOPS; k++) {
        const op_case *c = &op_cases[k];
        for (int i = 0; i < c->n; i++) {
            nb_tensor *x[3];
            for (int j = 0; j < c->n; j++)
                x[j] = *c->good[j];
            /* Sanity: the good call works (not counted). */
            nb_clear_error();
            if (!c->op(x))
                fail_msg("%s: the valid call failed: %s", c->fn, nb_last_error());
            x[i] = NULL;
            CASE(c->fn, INV, c->op(x) == NULL);
            KEEP(c->op(x) == NULL);
            for (int b = 0; b < 4; b++) {
                x[i] = bad_tensors()[b];
                CASE(c->fn, STA, c->op(x) == NULL);
            }
        }
    }
    nb_clear_error();
    SECTION_END();
}

/* Binary and ternary ops with inputs that do not fit. */
static void test_ops_mismatches(void **state)
{
    (void)state;
    SECTION_BEGIN();
    const char *elementwise[] = {"nb_add", "nb_sub", "nb_mul", "nb_div", "nb_pow",
                                 "nb_maximum", "nb_minimum", "nb_eq", "nb_ne", "nb_lt",
                                 "nb_le", "nb_gt", "nb_ge"};
    for (int k = 0; k < NOPS; k++) {
        const op_case *c = &op_cases[k];
        bool ew = false;
        for (size_t e = 0; e < sizeof elementwise / sizeof *elementwise; e++)
            ew |= strcmp(c->fn, elementwise[e]) == 0;
        if (!ew)
            continue;
        CASE(c->fn, DTY, c->op((nb_tensor *[]){f23, d23}) == NULL);
        CASE(c->fn, DTY, c->op((nb_tensor *[]){d23, f23}) == NULL);
        CASE(c->fn, SHP, c->op((nb_tensor *[]){f23, f4}) == NULL);
        CASE(c->fn, SHP, c->op((nb_tensor *[]){f32_, f23}) == NULL);
        CASE(c->fn, SHP, c->op((nb_tensor *[]){e03, f23}) == NULL);
    }
    CASE("nb_where", SHP, nb_where(f23, f23, f4) == NULL);
    CASE("nb_where", SHP, nb_where(f4, f23, f23) == NULL);
    CASE("nb_where", DTY, nb_where(f23, d23, f23) == NULL);
    CASE("nb_where", DTY, nb_where(d23, f23, f23) == NULL);
    CASE("nb_matmul", SHP, nb_matmul(f23, f23) == NULL);
    CASE("nb_matmul", SHP, nb_matmul(f4, f4) == NULL);
    CASE("nb_matmul", SHP, nb_matmul(s0, f23) == NULL);
    CASE("nb_matmul", DTY, nb_matmul(f23, nb_cast(f32_, NB_F64)) == NULL);
    CASE("nb_matmul", SHP, nb_matmul(nb_ones_like(nb_broadcast_to(f23, NB_SHAPE(2, 2, 3))),
                                     nb_broadcast_to(f32_, NB_SHAPE(3, 3, 2))) == NULL);
    /* Losses: shapes, dtypes, class axes, labels. */
    const char *losses[] = {"nb_mse", "nb_mae", "nb_huber", "nb_binary_crossentropy",
                            "nb_binary_crossentropy_logits", "nb_categorical_crossentropy",
                            "nb_categorical_crossentropy_logits", "nb_categorical_accuracy"};
    for (int k = 0; k < NOPS; k++) {
        const op_case *c = &op_cases[k];
        bool loss = false;
        for (size_t e = 0; e < sizeof losses / sizeof *losses; e++)
            loss |= strcmp(c->fn, losses[e]) == 0;
        if (!loss)
            continue;
        CASE(c->fn, SHP, c->op((nb_tensor *[]){f23, f32_}) == NULL);
        CASE(c->fn, SHP, c->op((nb_tensor *[]){f23, f4}) == NULL);
        CASE(c->fn, DTY, c->op((nb_tensor *[]){f23, d23}) == NULL);
        CASE(c->fn, SHP, c->op((nb_tensor *[]){e03, e03}) == NULL); /* empty */
    }
    CASE("nb_categorical_crossentropy", SHP, nb_categorical_crossentropy(s0, s0) == NULL);
    CASE("nb_huber", INV, nb_huber(f23, f23, 0) == NULL);
    CASE("nb_huber", INV, nb_huber(f23, f23, -1) == NULL);
    CASE("nb_huber", INV, nb_huber(f23, f23, NAN) == NULL);
    CASE("nb_huber", INV, nb_huber(f23, f23, INFINITY) == NULL);
    const char *sparse[] = {"nb_sparse_categorical_crossentropy",
                            "nb_sparse_categorical_crossentropy_logits",
                            "nb_sparse_categorical_accuracy"};
    for (int k = 0; k < NOPS; k++) {
        const op_case *c = &op_cases[k];
        bool sp = false;
        for (size_t e = 0; e < 3; e++)
            sp |= strcmp(c->fn, sparse[e]) == 0;
        if (!sp)
            continue;
        CASE(c->fn, INV, c->op((nb_tensor *[]){f23, lab}) == NULL);  /* 5 of 3 classes */
        CASE(c->fn, INV, c->op((nb_tensor *[]){f23, frac}) == NULL); /* 0.5 */
        CASE(c->fn, SHP, c->op((nb_tensor *[]){f23, f4}) == NULL);
        CASE(c->fn, SHP, c->op((nb_tensor *[]){f23, f23}) == NULL);
        CASE(c->fn, SHP, c->op((nb_tensor *[]){s0, s0}) == NULL);
        CASE(c->fn, DTY, c->op((nb_tensor *[]){f23, lab64}) == NULL);
    }
    SECTION_END();
}

/* Axes out of range, shapes that cannot be, indices and labels. */
static void test_ops_arguments(void **state)
{
    (void)state;
    SECTION_BEGIN();
    const int bad_axes[] = {2, -3, INT_MAX, INT_MIN};
    for (int i = 0; i < 4; i++) {
        int a = bad_axes[i];
        CASE("nb_sum", INV, nb_sum(f23, .axes = NB_AXES(a)) == NULL);
        CASE("nb_max", INV, nb_max(f23, .axes = NB_AXES(a)) == NULL);
        CASE("nb_min", INV, nb_min(f23, .axes = NB_AXES(a)) == NULL);
        CASE("nb_mean", INV, nb_mean(f23, .axes = NB_AXES(0, a)) == NULL);
        CASE("nb_var", INV, nb_var(f23, .axes = NB_AXES(a)) == NULL);
        CASE("nb_logsumexp", INV, nb_logsumexp(f23, .axes = NB_AXES(a)) == NULL);
        CASE("nb_argmax", INV, nb_argmax(f23, a) == NULL);
        CASE("nb_softmax", INV, nb_softmax(f23, a) == NULL);
        CASE("nb_log_softmax", INV, nb_log_softmax(f23, a) == NULL);
        CASE("nb_squeeze", INV, nb_squeeze(f13, a) == NULL);
        CASE("nb_transpose", INV, nb_transpose(f23, a, 0) == NULL);
        CASE("nb_transpose", INV, nb_transpose(f23, 0, a) == NULL);
        CASE("nb_slice", INV, nb_slice(f23, a, 0, 1, 1) == NULL);
        CASE("nb_slice_scatter", INV, nb_slice_scatter(f23, f13, a, 0, 1, 1) == NULL);
        CASE("nb_concat", INV, nb_concat(2, (nb_tensor *[]){f23, f23}, a) == NULL);
        CASE("nb_index_select", INV, nb_index_select(f23, a, idx01) == NULL);
        CASE("nb_index_add", INV, nb_index_add(f23, a, idx01, f23) == NULL);
    }
    const int bad_inserts[] = {3, -4, INT_MAX, INT_MIN};
    for (int i = 0; i < 4; i++)
        CASE("nb_unsqueeze", INV, nb_unsqueeze(f23, bad_inserts[i]) == NULL);
    CASE("nb_unsqueeze", INV, nb_unsqueeze(f8d, 0) == NULL); /* already 8-D */
    const nb_axes bad_sets[] = {NB_AXES(0, 0), NB_AXES(1, -1), {.n = 9}, {.n = -1},
                                {.n = INT_MAX}};
    for (int i = 0; i < 5; i++) {
        CASE("nb_sum", INV, nb_sum(f23, .axes = bad_sets[i]) == NULL);
        CASE("nb_max", INV, nb_max(f23, .axes = bad_sets[i]) == NULL);
        CASE("nb_mean", INV, nb_mean(f23, .axes = bad_sets[i]) == NULL);
        CASE("nb_var", INV, nb_var(f23, .axes = bad_sets[i]) == NULL);
        CASE("nb_min", INV, nb_min(f23, .axes = bad_sets[i]) == NULL);
        CASE("nb_logsumexp", INV, nb_logsumexp(f23, .axes = bad_sets[i]) == NULL);
    }
    CASE("nb_max", SHP, nb_max(e03, .axes = NB_AXES(0)) == NULL);
    CASE("nb_min", SHP, nb_min(e03, .axes = NB_AXES(0)) == NULL);
    CASE("nb_argmax", SHP, nb_argmax(e03, 0) == NULL);
    CASE("nb_squeeze", SHP, nb_squeeze(f23, 1) == NULL);
    CASE("nb_activate", SHP, nb_activate(s0, NB_SOFTMAX) == NULL);
    CASE("nb_activate", INV, nb_activate(f23, (nb_activation)99) == NULL);
    CASE("nb_activate", INV, nb_activate(f23, (nb_activation)-1) == NULL);
    CASE("nb_leaky_relu", INV, nb_leaky_relu(f23, NAN) == NULL);
    CASE("nb_elu", INV, nb_elu(f23, INFINITY) == NULL);
    CASE("nb_clamp", INV, nb_clamp(f23, 1, 0) == NULL);
    for (int i = 0; i < 3; i++)
        CASE("nb_cast", DTY, nb_cast(f23, bad_dtypes[i]) == NULL);
    /* Shapes given as arguments: reshape, broadcast_to, sum_to. */
    for (int i = 0; i < NBAD; i++) {
        const bad_shape *b = &bad_shapes[i];
        CASE("nb_reshape", b->code, nb_reshape(f23, b->ndim, b->dims) == NULL);
        CASE("nb_broadcast_to", b->code, nb_broadcast_to(s0, b->ndim, b->dims) == NULL);
        CASE("nb_sum_to", b->code, nb_sum_to(f23, b->ndim, b->dims) == NULL);
    }
    CASE("nb_reshape", SHP, nb_reshape(f23, NB_SHAPE(4, 2)) == NULL);
    CASE("nb_reshape", SHP, nb_reshape(f23, NB_SHAPE(-1, -1)) == NULL);
    CASE("nb_reshape", SHP, nb_reshape(f23, NB_SHAPE(-1, 4)) == NULL);
    CASE("nb_reshape", SHP, nb_reshape(f23, NB_SHAPE(-2, 3)) == NULL);
    CASE("nb_reshape", SHP, nb_reshape(f23, NB_SHAPE(-1, 0)) == NULL);
    CASE("nb_reshape", SHP, nb_reshape(f23, NB_SHAPE(-1, 6148914691236517206, 3)) == NULL);
    CASE("nb_broadcast_to", SHP, nb_broadcast_to(f23, NB_SHAPE(3, 3)) == NULL);
    CASE("nb_broadcast_to", SHP, nb_broadcast_to(f23, NB_SHAPE(3)) == NULL);
    CASE("nb_sum_to", SHP, nb_sum_to(f23, NB_SHAPE(4)) == NULL);
    CASE("nb_sum_to", SHP, nb_sum_to(f23, NB_SHAPE(2, 2, 3)) == NULL);
    CASE("nb_permute", INV, nb_permute(f23, 2, NULL) == NULL);
    CASE("nb_permute", INV, nb_permute(f23, 1, (const int[]){0}) == NULL);
    CASE("nb_permute", INV, nb_permute(f23, -1, (const int[]){0}) == NULL);
    CASE("nb_permute", INV, nb_permute(f23, 9, (const int[]){0, 1, 2, 3, 4, 5, 6, 7, 8}) == NULL);
    CASE("nb_permute", INV, nb_permute(f23, 2, (const int[]){0, 0}) == NULL);
    CASE("nb_permute", INV, nb_permute(f23, 2, (const int[]){0, 2}) == NULL);
    CASE("nb_permute", INV, nb_permute(f23, 2, (const int[]){INT_MIN, 1}) == NULL);
    CASE("nb_slice", INV, nb_slice(f23, 0, 0, 1, 0) == NULL);
    CASE("nb_slice", INV, nb_slice(f23, 0, 0, 1, INT64_MIN) == NULL);
    CASE("nb_slice_scatter", INV, nb_slice_scatter(f23, f13, 0, 0, 1, 0) == NULL);
    CASE("nb_slice_scatter", SHP, nb_slice_scatter(f23, f23, 0, 0, 1, 1) == NULL);
    CASE("nb_slice_scatter", SHP, nb_slice_scatter(f23, f4, 0, 0, 1, 1) == NULL);
    CASE("nb_slice_scatter", DTY, nb_slice_scatter(d23, f13, 0, 0, 1, 1) == NULL);
    /* concat */
    CASE("nb_concat", INV, nb_concat(0, (nb_tensor *[]){f23}, 0) == NULL);
    CASE("nb_concat", INV, nb_concat(-1, (nb_tensor *[]){f23}, 0) == NULL);
    CASE("nb_concat", INV, nb_concat(2, NULL, 0) == NULL);
    CASE("nb_concat", DTY, nb_concat(2, (nb_tensor *[]){f23, d23}, 0) == NULL);
    CASE("nb_concat", SHP, nb_concat(2, (nb_tensor *[]){f23, f4}, 0) == NULL);
    CASE("nb_concat", SHP, nb_concat(2, (nb_tensor *[]){f23, f32_}, 0) == NULL);
    CASE("nb_concat", SHP, nb_concat(2, (nb_tensor *[]){f23, s0}, 0) == NULL);
    nb_tensor *many[12] = {f23, f23, f23, f23, f23, f23, f23, f23, f23, f23, f23, NULL};
    CASE("nb_concat", INV, nb_concat(12, many, 0) == NULL);
    many[11] = stale;
    CASE("nb_concat", STA, nb_concat(12, many, 0) == NULL);
    many[11] = d23;
    CASE("nb_concat", DTY, nb_concat(12, many, 0) == NULL);
    /* Indices and labels. */
    nb_tensor *neg = nb_from_array(NB_F32, NB_SHAPE(1), (float[]){-1});
    nb_tensor *nan = nb_from_array(NB_F32, NB_SHAPE(1), (float[]){NAN});
    CASE("nb_index_select", INV, nb_index_select(f23, 1, lab) == NULL);
    CASE("nb_index_select", INV, nb_index_select(f23, 1, neg) == NULL);
    CASE("nb_index_select", INV, nb_index_select(f23, 1, nan) == NULL);
    CASE("nb_index_select", INV, nb_index_select(f23, 1, frac) == NULL);
    CASE("nb_index_select", DTY, nb_index_select(f23, 1, lab64) == NULL);
    CASE("nb_index_select", SHP, nb_index_select(f23, 1, idx2d) == NULL);
    CASE("nb_index_add", INV, nb_index_add(f23, 1, lab, f23) == NULL);
    CASE("nb_index_add", INV, nb_index_add(f23, 0, neg, f13) == NULL);
    CASE("nb_index_add", SHP, nb_index_add(f23, 0, idx01, f13) == NULL);
    CASE("nb_index_add", DTY, nb_index_add(f23, 0, idx01, d23) == NULL);
    CASE("nb_index_add", DTY, nb_index_add(f23, 0, lab64, f23) == NULL);
    CASE("nb_one_hot", INV, nb_one_hot(lab, 3) == NULL);
    CASE("nb_one_hot", INV, nb_one_hot(neg, 3) == NULL);
    CASE("nb_one_hot", INV, nb_one_hot(nan, 3) == NULL);
    CASE("nb_one_hot", INV, nb_one_hot(frac, 3) == NULL);
    CASE("nb_one_hot", INV, nb_one_hot(idx01, 0) == NULL);
    CASE("nb_one_hot", INV, nb_one_hot(idx01, -5) == NULL);
    CASE("nb_one_hot", INV, nb_one_hot(idx01, INT64_MIN) == NULL);
    CASE("nb_one_hot", SHP, nb_one_hot(idx01, (int64_t)1 << 62) == NULL);
    CASE("nb_one_hot", SHP, nb_one_hot(idx01, INT64_MAX) == NULL);
    CASE("nb_one_hot", SHP, nb_one_hot(f8d, 2) == NULL);
    nb_free(neg);
    nb_free(nan);
    /* In-place writes. */
    CASE("nb_assign", INV, nb_assign(NULL, f23) == -1);
    CASE("nb_assign", INV, nb_assign(f23, NULL) == -1);
    KEEP(nb_assign(NULL, f23) == -1);
    CASE("nb_assign", DTY, nb_assign(f23, d23) == -1);
    CASE("nb_assign", SHP, nb_assign(f23, f4) == -1);
    CASE("nb_assign", SHP, nb_assign(f4, f23) == -1);
    CASE("nb_assign", STA, nb_assign(p23, f23) == -1); /* requires grad, recording */
    CASE("nb_assign", INV, nb_assign(bcast, f4) == -1);  /* elements share memory */
    for (int b = 0; b < 4; b++) {
        CASE("nb_assign", STA, nb_assign(bad_tensors()[b], f23) == -1);
        CASE("nb_assign", STA, nb_assign(f23, bad_tensors()[b]) == -1);
    }
    SECTION_END();
}

/* ---- user ops through nb_apply ---- */

NB_UNARY_KERNELS(copy, u)
typedef struct {
    int ndim;
    int64_t dims[NB_MAX_DIMS + 2];
    nb_dtype dtype;
    bool view;
    int64_t offset;
} rule_attr;
static int rule_shape(nb_meta *out, nb_tensor *const x[], int n, const void *attr)
{
    (void)x, (void)n;
    const rule_attr *a = attr;
    out->dtype = a->dtype;
    out->ndim = a->ndim;
    for (int i = 0; i < a->ndim && i < NB_MAX_DIMS; i++)
        out->shape[i] = a->dims[i];
    out->view = a->view;
    out->offset = a->offset;
    for (int i = 0; i < NB_MAX_DIMS; i++)
        out->strides[i] = 1;
    return 0;
}
static const nb_op urule = {.name = "urule", .arity = 1, .attr_size = sizeof(rule_attr),
                            .shape = rule_shape, .forward = NB_KERNELS(copy),
                            .no_gradient = true};
static const nb_op f64only = {.name = "f64only", .arity = 1, .shape = nb_shape_same,
                              .forward = {[NB_F64] = copy_f64}, .no_gradient = true};
static const nb_op nograd = {.name = "nograd", .arity = 1, .shape = nb_shape_same,
                             .forward = NB_KERNELS(copy)};
static const nb_op pair = {.name = "pair", .arity = 2, .shape = nb_shape_broadcast,
                           .forward = NB_KERNELS(copy), .no_gradient = true};
static int rule_says(nb_meta *out, nb_tensor *const x[], int n, const void *attr)
{
    (void)out, (void)x, (void)n, (void)attr;
    return nb_set_error("my message"); /* named after the op by the engine */
}
static const nb_op says = {.name = "says", .arity = 1, .shape = rule_says,
                           .forward = NB_KERNELS(copy), .no_gradient = true};
static const nb_op noname = {.arity = 1, .shape = nb_shape_same};
static const nb_op norule = {.name = "norule", .arity = 1};

static void test_apply(void **state)
{
    (void)state;
    SECTION_BEGIN();
    nb_tensor *x[] = {f23, f23, f23};
    CASE("nb_apply", INV, nb_apply(NULL, x, 1, NULL) == NULL);
    CASE("nb_apply", INV, nb_apply(&noname, x, 1, NULL) == NULL);
    CASE("nb_apply", INV, nb_apply(&norule, x, 1, NULL) == NULL);
    CASE("f64only", INV, nb_apply(&f64only, x, 2, NULL) == NULL);
    CASE("f64only", INV, nb_apply(&f64only, x, 0, NULL) == NULL);
    CASE("f64only", INV, nb_apply(&f64only, x, -1, NULL) == NULL);
    CASE("f64only", INV, nb_apply(&f64only, NULL, 1, NULL) == NULL);
    CASE("f64only", DTY, nb_apply(&f64only, x, 1, NULL) == NULL);
    CASE("urule", INV, nb_apply(&urule, x, 1, NULL) == NULL); /* attributes NULL */
    nb_tensor *p = p23;
    CASE("nograd", INV, nb_apply(&nograd, &p, 1, NULL) == NULL); /* backward not implemented */
    CASE("says", INV, nb_apply(&says, x, 1, NULL) == NULL);
    CASE("pair", SHP, nb_apply(&pair, (nb_tensor *[]){f23, f4}, 2, NULL) == NULL);
    CASE("pair", DTY, nb_apply(&pair, (nb_tensor *[]){f23, d23}, 2, NULL) == NULL);
    CASE("pair", INV, nb_apply(&pair, (nb_tensor *[]){f23, NULL}, 2, NULL) == NULL);
    for (int b = 0; b < 4; b++)
        CASE("pair", STA, nb_apply(&pair, (nb_tensor *[]){f23, bad_tensors()[b]}, 2, NULL) == NULL);
    /* What a user's shape rule may give, checked like any op's output. */
    for (int i = 0; i < NBAD; i++) {
        const bad_shape *b = &bad_shapes[i];
        if (!b->dims || b->ndim > NB_MAX_DIMS + 1)
            continue;
        rule_attr a = {.ndim = b->ndim, .dtype = NB_F32};
        for (int k = 0; k < b->ndim; k++)
            a.dims[k] = b->dims[k];
        CASE("urule", SHP, nb_apply(&urule, x, 1, &a) == NULL);
    }
    for (int i = 0; i < 3; i++) {
        rule_attr a = {.ndim = 1, .dims = {2}, .dtype = bad_dtypes[i]};
        CASE("urule", DTY, nb_apply(&urule, x, 1, &a) == NULL);
    }
    rule_attr huge = {.ndim = 3, .dims = {1 << 21, 1 << 21, 1 << 21}, .dtype = NB_F32};
    CASE("urule", SHP, nb_apply(&urule, x, 1, &huge) == NULL);
    rule_attr wild = {.ndim = 2, .dims = {2, 3}, .dtype = NB_F32, .view = true, .offset = 4};
    CASE("urule", SHP, nb_apply(&urule, x, 1, &wild) == NULL); /* outside the storage */
    rule_attr neg = {.ndim = 1, .dims = {2}, .dtype = NB_F32, .view = true, .offset = -1};
    CASE("urule", SHP, nb_apply(&urule, x, 1, &neg) == NULL);
    rule_attr other = {.ndim = 1, .dims = {2}, .dtype = NB_F64, .view = true};
    CASE("urule", DTY, nb_apply(&urule, x, 1, &other) == NULL); /* a view keeps the dtype */
    CASE("myop", INV, nb_op_error(&(nb_op){.name = "myop"}, "bad %d", 1) == -1);
    /* The common shape rules, called directly. */
    nb_meta m;
    CASE("nb_shape_same", INV, nb_shape_same(NULL, x, 1, NULL) == -1);
    CASE("nb_shape_same", INV, nb_shape_same(&m, NULL, 1, NULL) == -1);
    CASE("nb_shape_same", INV, nb_shape_same(&m, x, 0, NULL) == -1);
    CASE("nb_shape_same", INV, nb_shape_same(&m, (nb_tensor *[]){NULL}, 1, NULL) == -1);
    CASE("nb_shape_broadcast", INV, nb_shape_broadcast(NULL, x, 2, NULL) == -1);
    CASE("nb_shape_broadcast", INV, nb_shape_broadcast(&m, NULL, 2, NULL) == -1);
    CASE("nb_shape_broadcast", INV, nb_shape_broadcast(&m, x, -1, NULL) == -1);
    CASE("nb_shape_broadcast", INV, nb_shape_broadcast(&m, (nb_tensor *[]){f23, NULL}, 2,
                                                       NULL) == -1);
    CASE("nb_shape_broadcast", SHP, nb_shape_broadcast(&m, (nb_tensor *[]){f23, f4}, 2,
                                                       NULL) == -1);
    CASE("nb_shape_broadcast", DTY, nb_shape_broadcast(&m, (nb_tensor *[]){f23, d23}, 2,
                                                       NULL) == -1);
    SECTION_END();
}

/* ---- autograd ---- */

static void test_autograd(void **state)
{
    (void)state;
    SECTION_BEGIN();
    nb_tensor *y = nb_sum(nb_mul(p23, p23));
    nb_tensor *v = nb_mul(p23, p23); /* not a scalar */
    nb_tensor *gr[2];
    CASE("nb_backward", INV, nb_backward(NULL) == -1);
    KEEP(nb_backward(NULL) == -1);
    CASE("nb_backward", INV, nb_backward(nb_sum(f23)) == -1); /* needs no grad */
    CASE("nb_backward", SHP, nb_backward(v) == -1);           /* no seed */
    CASE("nb_backward", SHP, nb_backward(v, .seed = f4) == -1);
    CASE("nb_backward", DTY, nb_backward(v, .seed = d23) == -1);
    CASE("nb_backward", DTY, nb_backward(y, .seed = nb_scalar_like(d23, 1)) == -1);
    for (int b = 0; b < 4; b++) {
        CASE("nb_backward", STA, nb_backward(bad_tensors()[b]) == -1);
        CASE("nb_backward", STA, nb_backward(v, .seed = bad_tensors()[b]) == -1);
    }
    CASE("nb_grad", INV, nb_grad(NULL, .n = 1, .inputs = &p23, .grads = gr) == -1);
    KEEP(nb_grad(NULL, .n = 1, .inputs = &p23, .grads = gr) == -1);
    CASE("nb_grad", INV, nb_grad(y, .n = 0, .inputs = &p23, .grads = gr) == -1);
    CASE("nb_grad", INV, nb_grad(y, .n = -1, .inputs = &p23, .grads = gr) == -1);
    CASE("nb_grad", INV, nb_grad(y, .n = 1, .inputs = NULL, .grads = gr) == -1);
    CASE("nb_grad", INV, nb_grad(y, .n = 1, .inputs = &p23, .grads = NULL) == -1);
    CASE("nb_grad", INV, nb_grad(y, .n = 2, .inputs = (nb_tensor *[]){p23, NULL}, .grads = gr) == -1);
    CASE("nb_grad", INV, nb_grad(y, .n = 1, .inputs = &f23, .grads = gr) == -1);
    nb_tensor *q = nb_param(nb_ones(NB_F32, NB_SHAPE(2)));
    CASE("nb_grad", INV, nb_grad(y, .n = 1, .inputs = &q, .grads = gr) == -1); /* unused */
    CASE("nb_grad", SHP, nb_grad(v, .n = 1, .inputs = &p23, .grads = gr) == -1);
    for (int b = 0; b < 4; b++) {
        CASE("nb_grad", STA, nb_grad(bad_tensors()[b], .n = 1, .inputs = &p23, .grads = gr) == -1);
        CASE("nb_grad", STA, nb_grad(y, .n = 1, .inputs = &bad_tensors()[b], .grads = gr) == -1);
    }
    nb_free(q);
    /* Backward twice without retain_graph: the graph was released. */
    nb_tensor *once = nb_sum(nb_exp(p23));
    assert_int_equal(nb_backward(once), 0);
    CASE("nb_backward", STA, nb_backward(once) == -1);
    CASE("nb_grad", STA, nb_grad(once, .n = 1, .inputs = &p23, .grads = gr) == -1);
    nb_zero_grad(p23);
    /* Scopes. */
    CASE("nb_scope_push", INV, nb_scope_push(NULL) == -1);
    CASE("nb_scope_push", INV, nb_scope_push("") == -1);
    int pushed = 0;
    while (pushed < 40 && nb_scope_push("s") == 0)
        pushed++;
    CASE("nb_scope_push", STA, nb_scope_push("deep") == -1);
    while (pushed--)
        nb_scope_pop();
    /* Graph handles that are no longer graphs. */
    nb_graph *dead = nb_graph_new();
    nb_graph_free(dead);
    CASE("nb_graph_reset", STA, (nb_graph_reset(dead), true));
    CASE("nb_graph_free", STA, (nb_graph_free(dead), true));
    CASE("nb_graph_nodes", STA, nb_graph_nodes(dead) == 0);
    CASE("nb_graph_bytes", STA, nb_graph_bytes(dead) == 0);
    CASE("nb_graph_generation", STA, nb_graph_generation(dead) == 0);
    int on_stack;
    nb_graph *never = (nb_graph *)&on_stack;
    CASE("nb_graph_reset", STA, (nb_graph_reset(never), true));
    CASE("nb_graph_free", STA, (nb_graph_free(never), true));
    CASE("nb_kernel_scratch", MEM, nb_kernel_scratch(SIZE_MAX) == NULL);
    CASE("nb_kernel_scratch", MEM, nb_kernel_scratch(SIZE_MAX - 100) == NULL);
    SECTION_END();
}

/* ---- memory ---- */

static void test_memory(void **state)
{
    (void)state;
    SECTION_BEGIN();
    CASE("nb_set_allocator", INV, nb_set_allocator(&(nb_allocator){count_alloc, NULL, NULL}) == -1);
    CASE("nb_set_allocator", INV, nb_set_allocator(&(nb_allocator){NULL, count_free, NULL}) == -1);
    CASE("nb_mem_alloc", MEM, nb_mem_alloc(SIZE_MAX) == NULL);
    CASE("nb_mem_alloc", MEM, nb_mem_alloc((size_t)1 << 60) == NULL);
    /* Out of memory for small requests: every allocation fails. */
    nb_graph *fresh = nb_graph_new(); /* no chunk yet: its first op allocates */
    alloc_budget = 0;
    nb_set_allocator(&failing_allocator);
    CASE("nb_zeros", MEM, nb_zeros(NB_F32, NB_SHAPE(2)) == NULL);
    CASE("nb_from_array", MEM, nb_from_array(NB_F32, NB_SHAPE(1), (float[]){1}) == NULL);
    CASE("nb_clone", MEM, nb_clone(f23) == NULL);
    CASE("nb_arange", MEM, nb_arange(NB_F32, 0, 4, 1) == NULL);
    CASE("nb_mem_alloc", MEM, nb_mem_alloc(16) == NULL);
    CASE("nb_graph_new", MEM, nb_graph_new() == NULL);
    CASE("nb_add", MEM, nb_add(f23, f23) == NULL);
    CASE("nb_reshape", MEM, nb_reshape(f23, NB_SHAPE(6)) == NULL);
    CASE("nb_softmax", MEM, nb_softmax(f23, 1) == NULL);
    CASE("nb_mean", MEM, nb_mean(f23) == NULL);
    CASE("nb_mse", MEM, nb_mse(f23, f23) == NULL);
    CASE("nb_gelu", MEM, nb_gelu(f23) == NULL);
    CASE("nb_kernel_scratch", MEM, nb_kernel_scratch(64) == NULL);
    CASE("nb_scope_push", MEM, nb_scope_push("layer") == -1);
    CASE("nb_dot_string", MEM, nb_dot_string(f23, NULL) == NULL);
    CASE("nb_dense", MEM, nb_dense(3) == NULL);
    CASE("nb_sgd", MEM, nb_sgd() == NULL);
    nb_set_allocator(NULL);
    nb_graph_free(fresh);
    SECTION_END();
}

/* ---- pictures ---- */

static void test_dot(void **state)
{
    (void)state;
    SECTION_BEGIN();
    nb_tensor *y = nb_add(f23, f23);
    CASE("nb_dot_string", INV, nb_dot_string(NULL, NULL) == NULL);
    KEEP(nb_dot_string(NULL, NULL) == NULL);
    CASE("nb_dot_write", INV, nb_dot_write(NULL, "/tmp/x.dot", NULL) == -1);
    CASE("nb_dot_write", INV, nb_dot_write(y, NULL, NULL) == -1);
    CASE("nb_dot_write", IOE, nb_dot_write(y, "/nonexistent-dir/x.dot", NULL) == -1);
    CASE("nb_dot_render", INV, nb_dot_render(y, NULL, NULL) == -1);
    CASE("nb_dot_render", INV, nb_dot_render(y, "/tmp/x.gif", NULL) == -1);
    CASE("nb_dot_render", INV, nb_dot_render(NULL, "/tmp/x.svg", NULL) == -1);
    for (int b = 0; b < 4; b++) {
        CASE("nb_dot_string", STA, nb_dot_string(bad_tensors()[b], NULL) == NULL);
        CASE("nb_dot_write", STA, nb_dot_write(bad_tensors()[b], "/tmp/x.dot", NULL) == -1);
        CASE("nb_dot_render", STA, nb_dot_render(bad_tensors()[b], "/tmp/x.svg", NULL) == -1);
    }
    SECTION_END();
}

/* ---- files ---- */

static char dir[64], garbage[96], missing[96];

static void test_io(void **state)
{
    (void)state;
    SECTION_BEGIN();
    snprintf(dir, sizeof dir, "/tmp/nb_bad_args_XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(garbage, sizeof garbage, "%s/garbage", dir);
    snprintf(missing, sizeof missing, "%s/missing", dir);
    FILE *f = fopen(garbage, "wb");
    assert_non_null(f);
    fputs("this is not a file of tensors\n1,2,x\n", f);
    fclose(f);
    nb_tensor *a, *b, *c, *d, *out[4];
    CASE("nb_read_idx", INV, nb_read_idx(NULL) == NULL);
    CASE("nb_read_idx", IOE, nb_read_idx(missing) == NULL);
    CASE("nb_read_idx", FMT, nb_read_idx(garbage) == NULL);
    CASE("nb_load_mnist", INV, nb_load_mnist(NULL, &a, &b, &c, &d) == -1);
    CASE("nb_load_mnist", INV, nb_load_mnist(dir, NULL, &b, &c, &d) == -1);
    CASE("nb_load_mnist", INV, nb_load_mnist(dir, &a, &b, &c, NULL) == -1);
    CASE("nb_load_mnist", IOE, nb_load_mnist(dir, &a, &b, &c, &d) == -1);
    CASE("nb_read_csv", INV, nb_read_csv(NULL, 0, &a, &b) == -1);
    CASE("nb_read_csv", INV, nb_read_csv(garbage, 0, NULL, &b) == -1);
    CASE("nb_read_csv", INV, nb_read_csv(garbage, 0, &a, NULL) == -1);
    CASE("nb_read_csv", IOE, nb_read_csv(missing, 0, &a, &b) == -1);
    CASE("nb_read_csv", FMT, nb_read_csv(garbage, 0, &a, &b) == -1);
    CASE("nb_scale_images", INV, nb_scale_images(NULL) == NULL);
    CASE("nb_scale_images", SHP, nb_scale_images(f23) == NULL);
    CASE("nb_to_one_hot", INV, nb_to_one_hot(NULL, 3) == NULL);
    CASE("nb_to_one_hot", SHP, nb_to_one_hot(f23, 3) == NULL);
    CASE("nb_to_one_hot", INV, nb_to_one_hot(lab, 3) == NULL);
    CASE("nb_to_one_hot", INV, nb_to_one_hot(frac, 3) == NULL);
    CASE("nb_to_one_hot", INV, nb_to_one_hot(lab, 0) == NULL);
    char path[128];
    snprintf(path, sizeof path, "%s/t.safetensors", dir);
    nb_tensor *named = nb_set_name(nb_ones(NB_F32, NB_SHAPE(2)), "w");
    nb_tensor *other = nb_set_name(nb_ones(NB_F32, NB_SHAPE(3)), "w");
    CASE("nb_save_safetensors", INV, nb_save_safetensors(NULL, 1, &named) == -1);
    CASE("nb_save_safetensors", INV, nb_save_safetensors(path, -1, &named) == -1);
    CASE("nb_save_safetensors", INV, nb_save_safetensors(path, 1, NULL) == -1);
    CASE("nb_save_safetensors", INV, nb_save_safetensors(path, 1, (nb_tensor *[]){NULL}) == -1);
    CASE("nb_save_safetensors", INV, nb_save_safetensors(path, 1, &f23) == -1); /* no name */
    CASE("nb_save_safetensors", INV, nb_save_safetensors(path, 2, (nb_tensor *[]){named, other}) == -1);
    CASE("nb_save_safetensors", IOE, nb_save_safetensors("/nonexistent-dir/t.st", 1, &named) == -1);
    assert_int_equal(nb_save_safetensors(path, 1, &named), 0);
    CASE("nb_load_safetensors", INV, nb_load_safetensors(NULL, 1, &named) == -1);
    CASE("nb_load_safetensors", INV, nb_load_safetensors(path, -1, &named) == -1);
    CASE("nb_load_safetensors", INV, nb_load_safetensors(path, 1, NULL) == -1);
    CASE("nb_load_safetensors", INV, nb_load_safetensors(path, 1, (nb_tensor *[]){NULL}) == -1);
    CASE("nb_load_safetensors", IOE, nb_load_safetensors(missing, 1, &named) == -1);
    CASE("nb_load_safetensors", FMT, nb_load_safetensors(garbage, 1, &named) == -1);
    CASE("nb_load_safetensors", SHP, nb_load_safetensors(path, 1, &other) == -1);
    nb_tensor *unknown = nb_set_name(nb_ones(NB_F32, NB_SHAPE(2)), "v");
    CASE("nb_load_safetensors", FMT, nb_load_safetensors(path, 1, &unknown) == -1);
    (void)out;
    nb_free(named);
    nb_free(other);
    nb_free(unknown);
    remove(path);
    remove(garbage);
    rmdir(dir);
    SECTION_END();
}

/* ---- models, optimizers ---- */

static double lossv, metricv;

static void test_nn(void **state)
{
    (void)state;
    SECTION_BEGIN();
    CASE("nb_dense", INV, nb_dense(0) == NULL);
    CASE("nb_dense", INV, nb_dense(-1) == NULL);
    CASE("nb_dense", INV, nb_dense(3, .input = -1) == NULL);
    CASE("nb_dense", INV, nb_dense(3, .activation = (nb_activation)99) == NULL);
    CASE("nb_dense", INV, nb_dense(3, .activation = (nb_activation)-1) == NULL);
    CASE("nb_dense", INV, nb_dense(3, .name = "") == NULL);
    CASE("nb_dense", INV, nb_dense(3, .name = "a name far longer than thirty-one bytes") == NULL);
    CASE("nb_activation_from_name", INV, nb_activation_from_name(NULL) == -1);
    CASE("nb_activation_from_name", INV, nb_activation_from_name("nope") == -1);
    CASE("nb_activation_name", INV, nb_activation_name((nb_activation)99) == NULL);
    CASE("nb_activation_name", INV, nb_activation_name((nb_activation)-1) == NULL);
    CASE("nb_sequential", INV, nb_sequential_(-1, NULL) == NULL);
    CASE("nb_sequential", INV, nb_sequential_(1, NULL) == NULL);
    CASE("nb_sequential", INV, nb_sequential_(2, (nb_layer *[]){nb_dense(2), NULL}) == NULL);
    CASE("nb_dense", INV, nb_sequential(nb_dense(0)) == NULL); /* the first error kept */
    CASE("nb_sequential", SHP, nb_sequential(nb_dense(4, .input = 2), nb_dense(3, .input = 5)) == NULL);
    CASE("nb_sequential", INV, nb_sequential(nb_dense(4, .name = "a"), nb_dense(3, .name = "a")) == NULL);
    nb_model *m = nb_sequential(nb_dense(3, .input = 4));
    nb_model *empty = nb_sequential_(0, NULL);
    nb_model *unbuilt = nb_sequential(nb_dense(3));
    nb_model *dead = nb_sequential(nb_dense(3));
    nb_model_free(dead);
    assert_non_null(m);
    assert_non_null(empty);
    nb_layer *l = nb_dense(2);
    CASE("nb_model_add", INV, nb_model_add(NULL, nb_dense(2)) == -1);
    CASE("nb_model_add", INV, nb_model_add(m, NULL) == -1);
    KEEP(nb_model_add(m, NULL) == -1);
    CASE("nb_model_add", STA, nb_model_add(dead, nb_dense(2)) == -1);
    assert_int_equal(nb_model_add(unbuilt, l), 0);
    CASE("nb_model_add", STA, nb_model_add(unbuilt, l) == -1);
    CASE("nb_model_add", STA, nb_model_add(empty, l) == -1);
    CASE("nb_layer_free", STA, (nb_layer_free(l), true));
    CASE("nb_model_free", STA, (nb_model_free(dead), true));
    CASE("nb_build", INV, nb_build(NULL, 4, 0) == -1);
    CASE("nb_build", STA, nb_build(empty, 4, 0) == -1);
    CASE("nb_build", INV, nb_build(unbuilt, 0, 0) == -1);
    CASE("nb_build", INV, nb_build(unbuilt, -4, 0) == -1);
    CASE("nb_build", SHP, nb_build(m, 5, 0) == -1);
    CASE("nb_build", STA, nb_build(dead, 4, 0) == -1);
    CASE("nb_model_set_dtype", INV, nb_model_set_dtype(NULL, NB_F64) == -1);
    CASE("nb_model_set_dtype", STA, nb_model_set_dtype(unbuilt, NB_F64) == -1);
    for (int i = 0; i < 3; i++)
        CASE("nb_model_set_dtype", DTY, nb_model_set_dtype(m, bad_dtypes[i]) == -1);
    /* Before compile (and before build). */
    nb_tensor *x = nb_ones(NB_F32, NB_SHAPE(5, 4)), *yy = nb_zeros(NB_F32, NB_SHAPE(5, 3));
    CASE("nb_fit", STA, nb_fit(m, (nb_dataset){x, yy}) == NULL);
    CASE("nb_evaluate", STA, nb_evaluate(m, (nb_dataset){x, yy}, 0, &lossv, &metricv) == -1);
    CASE("nb_model_loss", STA, nb_model_loss(m, f23, f23) == NULL);
    CASE("nb_predict", STA, nb_predict(unbuilt, x, 0) == NULL);
    CASE("nb_model_forward", STA, nb_model_forward(unbuilt, x) == NULL);
    CASE("nb_save_weights", STA, nb_save_weights(unbuilt, "/tmp/w.st") == -1);
    CASE("nb_load_weights", STA, nb_load_weights(unbuilt, "/tmp/w.st") == -1);
    /* compile */
    CASE("nb_compile", INV, nb_compile(NULL, nb_sgd(), NB_MEAN_SQUARED_ERROR, NB_NO_METRIC) == -1);
    CASE("nb_compile", INV, nb_compile(m, NULL, NB_MEAN_SQUARED_ERROR, NB_NO_METRIC) == -1);
    KEEP(nb_compile(m, NULL, NB_MEAN_SQUARED_ERROR, NB_NO_METRIC) == -1);
    CASE("nb_compile", INV, nb_compile(m, nb_sgd(), (nb_loss)0, NB_NO_METRIC) == -1);
    CASE("nb_compile", INV, nb_compile(m, nb_sgd(), (nb_loss)99, NB_NO_METRIC) == -1);
    CASE("nb_compile", INV, nb_compile(m, nb_sgd(), NB_MEAN_SQUARED_ERROR, (nb_metric)7) == -1);
    CASE("nb_compile", STA, nb_compile(empty, nb_sgd(), NB_MEAN_SQUARED_ERROR, NB_NO_METRIC) == -1);
    CASE("nb_compile", STA, nb_compile(dead, nb_sgd(), NB_MEAN_SQUARED_ERROR, NB_NO_METRIC) == -1);
    assert_int_equal(nb_compile(m, nb_sgd(), NB_CATEGORICAL_CROSSENTROPY, NB_ACCURACY), 0);
    CASE("nb_compile", STA, nb_compile(unbuilt, nb_model_optimizer(m), NB_MEAN_SQUARED_ERROR,
                                       NB_NO_METRIC) == -1);
    /* Compiled: data that does not fit. */
    nb_tensor *x5 = nb_ones(NB_F32, NB_SHAPE(5, 5)), *x64 = nb_ones(NB_F64, NB_SHAPE(5, 4));
    nb_tensor *ybad = nb_full(NB_F32, NB_SHAPE(5, 3), 2.0);
    CASE("nb_fit", INV, nb_fit(m, (nb_dataset){NULL, yy}) == NULL);
    KEEP(nb_fit(NULL, (nb_dataset){x, yy}) == NULL);
    CASE("nb_fit", INV, nb_fit(NULL, (nb_dataset){x, yy}) == NULL);
    CASE("nb_fit", INV, nb_fit(m, (nb_dataset){x, NULL}) == NULL);
    CASE("nb_fit", SHP, nb_fit(m, (nb_dataset){x5, yy}) == NULL);
    CASE("nb_fit", DTY, nb_fit(m, (nb_dataset){x64, yy}) == NULL);
    CASE("nb_fit", SHP, nb_fit(m, (nb_dataset){x, f23}) == NULL);
    CASE("nb_fit", INV, nb_fit(m, (nb_dataset){x, ybad}) == NULL); /* not in [0, 1] */
    CASE("nb_fit", INV, nb_fit(m, (nb_dataset){x, yy}, .epochs = -1) == NULL);
    CASE("nb_fit", INV, nb_fit(m, (nb_dataset){x, yy}, .batch_size = -3) == NULL);
    CASE("nb_fit", STA, nb_fit(dead, (nb_dataset){x, yy}) == NULL);
    CASE("nb_evaluate", INV, nb_evaluate(NULL, (nb_dataset){x, yy}, 0, &lossv, &metricv) == -1);
    CASE("nb_evaluate", SHP, nb_evaluate(m, (nb_dataset){x5, yy}, 0, &lossv, &metricv) == -1);
    CASE("nb_evaluate", INV, nb_evaluate(m, (nb_dataset){x, yy}, -1, &lossv, &metricv) == -1);
    CASE("nb_predict", INV, nb_predict(NULL, x, 0) == NULL);
    CASE("nb_predict", INV, nb_predict(m, NULL, 0) == NULL);
    CASE("nb_predict", DTY, nb_predict(m, x64, 0) == NULL);
    CASE("nb_predict", SHP, nb_predict(m, x5, 0) == NULL);
    CASE("nb_model_forward", INV, nb_model_forward(NULL, x) == NULL);
    CASE("nb_model_forward", INV, nb_model_forward(m, NULL) == NULL);
    KEEP(nb_model_forward(m, NULL) == NULL);
    CASE("nb_model_forward", SHP, nb_model_forward(m, x5) == NULL);
    CASE("nb_model_forward", SHP, nb_model_forward(m, f4) == NULL);
    CASE("nb_model_forward", DTY, nb_model_forward(m, x64) == NULL);
    for (int b = 0; b < 4; b++) {
        CASE("nb_model_forward", STA, nb_model_forward(m, bad_tensors()[b]) == NULL);
        CASE("nb_model_loss", STA, nb_model_loss(m, bad_tensors()[b], f23) == NULL);
        CASE("nb_model_loss", STA, nb_model_loss(m, f23, bad_tensors()[b]) == NULL);
    }
    CASE("nb_model_loss", INV, nb_model_loss(NULL, f23, f23) == NULL);
    CASE("nb_model_loss", INV, nb_model_loss(m, NULL, f23) == NULL);
    CASE("nb_model_loss", INV, nb_model_loss(m, f23, NULL) == NULL);
    nb_tensor *const *ps;
    CASE("nb_model_params", INV, nb_model_params(NULL, &ps) == -1);
    CASE("nb_model_params", INV, nb_model_params(m, NULL) == -1);
    CASE("nb_model_params", STA, nb_model_params(dead, &ps) == -1);
    CASE("nb_model_optimizer", INV, nb_model_optimizer(NULL) == NULL);
    CASE("nb_model_optimizer", STA, nb_model_optimizer(dead) == NULL);
    CASE("nb_count_params", INV, nb_count_params(NULL) == 0);
    CASE("nb_count_params", STA, nb_count_params(dead) == 0);
    CASE("nb_summary", INV, nb_summary(NULL, stdout) == -1);
    CASE("nb_summary", INV, nb_summary(m, NULL) == -1);
    CASE("nb_summary", STA, nb_summary(dead, stdout) == -1);
    CASE("nb_save_weights", INV, nb_save_weights(NULL, "/tmp/w.st") == -1);
    CASE("nb_save_weights", INV, nb_save_weights(m, NULL) == -1);
    CASE("nb_save_weights", IOE, nb_save_weights(m, "/nonexistent-dir/w.st") == -1);
    CASE("nb_load_weights", INV, nb_load_weights(NULL, "/tmp/w.st") == -1);
    CASE("nb_load_weights", INV, nb_load_weights(m, NULL) == -1);
    CASE("nb_load_weights", IOE, nb_load_weights(m, "/nonexistent-dir/w.st") == -1);
    nb_free(x);
    nb_free(yy);
    nb_free(x5);
    nb_free(x64);
    nb_free(ybad);
    nb_model_free(m);
    nb_model_free(empty);
    nb_model_free(unbuilt);
    /* Optimizers. */
    CASE("nb_sgd", INV, nb_sgd(.lr = -1) == NULL);
    CASE("nb_sgd", INV, nb_sgd(.lr = NAN) == NULL);
    CASE("nb_sgd", INV, nb_sgd(.momentum = 1) == NULL);
    CASE("nb_sgd", INV, nb_sgd(.betas = {0.5, 0.5}) == NULL); /* not SGD's */
    CASE("nb_adam", INV, nb_adam(.eps = NB_ZERO) == NULL);
    CASE("nb_adam", INV, nb_adam(.betas = {1.5, 0.9}) == NULL);
    CASE("nb_adamw", INV, nb_adamw(.weight_decay = -1) == NULL);
    CASE("nb_rmsprop", INV, nb_rmsprop(.rho = 2) == NULL);
    CASE("nb_adagrad", INV, nb_adagrad(.initial_accumulator = -1) == NULL);
    CASE("nb_adam", INV, nb_adam(.schedule = {NB_STEP_DECAY, 0, 0.5}) == NULL);
    CASE("nb_adam", INV, nb_adam(.schedule = {(nb_schedule_kind)9, 1, 1}) == NULL);
    nb_optimizer *opt = nb_sgd();
    nb_tensor *w = nb_param(nb_ones(NB_F32, NB_SHAPE(2)));
    CASE("nb_optimizer_step", INV, nb_optimizer_step(NULL, 1, &w) == -1);
    CASE("nb_optimizer_step", INV, nb_optimizer_step(opt, -1, &w) == -1);
    CASE("nb_optimizer_step", INV, nb_optimizer_step(opt, 1, NULL) == -1);
    CASE("nb_optimizer_step", INV, nb_optimizer_step(opt, 1, (nb_tensor *[]){NULL}) == -1);
    CASE("nb_optimizer_steps", INV, nb_optimizer_steps(NULL) == -1);
    CASE("nb_optimizer_lr", INV, isnan(nb_optimizer_lr(NULL)));
    CASE("nb_optimizer_name", INV, nb_optimizer_name(NULL) == NULL);
    CASE("nb_schedule_lr", INV, isnan(nb_schedule_lr((nb_schedule){NB_COSINE_DECAY, 0, 0}, 1, 0)));
    CASE("nb_schedule_lr", INV, isnan(nb_schedule_lr((nb_schedule){NB_CONSTANT, 0, 0}, NAN, 0)));
    CASE("nb_schedule_lr", INV, isnan(nb_schedule_lr((nb_schedule){NB_CONSTANT, 0, 0}, 1, -1)));
    CASE("nb_clip_grad_norm", INV, nb_clip_grad_norm(-1, &w, 1) == -1);
    CASE("nb_clip_grad_norm", INV, nb_clip_grad_norm(1, NULL, 1) == -1);
    CASE("nb_clip_grad_norm", INV, nb_clip_grad_norm(1, &w, 0) == -1);
    CASE("nb_clip_grad_norm", INV, nb_clip_grad_norm(1, &w, NAN) == -1);
    CASE("nb_clip_grad_norm", INV, nb_clip_grad_norm(2, (nb_tensor *[]){w, w}, 1) == -1);
    CASE("nb_clip_grad_value", INV, nb_clip_grad_value(-1, &w, 1) == -1);
    CASE("nb_clip_grad_value", INV, nb_clip_grad_value(1, (nb_tensor *[]){NULL}, 1) == -1);
    CASE("nb_clip_grad_value", INV, nb_clip_grad_value(1, &w, -1) == -1);
    nb_optimizer_free(opt);
    nb_free(w);
    SECTION_END();
}

/* ---- gradient checks: their error channel is the report ---- */

/* The check failed to run: false or -1, a report naming the function, or
 * (report NULL, or nb_check_heatmap / nb_check_graph) nb_last_error. */
static nb_tensor *fsq(nb_tensor *const x[], int n, void *ctx)
{
    (void)n, (void)ctx;
    return nb_sum(nb_square(x[0]));
}

static void report_case(const char *fn, bool failed, const char *msg, int line)
{
    char printed[256];
    long n = restore(printed, sizeof printed);
    tried++;
    size_t k = strlen(fn);
    if (failed && strncmp(msg, fn, k) == 0 && msg[k] == ':' && n == 0 &&
        nb_live_tensors() == live0) {
        passed++;
        return;
    }
    section_failed++;
    print_error("line %d: %s: failed %d, report \"%s\", %ld bytes printed\n", line, fn, failed,
                msg, n);
}
#define REPORT(fn, call, rep)                                                  \
    do {                                                                       \
        begin();                                                               \
        memset(&(rep), 0, sizeof(rep));                                        \
        bool failed_ = !(call);                                                \
        report_case((fn), failed_ && (rep).message[0], (rep).message, __LINE__);  \
    } while (0)

static void test_checks(void **state)
{
    (void)state;
    SECTION_BEGIN();
    nb_check_report r;
    nb_tensor *x = nb_set_requires_grad(nb_ones(NB_F64, NB_SHAPE(3)), true);
    nb_tensor *x32 = nb_set_requires_grad(nb_ones(NB_F32, NB_SHAPE(3)), true);
    REPORT("nb_gradcheck", nb_gradcheck(NULL, NULL, 1, &x, NULL, &r), r);
    REPORT("nb_gradcheck", nb_gradcheck(fsq, NULL, 1, NULL, NULL, &r), r);
    REPORT("nb_gradcheck", nb_gradcheck(fsq, NULL, 0, &x, NULL, &r), r);
    REPORT("nb_gradcheck", nb_gradcheck(fsq, NULL, 99, &x, NULL, &r), r);
    REPORT("nb_gradcheck", nb_gradcheck(fsq, NULL, 1, (nb_tensor *[]){NULL}, NULL, &r), r);
    REPORT("nb_gradcheck", nb_gradcheck(fsq, NULL, 1, &x32, NULL, &r), r);
    for (int b = 0; b < 4; b++) { /* a stale input would be perturbed in another's memory */
        REPORT("nb_gradcheck", nb_gradcheck(fsq, NULL, 1, &bad_tensors()[b], NULL, &r), r);
        if (!strstr(r.message, "graph generation") && !strstr(r.message, "freed (nb_free)"))
            fail_msg("nb_gradcheck of a stale input: \"%s\"", r.message);
    }
    REPORT("nb_gradgradcheck", nb_gradgradcheck(NULL, NULL, 1, &x, NULL, &r), r);
    REPORT("nb_gradgradcheck", nb_gradgradcheck(fsq, NULL, 0, &x, NULL, &r), r);
    REPORT("nb_gradcheck_op", nb_gradcheck_op(NULL, NULL, NB_SHAPES({3}), &r), r);
    REPORT("nb_gradcheck_op", nb_gradcheck_op(nb_op_find("add"), NULL, NB_SHAPES({3}), &r), r);
    REPORT("nb_check_example", nb_check_example(NULL, NULL, 1, NULL, &r), r);
    REPORT("nb_check_example", nb_check_example(nb_op_find("exp"), NULL, 1, NULL, &r), r);
    nb_mutation_report mr;
    REPORT("nb_gradcheck_mutations", nb_gradcheck_mutations(NULL, NULL, &mr), mr);
    nb_contract_report cr;
    REPORT("nb_check_contract", nb_check_contract(NULL, NULL, &cr), cr);
    CASE("nb_gradcheck", INV, !nb_gradcheck(fsq, NULL, 1, &x, NULL, NULL));
    CASE("nb_check_heatmap", INV, nb_check_heatmap(NULL, 0, "/tmp/h.svg") == -1);
    memset(&r, 0, sizeof r);
    CASE("nb_check_heatmap", INV, nb_check_heatmap(&r, 0, "/tmp/h.svg") == -1); /* none kept */
    CASE("nb_check_heatmap", INV, nb_check_heatmap(&r, -1, "/tmp/h.svg") == -1);
    CASE("nb_check_graph", INV, nb_check_graph(NULL, NULL, 1, &x, NULL, "/tmp/g.dot") == -1);
    CASE("nb_check_graph", INV, nb_check_graph(fsq, NULL, 1, &x, NULL, NULL) == -1);
    nb_free(x);
    nb_free(x32);
    nb_clear_error();
    SECTION_END();
}

/* ---- no current graph (last: the group's graphs are freed here) ---- */

static void test_no_graph(void **state)
{
    (void)state;
    SECTION_BEGIN();
    while (nb_graph_current())
        nb_graph_free(nb_graph_current());
    nb_graph_free(outer);
    outer = NULL;
    for (int k = 0; k < NOPS; k++) {
        const op_case *c = &op_cases[k];
        nb_tensor *x[3];
        for (int j = 0; j < c->n; j++)
            x[j] = *c->good[j];
        if (c->op == op_contiguous)
            continue; /* a contiguous heap tensor is returned as it is (documented) */
        CASE(c->fn, STA, c->op(x) == NULL);
    }
    CASE("nb_backward", STA, nb_backward(f23) == -1);
    CASE("nb_scope_push", STA, nb_scope_push("a") == -1);
    CASE("nb_kernel_scratch", STA, nb_kernel_scratch(8) == NULL);
    SECTION_END();
}

/* The count; and the documented fallbacks of the functions not counted. */
static void test_summary(void **state)
{
    (void)state;
    char b[NB_SHAPE_STR_LEN];
    assert_string_equal(nb_error_code_name((nb_error_code)42), "?");
    assert_string_equal(nb_dtype_name((nb_dtype)9), "?");
    assert_int_equal(nb_dtype_size((nb_dtype)9), 0);
    assert_string_equal(nb_shape_str(NULL, b), "(null)");
    assert_string_equal(nb_dims_str(2, NULL, b), "(null)");
    assert_string_equal(nb_dims_str(-1, NULL, b), "(-1 dims?)");
    assert_string_equal(nb_shape_str(f23, NULL), "(null buf)");
    assert_null(nb_op_find(NULL));
    assert_string_equal(nb_check_verdict_name((nb_check_verdict)99), "?");
    nb_free(NULL);
    nb_zero_grad(NULL);
    nb_bump_version(NULL);
    nb_mem_free(NULL);
    nb_graph_reset(NULL);
    nb_graph_free(NULL);
    nb_check_report_print(NULL, NULL);
    printf("# bad arguments: %d cases tried, %d gave the documented error\n", tried, passed);
    assert_int_equal(passed, tried);
    assert_true(tried >= 500);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_factories),      cmocka_unit_test(test_inspection),
        cmocka_unit_test(test_ops_bad_inputs), cmocka_unit_test(test_ops_mismatches),
        cmocka_unit_test(test_ops_arguments),  cmocka_unit_test(test_apply),
        cmocka_unit_test(test_autograd),       cmocka_unit_test(test_memory),
        cmocka_unit_test(test_dot),            cmocka_unit_test(test_io),
        cmocka_unit_test(test_nn),             cmocka_unit_test(test_checks),
        cmocka_unit_test(test_no_graph),       cmocka_unit_test(test_summary),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
