/* The engine: backward, accumulation, nb_grad, higher order, retain_graph,
 * version counters, no-grad mode, graph lifetime. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "testing.h"

#include <math.h>
#include <string.h>

#include "nabla/nabla.h"


static nb_tensor *vec(const double *v, int64_t n)
{
    return nb_from_array(NB_F64, NB_SHAPE(n), v);
}

static void test_backward_accumulates(void **state)
{
    (void)state;
    nb_tensor *x = nb_param(vec((double[]){1, 2, 3}, 3));
    nb_graph *g = nb_graph_new();
    for (int k = 0; k < 2; k++) {
        /* y = sum(x * x): dy/dx = 2x, accumulated twice -> 4x */
        nb_tensor *y = nb_sum(nb_mul(x, x));
        assert_int_equal(nb_backward(y), 0);
        nb_graph_reset(g);
    }
    nb_tensor *gx = nb_grad_of(x);
    assert_non_null(gx);
    for (int i = 0; i < 3; i++)
        assert_true(nb_get(gx, NB_AT(i)) == 4.0 * (i + 1));
    nb_zero_grad(x);
    for (int i = 0; i < 3; i++)
        assert_true(nb_get(gx, NB_AT(i)) == 0.0);
    nb_graph_free(g);
    nb_free(x);
}

/* After nb_zero_grad, the next backward writes its gradient without
 * reading the zeros: the bits of 0 + g (a -0 becomes +0; NaN and
 * subnormals kept), as on first use; a write through nb_data (with its
 * version bumped) after the zeroing is added to, not written over. */
static void test_accumulate_after_zero_grad(void **state)
{
    (void)state;
    uint64_t first[4], again[4];
    nb_tensor *x = nb_param(vec((double[]){1, 2, 3, 4}, 4));
    nb_tensor *c = vec((double[]){-0.0, NAN, 5e-324, 2}, 4);
    nb_graph *g = nb_graph_new();
    for (int k = 0; k < 3; k++) {
        if (k > 0)
            nb_zero_grad(x);
        if (k == 2) {
            ((double *)nb_data(nb_grad_of(x)))[3] = 10;
            nb_bump_version(nb_grad_of(x));
        }
        assert_int_equal(nb_backward(nb_sum(nb_mul(x, c))), 0);
        nb_graph_reset(g);
        if (k < 2)
            memcpy(k ? again : first, nb_data(nb_grad_of(x)), sizeof first);
    }
    assert_true(first[0] == 0 && isnan(nb_get(nb_grad_of(x), NB_AT(1))));
    assert_true(nb_get(nb_grad_of(x), NB_AT(2)) == 5e-324);
    assert_memory_equal(first, again, sizeof first);
    assert_true(nb_get(nb_grad_of(x), NB_AT(3)) == 12);
    nb_graph_free(g);
    nb_free(x);
    nb_free(c);
}

static void test_shared_subexpression_and_seed(void **state)
{
    (void)state;
    nb_tensor *x = nb_param(vec((double[]){0.5, -1}, 2));
    nb_graph *g = nb_graph_new();
    nb_tensor *t = nb_tanh(x);
    nb_tensor *y = nb_add(nb_mul(t, t), t); /* t used three times */
    nb_tensor *seed = nb_from_array(NB_F64, NB_SHAPE(2), (double[]){1, 2});
    assert_int_equal(nb_backward(y, .seed = seed), 0);
    for (int i = 0; i < 2; i++) {
        double xv = nb_get(x, NB_AT(i)), tv = tanh(xv), s = nb_get(seed, NB_AT(i));
        double want = s * (2 * tv + 1) * (1 - tv * tv);
        assert_true(fabs(nb_get(nb_grad_of(x), NB_AT(i)) - want) < 1e-12);
    }
    /* A non-scalar root needs a seed. */
    nb_graph_reset(g);
    y = nb_tanh(x);
    assert_int_equal(nb_backward(y), -1);
    ERR_HAS("nb_backward");
    ERR_HAS("seed");
    /* A seed of the wrong shape is refused. */
    nb_tensor *bad = nb_zeros(NB_F64, NB_SHAPE(3));
    assert_int_equal(nb_backward(y, .seed = bad), -1);
    ERR_HAS("(3,)");
    nb_free(bad);
    nb_free(seed);
    nb_graph_free(g);
    nb_free(x);
}

