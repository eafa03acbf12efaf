/* Mutation testing (nb_gradcheck_mutations): the check of every built-in op
 * must catch every applicable way of breaking its backward, and the same call
 * works on a user's op; a mutant that changes nothing (the swap of add's
 * equal gradients) is equivalent, not missed; a check too loose to see a
 * mutant reports it missed; an op whose check fails anyway is refused; bad
 * input gives a message. The engine's hook is driven directly too (through
 * the internal nb__thread()->mutant), to see one mutant's effect and that it
 * is always cleared. */
#define _POSIX_C_SOURCE 200809L /* open_memstream (testing.h's report_text) */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h" /* nb_mutant, nb__thread: the engine's hook */
#include "nabla/nabla.h"
#include "testing.h"

static void print_counts(const nb_mutation_report *r)
{
    print_error("%s\n", r->message[0] ? r->message : r->op ? r->op : "?");
    for (int k = 0; k < NB_MUTATIONS; k++) {
        const nb_mutation_count *c = &r->mutation[k];
        print_error("  %-9s applicable %d caught %d equivalent %d first missed: example %d "
                    "input %d\n",
                    nb_mutation_name((nb_mutation)k), c->applicable, c->caught, c->equivalent,
                    c->missed_example, c->missed_input);
    }
}

/* cleanup (testing.h), and no mutant left set by a test that failed. */
static int teardown(void **state)
{
    nb__thread()->mutant = NULL;
    return cleanup(state);
}

/* ---- the built-in table ---- */

static void test_builtin_table(void **state)
{
    (void)state;
    int applicable[NB_MUTATIONS] = {0}, equivalent[NB_MUTATIONS] = {0}, failures = 0;
    for (const nb_op *const *p = nb_builtin_ops(); *p; p++) {
        nb_mutation_report r;
        bool ok = nb_gradcheck_mutations(*p, NULL, &r);
        assert_true(ok == r.ok);
        assert_ptr_equal(r.op, (*p)->name);
        bool all = ok;
        for (int k = 0; k < NB_MUTATIONS; k++) {
            const nb_mutation_count *c = &r.mutation[k];
            all &= c->caught == c->applicable && c->missed_example == 0;
            applicable[k] += c->applicable;
            equivalent[k] += c->equivalent;
            if ((*p)->no_gradient)
                all &= c->applicable == 0 && c->equivalent == 0;
        }
        if ((*p)->no_gradient)
            all &= strstr(r.message, "no gradient by design") != NULL;
        else
            all &= r.message[0] == '\0';
        if (!all) {
            print_counts(&r);
            failures++;
        }
    }
    if (failures)
        fail_msg("%d built-in ops let a mutant through", failures);
    /* Every kind is tried somewhere, so the above is not vacuous. */
    for (int k = 0; k < NB_MUTATIONS; k++)
        if (applicable[k] == 0)
            fail_msg("no built-in op has an applicable %s mutant",
                     nb_mutation_name((nb_mutation)k));
    /* A perturbed element never leaves the gradient as it was. */
    assert_int_equal(equivalent[NB_MUTATE_PERTURB], 0);
    assert_int_equal(nb_live_tensors(), 0);
    assert_null(nb__thread()->mutant);
}

/* ---- a user's op: y = a * b, broadcasting ---- */

NB_BINARY_KERNELS(times, u *v)

static void times_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y, nb_tensor *const x[],
                           int n, const void *attr)
{
    (void)y, (void)n, (void)attr;
    if (nb_requires_grad(x[0]))
        dx[0] = nb_mul(dy, x[1]);
    if (nb_requires_grad(x[1]))
        dx[1] = nb_mul(dy, x[0]);
}

static const nb_op_example times_examples[] = {
    {.n = 2, .ndim = {2, 2}, .shape = {{3, 4}, {3, 4}}},
    {.n = 2, .ndim = {2, 1}, .shape = {{3, 4}, {4}}},
    {.n = 0},
};
static const nb_op times = {.name = "times", .arity = 2, .shape = nb_shape_broadcast,
                            .forward = NB_KERNELS(times), .backward = times_backward,
                            .broadcast = true, .examples = times_examples};

/* The same op with a wrong backward, da = 1.5 dy * b: its own check fails,
 * so every mutant would look caught; mutation testing refuses it. */
static void times_off_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y,
                               nb_tensor *const x[], int n, const void *attr)
{
    times_backward(dx, dy, y, x, n, attr);
    if (dx[0])
        dx[0] = nb_mul(dx[0], nb_scalar_like(dx[0], 1.5));
}
static const nb_op times_off = {.name = "times_off", .arity = 2, .shape = nb_shape_broadcast,
                                .forward = NB_KERNELS(times), .backward = times_off_backward,
                                .broadcast = true, .examples = times_examples};

