/* Bad input to every public entry point: NULL, mismatched shapes, wrong
 * dtypes. Each must return an error value and a message naming the function
 * (and the shapes where there are shapes), never abort or print. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "testing.h"

#include <math.h>
#include <string.h>

#include "nabla/nabla.h"

static nb_tensor *a23, *b32, *c4, *d23, *s;
static nb_graph *g;

static int setup(void **state)
{
    (void)state;
    a23 = nb_ones(NB_F32, NB_SHAPE(2, 3));
    b32 = nb_ones(NB_F32, NB_SHAPE(3, 2));
    c4 = nb_ones(NB_F32, NB_SHAPE(4));
    d23 = nb_ones(NB_F64, NB_SHAPE(2, 3));
    s = nb_scalar(NB_F32, 1);
    g = nb_graph_new();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    nb_graph_free(g);
    nb_free(a23);
    nb_free(b32);
    nb_free(c4);
    nb_free(d23);
    nb_free(s);
    return 0;
}

static void test_null_inputs(void **state)
{
    (void)state;
    FAILS(nb_add(NULL, a23), "nb_add", "input 1 is NULL");
    FAILS(nb_mul(a23, NULL), "nb_mul", "input 2 is NULL");
    FAILS(nb_sub(NULL, NULL), "nb_sub");
    FAILS(nb_div(NULL, a23), "nb_div");
    FAILS(nb_pow(NULL, a23), "nb_pow");
    FAILS(nb_maximum(NULL, a23), "nb_maximum");
    FAILS(nb_minimum(NULL, a23), "nb_minimum");
    FAILS(nb_eq(NULL, a23), "nb_eq");
    FAILS(nb_ne(NULL, a23), "nb_ne");
    FAILS(nb_lt(NULL, a23), "nb_lt");
    FAILS(nb_le(NULL, a23), "nb_le");
    FAILS(nb_gt(NULL, a23), "nb_gt");
    FAILS(nb_ge(NULL, a23), "nb_ge");
    FAILS(nb_where(NULL, a23, a23), "nb_where");
    FAILS(nb_neg(NULL), "nb_neg");
    FAILS(nb_exp(NULL), "nb_exp");
    FAILS(nb_log(NULL), "nb_log");
    FAILS(nb_sqrt(NULL), "nb_sqrt");
    FAILS(nb_abs(NULL), "nb_abs");
    FAILS(nb_sign(NULL), "nb_sign");
    FAILS(nb_tanh(NULL), "nb_tanh");
    FAILS(nb_sigmoid(NULL), "nb_sigmoid");
    FAILS(nb_relu(NULL), "nb_relu");
    FAILS(nb_clamp(NULL, 0, 1), "nb_clamp");
    FAILS(nb_detach(NULL), "nb_detach");
    FAILS(nb_cast(NULL, NB_F64), "nb_cast");
    FAILS(nb_full_like(NULL, 1), "nb_full_like");
    FAILS(nb_scalar_like(NULL, 1), "nb_scalar_like: t is NULL");
    FAILS(nb_sum(NULL), "nb_sum");
    FAILS(nb_max(NULL), "nb_max");
    FAILS(nb_argmax(NULL, 0), "nb_argmax");
    FAILS(nb_matmul(NULL, b32), "nb_matmul");
    FAILS(nb_matmul(a23, nb_transpose(NULL, -2, -1)), "nb_transpose: x is NULL");
    FAILS(nb_reshape(NULL, NB_SHAPE(6)), "nb_reshape");
    FAILS(nb_permute(NULL, 2, (const int[]){1, 0}), "nb_permute");
    FAILS(nb_broadcast_to(NULL, NB_SHAPE(2, 3)), "nb_broadcast_to");
    FAILS(nb_sum_to(NULL, NB_SHAPE(3)), "nb_sum_to");
    FAILS(nb_slice(NULL, 0, 0, 1, 1), "nb_slice");
    FAILS(nb_slice_scatter(a23, NULL, 0, 0, 1, 1), "nb_slice_scatter");
    FAILS(nb_concat(2, (nb_tensor *[]){a23, NULL}, 0), "nb_concat");
    FAILS(nb_concat(0, NULL, 0), "nb_concat");
    FAILS(nb_index_select(a23, 0, NULL), "nb_index_select");
    FAILS(nb_index_add(NULL, 0, c4, a23), "nb_index_add");
    FAILS(nb_one_hot(NULL, 3), "nb_one_hot");
    FAILS_RC(nb_assign(NULL, a23), "nb_assign");
    FAILS_RC(nb_backward(NULL), "nb_backward");
    nb_tensor *gr[1];
    FAILS_RC(nb_grad(NULL, .n = 1, .inputs = &a23, .grads = gr), "nb_grad");
    FAILS(nb_clone(NULL), "nb_clone");
    FAILS(nb_param(NULL), "nb_param: tensor is NULL");
    FAILS(nb_set_name(NULL, "x"), "nb_set_name");
    FAILS(nb_from_array(NB_F32, NB_SHAPE(2), NULL), "nb_from_array");
    FAILS(nb_rand(NB_F32, NB_SHAPE(2), NULL), "nb_rand");
    FAILS(nb_randn(NB_F32, NB_SHAPE(2), NULL), "nb_randn");
    FAILS(nb_apply(NULL, &a23, 1, NULL), "nb_apply");
    FAILS(nb_dot_string(NULL, NULL), "nb_dot");
    FAILS_RC(nb_dot_write(NULL, "x.dot", NULL), "nb_dot");
    FAILS_RC(nb_print(NULL, stdout), "nb_print");
    FAILS_RC(nb_set(NULL, NB_AT(0), 1), "nb_set");
    nb_clear_error();
    assert_true(isnan(nb_get(NULL, NB_AT(0))));
    assert_true(isnan(nb_item(NULL)));
    assert_false(nb_allclose(NULL, a23, 0, 0));
    assert_int_equal(nb_ndim(NULL), -1);
    assert_int_equal(nb_numel(NULL), -1);
    assert_null(nb_data(NULL));
    assert_null(nb_grad_of(NULL));
    assert_false(nb_requires_grad(NULL));
    nb_free(NULL);      /* harmless */
    nb_zero_grad(NULL); /* harmless */
    /* The view and memory functions of engine v2. */
    FAILS(nb_squeeze(NULL, 0), "nb_squeeze: x is NULL");
    FAILS(nb_unsqueeze(NULL, 0), "nb_unsqueeze: x is NULL");
    FAILS(nb_contiguous(NULL), "nb_contiguous", "input 1 is NULL");
    nb_clear_error();
    assert_true(isnan(nb_get_flat(NULL, 0)));
    ERR_HAS("nb_get_flat");
    FAILS(nb_mem_alloc(SIZE_MAX), "too large");
    assert_null(nb_strides(NULL));
    assert_int_equal(nb_offset(NULL), -1);
    assert_false(nb_is_contiguous(NULL));
    assert_false(nb_is_heap(NULL));
    assert_int_equal(nb_graph_generation(NULL), 0);
    assert_int_equal(nb_dtype_size((nb_dtype)7), 0);
    char b[NB_SHAPE_STR_LEN];
    assert_string_equal(nb_shape_str(NULL, b), "(null)");
    assert_string_equal(nb_check_layout_name((nb_check_layout)9), "?");
    nb_bump_version(NULL); /* harmless */
    nb_mem_free(NULL);     /* harmless */
}