static void test_retain_graph(void **state)
{
    (void)state;
    nb_tensor *x = nb_param(vec((double[]){1, 2}, 2));
    nb_graph *g = nb_graph_new();
    nb_tensor *y = nb_sum(nb_mul(x, x));
    assert_int_equal(nb_backward(y, .retain_graph = true), 0);
    assert_int_equal(nb_backward(y), 0); /* second pass allowed, accumulates */
    assert_true(nb_get(nb_grad_of(x), NB_AT(1)) == 8.0);
    nb_clear_error();
    assert_int_equal(nb_backward(y), -1); /* third: graph was released */
    ERR_HAS("retain_graph");
    nb_graph_free(g);
    nb_free(x);
}

static void test_version_counter(void **state)
{
    (void)state;
    nb_tensor *w = nb_set_name(nb_param(vec((double[]){1, 2}, 2)), "w");
    nb_tensor *x = vec((double[]){3, 4}, 2);
    nb_graph *g = nb_graph_new();
    nb_tensor *y = nb_sum(nb_mul(x, w)); /* backward of mul reads w */
    nb_tensor *two = nb_scalar(NB_F64, 2.0);
    /* In-place writes to a tensor that requires grad are refused while recording. */
    assert_int_equal(nb_assign(w, two), -1);
    ERR_HAS("nb_assign");
    bool prev = nb_set_grad_enabled(false);
    assert_int_equal(nb_assign(w, two), 0);
    nb_set_grad_enabled(prev);
    assert_true(nb_get(w, NB_AT(0)) == 2.0);
    assert_int_equal(nb_backward(y), -1);
    ERR_HAS("modified in place");
    ERR_HAS("'w'");
    ERR_HAS("nb_mul");
    /* An op whose backward does not read the tensor is unaffected. */
    nb_graph_reset(g);
    y = nb_sum(nb_add(x, w));
    prev = nb_set_grad_enabled(false);
    nb_assign(w, x);
    nb_set_grad_enabled(prev);
    assert_int_equal(nb_backward(y), 0);
    nb_free(two);
    nb_graph_free(g);
    nb_free(w);
    nb_free(x);
}

static void test_no_grad(void **state)
{
    (void)state;
    nb_tensor *x = nb_param(vec((double[]){1, 2}, 2));
    nb_graph *g = nb_graph_new();
    bool prev = nb_set_grad_enabled(false);
    assert_true(prev);
    assert_false(nb_is_grad_enabled());
    nb_tensor *y = nb_mul(x, x);
    assert_false(nb_requires_grad(y));
    assert_null(nb_op_of(y));
    assert_int_equal(nb_graph_nodes(g), 0);
    assert_true(nb_get(y, NB_AT(1)) == 4.0); /* still computed */
    nb_set_grad_enabled(prev);
    y = nb_mul(x, x);
    assert_true(nb_requires_grad(y));
    assert_int_equal(nb_graph_nodes(g), 1);
    /* Inputs that do not require grad record nothing either. */
    nb_tensor *c = vec((double[]){1, 1}, 2);
    assert_false(nb_requires_grad(nb_add(c, c)));
    assert_int_equal(nb_graph_nodes(g), 1);
    nb_graph_reset(g);
    assert_int_equal(nb_graph_nodes(g), 0);
    assert_int_equal(nb_graph_bytes(g), 0);
    nb_free(c);
    nb_graph_free(g);
    nb_free(x);
}

static void test_detach_stops_gradient(void **state)
{
    (void)state;
    nb_tensor *x = nb_param(vec((double[]){1, 2}, 2));
    nb_graph *g = nb_graph_new();
    /* y = x * detach(x): dy/dx = detach(x) only */
    nb_tensor *d = nb_detach(x);
    assert_non_null(d);
    assert_false(nb_requires_grad(d));
    nb_tensor *y = nb_sum(nb_mul(x, d));
    assert_int_equal(nb_backward(y), 0);
    assert_true(nb_get(nb_grad_of(x), NB_AT(1)) == 2.0);
    nb_graph_free(g);
    nb_free(x);
}

