/* Fused elementwise functions (fuse.h): the values are bit for bit those of
 * calling f with plain ops, in every dtype, shape, block boundary and
 * thread count; the backward is f's (checked numerically, to second order,
 * and against f's own gradients); outputs may be written in
 * place; the non-finite mask is right; misuse is an error naming the call. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "testing.h"
#include "fused_internal.h"

#include <math.h>

/* Adam's update: in = (p, g, m, v, alpha) -> (p', m', v'). */
static int adam_fn(nb_tensor *out[], nb_tensor *const in[], void *ctx)
{
    (void)ctx;
    nb_tensor *p = in[0], *g = in[1], *m = in[2], *v = in[3], *alpha = in[4];
    nb_tensor *m1 = nb_add(nb_mul(m, nb_scalar_like(p, 0.9)), nb_mul(g, nb_scalar_like(p, 0.1)));
    nb_tensor *v1 = nb_add(nb_mul(v, nb_scalar_like(p, 0.999)),
                           nb_mul(nb_square(g), nb_scalar_like(p, 0.001)));
    out[0] = nb_sub(p, nb_div(nb_mul(m1, alpha), nb_add(nb_sqrt(v1), nb_scalar_like(p, 1e-7))));
    out[1] = m1;
    out[2] = v1;
    return 0;
}

/* tanh-GELU with a where and a relu: a chain with shared subexpressions. */
static int gelu_fn(nb_tensor *out[], nb_tensor *const in[], void *ctx)
{
    (void)ctx;
    nb_tensor *x = in[0], *k = nb_scalar_like(x, 0.7978845608028654);
    nb_tensor *inner = nb_mul(k, nb_add(x, nb_mul(nb_scalar_like(x, 0.044715),
                                                  nb_mul(x, nb_square(x)))));
    nb_tensor *gelu = nb_mul(nb_mul(nb_scalar_like(x, 0.5), x),
                             nb_add(nb_scalar_like(x, 1.0), nb_tanh(inner)));
    nb_tensor *pos = nb_gt(x, nb_scalar_like(x, 0.25));
    out[0] = nb_add(nb_where(pos, gelu, nb_relu(nb_neg(x))), nb_sigmoid(nb_exp(nb_neg(nb_abs(x)))));
    return 0;
}

/* Two outputs, one of them an input unchanged, and one made of scalars only. */
static int mixed_fn(nb_tensor *out[], nb_tensor *const in[], void *ctx)
{
    (void)ctx;
    out[0] = nb_mul(nb_add(in[0], in[1]), nb_clamp(in[1], -0.5, 0.5));
    out[1] = in[0];
    out[2] = nb_add(nb_scalar_like(in[0], 2.0), nb_scalar_like(in[0], 0.5));
    return 0;
}

/* Element i of a packed tensor := v. */
static void set_flat(nb_tensor *t, int64_t i, double v)
{
    if (nb_dtype_of(t) == NB_F64)
        ((double *)nb_data(t))[i] = v;
    else
        ((float *)nb_data(t))[i] = (float)v;
    nb_bump_version(t);
}

static nb_tensor *rand_t(nb_dtype dt, int ndim, const int64_t *shape, uint64_t seed, double lo,
                         double hi)
{
    nb_rng r = nb_rng_new(seed);
    nb_tensor *t = nb_rand(dt, ndim, shape, &r);
    assert_non_null(t);
    for (int64_t i = 0; i < nb_numel(t); i++)
        set_flat(t, i, lo + (hi - lo) * nb_get_flat(t, i));
    return t;
}

static void expect_same_bits(const nb_tensor *a, const nb_tensor *b, const char *what)
{
    assert_int_equal(nb_numel(a), nb_numel(b));
    assert_int_equal(nb_dtype_of(a), nb_dtype_of(b));
    for (int64_t i = 0; i < nb_numel(a); i++) {
        double x = nb_get_flat(a, i), y = nb_get_flat(b, i);
        if (memcmp(&x, &y, sizeof x) != 0)
            fail_msg("%s: element %lld: fused %.17g, plain %.17g", what, (long long)i, x, y);
    }
}

