/* Views: storage shared without copies (counted through the allocator
 * hook), results and gradients equal to the copying path, in-place writes
 * through aliases seen by the version check, and the layouts matmul takes
 * in place. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "testing.h"

#include <math.h>

#include "nabla/nabla.h"

/* Bytes requested through the hook. */
static size_t bytes;
static void *bytes_alloc(size_t n, void *ctx)
{
    (void)ctx;
    bytes += n;
    return malloc(n);
}
static void bytes_free(void *p, void *ctx)
{
    (void)ctx;
    free(p);
}
static const nb_allocator byte_counter = {bytes_alloc, bytes_free, NULL};

/* A heap f64 tensor with distinct values i * 0.001 - 1. */
static nb_tensor *iota(int ndim, const int64_t *shape)
{
    nb_tensor *t = nb_zeros(NB_F64, ndim, shape);
    double *d = nb_data(t);
    for (int64_t i = 0; i < nb_numel(t); i++)
        d[i] = (double)(i % 2001) * 0.001 - 1;
    return t;
}

static void test_views_allocate_no_data(void **state)
{
    (void)state;
    nb_tensor *x = nb_param(iota(NB_SHAPE(64, 256, 256))); /* 32 MiB of f64 */
    nb_tensor *b = nb_param(iota(NB_SHAPE(256, 1)));
    nb_graph *g = nb_graph_new();
    assert_non_null(nb_scalar_like(x, 0)); /* the arena's first chunk */
    size_t used = nb_graph_bytes(g);
    nb_set_allocator(&byte_counter);
    bytes = 0;
    nb_tensor *s = nb_slice(x, 1, -1, INT64_MIN, -3);        /* reversed, every third row */
    nb_tensor *p = nb_permute(s, 3, (const int[]){2, 0, 1}); /* (256,64,86) */
    nb_tensor *t = nb_transpose(p, 0, 2);
    nb_tensor *e = nb_broadcast_to(b, NB_SHAPE(64, 256, 256));
    nb_tensor *r = nb_reshape(x, NB_SHAPE(64 * 256, 256));
    nb_tensor *u = nb_unsqueeze(nb_squeeze(nb_unsqueeze(x, 0), 0), -1);
    nb_tensor *d = nb_detach(x);
    nb_set_allocator(NULL);
    assert_non_null(t);
    assert_non_null(e);
    assert_non_null(r);
    assert_non_null(u);
    assert_non_null(d);
    assert_int_equal(bytes, 0); /* not one byte from the hook */
    assert_true(nb_graph_bytes(g) - used < 16 * 1024); /* headers, nothing more */
    assert_false(nb_is_contiguous(p));
    assert_false(nb_is_contiguous(e));
    assert_true(nb_is_contiguous(r));
    assert_int_equal(nb_dim(p, 2), 86);
    assert_int_equal(nb_strides(e)[2], 0);
    assert_int_equal(nb_strides(s)[1], -3 * 256);
    assert_true(nb_data(d) == nb_data(x));
    assert_true(nb_get(p, NB_AT(3, 5, 1)) == nb_get(x, NB_AT(5, 255 - 3, 3)));
    assert_true(nb_get(e, NB_AT(9, 17, 200)) == nb_get(b, NB_AT(17, 0)));

    /* The same results and gradients as packed copies of the views. */
    nb_tensor *in[2] = {x, b}, *gv[2], *gc[2];
    nb_tensor *yv = nb_add(nb_sum(nb_mul(t, t)), nb_sum(nb_mul(e, x)));
    nb_tensor *tc = nb_contiguous(t), *ec = nb_contiguous(e);
    assert_true(nb_is_contiguous(tc) && nb_is_contiguous(ec));
    nb_tensor *yc = nb_add(nb_sum(nb_mul(tc, tc)), nb_sum(nb_mul(ec, x)));
    assert_true(nb_allclose(yv, yc, 1e-12, 0));
    /* The copies' history runs through the same views: keep it for the second pass. */
    assert_int_equal(nb_grad(yv, .n = 2, .inputs = in, .grads = gv, .retain_graph = true), 0);
    assert_int_equal(nb_grad(yc, .n = 2, .inputs = in, .grads = gc), 0);
    assert_true(nb_allclose(gv[0], gc[0], 1e-12, 1e-12));
    assert_true(nb_allclose(gv[1], gc[1], 1e-12, 1e-12));
    nb_graph_free(g);
    nb_free(x);
    nb_free(b);
}

/* The same function of x and w through views, or through packed copies of
 * every view (nb_contiguous copies each one). */