static void test_functional_grad(void **state)
{
    (void)state;
    nb_tensor *a = nb_param(vec((double[]){1, 2}, 2));
    nb_tensor *b = nb_param(vec((double[]){3, 5}, 2));
    nb_tensor *c = nb_param(vec((double[]){0, 0}, 2));
    nb_graph *g = nb_graph_new();
    nb_tensor *h = nb_mul(a, b);
    nb_tensor *y = nb_sum(nb_mul(h, h)); /* sum (ab)^2 */
    nb_tensor *grads[3];
    assert_int_equal(nb_grad(y, .n = 3, .inputs = (nb_tensor *[]){a, h, c}, .grads = grads,
                             .allow_unused = true),
                     0);
    /* dy/da = 2 a b^2; dy/dh = 2h (an intermediate); c unused -> NULL */
    assert_true(nb_get(grads[0], NB_AT(1)) == 2 * 2 * 25.0);
    assert_true(nb_get(grads[1], NB_AT(0)) == 2 * 3.0);
    assert_null(grads[2]);
    assert_null(nb_grad_of(a)); /* .grad untouched */
    /* Unused input without allow_unused is an error. */
    nb_graph_reset(g);
    y = nb_sum(nb_mul(a, b));
    assert_int_equal(nb_grad(y, .n = 1, .inputs = &c, .grads = grads), -1);
    ERR_HAS("not used");
    nb_graph_free(g);
    nb_free(a);
    nb_free(b);
    nb_free(c);
}

/* f(x) = sum(x^3) + (sum x)^2; H = diag(6x) + 2 (all ones). */
static void test_hessian_vector_product(void **state)
{
    (void)state;
    const double xv[] = {0.5, -1.0, 2.0, 0.25}, vv[] = {1.0, 2.0, -1.0, 0.5};
    nb_tensor *x = nb_param(vec(xv, 4));
    nb_tensor *v = vec(vv, 4);
    nb_graph *g = nb_graph_new();
    nb_tensor *s = nb_sum(x);
    nb_tensor *f = nb_add(nb_sum(nb_mul(nb_mul(x, x), x)), nb_mul(s, s));
    nb_tensor *gx;
    assert_int_equal(nb_grad(f, .n = 1, .inputs = &x, .grads = &gx, .create_graph = true), 0);
    assert_true(nb_requires_grad(gx));
    nb_tensor *hv;
    assert_int_equal(nb_grad(nb_sum(nb_mul(gx, v)), .n = 1, .inputs = &x,
                             .grads = &hv),
                     0);
    double vsum = 0;
    for (int j = 0; j < 4; j++)
        vsum += vv[j];
    for (int i = 0; i < 4; i++) {
        double want = 6 * xv[i] * vv[i] + 2 * vsum;
        assert_true(fabs(nb_get(hv, NB_AT(i)) - want) < 1e-12);
    }
    nb_graph_free(g);
    nb_free(x);
    nb_free(v);
}

/* f(x) = x^T A x through matmul; H = A + A^T, so Hv = (A + A^T) v. */
static void test_hvp_matmul(void **state)
{
    (void)state;
    const double A[9] = {1, 2, 0, -1, 3, 4, 0.5, 0, 2}, xv[3] = {1, -2, 0.5}, vv[3] = {0.5, 1, -1};
    nb_tensor *a = nb_from_array(NB_F64, NB_SHAPE(3, 3), A);
    nb_tensor *x = nb_param(nb_from_array(NB_F64, NB_SHAPE(3, 1), xv));
    nb_tensor *v = nb_from_array(NB_F64, NB_SHAPE(3, 1), vv);
    nb_graph *g = nb_graph_new();
    nb_tensor *f = nb_sum(nb_matmul(nb_transpose(x, -2, -1), nb_matmul(a, x)));
    nb_tensor *gx, *hv;
    assert_int_equal(nb_grad(f, .n = 1, .inputs = &x, .grads = &gx, .create_graph = true), 0);
    assert_int_equal(nb_grad(nb_sum(nb_mul(gx, v)), .n = 1, .inputs = &x,
                             .grads = &hv),
                     0);
    for (int i = 0; i < 3; i++) {
        double want = 0;
        for (int j = 0; j < 3; j++)
            want += (A[i * 3 + j] + A[j * 3 + i]) * vv[j];
        assert_true(fabs(nb_get(hv, NB_AT(i, 0)) - want) < 1e-12);
    }
    nb_graph_free(g);
    nb_free(a);
    nb_free(x);
    nb_free(v);
}

static void test_deep_chain(void **state)
{
    (void)state;
    /* 20000 ops deep: the backward walk must not recurse on the C stack. */
    nb_tensor *x = nb_param(nb_scalar(NB_F64, 1.0));
    nb_graph *g = nb_graph_new();
    nb_tensor *y = x, *c = nb_scalar_like(x, 1.0001);
    for (int i = 0; i < 20000; i++)
        y = nb_mul(y, c);
    assert_int_equal(nb_backward(y), 0);
    assert_true(fabs(nb_item(nb_grad_of(x)) - pow(1.0001, 20000)) < 1e-6);
    nb_graph_free(g);
    nb_free(x);
}