/* Calls that need a graph, or an index in range. */
static void test_graph_and_ranges(void **state)
{
    (void)state;
    nb_tensor *a = nb_ones(NB_F32, NB_SHAPE(2, 3));
    nb_clear_error();
    assert_true(isnan(nb_get_flat(a, 6)));
    ERR_HAS("nb_get_flat: index 6 is out of range for (2,3) (6 elements)");
    assert_true(isnan(nb_get_flat(a, -1)));
    /* With no current graph (the group's graph is made again after). */
    nb_graph_free(g);
    assert_null(nb_graph_current());
    FAILS(nb_squeeze(a, 0), "nb_squeeze: no current graph");
    FAILS(nb_kernel_scratch(64), "nb_kernel_scratch: no current graph");
    assert_true(nb_contiguous(a) == a); /* already contiguous: itself, no graph needed */
    g = nb_graph_new();
    nb_free(a);
}

static void test_first_error_wins(void **state)
{
    (void)state;
    nb_clear_error();
    /* The matmul fails; everything after it sees NULL and keeps that message. */
    nb_tensor *y = nb_sum(nb_relu(nb_add(nb_matmul(a23, a23), c4)));
    assert_null(y);
    assert_string_equal(nb_last_error(), "nb_matmul: inner dimensions differ: (2,3) @ (2,3)");
}

