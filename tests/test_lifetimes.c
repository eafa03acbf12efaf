/* Lifetimes a C user can get wrong: a graph tensor used after its graph was
 * reset, a graph handle used after nb_graph_free, a heap leaf freed while a
 * graph still uses it. Each is an error with code NB_ERR_STATE naming the
 * function called, never a read of some other tensor's data. (A tensor of a
 * freed graph is a use after free: the ASan build's asan-stale test.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "testing.h"

#include <math.h>
#include <stdio.h>

/* The call failed with code STATE and a message starting with `start` and
 * containing `has` (NULL: anything). */
#define STALE(call_fails, start, has)                                          \
    do {                                                                       \
        nb_clear_error();                                                      \
        assert_true(call_fails);                                               \
        expect_state(#call_fails, start, has);                                 \
    } while (0)

static void expect_state(const char *call, const char *start, const char *has)
{
    const char *m = nb_last_error();
    if (!m)
        fail_msg("%s: no error", call);
    else if (strncmp(m, start, strlen(start)) != 0 || (has && !strstr(m, has)))
        fail_msg("%s: message \"%s\" does not start with \"%s\"%s%s", call, m, start,
                 has ? " or lacks " : "", has ? has : "");
    else if (nb_last_error_code() != NB_ERR_STATE)
        fail_msg("%s: code %s, not state (\"%s\")", call,
                 nb_error_code_name(nb_last_error_code()), m);
}

static void test_tensor_kept_across_a_reset(void **state)
{
    (void)state;
    nb_tensor *x = nb_param(nb_ones(NB_F32, NB_SHAPE(2, 3)));
    nb_graph *g = nb_graph_new();
    nb_tensor *y = nb_mul(x, x);
    uint64_t gen = nb_graph_generation(g);
    assert_non_null(y);
    nb_graph_reset(g);
    char want[160];
    snprintf(want, sizeof want,
             "nb_add: input 1 is a tensor of graph generation %llu, which was reset (now %llu)",
             (unsigned long long)gen, (unsigned long long)nb_graph_generation(g));
    nb_clear_error();
    assert_null(nb_add(y, x));
    assert_string_equal(nb_last_error(), want);
    assert_int_equal(nb_last_error_code(), NB_ERR_STATE);
    STALE(nb_add(x, y) == NULL, "nb_add: input 2 is a tensor of graph generation", NULL);
    STALE(nb_backward(nb_sum(y)) == -1, "nb_sum: input 1", "which was reset");
    STALE(nb_backward(y, .seed = y) == -1, "nb_backward: root is a tensor", "reset");
    nb_tensor *gr[1];
    STALE(nb_grad(y, .n = 1, .inputs = &x, .grads = gr) == -1, "nb_grad: output is a tensor",
          NULL);
    STALE(nb_print(y, stdout) == -1, "nb_print: the tensor is of graph generation", NULL);
    double out[6];
    STALE(nb_to_doubles(y, out) == -1, "nb_to_doubles:", "reset");
    STALE(isnan(nb_item(y)), "nb_item:", "reset");
    STALE(isnan(nb_get_flat(y, 0)), "nb_get_flat:", "reset");
    STALE(nb_ndim(y) == -1, "nb_ndim:", "reset");
    STALE(nb_shape(y) == NULL, "nb_shape:", "reset");
    STALE(nb_numel(y) == -1, "nb_numel:", "reset");
    STALE(nb_data(y) == NULL, "nb_data:", "reset");
    STALE(nb_dtype_of(y) == 0, "nb_dtype_of:", "reset");
    STALE(nb_op_of(y) == NULL, "nb_op_of:", "reset");
    STALE(nb_set_name(y, "y") == NULL, "nb_set_name:", "reset");
    STALE(nb_clone(y) == NULL, "nb_clone:", "reset");
    STALE(nb_dot_string(y, NULL) == NULL, "nb_dot_string:", "reset");
    STALE(nb_assign(y, x) == -1, "nb_assign:", "reset");
    STALE(nb_mse(y, y) == NULL, "nb_mse: pred is a tensor", "reset");
    STALE(nb_check_tensor("my_layer", "x", y) == -1, "my_layer: x is a tensor", "reset");
    STALE(!nb_allclose(y, y, 0, 0), "nb_allclose: a is a tensor", "reset");
    /* Still refused many resets later, while the header ring has not come
     * round (a step of one tensor: hundreds of resets). */
    for (int i = 0; i < 100; i++) {
        assert_non_null(nb_mul(x, x));
        nb_graph_reset(g);
    }
    STALE(nb_add(y, x) == NULL, "nb_add: input 1 is a tensor of graph generation", "reset");
    nb_graph_free(g);
    nb_free(x);
}

/* The most common slip: the loss of the last step kept while the same step
 * runs again. Every tensor of the new step is made as before, so an arena
 * that gave the same addresses again would make the old pointer a tensor of
 * the new step, read without a word. */
static void test_last_steps_loss_is_not_this_steps(void **state)
{
    (void)state;
    nb_rng rng = nb_rng_new(3);
    nb_tensor *w = nb_param(nb_randn(NB_F32, NB_SHAPE(4, 2), &rng));
    nb_tensor *x = nb_randn(NB_F32, NB_SHAPE(8, 4), &rng);
    nb_graph *g = nb_graph_new();
    nb_tensor *old = NULL;
    for (int step = 0; step < 5; step++) {
        nb_tensor *loss = nb_mean(nb_square(nb_matmul(x, w)));
        assert_non_null(loss);
        assert_ptr_not_equal(loss, old);
        if (old)
            STALE(isnan(nb_item(old)), "nb_item: the tensor is of graph generation", "reset");
        assert_int_equal(nb_backward(loss), 0);
        old = loss;
        nb_graph_reset(g);
    }
    nb_graph_free(g);
    nb_free(w);
    nb_free(x);
}

static void test_graph_handle_after_free(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_graph *h = nb_graph_new();
    nb_graph_free(g); /* not the current one: unlinked from the chain */
    STALE((nb_graph_reset(g), nb_last_error() != NULL), "nb_graph_reset:", "not a live graph");
    STALE((nb_graph_free(g), nb_last_error() != NULL), "nb_graph_free:", "not a live graph");
    STALE(nb_graph_generation(g) == 0, "nb_graph_generation:", "not a live graph");
    STALE(nb_graph_nodes(g) == 0, "nb_graph_nodes:", "not a live graph");
    STALE(nb_graph_bytes(g) == 0, "nb_graph_bytes:", "not a live graph");
    assert_ptr_equal(nb_graph_current(), h);
    nb_graph_free(h);
    STALE((nb_graph_free(h), nb_last_error() != NULL), "nb_graph_free:", "not a live graph");
    assert_null(nb_graph_current());
    nb_clear_error();
}

/* An inner graph records ops on a tensor of the outer one; the outer graph
 * is reset: backward in the inner graph must not follow the stale node. */
static void test_nested_graph_input_gone_stale(void **state)
{
    (void)state;
    nb_tensor *x = nb_param(nb_ones(NB_F64, NB_SHAPE(3)));
    nb_graph *outer = nb_graph_new();
    nb_tensor *a = nb_exp(x);
    nb_graph *inner = nb_graph_new();
    nb_tensor *loss = nb_sum(nb_mul(a, a));
    assert_non_null(loss);
    nb_graph_reset(outer);
    STALE(nb_backward(loss) == -1,
          "nb_backward: input 1 of nb_mul in the history is a tensor of graph generation",
          "which was reset");
    nb_graph_free(inner);
    /* (Freeing the outer graph instead makes `a` a use after free: the
     * ASan build's asan-stale test.) */
    nb_graph_free(outer);
    nb_free(x);
    nb_clear_error();
}

/* nb_free of a heap leaf that a live graph still uses (a recorded node, a
 * view) marks it freed; the graph refuses it, and it goes away with the
 * graph's generation. */
static void test_leaf_freed_while_a_graph_uses_it(void **state)
{
    (void)state;
    nb_set_allocator(&counting_allocator);
    long frees0 = frees;
    int64_t live0 = nb_live_tensors();
    nb_graph *g = nb_graph_new();
    nb_tensor *p = nb_set_name(nb_param(nb_ones(NB_F32, NB_SHAPE(2, 2))), "w");
    nb_tensor *y = nb_sum(nb_mul(p, p));
    assert_int_equal(nb_backward(y, .retain_graph = true), 0); /* p->grad made */
    assert_int_equal(nb_live_tensors(), live0 + 2);
    long before = frees;
    nb_free(p);
    assert_int_equal(nb_live_tensors(), live0); /* the caller's view: gone */
    assert_true(frees - before <= 1);           /* its grad, not p itself */
    STALE(nb_backward(y) == -1, "nb_backward: input 1 of nb_mul in the history is a tensor "
                                "that was freed (nb_free) while graph tensors still used it",
          NULL);
    STALE(nb_add(p, p) == NULL, "nb_add: input 1 is a tensor that was freed", NULL);
    STALE(isnan(nb_item(p)), "nb_item: the tensor was freed (nb_free)", NULL);
    STALE((nb_free(p), nb_last_error() != NULL), "nb_free: the tensor 'w' was already freed",
          NULL);
    /* A view of a heap tensor keeps it too. */
    nb_tensor *h = nb_ones(NB_F32, NB_SHAPE(4));
    nb_tensor *v = nb_slice(h, 0, 1, 3, 1);
    nb_free(h);
    STALE(nb_add(v, v) == NULL, "nb_add: input 1 is a view of a tensor that was freed", NULL);
    before = frees;
    nb_graph_reset(g); /* the last generation using p and h: both released */
    assert_int_equal(frees - before, 3); /* p, its name, h */
    /* One no graph uses goes at once. */
    nb_tensor *q = nb_ones(NB_F32, NB_SHAPE(2));
    assert_non_null(nb_mul(q, q)); /* not recorded, not a view: q is not kept */
    before = frees;
    nb_free(q);
    assert_int_equal(frees - before, 1);
    nb_graph_free(g);
    assert_int_equal(nb_live_tensors(), live0);
    nb_set_allocator(NULL);
    assert_true(frees > frees0);
    nb_clear_error();
}

/* Graphs come and go in any order and many at once; slots are reused. */
static void test_many_graphs(void **state)
{
    (void)state;
    enum { N = 300 };
    static nb_graph *gs[N];
    nb_tensor *x = nb_ones(NB_F32, NB_SHAPE(2));
    for (int i = 0; i < N; i++) {
        gs[i] = nb_graph_new();
        assert_non_null(gs[i]);
    }
    nb_tensor *t = nb_add(x, x); /* in the last graph */
    for (int i = 0; i < N; i += 2)
        nb_graph_free(gs[i]);
    assert_non_null(nb_add(t, x)); /* its graph lives */
    for (int i = 1; i < N; i += 2)
        nb_graph_free(gs[i]);
    assert_null(nb_graph_current());
    for (int i = 0; i < 1000; i++)
        nb_graph_free(nb_graph_new());
    nb_free(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_tensor_kept_across_a_reset, cleanup),
        cmocka_unit_test_teardown(test_last_steps_loss_is_not_this_steps, cleanup),
        cmocka_unit_test_teardown(test_graph_handle_after_free, cleanup),
        cmocka_unit_test_teardown(test_nested_graph_input_gone_stale, cleanup),
        cmocka_unit_test_teardown(test_leaf_freed_while_a_graph_uses_it, cleanup),
        cmocka_unit_test_teardown(test_many_graphs, cleanup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