/* fused(in) against f(in) with plain ops, every output, in the current graph. */
static void expect_like_plain(nb_fused *fn, nb_fused_fn f, int n_in, int n_out,
                              nb_tensor *const in[], const char *what)
{
    nb_tensor *a[NB_FUSED_MAX] = {NULL}, *b[NB_FUSED_MAX] = {NULL};
    int rc = nb_fused_apply(fn, in, a);
    if (rc < 0)
        fail_msg("%s: %s", what, nb_last_error());
    assert_int_equal(rc, 0);
    assert_int_equal(f(b, in, NULL), 0);
    (void)n_in;
    for (int k = 0; k < n_out; k++) {
        assert_non_null(b[k]);
        /* The plain result may be a scalar or an input itself: compare its
         * broadcast. */
        nb_tensor *bk = nb_broadcast_to(b[k], nb_ndim(a[k]), nb_shape(a[k]));
        assert_non_null(bk);
        expect_same_bits(a[k], nb_contiguous(bk), what);
    }
}

static void test_values_bit_for_bit(void **state)
{
    (void)state;
    nb_fused *adam = nb_fused_new("adam", 5, 3, adam_fn, NULL);
    nb_fused *gelu = nb_fused_new("gelu", 1, 1, gelu_fn, NULL);
    nb_fused *mixed = nb_fused_new("mixed", 2, 3, mixed_fn, NULL);
    assert_non_null(adam);
    assert_non_null(gelu);
    assert_non_null(mixed);
    nb_graph *g = nb_graph_new();
    /* Sizes around the block (1024) and the threads' split (65536). */
    const int64_t sizes[] = {1, 7, 1023, 1024, 1025, 3000, 70001, 200000};
    for (int d = 0; d < 2; d++) {
        nb_dtype dt = d ? NB_F64 : NB_F32;
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            int64_t n = sizes[s];
            nb_tensor *p = rand_t(dt, 1, &n, 1, -1, 1), *gr = rand_t(dt, 1, &n, 2, -1, 1);
            nb_tensor *m = rand_t(dt, 1, &n, 3, -0.1, 0.1), *v = rand_t(dt, 1, &n, 4, 0, 0.1);
            nb_tensor *alpha = nb_scalar_like(p, 1e-3);
            char what[64];
            snprintf(what, sizeof what, "adam %s n=%lld", nb_dtype_name(dt), (long long)n);
            expect_like_plain(adam, adam_fn, 5, 3, (nb_tensor *[]){p, gr, m, v, alpha}, what);
            snprintf(what, sizeof what, "gelu %s n=%lld", nb_dtype_name(dt), (long long)n);
            expect_like_plain(gelu, gelu_fn, 1, 1, (nb_tensor *[]){gr}, what);
            snprintf(what, sizeof what, "mixed %s n=%lld", nb_dtype_name(dt), (long long)n);
            expect_like_plain(mixed, mixed_fn, 2, 3, (nb_tensor *[]){p, gr}, what);
            nb_free(p);
            nb_free(gr);
            nb_free(m);
            nb_free(v);
            nb_graph_reset(g);
        }
    }
    /* Broadcast scalars of any rank, a strided input, a 2-d shape. */
    nb_tensor *x = rand_t(NB_F64, 2, (int64_t[]){40, 30}, 5, -2, 2);
    nb_tensor *xt = nb_transpose(x, 0, 1);
    nb_tensor *one = nb_full(NB_F64, 2, (int64_t[]){1, 1}, 0.25);
    expect_like_plain(mixed, mixed_fn, 2, 3, (nb_tensor *[]){xt, one}, "strided + (1,1)");
    expect_like_plain(mixed, mixed_fn, 2, 3, (nb_tensor *[]){one, xt}, "(1,1) + strided");
    expect_like_plain(gelu, gelu_fn, 1, 1, (nb_tensor *[]){xt}, "gelu strided");
    /* Empty tensors: outputs of shape (0,), nothing run. */
    nb_tensor *e = nb_zeros(NB_F32, 1, (int64_t[]){0});
    nb_tensor *outs[1] = {NULL};
    assert_int_equal(nb_fused_apply(gelu, &e, outs), 0);
    assert_int_equal(nb_numel(outs[0]), 0);
    nb_free(e);
    nb_free(one);
    nb_free(x);
    nb_graph_free(g);
    nb_fused_free(adam);
    nb_fused_free(gelu);
    nb_fused_free(mixed);
}

