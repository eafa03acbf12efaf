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

/* The call fails (returns NULL) with a message containing each given string. */


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
    FAILS(nb_scalar_like(NULL, 1), "nb_full_like");
    FAILS(nb_sum(NULL), "nb_sum");
    FAILS(nb_max(NULL), "nb_max");
    FAILS(nb_argmax(NULL, 0), "nb_argmax");
    FAILS(nb_matmul(NULL, b32), "nb_matmul");
    FAILS(nb_matmul(a23, nb_transpose(NULL, -2, -1)), "nb_matmul");
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
    FAILS(nb_param(NULL), "nb_set_requires_grad");
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

/* A user op with a bad shape rule result and a user op that reports errors. */
static int bad_shape(nb_meta *out, nb_tensor *const x[], int n, const void *attr)
{
    (void)x, (void)n, (void)attr;
    out->dtype = (nb_dtype)0;
    return 0;
}
static int picky_shape(nb_meta *out, nb_tensor *const x[], int n, const void *attr);
static void noop_forward(nb_tensor *y, nb_tensor *const x[], int n, const void *attr)
{
    (void)y, (void)x, (void)n, (void)attr;
}
static const nb_op bad_op = {.name = "bad", .arity = 1, .shape = bad_shape, .forward = noop_forward};
static const nb_op picky_op = {.name = "picky", .arity = 1, .shape = picky_shape,
                               .forward = noop_forward};
static int picky_shape(nb_meta *out, nb_tensor *const x[], int n, const void *attr)
{
    (void)out, (void)x, (void)n, (void)attr;
    return nb_op_error(&picky_op, "wants a square matrix");
}

static void test_user_ops(void **state)
{
    (void)state;
    FAILS(nb_apply(&bad_op, &a23, 1, NULL), "bad", "dtype");
    FAILS(nb_apply(&picky_op, &a23, 1, NULL), "picky: wants a square matrix");
    FAILS(nb_apply(&picky_op, (nb_tensor *[]){a23, a23}, 2, NULL), "picky", "takes 1 inputs");
    FAILS(nb_apply(&(nb_op){.name = "x"}, &a23, 1, NULL), "nb_apply");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_null_inputs),     cmocka_unit_test(test_first_error_wins),
        cmocka_unit_test(test_shapes_and_dtypes), cmocka_unit_test(test_indices),
        cmocka_unit_test(test_autograd_misuse), cmocka_unit_test(test_user_ops),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