static void test_nested_graphs(void **state)
{
    (void)state;
    nb_graph *outer = nb_graph_new();
    nb_graph *inner = nb_graph_new();
    assert_ptr_equal(nb_graph_current(), inner);
    nb_graph_free(inner);
    assert_ptr_equal(nb_graph_current(), outer);
    nb_graph_free(outer);
    assert_null(nb_graph_current());
    /* Ops without a graph are an error, not a crash. */
    nb_tensor *x = nb_scalar(NB_F32, 1);
    assert_null(nb_add(x, x));
    ERR_HAS("nb_graph_new");
    nb_free(x);
}

static void test_scopes(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    assert_int_equal(nb_scope_push("model"), 0);
    assert_int_equal(nb_scope_push("dense"), 0);
    nb_scope_pop();
    nb_scope_pop();
    nb_scope_pop(); /* extra pops are harmless */
    assert_int_equal(nb_scope_push(""), -1);
    nb_graph_free(g);
    assert_int_equal(nb_scope_push("x"), -1);
}

/* Declarations the engine acts on. "addb" broadcasts and returns its
 * gradients in the output's shape: the engine sums them back. "pick" takes a
 * non-differentiable index input. "lazy" forgets a gradient. */
NB_BINARY_KERNELS(addb, u + v)
static void addb_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y, nb_tensor *const x[],
                          int n, const void *attr)
{
    (void)y, (void)x, (void)n, (void)attr;
    dx[0] = dx[1] = dy;
}
static const nb_op addb = {.name = "addb", .arity = 2, .shape = nb_shape_broadcast,
                           .forward = NB_KERNELS(addb), .backward = addb_backward,
                           .broadcast = true, .saves = NB_SAVES_NONE};
static const nb_op addb_undeclared = {.name = "addb_undeclared", .arity = 2,
                                      .shape = nb_shape_broadcast, .forward = NB_KERNELS(addb),
                                      .backward = addb_backward, .saves = NB_SAVES_NONE};
static void pick_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y, nb_tensor *const x[],
                          int n, const void *attr)
{
    (void)y, (void)n, (void)attr;
    dx[0] = nb_mul(dy, nb_ones_like(x[0]));
}
static const nb_op pick = {.name = "pick", .arity = 2, .shape = nb_shape_broadcast,
                           .forward = NB_KERNELS(addb), .backward = pick_backward,
                           .nondiff = NB_INPUT(1), .broadcast = true};
static void lazy_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y, nb_tensor *const x[],
                          int n, const void *attr)
{
    (void)dx, (void)dy, (void)y, (void)x, (void)n, (void)attr;
}
static const nb_op lazy = {.name = "lazy", .arity = 2, .shape = nb_shape_broadcast,
                           .forward = NB_KERNELS(addb), .backward = lazy_backward};

static void test_engine_declarations(void **state)
{
    (void)state;
    nb_tensor *a = nb_param(nb_ones(NB_F64, NB_SHAPE(2, 3)));
    nb_tensor *b = nb_param(nb_ones(NB_F64, NB_SHAPE(3)));
    nb_graph *g = nb_graph_new();
    nb_tensor *gs[2], *in[2] = {a, b};
    nb_tensor *y = nb_apply(&addb, (nb_tensor *[]){a, b}, 2, NULL);
    assert_int_equal(nb_grad(nb_sum(y), .n = 2, .inputs = in, .grads = gs), 0);
    assert_int_equal(nb_ndim(gs[1]), 1);
    assert_true(nb_get(gs[1], NB_AT(2)) == 2); /* summed over the broadcast rows */
    /* Without .broadcast, a gradient of the wrong shape is an error. */
    y = nb_apply(&addb_undeclared, (nb_tensor *[]){a, b}, 2, NULL);
    FAILS_RC(nb_grad(nb_sum(y), .n = 2, .inputs = in, .grads = gs), "nb_grad",
             "addb_undeclared gave a f64 (2,3) gradient for input 2 of f64 (3,)");
    /* A non-differentiable input gets nothing (not even with requires grad),
     * and on its own it records no node. */
    y = nb_apply(&pick, (nb_tensor *[]){a, b}, 2, NULL);
    assert_int_equal(nb_grad(nb_sum(y), .n = 2, .inputs = in, .grads = gs, .allow_unused = true), 0);
    assert_non_null(gs[0]);
    assert_null(gs[1]);
    nb_tensor *c = nb_ones(NB_F64, NB_SHAPE(2, 3));
    assert_false(nb_requires_grad(nb_apply(&pick, (nb_tensor *[]){c, b}, 2, NULL)));
    /* A backward that leaves out a gradient is an error naming the op. */
    y = nb_apply(&lazy, (nb_tensor *[]){a, a}, 2, NULL);
    FAILS_RC(nb_backward(nb_sum(y)), "nb_backward: backward of lazy gave no gradient for input 1");
    nb_graph_free(g);
    nb_free(a);
    nb_free(b);
    nb_free(c);
}