static nb_fused *g_gelu, *g_adam;

static nb_tensor *gelu_check(nb_tensor *const x[], int n, void *ctx)
{
    (void)n, (void)ctx;
    nb_tensor *out[1] = {NULL};
    return nb_fused_apply(g_gelu, x, out) < 0 ? NULL : out[0];
}

/* A scalar of all three outputs, so that each output's backward is used. */
static nb_tensor *adam_check(nb_tensor *const x[], int n, void *ctx)
{
    (void)n, (void)ctx;
    nb_tensor *out[3] = {NULL};
    if (nb_fused_apply(g_adam, x, out) < 0)
        return NULL;
    return nb_add(nb_add(nb_mul(out[0], out[0]), nb_mul(out[1], nb_scalar_like(out[1], 3.0))),
                  nb_mul(nb_sqrt(out[2]), out[0]));
}

static nb_tensor *adam_plain(nb_tensor *const x[], int n, void *ctx)
{
    (void)n, (void)ctx;
    nb_tensor *out[3] = {NULL};
    adam_fn(out, x, NULL);
    return nb_add(nb_add(nb_mul(out[0], out[0]), nb_mul(out[1], nb_scalar_like(out[1], 3.0))),
                  nb_mul(nb_sqrt(out[2]), out[0]));
}

static void test_gradients(void **state)
{
    (void)state;
    g_gelu = nb_fused_new("gelu", 1, 1, gelu_fn, NULL);
    g_adam = nb_fused_new("adam", 5, 3, adam_fn, NULL);
    nb_graph *g = nb_graph_new();
    int64_t n = 6;
    nb_tensor *x = nb_param(rand_t(NB_F64, 1, &n, 7, -2, 2));
    nb_check_report r;
    if (!nb_gradcheck(gelu_check, NULL, 1, &x, NULL, &r))
        fail_msg("gelu: %s", r.message);
    if (!nb_gradgradcheck(gelu_check, NULL, 1, &x, NULL, &r))
        fail_msg("gelu, second order: %s", r.message);
    nb_tensor *in[5] = {rand_t(NB_F64, 1, &n, 8, -1, 1), rand_t(NB_F64, 1, &n, 9, -1, 1),
                        rand_t(NB_F64, 1, &n, 10, -1, 1), rand_t(NB_F64, 1, &n, 11, 0.5, 1),
                        nb_full(NB_F64, 0, NULL, 0.3)};
    for (int i = 0; i < 5; i++)
        nb_set_requires_grad(in[i], true);
    if (!nb_gradcheck(adam_check, NULL, 5, in, NULL, &r))
        fail_msg("adam: %s", r.message);
    if (!nb_gradgradcheck(adam_check, NULL, 5, in, NULL, &r))
        fail_msg("adam, second order: %s", r.message);
    /* The same gradients as the plain composition, up to the order in
     * which the contributions of the three outputs are summed. */
    nb_tensor *ga[5], *gb[5];
    if (nb_grad(nb_sum(adam_check(in, 5, NULL)), 5, in, ga) != 0)
        fail_msg("nb_grad: %s", nb_last_error());
    assert_int_equal(nb_grad(nb_sum(adam_plain(in, 5, NULL)), 5, in, gb), 0);
    for (int i = 0; i < 5; i++)
        for (int64_t j = 0; j < nb_numel(ga[i]); j++) {
            double a = nb_get_flat(ga[i], j), b = nb_get_flat(gb[i], j);
            if (fabs(a - b) > 1e-14 * (1 + fabs(b)))
                fail_msg("adam gradient of input %d, element %lld: fused %.17g, plain %.17g",
                         i + 1, (long long)j, a, b);
        }
    /* An input that reaches no output it is asked for gets zeros. */
    nb_tensor *out[3] = {NULL};
    assert_true(nb_fused_apply(g_adam, in, out) >= 0);
    nb_tensor *gm[1];
    assert_int_equal(nb_grad(nb_sum(out[2]), 1, &in[0], gm), 0);
    for (int64_t i = 0; i < n; i++)
        assert_true(nb_get_flat(gm[0], i) == 0.0);
    for (int i = 0; i < 5; i++)
        nb_free(in[i]);
    nb_free(x);
    nb_graph_free(g);
    nb_fused_free(g_gelu);
    nb_fused_free(g_adam);
}

