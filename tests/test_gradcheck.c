/* Gradient checks of the built-in ops: every op on every one of its
 * examples in every layout (contiguous, permuted, sliced, broadcast inputs),
 * f64 first and second order and f32 first order; compositions of
 * built-ins; and what a check promises its caller (its graph and inputs left
 * alone, the printed report). User-defined ops and gradcheck's own failure
 * finding and argument checks: test_gradcheck_user.c. */
#define _POSIX_C_SOURCE 200809L /* open_memstream (testing.h's report_text) */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nabla/nabla.h"
#include "testing.h"

/* ---- the table: every built-in op, every example, every layout ---- */

static void test_builtin_op(void **state)
{
    const nb_op *op = *state;
    if (!op->shape)
        fail_msg("%s: not implemented (no shape rule)", op->name);
    int examples = 0;
    for (const nb_op_example *e = op->examples; e && e->n > 0; e++)
        examples++;
    if (op->backward && examples == 0)
        fail_msg("%s: differentiable but has no gradcheck examples", op->name);

    int failures = 0;
    for (int e = 0; e < examples; e++)
        for (int l = 0; l < NB_CHECK_LAYOUTS; l++)
            for (int k = 0; k < NRUNS; k++) {
                nb_check_opts o = {.dtype = runs[k].dtype, .layout = (nb_check_layout)l};
                nb_check_report r;
                bool ok = nb_check_example(op, &op->examples[e], runs[k].order, &o, &r);
                assert_true(ok == r.ok);
                assert_int_equal(r.layout, l);
                /* No gradient by design: checked, in every layout, to be none. */
                if (ok && op->no_gradient)
                    assert_string_equal(r.message, "no gradient (by design)");
                if (!ok) {
                    char what[160];
                    snprintf(what, sizeof what, "%s example %d, %s layout, order %d, %s:",
                             op->name, e + 1, nb_check_layout_name(o.layout), runs[k].order,
                             nb_dtype_name(runs[k].dtype));
                    print_report(what, &r);
                    failures++;
                }
            }
    if (failures)
        fail_msg("%s: %d failing checks", op->name, failures);
    assert_int_equal(nb_live_tensors(), 0);
}

/* ---- compositions (f_mix and rand_input: testing.h) ---- */

static nb_tensor *f_log_softmax(nb_tensor *const x[], int n, void *ctx)
{
    (void)n, (void)ctx;
    return nb_log_softmax(x[0], -1);
}

static nb_tensor *f_logsumexp(nb_tensor *const x[], int n, void *ctx)
{
    (void)n, (void)ctx;
    return nb_logsumexp(x[0], .axes = NB_AXES(0));
}

static nb_tensor *f_var(nb_tensor *const x[], int n, void *ctx)
{
    (void)n, (void)ctx;
    return nb_var(x[0], .axes = NB_AXES(1), .keepdims = true);
}

static nb_tensor *f_softmax(nb_tensor *const x[], int n, void *ctx)
{
    (void)n, (void)ctx;
    return nb_softmax(x[0], 1);
}

static void check_fn(const char *name, nb_check_fn f, int n, nb_tensor *const x[], int order,
                     nb_check_layout layout)
{
    nb_check_report r;
    nb_check_opts o = {.layout = layout};
    bool ok = order == 1 ? nb_gradcheck(f, NULL, n, x, &o, &r)
                         : nb_gradgradcheck(f, NULL, n, x, &o, &r);
    if (!ok) {
        char what[96];
        snprintf(what, sizeof what, "%s (%s):", name, nb_check_layout_name(layout));
        print_report(what, &r);
    }
    assert_true(ok);
    assert_int_equal(r.order, order);
    assert_int_equal(r.n, order == 1 ? n : n + 1);
}