static void test_shapes_and_dtypes(void **state)
{
    (void)state;
    FAILS(nb_add(a23, c4), "nb_add", "(2,3)", "(4,)");
    FAILS(nb_mul(a23, d23), "nb_mul", "f32", "f64");
    FAILS(nb_where(a23, a23, c4), "nb_where", "(4,)");
    FAILS(nb_matmul(a23, a23), "nb_matmul", "(2,3) @ (2,3)");
    FAILS(nb_matmul(c4, c4), "nb_matmul", "(4,)");
    FAILS(nb_matmul(a23, nb_cast(b32, NB_F64)), "nb_matmul", "f64");
    FAILS(nb_reshape(a23, NB_SHAPE(4, 2)), "nb_reshape", "(2,3)", "(4,2)");
    FAILS(nb_reshape(a23, NB_SHAPE(-1, -1)), "nb_reshape");
    FAILS(nb_permute(a23, 2, (const int[]){0, 0}), "nb_permute");
    FAILS(nb_permute(a23, 1, (const int[]){0}), "nb_permute");
    FAILS(nb_transpose(a23, 0, 5), "nb_transpose", "(2,3)");
    FAILS(nb_broadcast_to(a23, NB_SHAPE(3, 3)), "nb_broadcast_to", "(2,3)", "(3,3)");
    FAILS(nb_sum_to(a23, NB_SHAPE(4)), "nb_sum_to");
    FAILS(nb_sum(a23, .axes = NB_AXES(2)), "nb_sum", "axis 2", "(2,3)");
    FAILS(nb_sum(a23, .axes = NB_AXES(0, -2)), "nb_sum", "repeated");
    FAILS(nb_max(a23, .axes = NB_AXES(-3)), "nb_max");
    FAILS(nb_mean(a23, .axes = NB_AXES(7)), "nb_mean");
    FAILS(nb_argmax(a23, 2), "nb_argmax");
    FAILS(nb_softmax(a23, 3), "(2,3)");
    FAILS(nb_slice(a23, 2, 0, 1, 1), "nb_slice");
    FAILS(nb_slice(a23, 0, 0, 1, 0), "nb_slice", "step");
    FAILS(nb_slice_scatter(a23, c4, 1, 0, 2, 1), "nb_slice_scatter");
    FAILS(nb_concat(2, (nb_tensor *[]){a23, c4}, 0), "nb_concat");
    FAILS(nb_concat(2, (nb_tensor *[]){a23, d23}, 0), "nb_concat");
    FAILS(nb_concat(1, (nb_tensor *[]){a23}, 2), "nb_concat");
    FAILS(nb_clamp(a23, 1, 0), "nb_clamp");
    FAILS(nb_cast(a23, (nb_dtype)9), "nb_cast");
    FAILS(nb_zeros((nb_dtype)7, NB_SHAPE(2)), "dtype");
    FAILS(nb_zeros(NB_F32, NB_SHAPE(-2)), "(-2,)");
    FAILS(nb_zeros(NB_F32, 9, (const int64_t[]){1, 1, 1, 1, 1, 1, 1, 1, 1}), "dimensions");
    FAILS(nb_arange(NB_F32, 0, 1, 0), "nb_arange");
    FAILS_RC(nb_assign(a23, c4), "nb_assign", "(4,)", "(2,3)");
    FAILS_RC(nb_assign(a23, d23), "nb_assign", "f64");
    FAILS_RC(nb_set(a23, NB_AT(2, 0), 1), "nb_set", "(2,0)", "(2,3)");
    FAILS_RC(nb_set(a23, NB_AT(0), 1), "nb_set", "1 dimensions");
    nb_clear_error();
    assert_true(isnan(nb_get(a23, NB_AT(0, 3))));
    assert_non_null(strstr(nb_last_error(), "nb_get"));
    assert_int_equal(nb_dim(a23, 2), -1);
    assert_non_null(strstr(nb_last_error(), "nb_dim"));
}