/* Writing into given tensors: in place over the inputs, or elsewhere. */
static void test_in_place(void **state)
{
    (void)state;
    nb_fused *adam = nb_fused_new("adam", 5, 3, adam_fn, NULL);
    nb_graph *g = nb_graph_new();
    int64_t n = 5000;
    nb_tensor *p = rand_t(NB_F32, 1, &n, 1, -1, 1), *gr = rand_t(NB_F32, 1, &n, 2, -1, 1);
    nb_tensor *m = rand_t(NB_F32, 1, &n, 3, -1, 1), *v = rand_t(NB_F32, 1, &n, 4, 0, 1);
    nb_tensor *alpha = nb_scalar_like(p, 1e-2);
    nb_tensor *in[5] = {p, gr, m, v, alpha}, *want[3] = {NULL};
    assert_int_equal(nb_fused_apply(adam, in, want), 0);
    nb_tensor *ref[3] = {nb_clone(want[0]), nb_clone(want[1]), nb_clone(want[2])};
    nb_tensor *out[3] = {p, m, v};
    assert_int_equal(nb_fused_apply(adam, in, out), 0);
    assert_ptr_equal(out[0], p);
    expect_same_bits(p, ref[0], "p in place");
    expect_same_bits(m, ref[1], "m in place");
    expect_same_bits(v, ref[2], "v in place");
    /* Elsewhere, streamed or not. */
    nb_tensor *d[3] = {nb_zeros_like(p), nb_zeros_like(p), nb_zeros_like(p)};
    nb_tensor *o2[3] = {d[0], d[1], d[2]};
    assert_int_equal(nb_fused_apply(adam, in, o2), 0);
    assert_int_equal(nb_fused_apply(adam, in, want), 0);
    for (int k = 0; k < 3; k++)
        expect_same_bits(d[k], want[k], "given output");
    /* A write bumps the version: a graph that saved the tensor notices. */
    nb_tensor *q = nb_param(nb_zeros_like(p));
    nb_tensor *y = nb_sum(nb_mul(q, q));
    bool was = nb_set_grad_enabled(false);
    nb_tensor *o6[3] = {q, NULL, NULL};
    assert_int_equal(nb_fused_apply(adam, in, o6), 0);
    nb_set_grad_enabled(was);
    FAILS_RC(nb_backward(y), "modified in place");
    nb_free(q);
    /* Overlapping an input at another offset is refused. */
    nb_tensor *big = nb_zeros(NB_F32, 1, (int64_t[]){2 * n});
    nb_tensor *lo = nb_slice(big, 0, 0, n, 1), *hi = nb_slice(big, 0, n, 2 * n, 1);
    nb_clear_error();
    nb_tensor *bad[3] = {hi, NULL, NULL};
    assert_int_equal(nb_fused_apply(adam, (nb_tensor *[]){lo, gr, m, v, alpha}, bad), -1);
    assert_ptr_equal(bad[0], hi);
    ERR_HAS("nb_fused_apply: 'adam': out[0] overlaps input 1");
    /* Given outputs are not recorded: refused while an input requires grad. */
    nb_set_requires_grad(gr, true);
    nb_tensor *o3[3] = {d[0], NULL, NULL};
    assert_int_equal(nb_fused_apply(adam, in, o3), -1);
    ERR_HAS("out[0] is given while an input requires grad");
    assert_int_equal(nb_last_error_code(), NB_ERR_STATE);
    nb_set_requires_grad(gr, false);
    /* Wrong shape or dtype. */
    nb_tensor *small = nb_zeros(NB_F32, 1, (int64_t[]){3}), *f64 = nb_zeros(NB_F64, 1, &n);
    nb_tensor *o4[3] = {small, NULL, NULL}, *o5[3] = {f64, NULL, NULL};
    assert_int_equal(nb_fused_apply(adam, in, o4), -1);
    assert_int_equal(nb_last_error_code(), NB_ERR_SHAPE);
    assert_int_equal(nb_fused_apply(adam, in, o5), -1);
    assert_int_equal(nb_last_error_code(), NB_ERR_DTYPE);
    nb_tensor *all[] = {p, gr, m, v, ref[0], ref[1], ref[2], d[0], d[1], d[2], big, small, f64};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        nb_free(all[i]);
    nb_graph_free(g);
    nb_fused_free(adam);
}