static void test_compositions(void **state)
{
    (void)state;
    nb_tensor *x = rand_input(NB_SHAPE(3, 5), 1);
    nb_tensor *b = rand_input(NB_SHAPE(5), 2);
    for (int l = 0; l < NB_CHECK_LAYOUTS; l++) {
        nb_check_layout layout = (nb_check_layout)l;
        check_fn("log_softmax", f_log_softmax, 1, &x, 1, layout);
        check_fn("logsumexp", f_logsumexp, 1, &x, 1, layout);
        check_fn("var", f_var, 1, &x, 1, layout);
        check_fn("mix", f_mix, 2, (nb_tensor *[]){x, b}, 1, layout);
        check_fn("softmax (2nd order)", f_softmax, 1, &x, 2, layout);
        check_fn("mix (2nd order)", f_mix, 2, (nb_tensor *[]){x, b}, 2, layout);
        check_fn("var (2nd order)", f_var, 1, &x, 2, layout);
        /* One tensor passed twice: one base, both entries get the total. */
        check_fn("mix (x, x)", f_mix, 2, (nb_tensor *[]){x, x}, 1, layout);
    }

    /* f32: the same function in f32 against the f64 numeric gradient. */
    nb_check_report r;
    assert_true(nb_gradcheck(f_mix, NULL, 2, (nb_tensor *[]){x, b},
                             &(nb_check_opts){.dtype = NB_F32}, &r));
    assert_true(r.input[0].max_abs_err > 0); /* f32 rounding is visible */
    assert_true(nb_gradcheck(f_mix, NULL, 2, (nb_tensor *[]){x, x},
                             &(nb_check_opts){.dtype = NB_F32}, &r));
    assert_true(nb_gradcheck(f_mix, NULL, 2, (nb_tensor *[]){x, x},
                             &(nb_check_opts){.dtype = NB_F32, .layout = NB_LAYOUT_SLICED},
                             &r));
    nb_free(x);
    nb_free(b);
    assert_int_equal(nb_live_tensors(), 0);
}

/* ---- isolation from the caller ---- */

static void test_leaves_caller_alone(void **state)
{
    (void)state;
    nb_tensor *a = rand_input(NB_SHAPE(3, 5), 3);
    nb_tensor *b = nb_set_requires_grad(rand_input(NB_SHAPE(5), 4), false);
    double before_a[15], before_b[5];
    memcpy(before_a, nb_data(a), sizeof before_a);
    memcpy(before_b, nb_data(b), sizeof before_b);

    nb_graph *g = nb_graph_new();
    nb_tensor *keep = nb_mul(a, a); /* the caller's own work in progress */
    int64_t nodes = nb_graph_nodes(g);
    size_t bytes = nb_graph_bytes(g);
    nb_check_report r;
    assert_true(nb_gradcheck(f_mix, NULL, 2, (nb_tensor *[]){a, b}, NULL, &r));
    assert_true(nb_gradcheck(f_mix, NULL, 2, (nb_tensor *[]){a, b},
                             &(nb_check_opts){.layout = NB_LAYOUT_PERMUTED}, &r));
    assert_true(nb_gradgradcheck(f_mix, NULL, 2, (nb_tensor *[]){a, b}, NULL, &r));
    assert_ptr_equal(nb_graph_current(), g);
    assert_int_equal(nb_graph_nodes(g), nodes);
    assert_int_equal(nb_graph_bytes(g), bytes);
    assert_memory_equal(nb_data(a), before_a, sizeof before_a);
    assert_memory_equal(nb_data(b), before_b, sizeof before_b);
    assert_null(nb_grad_of(a)); /* functional gradients only: no .grad */

    /* b does not require grad: skipped, and in the second-order report the
     * last entry is the projection v. */
    assert_false(r.input[1].checked);
    assert_true(r.input[1].ok);
    assert_true(r.input[2].checked);
    char *t = report_text(&r);
    assert_non_null(strstr(t, "input 2: skipped"));
    assert_non_null(strstr(t, "v (projection):"));
    free(t);

    /* The caller's graph still works. */
    assert_int_equal(nb_backward(nb_sum(keep)), 0);
    assert_non_null(nb_grad_of(a));
    nb_graph_free(g);
    assert_null(nb_graph_current());

    /* Inputs that are results in the caller's graph work too (and the
     * caller's graph can still be backpropagated afterwards), and so do
     * views: a transposed view is perturbed through its strides. */
    g = nb_graph_new();
    nb_tensor *h = nb_tanh(a);
    assert_true(nb_gradcheck(f_mix, NULL, 2, (nb_tensor *[]){h, b}, NULL, &r));
    assert_int_equal(nb_backward(nb_sum(h)), 0);
    nb_tensor *base = rand_input(NB_SHAPE(5, 3), 6);
    nb_tensor *at = nb_transpose(base, 0, 1);
    assert_non_null(at);
    assert_false(nb_is_contiguous(at));
    double before_t[15];
    assert_int_equal(nb_to_doubles(at, before_t), 0);
    assert_true(nb_gradcheck(f_mix, NULL, 2, (nb_tensor *[]){at, b}, NULL, &r));
    assert_true(nb_gradgradcheck(f_mix, NULL, 2, (nb_tensor *[]){at, b}, NULL, &r));
    double after_t[15];
    assert_int_equal(nb_to_doubles(at, after_t), 0);
    assert_memory_equal(after_t, before_t, sizeof before_t);
    nb_graph_free(g);
    nb_free(base);
    nb_free(a);
    nb_free(b);
    assert_int_equal(nb_live_tensors(), 0);
}

