/* The counted bad-argument test, part 1: factories, inspection, ops, no
 * current graph
 * (bad_args.h says what a case checks; part 2: test_bad_args_api.c). */
#define _POSIX_C_SOURCE 200809L
#include "bad_args.h"

/* ---- factories ---- */

static nb_rng rng_;
static nb_tensor *mk_zeros(nb_dtype d, int n, const int64_t *s) { return nb_zeros(d, n, s); }
static nb_tensor *mk_empty(nb_dtype d, int n, const int64_t *s) { return nb_empty(d, n, s); }
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
    {"nb_empty", mk_empty},
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
    CASE("nb_empty", MEM, nb_empty(NB_F32, NB_SHAPE(BIG, 128)) == NULL);
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
    /* u8: whole numbers in [0, 255], never drawn at random. */
    CASE("nb_rand", DTY, nb_rand(NB_U8, NB_SHAPE(2), &rng_) == NULL);
    CASE("nb_randn", DTY, nb_randn(NB_U8, NB_SHAPE(2), &rng_) == NULL);
    CASE("nb_full", INV, nb_full(NB_U8, NB_SHAPE(2), 256) == NULL);
    CASE("nb_full", INV, nb_full(NB_U8, NB_SHAPE(2), 0.5) == NULL);
    CASE("nb_scalar", INV, nb_scalar(NB_U8, -1) == NULL);
    CASE("nb_arange", INV, nb_arange(NB_U8, 0, 300, 1) == NULL);
    CASE("nb_arange", INV, nb_arange(NB_U8, 0, 3, 0.5) == NULL);
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
    /* u8: values in [0, 255], never a gradient. */
    nb_tensor *u = nb_zeros(NB_U8, NB_SHAPE(2, 3));
    CASE("nb_set", INV, nb_set(u, NB_AT(0, 0), 256) == -1);
    CASE("nb_set", INV, nb_set(u, NB_AT(0, 0), -0.5) == -1);
    CASE("nb_set", INV, nb_set(u, NB_AT(0, 0), NAN) == -1);
    CASE("nb_set_requires_grad", DTY, nb_set_requires_grad(u, true) == NULL);
    CASE("nb_param", DTY, nb_param(u) == NULL);
    nb_free(u);
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
OP2(relu_grad, nb_relu_grad(x[0], x[1]))
OP2(tanh_grad, nb_tanh_grad(x[0], x[1]))
OP2(sigmoid_grad, nb_sigmoid_grad(x[0], x[1]))
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
OP2(topk, nb_top_k_accuracy(x[0], x[1], 2))
OP2(stopk, nb_sparse_top_k_accuracy(x[0], x[1], 2))
OP2(bacc, nb_binary_accuracy(x[0], x[1]))
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
    {"nb_relu_grad", op_relu_grad, 2, {&f23, &f23}},
    {"nb_tanh_grad", op_tanh_grad, 2, {&f23, &f23}},
    {"nb_sigmoid_grad", op_sigmoid_grad, 2, {&f23, &f23}},
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
    {"nb_top_k_accuracy", op_topk, 2, {&f23, &f23}},
    {"nb_sparse_top_k_accuracy", op_stopk, 2, {&f23, &lab01}},
    {"nb_binary_accuracy", op_bacc, 2, {&f23, &f23}},
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
            /* A u8 input of the good one's shape: ops do not compute in u8,
             * except nb_cast, and nb_contiguous gives a packed one back. */
            if (strcmp(c->fn, "nb_cast") == 0 || strcmp(c->fn, "nb_contiguous") == 0)
                continue;
            nb_tensor *good = *c->good[i];
            x[i] = nb_zeros(NB_U8, nb_ndim(good), nb_shape(good));
            CASE(c->fn, DTY, c->op(x) == NULL);
            nb_free(x[i]);
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
                            "nb_categorical_crossentropy_logits", "nb_categorical_accuracy",
                            "nb_top_k_accuracy", "nb_binary_accuracy"};
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
    CASE("nb_top_k_accuracy", SHP, nb_top_k_accuracy(s0, s0, 1) == NULL);
    const int bad_k[] = {0, -1, INT_MIN};
    for (int i = 0; i < 3; i++) {
        CASE("nb_top_k_accuracy", INV, nb_top_k_accuracy(f23, f23, bad_k[i]) == NULL);
        CASE("nb_sparse_top_k_accuracy", INV, nb_sparse_top_k_accuracy(f23, lab01, bad_k[i]) == NULL);
    }
    const char *sparse[] = {"nb_sparse_categorical_crossentropy",
                            "nb_sparse_categorical_crossentropy_logits",
                            "nb_sparse_categorical_accuracy", "nb_sparse_top_k_accuracy"};
    for (int k = 0; k < NOPS; k++) {
        const op_case *c = &op_cases[k];
        bool sp = false;
        for (size_t e = 0; e < sizeof sparse / sizeof *sparse; e++)
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
    CASE("nb_cast", DTY, nb_cast(f23, NB_U8) == NULL); /* a storage dtype only */
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
    printf("# bad arguments (factories, inspection, ops, no graph): %d cases tried, %d gave the documented error\n", tried, passed);
    assert_int_equal(passed, tried);
    assert_true(tried >= 500);
}
int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_factories),      cmocka_unit_test(test_inspection),
        cmocka_unit_test(test_ops_bad_inputs), cmocka_unit_test(test_ops_mismatches),
        cmocka_unit_test(test_ops_arguments),  cmocka_unit_test(test_no_graph),
        cmocka_unit_test(test_summary),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