static int square_plus(nb_tensor *out[], nb_tensor *const in[], void *ctx)
{
    (void)ctx;
    out[0] = nb_add(nb_mul(in[0], in[0]), in[1]);
    out[1] = nb_neg(in[0]);
    return 0;
}

static void test_nonfinite_mask(void **state)
{
    (void)state;
    nb_fused *fn = nb_fused_new("sq", 2, 2, square_plus, NULL);
    nb_graph *g = nb_graph_new();
    int64_t n = 3000;
    nb_tensor *a = rand_t(NB_F32, 1, &n, 1, -1, 1), *b = rand_t(NB_F32, 1, &n, 2, -1, 1);
    nb_tensor *out[2] = {NULL};
    assert_int_equal(nb_fused_apply(fn, (nb_tensor *[]){a, b}, out), 0);
    set_flat(a, 2500, 1e30); /* squares to inf in f32: output 0 only */
    out[0] = out[1] = NULL;
    assert_int_equal(nb_fused_apply(fn, (nb_tensor *[]){a, b}, out), 1);
    set_flat(a, 17, NAN); /* both */
    out[0] = out[1] = NULL;
    assert_int_equal(nb_fused_apply(fn, (nb_tensor *[]){a, b}, out), 3);
    nb_free(a);
    nb_free(b);
    nb_graph_free(g);
    nb_fused_free(fn);
}

static int uses_sum(nb_tensor *out[], nb_tensor *const in[], void *ctx)
{
    (void)ctx;
    out[0] = nb_mul(in[0], nb_sum(in[0]));
    return 0;
}
static nb_tensor *captured;
static int uses_capture(nb_tensor *out[], nb_tensor *const in[], void *ctx)
{
    (void)ctx;
    out[0] = nb_mul(in[0], captured);
    return 0;
}
static int uses_cast(nb_tensor *out[], nb_tensor *const in[], void *ctx)
{
    (void)ctx;
    out[0] = nb_cast(in[0], NB_F64);
    return 0;
}
static int fails(nb_tensor *out[], nb_tensor *const in[], void *ctx)
{
    (void)out, (void)in, (void)ctx;
    return -1;
}