/* ---- the printed report ---- */

static void test_report_format(void **state)
{
    (void)state;
    nb_check_report r;
    memset(&r, 0, sizeof r);
    r.n = 3;
    r.order = 1;
    r.seed = 7;
    r.verdict = NB_CHECK_FAILED;
    r.eps = 1e-6, r.atol = 1e-5, r.rtol = 1e-3;
    snprintf(r.message, sizeof r.message, "The gradient of input 1 is 2x the numeric one.");
    r.input[0] = (nb_check_input){.checked = true, .verdict = NB_CHECK_FAILED,
                                  .max_abs_err = 0.32, .max_rel_err = 0.5, .worst = 6,
                                  .worst_index = {1, 2, -1, -1, -1, -1, -1, -1}, .worst_out = 3,
                                  .worst_out_index = {0, 3, -1, -1, -1, -1, -1, -1},
                                  .analytic = 2, .numeric = 1, .pattern = NB_PATTERN_SCALED};
    r.input[1] = (nb_check_input){.ok = true, .checked = true, .max_abs_err = 1e-10,
                                  .max_rel_err = 2e-9, .worst = -1, .directions = 2,
                                  .analytic = 3, .numeric = 3};
    r.input[2] = (nb_check_input){.ok = true, .worst = -1};
    char *t = report_text(&r);
    assert_string_equal(t, "gradcheck: FAIL (seed 7, eps 1e-06 atol 1e-05 rtol 1e-03)\n"
                           "  input 1: FAIL max abs 3.2e-01 rel 5.0e-01 at (1,2) of output "
                           "(0,3): analytic 2 numeric 1 [scaled]\n"
                           "  input 2: ok   max abs 1.0e-10 rel 2.0e-09 along 2 random "
                           "directions\n"
                           "  input 3: skipped (does not require grad)\n"
                           "  The gradient of input 1 is 2x the numeric one.\n");
    free(t);
    /* Another layout is named in the first line; other verdicts are named. */
    r.layout = NB_LAYOUT_SLICED;
    r.n = 1;
    r.eps = 0;
    r.message[0] = '\0';
    r.input[0].worst_out = -1;
    r.input[0].pattern = NB_PATTERN_NONE;
    t = report_text(&r);
    assert_string_equal(t, "gradcheck [sliced]: FAIL (seed 7)\n"
                           "  input 1: FAIL max abs 3.2e-01 rel 5.0e-01 at (1,2): analytic 2 "
                           "numeric 1\n");
    free(t);
    r.verdict = NB_CHECK_VACUOUS;
    r.input[0].verdict = NB_CHECK_VACUOUS;
    t = report_text(&r);
    assert_non_null(strstr(t, "gradcheck [sliced]: VACUOUS (seed 7)\n  input 1: VACUOUS"));
    free(t);
    assert_string_equal(nb_check_layout_name(NB_LAYOUT_CONTIGUOUS), "contiguous");
    assert_string_equal(nb_check_layout_name(NB_LAYOUT_PERMUTED), "permuted");
    assert_string_equal(nb_check_layout_name(NB_LAYOUT_BROADCAST), "broadcast");
    assert_string_equal(nb_check_layout_name((nb_check_layout)9), "?");
}

int main(void)
{
    const nb_op *const *ops = nb_builtin_ops();
    size_t nops = 0;
    while (ops[nops])
        nops++;
    static const struct CMUnitTest fixed[] = {
        cmocka_unit_test(test_compositions),
        cmocka_unit_test(test_leaves_caller_alone),
        cmocka_unit_test(test_report_format),
    };
    size_t nfixed = sizeof fixed / sizeof fixed[0];
    struct CMUnitTest *tests = calloc(nops + nfixed, sizeof *tests);
    char (*names)[64] = calloc(nops ? nops : 1, sizeof *names);
    if (!tests || !names)
        return 1;
    for (size_t i = 0; i < nops; i++) {
        snprintf(names[i], sizeof names[i], "gradcheck_%s", ops[i]->name);
        tests[i] = (struct CMUnitTest){.name = names[i], .test_func = test_builtin_op,
                                       .initial_state = (void *)ops[i]};
    }
    memcpy(tests + nops, fixed, sizeof fixed);
    int rc = _cmocka_run_group_tests("gradcheck", tests, nops + nfixed, NULL, NULL);
    free(tests);
    free(names);
    return rc;
}