static void test_user_op(void **state)
{
    (void)state;
    nb_mutation_report r;
    if (!nb_gradcheck_mutations(&times, NULL, &r)) {
        print_counts(&r);
        fail_msg("a correct user op let a mutant through");
    }
    assert_string_equal(r.op, "times");
    assert_string_equal(r.message, "");
    /* 2 examples x 2 inputs, except swap (example 1 only) and broadcast
     * (input 2 of example 2 only). */
    static const int want[NB_MUTATIONS] = {4, 4, 4, 1, 4, 1, 4};
    for (int k = 0; k < NB_MUTATIONS; k++) {
        assert_int_equal(r.mutation[k].applicable, want[k]);
        assert_int_equal(r.mutation[k].caught, want[k]);
        assert_int_equal(r.mutation[k].equivalent, 0);
        assert_int_equal(r.mutation[k].missed_example, 0);
    }
    /* An op whose own check fails would "catch" everything: refused. */
    assert_false(nb_gradcheck_mutations(&times_off, NULL, &r));
    assert_non_null(strstr(r.message, "times_off example 1 fails its first-order check "
                                      "without a mutation"));
    for (int k = 0; k < NB_MUTATIONS; k++)
        assert_int_equal(r.mutation[k].applicable, 0);
    assert_int_equal(nb_live_tensors(), 0);
}

/* One mutant set by hand: the swap gives a the gradient of b (dy * a) and
 * b that of a (dy * b), and the check of the example fails; cleared, it
 * passes again. */
static void test_one_mutant(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    double da[] = {1, 2, 3}, db[] = {10, 20, 30};
    nb_tensor *a = nb_set_requires_grad(nb_from_array(NB_F64, NB_SHAPE(3), da), true);
    nb_tensor *b = nb_set_requires_grad(nb_from_array(NB_F64, NB_SHAPE(3), db), true);
    nb_tensor *in[] = {a, b}, *gs[2];
    nb_mutant m = {.op = &times, .kind = NB_MUTATE_SWAP, .input = 0, .other = 1};
    nb__thread()->mutant = &m;
    nb_tensor *y = nb_apply(&times, in, 2, NULL);
    assert_int_equal(nb_grad(y, .n = 2, .inputs = in, .grads = gs, .seed = nb_ones_like(y)), 0);
    for (int j = 0; j < 3; j++) {
        assert_true(nb_get(gs[0], NB_AT(j)) == da[j]); /* unmutated: db[j] */
        assert_true(nb_get(gs[1], NB_AT(j)) == db[j]);
    }
    nb_check_report rep;
    assert_false(nb_check_example(&times, &times_examples[0], 1, NULL, &rep));
    assert_false(rep.input[0].ok);
    assert_false(rep.input[1].ok);
    nb_check_report_free(&rep);
    /* The other kinds, on the same gradients. */
    static const struct {
        nb_mutation kind;
        double a0, a1, a2; /* the gradient of a: unmutated 10, 20, 30 */
    } kinds[] = {
        {NB_MUTATE_ZERO, 0, 0, 0},
        {NB_MUTATE_SCALE, 10.1, 20.2, 30.3},
        {NB_MUTATE_NEGATE, -10, -20, -30},
        {NB_MUTATE_PERTURB, 10, 20 + 0.1 * 31, 30},
        {NB_MUTATE_DETACH, 10, 20, 30},
    };
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        m.kind = (int)kinds[k].kind;
        y = nb_apply(&times, in, 2, NULL);
        assert_int_equal(
            nb_grad(y, .n = 2, .inputs = in, .grads = gs, .seed = nb_ones_like(y)), 0);
        assert_true(fabs(nb_get(gs[0], NB_AT(0)) - kinds[k].a0) < 1e-12);
        assert_true(fabs(nb_get(gs[0], NB_AT(1)) - kinds[k].a1) < 1e-12);
        assert_true(fabs(nb_get(gs[0], NB_AT(2)) - kinds[k].a2) < 1e-12);
        assert_true(nb_get(gs[1], NB_AT(1)) == 2); /* input 2 untouched */
    }
    /* ... and detach cuts the second-order graph of input 1 only. */
    y = nb_apply(&times, in, 2, NULL);
    assert_int_equal(nb_grad(y, .n = 2, .inputs = in, .grads = gs, .seed = nb_ones_like(y),
                             .create_graph = true),
                     0);
    assert_false(nb_requires_grad(gs[0]));
    assert_true(nb_requires_grad(gs[1]));
    /* Broadcast: b (3) broadcast over (2,3) gets row 0's gradient only. */
    nb_tensor *a2 = nb_full(NB_F64, NB_SHAPE(2, 3), 1.0);
    assert_int_equal(nb_set(a2, NB_AT(1, 0), 5.0), 0);
    nb_set_requires_grad(a2, true);
    m.kind = NB_MUTATE_BROADCAST;
    m.input = 1;
    y = nb_apply(&times, (nb_tensor *[]){a2, b}, 2, NULL);
    assert_int_equal(nb_grad(y, .n = 1, .inputs = &b, .grads = gs, .seed = nb_ones_like(y)), 0);
    assert_int_equal(nb_ndim(gs[0]), 1);
    assert_true(nb_get(gs[0], NB_AT(0)) == 1); /* unmutated: 1 + 5 */
    nb__thread()->mutant = NULL;
    y = nb_apply(&times, (nb_tensor *[]){a2, b}, 2, NULL);
    assert_int_equal(nb_grad(y, .n = 1, .inputs = &b, .grads = gs, .seed = nb_ones_like(y)), 0);
    assert_true(nb_get(gs[0], NB_AT(0)) == 6);
    assert_true(nb_check_example(&times, &times_examples[0], 1, NULL, &rep));
    nb_graph_free(g);
    nb_free(a);
    nb_free(b);
    nb_free(a2);
    assert_int_equal(nb_live_tensors(), 0);
}