static void test_misuse(void **state)
{
    (void)state;
    FAILS(nb_fused_new(NULL, 1, 1, square_plus, NULL), "nb_fused_new: name is NULL");
    FAILS(nb_fused_new("x", 1, 1, NULL, NULL), "nb_fused_new: f is NULL");
    FAILS(nb_fused_new("x", 0, 1, square_plus, NULL), "nb_fused_new: 'x' takes 0 inputs");
    FAILS(nb_fused_new("x", 1, 9, square_plus, NULL), "each must be 1 to 8");
    nb_fused_free(NULL);
    nb_graph *g = nb_graph_new();
    nb_tensor *x = nb_ones(NB_F32, 1, (int64_t[]){4}), *out[2] = {NULL};
    nb_fused *s = nb_fused_new("s", 1, 1, uses_sum, NULL);
    FAILS_RC(nb_fused_apply(s, &x, out), "nb_fused_apply: 's' uses nb_sum, which is not elementwise");
    captured = nb_ones(NB_F32, 1, (int64_t[]){3});
    nb_fused *c = nb_fused_new("c", 1, 1, uses_capture, NULL);
    FAILS_RC(nb_fused_apply(c, &x, out), "'c' uses a (3,) tensor that is not one of its inputs");
    nb_free(captured);
    captured = nb_ones(NB_F32, 1, (int64_t[]){4});
    nb_fused *c4 = nb_fused_new("c4", 1, 1, uses_capture, NULL);
    FAILS_RC(nb_fused_apply(c4, &x, out), "tracing 'c4' failed: nb_mul: shapes do not broadcast",
             "traced on stand-ins of shape (3)");
    nb_fused *k = nb_fused_new("k", 1, 1, uses_cast, NULL);
    FAILS_RC(nb_fused_apply(k, &x, out), "nb_fused_apply: 'k' makes a f64 tensor from f32 inputs");
    nb_fused *f = nb_fused_new("f", 1, 1, fails, NULL);
    FAILS_RC(nb_fused_apply(f, &x, out), "nb_fused_apply: tracing 'f' failed");
    nb_fused *sq = nb_fused_new("sq", 2, 2, square_plus, NULL);
    nb_tensor *y = nb_ones(NB_F32, 1, (int64_t[]){3}), *d = nb_ones(NB_F64, 1, (int64_t[]){4});
    FAILS_RC(nb_fused_apply(sq, (nb_tensor *[]){x, y}, out), "'sq': input 2 (3,) does not broadcast");
    FAILS_RC(nb_fused_apply(sq, (nb_tensor *[]){x, d}, out), "'sq': input 2 is f64, input 1 f32");
    FAILS_RC(nb_fused_apply(sq, (nb_tensor *[]){x, NULL}, out), "'sq': input 2 is NULL");
    FAILS_RC(nb_fused_apply(NULL, &x, out), "nb_fused_apply: fn is NULL");
    nb_tensor *row = nb_ones(NB_F32, 2, (int64_t[]){1, 4}), *col = nb_ones(NB_F32, 2, (int64_t[]){3, 1});
    FAILS_RC(nb_fused_apply(sq, (nb_tensor *[]){row, col}, out), "each input has the result's shape (3,4) or one element");
    nb_graph_free(g);
    FAILS_RC(nb_fused_apply(sq, (nb_tensor *[]){x, x}, out), "no current graph");
    nb_tensor *all[] = {x, captured, y, d, row, col};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        nb_free(all[i]);
    nb_fused *fs[] = {s, c, c4, k, f, sq};
    for (size_t i = 0; i < sizeof fs / sizeof fs[0]; i++)
        nb_fused_free(fs[i]);
}

/* ---- compiled programs (src/fused_compile.c) ---- */

static int traced, compiled;
static void count_traced(const program *p, const char *name)
{
    (void)name;
    traced++;
    compiled += p->compiled != NULL;
    char key[1 << 14] = "";
    if (p->scalars && !nb__fused_interpret && !p->compiled && nb__program_key(p, key, sizeof key))
        fail_msg("'%s' (%s) was traced to a program the build did not compile: its ops or "
                 "options pattern are missing from src/fused_gen.c or src/fused_compile.c "
                 "(key %s)", name, nb_dtype_name(p->dtype), key);
}

/* Gradient element i of step t: mostly O(1), with zeros, subnormals and
 * values whose square overflows (an infinite state), and one NaN at step 5
 * (the step is refused, and undone). */
static double grad_value(nb_dtype dt, int t, int64_t i)
{
    uint64_t h = (uint64_t)(t * 1000003 + i) * 0x9e3779b97f4a7c15ull;
    h ^= h >> 29;
    double u = (double)(h >> 11) / 9007199254740992.0, sign = h & 1 ? -1 : 1;
    switch (h % 97) {
    case 0: return 0.0;
    case 1: return sign * (dt == NB_F64 ? 1e-310 : 1e-40);
    case 2: return sign * (dt == NB_F64 ? 1e160 : 1e20);
    case 3: return t == 5 && i == 17 ? NAN : sign * 1e-3;
    default: return sign * (2 * u - 1) * 3;
    }
}

static nb_optimizer *make_opt(int algo, int c)
{
    double wd = c & 1 ? 0.01 : 0, cn = c & 2 ? 1.0 : 0, cv = c & 4 ? 0.5 : 0;
#define OPTS .weight_decay = wd, .clipnorm = cn, .clipvalue = cv
    switch (algo) {
    case 0: return nb_sgd(.lr = 0.1, OPTS);
    case 1: return nb_sgd(.lr = 0.1, .momentum = 0.9, OPTS);
    case 2: return nb_sgd(.lr = 0.1, .momentum = 0.9, .nesterov = true, OPTS);
    case 3: return nb_adam(.lr = 0.01, .betas = {0.8, 0.99}, OPTS);
    case 4: return nb_rmsprop(OPTS);
    case 5: return nb_rmsprop(.momentum = 0.5, OPTS);
    default: return nb_adagrad(OPTS);
    }
#undef OPTS
}

