/* Helpers of the optimizer tests (test_optim.c, test_schedules.c): the
 * quadratic both minimise, vectors, and error prefixes. Include after
 * "testing.h". */
#ifndef NABLA_OPTIM_TESTING_H
#define NABLA_OPTIM_TESTING_H

#include <string.h>

#define N 3
static const double P0[N] = {1.0, -2.0, 0.5};
static const double COEF[N] = {1.0, 0.25, 3.0}; /* loss = sum(COEF * p^2), g = 2 COEF p */

static inline nb_tensor *vec(nb_dtype dt, int n, const double *v)
{
    nb_tensor *t = nb_zeros(dt, NB_SHAPE(n));
    assert_non_null(t);
    for (int i = 0; i < n; i++)
        assert_int_equal(nb_set(t, NB_AT(i), v[i]), 0);
    return t;
}

static inline double at(const nb_tensor *t, int i) { return nb_get(t, NB_AT(i)); }

static inline void assert_msg(const char *prefix)
{
    const char *e = nb_last_error();
    assert_non_null(e);
    if (strncmp(e, prefix, strlen(prefix)) != 0)
        fail_msg("expected an error starting \"%s\", got \"%s\"", prefix, e);
}

/* One step: zero the grad, backward through sum(coef * p^2), update. */
static inline int lib_step(nb_graph *g, nb_optimizer *opt, int n, nb_tensor *const ps[],
                    nb_tensor *const cs[])
{
    nb_tensor *loss = NULL;
    for (int i = 0; i < n; i++) {
        nb_zero_grad(ps[i]);
        nb_tensor *li = nb_sum(nb_mul(cs[i], nb_square(ps[i])));
        li = nb_cast(li, NB_F64); /* the parameters may mix dtypes */
        loss = loss ? nb_add(loss, li) : li;
    }
    assert_non_null(loss);
    assert_int_equal(nb_backward(loss), 0);
    int rc = nb_optimizer_step(opt, n, ps);
    nb_graph_reset(g);
    return rc;
}

#endif