/* A check too loose to see a 1% scale misses that mutant and says which. */
static void test_missed(void **state)
{
    (void)state;
    nb_mutation_report r;
    assert_false(nb_gradcheck_mutations(&times, &(nb_check_opts){.rtol = 0.05}, &r));
    assert_false(r.ok);
    const nb_mutation_count *s = &r.mutation[NB_MUTATE_SCALE];
    assert_int_equal(s->applicable, 4);
    assert_int_equal(s->caught, 0);
    assert_int_equal(s->missed_example, 1);
    assert_int_equal(s->missed_input, 1);
    assert_non_null(strstr(r.message, "times: scale of input 1 in example 1 was not caught"));
    /* The coarser mutations are still caught at that tolerance. */
    assert_int_equal(r.mutation[NB_MUTATE_NEGATE].caught, 4);
    assert_int_equal(r.mutation[NB_MUTATE_SWAP].caught, 1);
    assert_int_equal(nb_live_tensors(), 0);
    assert_null(nb__thread()->mutant);
}

/* ---- equivalent mutants ---- */

static void test_equivalent(void **state)
{
    (void)state;
    nb_mutation_report r;
    const nb_op *add = nb_op_find("add"), *sub = nb_op_find("sub");
    assert_true(nb_gradcheck_mutations(add, NULL, &r));
    assert_int_equal(r.mutation[NB_MUTATE_SWAP].equivalent, 1); /* example 1: both (3,4) */
    assert_int_equal(r.mutation[NB_MUTATE_SWAP].applicable, 0);
    assert_int_equal(r.mutation[NB_MUTATE_SWAP].missed_example, 0);
    assert_int_equal(r.mutation[NB_MUTATE_NEGATE].equivalent, 0);
    /* sub's gradients differ in sign: its swap is caught. */
    assert_true(nb_gradcheck_mutations(sub, NULL, &r));
    assert_int_equal(r.mutation[NB_MUTATE_SWAP].equivalent, 0);
    assert_int_equal(r.mutation[NB_MUTATE_SWAP].caught, 1);
    /* maximum's last example: a always loses, its gradient is zero, and
     * zeroing, scaling or negating it changes nothing. */
    assert_true(nb_gradcheck_mutations(nb_op_find("maximum"), NULL, &r));
    assert_int_equal(r.mutation[NB_MUTATE_ZERO].equivalent, 1);
    assert_int_equal(r.mutation[NB_MUTATE_PERTURB].equivalent, 0);
    assert_int_equal(nb_live_tensors(), 0);
}

/* ---- bad input, and what the call leaves behind ---- */

static const nb_op no_examples = {.name = "no_examples", .arity = 2,
                                  .shape = nb_shape_broadcast, .forward = NB_KERNELS(times),
                                  .backward = times_backward, .broadcast = true};
static const nb_op no_backward = {.name = "no_backward", .arity = 2,
                                  .shape = nb_shape_broadcast, .forward = NB_KERNELS(times),
                                  .examples = times_examples};
static const nb_op_example too_many[] = {{.n = NB_MAX_INPUTS + 1}, {.n = 0}};
static const nb_op bad_example = {.name = "bad_example", .arity = 2,
                                  .shape = nb_shape_broadcast, .forward = NB_KERNELS(times),
                                  .backward = times_backward, .examples = too_many};