static nb_tensor *through(nb_tensor *x, nb_tensor *w, bool copy)
{
    nb_tensor *(*c)(nb_tensor *) = nb_contiguous;
    nb_tensor *s = nb_slice(x, 0, 7, 0, -2); /* rows 7, 5, 3, 1: (4,5,4) */
    nb_tensor *p = nb_permute(copy ? c(s) : s, 3, (const int[]){1, 2, 0}); /* (5,4,4) */
    if (copy)
        p = c(p);
    nb_tensor *e = nb_broadcast_to(w, NB_SHAPE(5, 4, 4));
    if (copy)
        e = c(e);
    nb_tensor *pt = nb_transpose(p, 1, 2);
    nb_tensor *m = nb_matmul(copy ? c(pt) : pt, p); /* (5,4,4) */
    nb_tensor *r = nb_reshape(nb_transpose(m, 0, 2), NB_SHAPE(4, 20)); /* a copying reshape */
    nb_tensor *q = nb_sum(nb_mul(nb_tanh(nb_mul(p, e)), nb_sum(m, .axes = NB_AXES(2), .keepdims = true)));
    return nb_add(q, nb_sum(nb_square(r)));
}

static void test_views_equal_copies(void **state)
{
    (void)state;
    nb_rng rng = nb_rng_new(7);
    nb_tensor *x = nb_param(nb_randn(NB_F64, NB_SHAPE(8, 5, 4), &rng));
    nb_tensor *w = nb_param(nb_randn(NB_F64, NB_SHAPE(4, 1), &rng));
    nb_graph *g = nb_graph_new();
    nb_tensor *in[2] = {x, w}, *gv[2], *gc[2];
    nb_tensor *yv = through(x, w, false), *yc = through(x, w, true);
    assert_non_null(yv);
    assert_non_null(yc);
    assert_true(nb_allclose(yv, yc, 1e-13, 1e-13));
    assert_int_equal(nb_grad(yv, .n = 2, .inputs = in, .grads = gv), 0);
    assert_int_equal(nb_grad(yc, .n = 2, .inputs = in, .grads = gc), 0);
    assert_true(nb_allclose(gv[0], gc[0], 1e-12, 1e-12));
    assert_true(nb_allclose(gv[1], gc[1], 1e-12, 1e-12));
    /* Rows the slice skipped get no gradient; the ones it kept do. */
    assert_true(nb_get(gv[0], NB_AT(0, 2, 1)) == 0);
    assert_true(nb_get(gv[0], NB_AT(7, 2, 1)) != 0);
    nb_graph_free(g);
    nb_free(x);
    nb_free(w);
}

static void test_writes_through_views(void **state)
{
    (void)state;
    nb_tensor *x = iota(NB_SHAPE(3, 4));
    nb_graph *g = nb_graph_new();
    nb_tensor *col = nb_slice(nb_transpose(x, 0, 1), 0, 1, 2, 1); /* x[:, 1] as (1,3) */
    assert_int_equal(nb_assign(col, nb_scalar_like(col, 5)), 0);
    for (int i = 0; i < 3; i++)
        assert_true(nb_get(x, NB_AT(i, 1)) == 5);
    assert_true(nb_get(x, NB_AT(0, 0)) == -1);
    assert_int_equal(nb_set(col, NB_AT(0, 2), 7), 0);
    assert_true(nb_get(x, NB_AT(2, 1)) == 7);
    /* Overlapping source and destination in one storage: reads the old values. */
    nb_tensor *row0 = nb_slice(x, 0, 0, 1, 1), *row1 = nb_slice(x, 0, 1, 2, 1);
    nb_tensor *rows01 = nb_slice(x, 0, 0, 2, 1), *rows12 = nb_slice(x, 0, 1, 3, 1);
    double r0[4], r1[4];
    nb_to_doubles(row0, r0);
    nb_to_doubles(row1, r1);
    assert_int_equal(nb_assign(rows12, rows01), 0);
    for (int j = 0; j < 4; j++) {
        assert_true(nb_get(x, NB_AT(1, j)) == r0[j]);
        assert_true(nb_get(x, NB_AT(2, j)) == r1[j]);
    }
    /* A broadcast view's elements share memory: no in-place writes. */
    nb_tensor *e = nb_broadcast_to(row0, NB_SHAPE(5, 1, 4));
    FAILS_RC(nb_assign(e, nb_scalar_like(e, 1)), "nb_assign", "share memory");
    FAILS_RC(nb_set(e, NB_AT(0, 0, 0), 1), "nb_set", "share memory");
    nb_graph_free(g);
    nb_free(x);
}

static void test_version_seen_through_any_alias(void **state)
{
    (void)state;
    nb_tensor *w = nb_param(iota(NB_SHAPE(2, 3)));
    nb_tensor *x = iota(NB_SHAPE(2, 3));
    nb_graph *g = nb_graph_new();
    /* mul saves both inputs: x through a permuted view of it. */
    nb_tensor *xt = nb_transpose(x, 0, 1);
    nb_tensor *y = nb_sum(nb_mul(w, nb_transpose(xt, 0, 1)));
    /* A write to another view of x, after recording. */
    nb_tensor *alias = nb_reshape(x, NB_SHAPE(6));
    bool prev = nb_set_grad_enabled(false);
    assert_int_equal(nb_assign(nb_slice(alias, 0, 2, 3, 1), nb_scalar_like(alias, 9)), 0);
    nb_set_grad_enabled(prev);
    FAILS_RC(nb_backward(y), "nb_backward", "modified in place", "nb_mul");
    nb_graph_free(g);
    nb_free(w);
    nb_free(x);
}