/* sum(x @ w), sum((x @ w) @ w) (w's gradient in two parts) or sum(w @ w)
 * (w as both operands of one product). */
static nb_tensor *product(int k, nb_tensor *x, nb_tensor *w)
{
    return nb_sum(k == 0 ? nb_matmul(x, w) : k == 1 ? nb_matmul(nb_matmul(x, w), w)
                                                    : nb_matmul(w, w));
}

/* After nb_zero_grad, a product writes a weight's gradient straight into its
 * .grad: the pass makes no graph tensor of the weight's size, and the bits
 * are those of nb_grad's gradient. Without nb_zero_grad it adds; a pass
 * that fails after the write leaves the zeros. */
static void test_gradient_written_into_grad(void **state)
{
    (void)state;
    nb_rng rng = nb_rng_new(3);
    for (int t = 0; t < 2; t++) {
        nb_dtype dt = t ? NB_F64 : NB_F32;
        size_t es = nb_dtype_size(dt);
        nb_tensor *w = nb_param(nb_randn(dt, NB_SHAPE(6, 6), &rng));
        nb_tensor *a = nb_param(nb_randn(dt, NB_SHAPE(5, 6), &rng));
        nb_tensor *x = nb_randn(dt, NB_SHAPE(5, 6), &rng);
        nb_graph *g = nb_graph_new();
        size_t bytes[2];
        for (int k = 0; k < 2; k++) { /* the first pass makes .grad, the second is offered it */
            nb_zero_grad(w);
            assert_int_equal(nb_backward(product(0, x, w)), 0);
            bytes[k] = nb_graph_bytes(g);
            nb_graph_reset(g);
        }
        assert_true(bytes[0] >= bytes[1] + 36 * es);
        nb_tensor *gw = nb_grad_of(w);
        for (int k = 0; k < 3; k++) {
            nb_tensor *want;
            assert_int_equal(nb_grad(product(k, x, w), .n = 1, .inputs = &w, .grads = &want), 0);
            nb_zero_grad(w);
            assert_int_equal(nb_backward(product(k, x, w)), 0);
            assert_ptr_equal(nb_grad_of(w), gw);
            assert_memory_equal(nb_data(gw), nb_data(want), 36 * es);
            assert_int_equal(nb_backward(product(k, x, w)), 0); /* adds: twice as much */
            for (int i = 0; i < 36; i++)
                assert_true(nb_get_flat(gw, i) == 2 * nb_get_flat(want, i));
            nb_graph_reset(g);
        }
        nb_zero_grad(w);
        nb_tensor *y = nb_sum(nb_matmul(nb_apply(&lazy, (nb_tensor *[]){a, a}, 2, NULL), w));
        FAILS_RC(nb_backward(y), "nb_backward: backward of lazy gave no gradient for input 1");
        for (int i = 0; i < 36; i++)
            assert_true(nb_get_flat(gw, i) == 0.0);
        nb_graph_reset(g);
        nb_tensor *want;
        assert_int_equal(nb_grad(product(0, x, w), .n = 1, .inputs = &w, .grads = &want), 0);
        assert_int_equal(nb_backward(product(0, x, w)), 0);
        assert_memory_equal(nb_data(gw), nb_data(want), 36 * es);
        nb_graph_free(g);
        nb_free(w);
        nb_free(a);
        nb_free(x);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backward_accumulates),
        cmocka_unit_test(test_accumulate_after_zero_grad),
        cmocka_unit_test(test_shared_subexpression_and_seed),
        cmocka_unit_test(test_retain_graph),
        cmocka_unit_test(test_version_counter),
        cmocka_unit_test(test_no_grad),
        cmocka_unit_test(test_detach_stops_gradient),
        cmocka_unit_test(test_functional_grad),
        cmocka_unit_test(test_hessian_vector_product),
        cmocka_unit_test(test_hvp_matmul),
        cmocka_unit_test(test_deep_chain),
        cmocka_unit_test(test_nested_graphs),
        cmocka_unit_test(test_scopes),
        cmocka_unit_test(test_engine_declarations),
        cmocka_unit_test(test_gradient_written_into_grad),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