static void test_indices(void **state)
{
    (void)state;
    nb_tensor *idx = nb_from_array(NB_F32, NB_SHAPE(2), (float[]){0, 5});
    FAILS(nb_index_select(a23, 1, idx), "nb_index_select", "5");
    FAILS(nb_one_hot(idx, 3), "nb_one_hot", "5");
    nb_tensor *frac = nb_from_array(NB_F32, NB_SHAPE(1), (float[]){0.5f});
    FAILS(nb_one_hot(frac, 3), "nb_one_hot", "0.5");
    FAILS(nb_index_select(a23, 0, frac), "nb_index_select");
    FAILS(nb_index_add(a23, 0, idx, a23), "nb_index_add");
    nb_free(idx);
    nb_free(frac);
}

static void test_autograd_misuse(void **state)
{
    (void)state;
    nb_tensor *gr[1];
    /* Backward from a tensor nothing requires grad for. */
    FAILS_RC(nb_backward(nb_sum(a23)), "nb_backward", "does not require grad");
    /* nb_grad with respect to a tensor that does not require grad. */
    nb_tensor *p = nb_param(nb_ones(NB_F32, NB_SHAPE(2)));
    nb_tensor *y = nb_sum(p);
    FAILS_RC(nb_grad(y, .n = 1, .inputs = &a23, .grads = gr), "nb_grad", "does not require grad");
    FAILS_RC(nb_grad(y, .n = 0, .inputs = &p, .grads = gr), "nb_grad");
    /* Requires-grad on an op result is refused (it is not a leaf). */
    FAILS(nb_set_requires_grad(nb_mul(p, p), true), "nb_set_requires_grad", "leaf");
    /* Ops with no graph. */
    nb_graph *cur = g;
    (void)cur;
    nb_free(p);
}

/* User ops that break the contract in one way each. */
static int bad_shape(nb_meta *out, nb_tensor *const x[], int n, const void *attr)
{
    (void)x, (void)n, (void)attr;
    out->dtype = (nb_dtype)0;
    return 0;
}
static int picky_shape(nb_meta *out, nb_tensor *const x[], int n, const void *attr);
NB_UNARY_KERNELS(copy, u)
static const nb_op bad_op = {.name = "bad", .arity = 1, .shape = bad_shape,
                             .forward = NB_KERNELS(copy)};
static const nb_op picky_op = {.name = "picky", .arity = 1, .shape = picky_shape,
                               .forward = NB_KERNELS(copy)};
static int picky_shape(nb_meta *out, nb_tensor *const x[], int n, const void *attr)
{
    (void)out, (void)x, (void)n, (void)attr;
    return nb_op_error(&picky_op, "wants a square matrix");
}
/* A shape rule that asks for more elements than there can be. */
static int huge_shape(nb_meta *out, nb_tensor *const x[], int n, const void *attr)
{
    (void)n, (void)attr;
    out->dtype = nb_dtype_of(x[0]);
    out->ndim = 3;
    out->shape[0] = out->shape[1] = out->shape[2] = (int64_t)1 << 21;
    return 0;
}
static const nb_op huge_op = {.name = "huge", .arity = 1, .shape = huge_shape,
                              .forward = NB_KERNELS(copy)};