static void test_reshape_view_or_copy(void **state)
{
    (void)state;
    nb_tensor *x = iota(NB_SHAPE(2, 3, 4));
    nb_graph *g = nb_graph_new();
    nb_tensor *v = nb_reshape(nb_permute(x, 3, (const int[]){0, 2, 1}), NB_SHAPE(2, 4, 3, 1));
    assert_true(nb_data(v) == nb_data(x));
    nb_tensor *c = nb_reshape(nb_permute(x, 3, (const int[]){0, 2, 1}), NB_SHAPE(8, 3));
    assert_false(nb_data(c) == nb_data(x));
    assert_true(nb_is_contiguous(c));
    /* Row-major order of the permuted view, whichever way it was made. */
    assert_true(nb_get(c, NB_AT(5, 2)) == nb_get(x, NB_AT(1, 2, 1)));
    assert_true(nb_contiguous(c) == c);
    nb_tensor *pc = nb_contiguous(nb_permute(x, 3, (const int[]){2, 1, 0}));
    assert_true(nb_is_contiguous(pc));
    assert_true(nb_get(pc, NB_AT(3, 2, 1)) == nb_get(x, NB_AT(1, 2, 3)));
    /* Empty slices and squeeze / unsqueeze. */
    nb_tensor *empty = nb_slice(x, 1, 2, 2, 1);
    assert_int_equal(nb_numel(empty), 0);
    assert_int_equal(nb_dim(nb_slice(x, 2, 3, 0, -1), 2), 3);
    assert_int_equal(nb_dim(nb_slice(x, 2, INT64_MIN, INT64_MAX, 1), 2), 4);
    assert_int_equal(nb_ndim(nb_unsqueeze(x, 1)), 4);
    assert_int_equal(nb_dim(nb_unsqueeze(x, -1), 3), 1);
    FAILS(nb_squeeze(x, 0), "nb_squeeze", "size 2");
    nb_graph_free(g);
    nb_free(x);
}

/* Every layout of a matrix that gemm reads in place (rows spaced out, or
 * transposed) gives the product of packed copies and adds nothing to the
 * graph but the output; other layouts are packed, and still right. */
static void test_matmul_layouts(void **state)
{
    (void)state;
    nb_tensor *a = iota(NB_SHAPE(12, 40)), *at = iota(NB_SHAPE(40, 6));
    nb_tensor *b = iota(NB_SHAPE(40, 16)), *bt = iota(NB_SHAPE(16, 40)), *bw = iota(NB_SHAPE(40, 32));
    nb_graph *g = nb_graph_new();
    nb_tensor *lhs[] = {nb_slice(a, 0, 0, 12, 2), nb_transpose(at, 0, 1), nb_slice(a, 0, 6, 12, 1)};
    nb_tensor *rhs[] = {b, nb_transpose(bt, 0, 1), nb_slice(bw, 1, 0, 16, 1)};
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 3; k++) {
            nb_tensor *l = lhs[i], *r = rhs[k];
            nb_tensor *want = nb_matmul(nb_add(l, nb_scalar_like(l, 0)), nb_add(r, nb_scalar_like(r, 0)));
            size_t before = nb_graph_bytes(g);
            nb_tensor *got = nb_matmul(l, r);
            size_t grew = nb_graph_bytes(g) - before;
            assert_true(nb_allclose(got, want, 1e-13, 1e-13));
            assert_true(grew < (size_t)nb_numel(got) * 8 + 512); /* a packed copy is > 1 KiB */
        }
    nb_tensor *odd = nb_slice(nb_slice(a, 0, 0, 12, 2), 1, 0, 40, 2); /* (6,20), strides (80,2) */
    nb_tensor *r = nb_slice(b, 0, 39, INT64_MIN, -2);                   /* (20,16), reversed rows */
    nb_tensor *want = nb_matmul(nb_contiguous(odd), nb_contiguous(r));
    size_t before = nb_graph_bytes(g);
    nb_tensor *got = nb_matmul(odd, r);
    assert_true(nb_graph_bytes(g) - before > (size_t)nb_numel(odd) * 8); /* packed */
    assert_true(nb_allclose(got, want, 1e-13, 1e-13));
    nb_graph_free(g);
    nb_free(a);
    nb_free(at);
    nb_free(b);
    nb_free(bt);
    nb_free(bw);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_views_allocate_no_data),
        cmocka_unit_test(test_views_equal_copies),
        cmocka_unit_test(test_writes_through_views),
        cmocka_unit_test(test_version_seen_through_any_alias),
        cmocka_unit_test(test_reshape_view_or_copy),
        cmocka_unit_test(test_matmul_layouts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