static void test_bad_input(void **state)
{
    (void)state;
    nb_mutation_report r;
    nb_clear_error();
    assert_false(nb_gradcheck_mutations(&times, NULL, NULL));
    ERR_HAS("nb_gradcheck_mutations: report is NULL");

    assert_false(nb_gradcheck_mutations(NULL, NULL, &r));
    assert_false(r.ok);
    assert_non_null(strstr(r.message, "nb_gradcheck_mutations: op is NULL"));
    ERR_HAS("nb_gradcheck_mutations: op is NULL");

    assert_false(nb_gradcheck_mutations(&times, &(nb_check_opts){.dtype = (nb_dtype)7}, &r));
    assert_non_null(strstr(r.message, "nb_gradcheck_mutations: opts.dtype is 7"));
    ERR_HAS("opts.dtype is 7");
    assert_false(
        nb_gradcheck_mutations(&times, &(nb_check_opts){.layout = (nb_check_layout)9}, &r));
    assert_non_null(strstr(r.message, "nb_gradcheck_mutations: opts.layout is 9"));

    assert_false(nb_gradcheck_mutations(&no_examples, NULL, &r));
    assert_non_null(strstr(r.message, "nb_gradcheck_mutations: no_examples has no examples"));
    assert_false(nb_gradcheck_mutations(&bad_example, NULL, &r));
    assert_non_null(strstr(r.message, "nb_gradcheck_mutations"));
    assert_non_null(strstr(r.message, "9 inputs"));

    /* Nothing to mutate is not a failure. */
    assert_true(nb_gradcheck_mutations(&no_backward, NULL, &r));
    assert_non_null(strstr(r.message, "no backward rule"));
    assert_true(nb_gradcheck_mutations(nb_op_find("eq"), NULL, &r));
    assert_non_null(strstr(r.message, "no gradient by design"));
    for (int k = 0; k < NB_MUTATIONS; k++)
        assert_int_equal(r.mutation[k].applicable + r.mutation[k].equivalent, 0);

    /* Layout and dtype of opts are the call's own (f64, contiguous): a
     * valid f32 / permuted request runs the same mutants. */
    assert_true(nb_gradcheck_mutations(
        &times, &(nb_check_opts){.dtype = NB_F32, .layout = NB_LAYOUT_PERMUTED, .seed = 3}, &r));
    assert_int_equal(r.mutation[NB_MUTATE_SCALE].caught, 4);

    assert_string_equal(nb_mutation_name(NB_MUTATE_ZERO), "zero");
    assert_string_equal(nb_mutation_name(NB_MUTATE_DETACH), "detach");
    assert_string_equal(nb_mutation_name((nb_mutation)NB_MUTATIONS), "?");
    assert_string_equal(nb_mutation_name((nb_mutation)-1), "?");
    assert_int_equal(nb_live_tensors(), 0);
}

/* After any call, failed or not, no mutant is left set: a plain check of
 * the op passes and no tensor is left alive. */
static void test_leaves_nothing(void **state)
{
    (void)state;
    nb_mutation_report r;
    const nb_op *mul = nb_op_find("mul");
    nb_check_report rep;
    nb_graph *g = nb_graph_new(); /* the caller's graph stays empty */
    int64_t before = nb_live_tensors();
    nb_gradcheck_mutations(mul, NULL, &r);
    nb_gradcheck_mutations(&times, &(nb_check_opts){.rtol = 0.05}, &r); /* missed */
    nb_gradcheck_mutations(&times_off, NULL, &r);                       /* refused */
    nb_gradcheck_mutations(&times, &(nb_check_opts){.dtype = (nb_dtype)7}, &r);
    assert_null(nb__thread()->mutant);
    assert_ptr_equal(nb_graph_current(), g);
    assert_int_equal(nb_graph_nodes(g), 0);
    assert_int_equal(nb_graph_bytes(g), 0);
    assert_int_equal(nb_live_tensors(), before);
    for (const nb_op_example *e = mul->examples; e->n; e++) {
        assert_true(nb_check_example(mul, e, 1, NULL, &rep));
        assert_true(nb_check_example(mul, e, 2, NULL, &rep));
    }
    nb_graph_free(g);
    assert_int_equal(nb_live_tensors(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_builtin_table, teardown),
        cmocka_unit_test_teardown(test_user_op, teardown),
        cmocka_unit_test_teardown(test_one_mutant, teardown),
        cmocka_unit_test_teardown(test_missed, teardown),
        cmocka_unit_test_teardown(test_equivalent, teardown),
        cmocka_unit_test_teardown(test_bad_input, teardown),
        cmocka_unit_test_teardown(test_leaves_nothing, teardown),
    };
    return cmocka_run_group_tests_name("mutations", tests, NULL, NULL);
}