/* A view that reaches past its input's storage. */
static int wild_view(nb_meta *out, nb_tensor *const x[], int n, const void *attr)
{
    nb_shape_same(out, x, n, attr);
    out->view = true;
    out->offset = nb_offset(x[0]) + 1;
    for (int i = 0; i < out->ndim; i++)
        out->strides[i] = nb_strides(x[0])[i];
    return 0;
}
static const nb_op wild_op = {.name = "wild", .arity = 1, .shape = wild_view};
/* Only an f64 kernel; no backward and no declaration that there is none. */
static const nb_op f64_only = {.name = "f64only", .arity = 1, .shape = nb_shape_same,
                               .forward = {[NB_F64] = copy_f64}};
/* A kernel that cannot finish. */
static void failing_kernel(const nb_view *y, const nb_view *x, int n, const void *attr)
{
    (void)y, (void)x, (void)n, (void)attr;
    nb_set_error("failing: out of scratch");
}
static const nb_op failing_op = {.name = "failing", .arity = 1, .shape = nb_shape_same,
                                 .forward = {[NB_F32] = failing_kernel, [NB_F64] = failing_kernel}};
/* Declarations that name inputs the op does not have. */
static const nb_op masks_op = {.name = "masks", .arity = 1, .shape = nb_shape_same,
                               .forward = NB_KERNELS(copy), .nondiff = NB_INPUT(3)};
static const nb_op wide_op = {.name = "wide", .arity = NB_MAX_INPUTS + 1, .shape = nb_shape_same,
                              .forward = NB_KERNELS(copy)};
static const nb_op vararg_op = {.name = "vararg", .arity = -1, .shape = nb_shape_same,
                                .forward = NB_KERNELS(copy), .no_gradient = true};
/* A variable-arity op's masks may name inputs some calls leave out (an
 * optional bias). */
static const nb_op optional_op = {.name = "optional", .arity = -1, .shape = nb_shape_same,
                                  .forward = NB_KERNELS(copy), .no_gradient = true,
                                  .contiguous = NB_INPUT(0) | NB_INPUT(2)};

static void test_user_ops(void **state)
{
    (void)state;
    FAILS(nb_apply(&bad_op, &a23, 1, NULL), "bad", "dtype");
    FAILS(nb_apply(&picky_op, &a23, 1, NULL), "picky: wants a square matrix");
    FAILS(nb_apply(&picky_op, (nb_tensor *[]){a23, a23}, 2, NULL), "picky", "takes 1 inputs");
    FAILS(nb_apply(&(nb_op){.name = "x"}, &a23, 1, NULL), "nb_apply");
    FAILS(nb_apply(&huge_op, &a23, 1, NULL), "huge: shape (2097152,2097152,2097152)", "2^48");
    FAILS(nb_apply(&wild_op, &a23, 1, NULL), "wild: the view (2,3)", "outside the storage");
    FAILS(nb_apply(&f64_only, &a23, 1, NULL), "f64only: has no f32 kernel");
    assert_non_null(nb_apply(&f64_only, &d23, 1, NULL));
    FAILS(nb_apply(&failing_op, &a23, 1, NULL), "failing: out of scratch");
    FAILS(nb_apply(&masks_op, &a23, 1, NULL), "masks", "beyond");
    assert_non_null(nb_apply(&optional_op, &a23, 1, NULL));
    FAILS(nb_apply(&wide_op, &a23, 1, NULL), "wide: arity 9");
    nb_tensor *many[NB_MAX_INPUTS + 1];
    for (int i = 0; i <= NB_MAX_INPUTS; i++)
        many[i] = a23;
    assert_non_null(nb_apply(&vararg_op, many, NB_MAX_INPUTS, NULL));
    FAILS(nb_apply(&vararg_op, many, NB_MAX_INPUTS + 1, NULL), "vararg: takes 1 to 8 inputs, got 9");
    /* No backward and no .no_gradient: refused on an input that requires
     * grad, never a silently dropped gradient; fine without recording. */
    nb_tensor *p = nb_param(nb_ones(NB_F64, NB_SHAPE(2)));
    FAILS(nb_apply(&f64_only, &p, 1, NULL), "f64only: backward not implemented", "input 1");
    bool prev = nb_set_grad_enabled(false);
    assert_non_null(nb_apply(&f64_only, &p, 1, NULL));
    nb_set_grad_enabled(prev);
    nb_free(p);
}