/* Every built-in optimizer and options pattern, in f32 and f64, on two
 * threads: the compiled update stores the interpreter's bits, step after
 * step, and refuses the same steps. Parameters of 1003 elements (not a
 * multiple of any vector width), 300001 (split between the threads and
 * stored with streaming stores; 2001 but for the first two options
 * patterns) and 1 (interpreted on both sides). Odd patterns take the
 * portable loops, even ones the AVX-512 loops where the CPU has them. */
static void test_compiled_like_interpreted(void **state)
{
    (void)state;
    nb_set_num_threads(2);
    nb__traced_hook = count_traced;
    traced = compiled = 0;
    int64_t sizes[3] = {1003, 300001, 1};
    for (int dti = 0; dti < 2; dti++) {
        nb_dtype dt = dti ? NB_F64 : NB_F32;
        for (int algo = 0; algo < 7; algo++)
            for (int c = 0; c < 8; c++) {
                /* The thread split and streaming stores (over 1 MiB), in both
                 * loops, once per algorithm. */
                sizes[1] = c < 2 ? 300001 : 2001;
                nb__fused_portable = c & 1;
                nb_optimizer *opt[2] = {make_opt(algo, c), make_opt(algo, c)};
                assert_non_null(opt[0]);
                assert_non_null(opt[1]);
                nb_graph *g = nb_graph_new();
                nb_tensor *p[2][3];
                for (int side = 0; side < 2; side++)
                    for (int k = 0; k < 3; k++)
                        p[side][k] = nb_param(rand_t(dt, 1, &sizes[k], 7 + (uint64_t)k, -1, 1));
                for (int t = 1; t <= 6; t++) {
                    int rc[2];
                    for (int side = 0; side < 2; side++) {
                        nb_tensor *loss = NULL, *gs[3];
                        for (int k = 0; k < 3; k++) {
                            nb_tensor *gk = gs[k] = nb_zeros(dt, 1, &sizes[k]);
                            void *d = nb_data(gk);
                            for (int64_t i = 0; i < sizes[k]; i++) {
                                if (dt == NB_F64)
                                    ((double *)d)[i] = grad_value(dt, t, i);
                                else
                                    ((float *)d)[i] = (float)grad_value(dt, t, i);
                            }
                            nb_zero_grad(p[side][k]);
                            nb_tensor *lk = nb_sum(nb_mul(p[side][k], gk));
                            loss = loss ? nb_add(loss, lk) : lk;
                        }
                        assert_int_equal(nb_backward(loss), 0);
                        for (int k = 0; k < 3; k++)
                            nb_free(gs[k]);
                        nb__fused_interpret = side == 0;
                        rc[side] = nb_optimizer_step(opt[side], 3, p[side], .skip_nonfinite = true);
                        nb__fused_interpret = false;
                        nb_graph_reset(g);
                    }
                    assert_int_equal(rc[0], rc[1]);
                    assert_true(rc[0] >= 0);
                    for (int k = 0; k < 3; k++)
                        if (memcmp(nb_data(p[1][k]), nb_data(p[0][k]),
                                   (size_t)sizes[k] * (dti ? 8 : 4)) != 0)
                            expect_same_bits(p[1][k], p[0][k], "compiled update");
                }
                for (int side = 0; side < 2; side++) {
                    for (int k = 0; k < 3; k++)
                        nb_free(p[side][k]);
                    nb_optimizer_free(opt[side]);
                }
                nb_graph_free(g);
            }
    }
    nb__traced_hook = NULL;
    nb__fused_portable = false;
    nb_set_num_threads(1);
    /* Per optimizer, a program for the large parameters and one for the
     * one-element parameter, on each side: only the compiled side's first
     * kind is compiled. */
    assert_int_equal(traced, 2 * 7 * 8 * 2 * 2);
    assert_int_equal(compiled, 2 * 7 * 8);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values_bit_for_bit),
        cmocka_unit_test(test_gradients),
        cmocka_unit_test(test_in_place),
        cmocka_unit_test(test_nonfinite_mask),
        cmocka_unit_test(test_misuse),
        cmocka_unit_test(test_compiled_like_interpreted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