/* Shapes are checked once, in one place, for every path that makes a tensor. */
static void test_shape_arithmetic(void **state)
{
    (void)state;
    nb_tensor *x6 = nb_ones(NB_F32, NB_SHAPE(2, 3));
    FAILS(nb_broadcast_to(x6, NB_SHAPE(-5)), "nb_broadcast_to");
    nb_tensor *s0 = nb_scalar(NB_F32, 1);
    FAILS(nb_broadcast_to(s0, NB_SHAPE(-5)), "nb_broadcast_to: dimension 0 is -5");
    FAILS(nb_broadcast_to(s0, NB_SHAPE((int64_t)1 << 40, (int64_t)1 << 40)), "nb_broadcast_to",
          "2^48");
    /* 9 * 6148914691236517206 wraps to 6 in 64 bits. */
    FAILS(nb_reshape(x6, NB_SHAPE(9, 6148914691236517206)), "nb_reshape", "2^48");
    FAILS(nb_reshape(x6, NB_SHAPE(-1, 6148914691236517206, 3)), "nb_reshape");
    nb_tensor *labels = nb_zeros(NB_F32, NB_SHAPE(5));
    FAILS(nb_one_hot(labels, (int64_t)1 << 62), "nb_one_hot", "2^48");
    nb_free(labels);
    FAILS(nb_zeros(NB_F32, NB_SHAPE((int64_t)1 << 30, (int64_t)1 << 30)), "nb_zeros", "2^48");
    FAILS(nb_zeros(NB_F32, NB_SHAPE(0, (int64_t)1 << 40, (int64_t)1 << 40)), "nb_zeros", "2^48");
    FAILS(nb_arange(NB_F32, 0, 1e300, 1), "nb_arange", "2^48");
    FAILS(nb_full(NB_F64, NB_SHAPE(2, -3), 1), "nb_full: dimension 1 is -3");
    nb_tensor *empty = nb_zeros(NB_F32, NB_SHAPE(0, (int64_t)1 << 40));
    assert_non_null(empty);
    assert_int_equal(nb_numel(empty), 0);
    FAILS(nb_slice(x6, 0, 0, 1, INT64_MIN), "nb_slice", "step");
    FAILS(nb_squeeze(x6, 1), "nb_squeeze", "size 3");
    FAILS(nb_unsqueeze(x6, 3), "nb_unsqueeze");
    nb_free(empty);
    nb_free(x6);
    nb_free(s0);
}

static void test_allocator_hooks(void **state)
{
    (void)state;
    FAILS_RC(nb_set_allocator(&(nb_allocator){count_alloc, NULL, NULL}), "nb_set_allocator");
    /* Hooks are kept for the blocks they made: a bounded number of them. */
    int k = 0;
    for (; k < 40; k++)
        if (nb_set_allocator(&(nb_allocator){count_alloc, count_free, (void *)(intptr_t)(k + 1)}))
            break;
    assert_true(k > 0 && k < 40);
    ERR_HAS("distinct allocators");
    assert_int_equal(nb_set_allocator(NULL), 0);
    /* The same hook again is not a new one. */
    assert_int_equal(nb_set_allocator(&(nb_allocator){count_alloc, count_free, (void *)1}), 0);
    assert_int_equal(nb_set_allocator(NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_null_inputs),     cmocka_unit_test(test_first_error_wins),
        cmocka_unit_test(test_shapes_and_dtypes), cmocka_unit_test(test_indices),
        cmocka_unit_test(test_autograd_misuse), cmocka_unit_test(test_user_ops),
        cmocka_unit_test(test_shape_arithmetic), cmocka_unit_test(test_allocator_hooks),
        cmocka_unit_test(test_graph_and_ranges),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
