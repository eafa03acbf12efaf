/* Losses and metrics (src/nn/losses.c, metrics.c): known values in f32
 * and f64, analytic gradients against their closed forms, gradient checks
 * (first and second order), large finite losses for confident wrong
 * predictions, strided views as inputs, and errors that name the function.
 * Activations are in test_nn.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "testing.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "nabla/nabla.h"

#include "nn_testing.h"

/* A 0-d result's value (fails the test on NULL). */
static double value(nb_tensor *t)
{
    if (!t)
        fail_msg("call failed: %s", nb_last_error());
    assert_int_equal(nb_ndim(t), 0);
    return nb_item(t);
}


enum { MSE, MAE, HUBER, BCE, BCE_LOGITS, CCE, CCE_LOGITS, SCCE, SCCE_LOGITS, NLOSSES };
static const char *const loss_names[] = {"mse", "mae", "huber", "bce", "bce_logits",
                                         "cce", "cce_logits", "scce", "scce_logits"};

static nb_tensor *loss(int which, nb_tensor *p, nb_tensor *t)
{
    switch (which) {
    case MSE: return nb_mse(p, t);
    case MAE: return nb_mae(p, t);
    case HUBER: return nb_huber(p, t, 1.0);
    case BCE: return nb_binary_crossentropy(p, t);
    case BCE_LOGITS: return nb_binary_crossentropy_logits(p, t);
    case CCE: return nb_categorical_crossentropy(p, t);
    case CCE_LOGITS: return nb_categorical_crossentropy_logits(p, t);
    case SCCE: return nb_sparse_categorical_crossentropy(p, t);
    case SCCE_LOGITS: return nb_sparse_categorical_crossentropy_logits(p, t);
    }
    return NULL;
}

static nb_tensor *f_loss(nb_tensor *const x[], int n, void *ctx)
{
    (void)n;
    return loss(*(const int *)ctx, x[0], x[1]);
}



/* ---- losses ---- */

static void test_loss_values(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        nb_dtype d = dtypes[k];
        double tol = d == NB_F32 ? 1e-6 : 1e-14;
        nb_tensor *p = T(d, NB_SHAPE(2, 2), V(1.5, 2, 3, 4));
        nb_tensor *t = T(d, NB_SHAPE(2, 2), V(1, 4, 3, 1));
        /* errors 0.5, -2, 0, 3 */
        assert_true(fabs(value(nb_mse(p, t)) - (0.25 + 4 + 0 + 9) / 4) <= tol);
        assert_true(fabs(value(nb_mae(p, t)) - (0.5 + 2 + 0 + 3) / 4) <= tol);
        /* delta 1: 0.125, 2 - 0.5, 0, 3 - 0.5 */
        assert_true(fabs(value(nb_huber(p, t, 1.0)) - (0.125 + 1.5 + 0 + 2.5) / 4) <= tol);
        /* delta 2.5: 0.125, 2, 0, 7.5 - 3.125 */
        assert_true(fabs(value(nb_huber(p, t, 2.5)) - (0.125 + 2 + 0 + 4.375) / 4) <= tol);
        /* The loss is the dtype of its inputs, 0-d. */
        assert_int_equal(nb_dtype_of(nb_mse(p, t)), d);

        /* Binary cross-entropy of probabilities and of logits. */
        nb_tensor *bp = T(d, NB_SHAPE(4), V(0.9, 0.2, 0.6, 0.5));
        nb_tensor *bt = T(d, NB_SHAPE(4), V(1, 0, 0, 0.25));
        double bce = -(log(0.9) + log(0.8) + log(0.4) + 0.25 * log(0.5) + 0.75 * log(0.5)) / 4;
        assert_true(fabs(value(nb_binary_crossentropy(bp, bt)) - bce) <= tol * 2);
        nb_tensor *z = T(d, NB_SHAPE(2, 2), V(0, 2, -1, 3));
        nb_tensor *zt = T(d, NB_SHAPE(2, 2), V(1, 0, 1, 0.5));
        /* softplus(z) - z t: log 2, softplus(2), softplus(-1) + 1, softplus(3) - 1.5 */
        double bcel = (log(2.0) + 2.1269280110429727 + 0.31326168751822286 + 1 +
                       3.0485873515737420 - 1.5) /
                      4;
        assert_true(fabs(value(nb_binary_crossentropy_logits(z, zt)) - bcel) <= tol * 2);
        /* The logit form agrees with the probability form of sigmoid(z). */
        assert_true(fabs(value(nb_binary_crossentropy(nb_sigmoid(z), zt)) - bcel) <= tol * 10);

        /* Categorical: one-hot targets give the mean of -log p[true]. */
        nb_tensor *cp = T(d, NB_SHAPE(2, 3), V(0.7, 0.2, 0.1, 0.1, 0.8, 0.1));
        nb_tensor *ct = T(d, NB_SHAPE(2, 3), V(1, 0, 0, 0, 1, 0));
        nb_tensor *cl = T(d, NB_SHAPE(2), V(0, 1));
        double cce = -(log(0.7) + log(0.8)) / 2;
        assert_true(fabs(value(nb_categorical_crossentropy(cp, ct)) - cce) <= tol);
        assert_true(fabs(value(nb_sparse_categorical_crossentropy(cp, cl)) - cce) <= tol);
        /* Soft targets: -sum t log p per row. */
        nb_tensor *st = T(d, NB_SHAPE(2, 3), V(0.5, 0.5, 0, 0.2, 0.3, 0.5));
        double soft = -(0.5 * log(0.7) + 0.5 * log(0.2) + 0.2 * log(0.1) + 0.3 * log(0.8) +
                        0.5 * log(0.1)) /
                      2;
        assert_true(fabs(value(nb_categorical_crossentropy(cp, st)) - soft) <= tol * 2);

        /* From logits: -log_softmax; [1,2,3] with class 2 gives
         * log(e + e^2 + e^3) - 3. */
        nb_tensor *lz = T(d, NB_SHAPE(2, 3), V(1, 2, 3, 0, 0, 0));
        nb_tensor *lt = T(d, NB_SHAPE(2, 3), V(0, 0, 1, 1, 0, 0));
        nb_tensor *ll = T(d, NB_SHAPE(2), V(2, 0));
        double ccel = (0.40760596444438013 + log(3.0)) / 2;
        assert_true(fabs(value(nb_categorical_crossentropy_logits(lz, lt)) - ccel) <= tol * 2);
        assert_true(fabs(value(nb_sparse_categorical_crossentropy_logits(lz, ll)) - ccel) <=
                    tol * 2);
        /* ... equal to the probability form of the softmax. */
        assert_true(fabs(value(nb_categorical_crossentropy(nb_softmax(lz, -1), lt)) - ccel) <=
                    tol * 4);

        /* One sample without a batch axis, and a 3-D batch (2, 2, 3). */
        nb_tensor *one = T(d, NB_SHAPE(3), V(0.7, 0.2, 0.1));
        nb_tensor *onet = T(d, NB_SHAPE(3), V(0, 1, 0));
        assert_true(fabs(value(nb_categorical_crossentropy(one, onet)) + log(0.2)) <= tol);
        assert_true(fabs(value(nb_sparse_categorical_crossentropy(one, T(d, 0, NULL, V(1)))) +
                         log(0.2)) <= tol);
        nb_tensor *p3 = T(d, NB_SHAPE(2, 2, 3),
                          V(0.7, 0.2, 0.1, 0.1, 0.8, 0.1, 0.3, 0.3, 0.4, 0.5, 0.25, 0.25));
        nb_tensor *l3 = T(d, NB_SHAPE(2, 2), V(0, 1, 2, 1));
        double c3 = -(log(0.7) + log(0.8) + log(0.4) + log(0.25)) / 4;
        assert_true(fabs(value(nb_sparse_categorical_crossentropy(p3, l3)) - c3) <= tol);
        release();
    }
}

/* Analytic gradients of the losses against their closed forms. */
static void test_loss_gradients(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        nb_dtype d = dtypes[k];
        double tol = d == NB_F32 ? 1e-6 : 1e-15;
        double g[6];
        nb_tensor *p = nb_set_requires_grad(T(d, NB_SHAPE(2, 2), V(1.5, 2, 3, 4)), true);
        nb_tensor *t = T(d, NB_SHAPE(2, 2), V(1, 4, 3, 1));
        grad_into(nb_mse(p, t), p, g); /* 2 (p - t) / N */
        expect(T(NB_F64, NB_SHAPE(4), g), NB_SHAPE(4), V(0.25, -1, 0, 1.5), tol);
        grad_into(nb_huber(p, t, 1.0), p, g); /* clamp(e, -1, 1) / N */
        expect(T(NB_F64, NB_SHAPE(4), g), NB_SHAPE(4), V(0.125, -0.25, 0, 0.25), tol);
        grad_into(nb_mae(p, t), p, g); /* sign(e) / N */
        expect(T(NB_F64, NB_SHAPE(4), g), NB_SHAPE(4), V(0.25, -0.25, 0, 0.25), tol);

        /* BCE from logits: (sigmoid(z) - t) / N, including at z = 0. */
        nb_tensor *z = nb_set_requires_grad(T(d, NB_SHAPE(4), V(0, 0, 2, -1)), true);
        nb_tensor *zt = T(d, NB_SHAPE(4), V(1, 0, 0, 0.5));
        grad_into(nb_binary_crossentropy_logits(z, zt), z, g);
        expect(T(NB_F64, NB_SHAPE(4), g), NB_SHAPE(4),
               V(-0.125, 0.125, (1 / (1 + exp(-2.0))) / 4, (1 / (1 + exp(1.0)) - 0.5) / 4), tol);

        /* CCE from logits: (softmax(z) - t) / rows. */
        nb_tensor *lz = nb_set_requires_grad(T(d, NB_SHAPE(2, 3), V(1, 2, 3, 0, 0, 0)), true);
        nb_tensor *lt = T(d, NB_SHAPE(2, 3), V(0, 0, 1, 1, 0, 0));
        double s0 = 0.09003057317038046, s1 = 0.24472847105479767, s2 = 0.6652409557748219;
        grad_into(nb_categorical_crossentropy_logits(lz, lt), lz, g);
        expect(T(NB_F64, NB_SHAPE(6), g), NB_SHAPE(6),
               V(s0 / 2, s1 / 2, (s2 - 1) / 2, (1.0 / 3 - 1) / 2, 1.0 / 6, 1.0 / 6), tol * 2);
        grad_into(nb_sparse_categorical_crossentropy_logits(lz, T(d, NB_SHAPE(2), V(2, 0))), lz,
                  g);
        expect(T(NB_F64, NB_SHAPE(6), g), NB_SHAPE(6),
               V(s0 / 2, s1 / 2, (s2 - 1) / 2, (1.0 / 3 - 1) / 2, 1.0 / 6, 1.0 / 6), tol * 2);

        /* CCE from probabilities: -t / p / rows. */
        nb_tensor *cp = nb_set_requires_grad(T(d, NB_SHAPE(1, 3), V(0.5, 0.25, 0.25)), true);
        grad_into(nb_categorical_crossentropy(cp, T(d, NB_SHAPE(1, 3), V(0, 1, 0))), cp, g);
        expect(T(NB_F64, NB_SHAPE(3), g), NB_SHAPE(3), V(0, -4, 0), tol * 4);
        release();
    }
}

static void test_loss_gradcheck(void **state)
{
    (void)state;
    const int64_t rows = 4, cols = 3;
    /* Regression: pred and target anywhere, but off the kinks: mae's at
     * pred == target, huber's (delta 1) at |pred - target| == 1. */
    nb_tensor *t = R(NB_SHAPE(rows, cols), -2, 2, 11, 0, 0);
    nb_tensor *e = R(NB_SHAPE(rows, cols), -2, 2, 12, 0, 0.15);
    double *pe = nb_data(e);
    for (int i = 0; i < rows * cols; i++)
        if (fabs(fabs(pe[i]) - 1) < 0.1)
            pe[i] = pe[i] > 0 ? (pe[i] > 1 ? 1.1 : 0.9) : (pe[i] < -1 ? -1.1 : -0.9);
    nb_tensor *p = nb_set_requires_grad(nb_clone(e), true);
    keep[nkeep++] = p;
    double *pp = nb_data(p), *pt = nb_data(t);
    for (int i = 0; i < rows * cols; i++)
        pp[i] += pt[i];
    for (int w = MSE; w <= HUBER; w++) {
        check(loss_names[w], f_loss, &w, 2, (nb_tensor *[]){p, t}, 1, NB_F64);
        check(loss_names[w], f_loss, &w, 2, (nb_tensor *[]){p, t}, 1, NB_F32);
        check(loss_names[w], f_loss, &w, 2, (nb_tensor *[]){p, t}, 2, NB_F64);
    }

    /* Probabilities inside the clipping range, targets in [0, 1] (soft
     * targets: the loss is linear in them, so they are checked too). */
    nb_tensor *prob = R(NB_SHAPE(rows, cols), 0.05, 0.95, 13, 0, 0);
    nb_tensor *tgt = R(NB_SHAPE(rows, cols), 0, 1, 14, 0, 0);
    nb_tensor *logits = R(NB_SHAPE(rows, cols), -4, 4, 15, 0, 0);
    for (int w = BCE; w <= CCE_LOGITS; w++) {
        nb_tensor *in = (w == BCE || w == CCE) ? prob : logits;
        check(loss_names[w], f_loss, &w, 2, (nb_tensor *[]){in, tgt}, 1, NB_F64);
        check(loss_names[w], f_loss, &w, 2, (nb_tensor *[]){in, tgt}, 1, NB_F32);
        check(loss_names[w], f_loss, &w, 2, (nb_tensor *[]){in, tgt}, 2, NB_F64);
    }

    /* Sparse: labels carry no gradient (not requiring grad: skipped). */
    nb_tensor *labels = T(NB_F64, NB_SHAPE(rows), V(0, 2, 1, 2));
    for (int w = SCCE; w <= SCCE_LOGITS; w++) {
        nb_tensor *in = w == SCCE ? prob : logits;
        check(loss_names[w], f_loss, &w, 2, (nb_tensor *[]){in, labels}, 1, NB_F64);
        check(loss_names[w], f_loss, &w, 2, (nb_tensor *[]){in, labels}, 1, NB_F32);
        check(loss_names[w], f_loss, &w, 2, (nb_tensor *[]){in, labels}, 2, NB_F64);
    }

    /* A 3-D batch (2, 2, 3) for the categorical ones. */
    nb_tensor *l3 = R(NB_SHAPE(2, 2, 3), -3, 3, 16, 0, 0);
    nb_tensor *t3 = R(NB_SHAPE(2, 2, 3), 0, 1, 17, 0, 0);
    int w = CCE_LOGITS;
    check("cce_logits 3-D", f_loss, &w, 2, (nb_tensor *[]){l3, t3}, 2, NB_F64);
    w = SCCE_LOGITS;
    check("scce_logits 3-D", f_loss, &w, 2,
          (nb_tensor *[]){l3, T(NB_F64, NB_SHAPE(2, 2), V(1, 0, 2, 2))}, 1, NB_F64);
    release();
}

/* Confident wrong predictions: large finite losses, finite gradients. */
static void test_loss_stability(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        nb_dtype d = dtypes[k];
        double g[4];
        /* Logits [1000, -1000] for class 1: loss 2000. */
        nb_tensor *z = nb_set_requires_grad(T(d, NB_SHAPE(1, 2), V(1000, -1000)), true);
        nb_tensor *t = T(d, NB_SHAPE(1, 2), V(0, 1));
        nb_tensor *lab = T(d, NB_SHAPE(1), V(1));
        nb_tensor *l = nb_categorical_crossentropy_logits(z, t);
        assert_true(fabs(value(l) - 2000) <= 1e-9);
        grad_into(l, z, g);
        expect(T(NB_F64, NB_SHAPE(2), g), NB_SHAPE(2), V(1, -1), 0);
        l = nb_sparse_categorical_crossentropy_logits(z, lab);
        assert_true(fabs(value(l) - 2000) <= 1e-9);
        grad_into(l, z, g);
        expect(T(NB_F64, NB_SHAPE(2), g), NB_SHAPE(2), V(1, -1), 0);
        /* ... and the right class: loss 0. */
        assert_true(value(nb_sparse_categorical_crossentropy_logits(z, T(d, NB_SHAPE(1), V(0)))) ==
                    0);

        /* Binary logits 1000 for target 0 and -1000 for target 1: 1000 each. */
        nb_tensor *bz = nb_set_requires_grad(T(d, NB_SHAPE(4), V(1000, -1000, 1000, -1000)), true);
        nb_tensor *bt = T(d, NB_SHAPE(4), V(0, 1, 1, 0));
        l = nb_binary_crossentropy_logits(bz, bt);
        assert_true(fabs(value(l) - 500) <= 1e-9);
        grad_into(l, bz, g);
        expect(T(NB_F64, NB_SHAPE(4), g), NB_SHAPE(4), V(0.25, -0.25, 0, 0), 0);

        /* Probabilities [1, 0] for the wrong class: -log(1e-7) ~ 16.1 (in f32
         * 1 - 1e-7 rounds to 1 - 2^-23, so slightly less). */
        nb_tensor *p = nb_set_requires_grad(T(d, NB_SHAPE(1, 2), V(1, 0)), true);
        l = nb_categorical_crossentropy(p, t);
        assert_true(fabs(value(l) + log(1e-7)) <= 1e-6);
        grad_into(l, p, g);
        all_finite("cce grad", T(NB_F64, NB_SHAPE(2), g));
        l = nb_sparse_categorical_crossentropy(p, lab);
        assert_true(fabs(value(l) + log(1e-7)) <= 1e-6);
        grad_into(l, p, g);
        all_finite("scce grad", T(NB_F64, NB_SHAPE(2), g));
        nb_tensor *bp = nb_set_requires_grad(T(d, NB_SHAPE(2), V(1, 0)), true);
        l = nb_binary_crossentropy(bp, T(d, NB_SHAPE(2), V(0, 1)));
        double want = d == NB_F32 ? -(log(1.0 - (double)(float)(1 - 1e-7)) +
                                      log((double)(float)1e-7)) / 2
                                  : -log(1e-7);
        assert_true(fabs(value(l) - want) <= 1e-4);
        assert_true(value(l) > 15 && value(l) < 17);
        grad_into(l, bp, g);
        all_finite("bce grad", T(NB_F64, NB_SHAPE(2), g));
        /* Right and confident: a tiny loss, not -0 or NaN. */
        l = nb_binary_crossentropy(bp, T(d, NB_SHAPE(2), V(1, 0)));
        assert_true(value(l) >= 0 && value(l) < 1e-6);

        /* Huber never squares a large error. */
        nb_tensor *hp = nb_set_requires_grad(T(d, NB_SHAPE(2), V(1e30, -1e30)), true);
        l = nb_huber(hp, T(d, NB_SHAPE(2), V(0, 0)), 1.0);
        all_finite("huber", l);
        assert_true(fabs(value(l) / 1e30 - 1) < 1e-6);
        grad_into(l, hp, g);
        expect(T(NB_F64, NB_SHAPE(2), g), NB_SHAPE(2), V(0.5, -0.5), 0);
        release();
    }
}

/* Inputs that are strided views (a transpose, a reversed slice, a
 * broadcast) give the losses, gradients and metrics of their packed copies;
 * a bad label is reported at its position in the view. */
static void test_losses_of_views(void **state)
{
    (void)state;
    /* logits^T and targets^T: (2,3) views of (3,2) tensors */
    nb_tensor *zt = nb_set_requires_grad(T(NB_F64, NB_SHAPE(3, 2), V(1, 0, 2, 0, 3, 0)), true);
    nb_tensor *tt = T(NB_F64, NB_SHAPE(3, 2), V(0, 1, 0, 0, 1, 0));
    nb_tensor *t = nb_transpose(tt, 0, 1);
    assert_false(nb_is_contiguous(t));
    nb_tensor *zc = nb_set_requires_grad(nb_clone(nb_transpose(zt, 0, 1)), true);
    nb_tensor *tc = nb_clone(t);
    keep[nkeep++] = zc;
    keep[nkeep++] = tc;
    for (int w = 0; w < NLOSSES; w++) {
        if (w == SCCE || w == SCCE_LOGITS)
            continue;
        nb_tensor *z = nb_transpose(zt, 0, 1); /* each backward releases its nodes */
        nb_tensor *in = z, *inc = zc;
        if (w == BCE || w == CCE) { /* probabilities: the softmax of the logits */
            in = nb_softmax(z, -1);
            inc = nb_softmax(zc, -1);
        }
        double gv[6], gc[6];
        nb_tensor *lv = loss(w, in, t), *lc = loss(w, inc, tc);
        if (!(fabs(value(lv) - value(lc)) <= 1e-15))
            fail_msg("%s of views: %.17g, of copies %.17g", loss_names[w], value(lv), value(lc));
        grad_into(lv, zt, gv); /* gv is laid out as zt, (3,2) */
        grad_into(lc, zc, gc); /* gc as zc, (2,3) */
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 3; j++)
                assert_true(fabs(gv[j * 2 + i] - gc[i * 3 + j]) <= 1e-15);
    }
    /* labels: every other element of a reversed (6,) tensor */
    nb_tensor *lab6 = T(NB_F64, NB_SHAPE(6), V(9, 0, 9, 1, 9, 2));
    nb_tensor *lab = nb_slice(lab6, 0, 5, INT64_MIN, -2); /* 2, 1, 0 */
    nb_tensor *pt = T(NB_F64, NB_SHAPE(3, 3), V(0.7, 0.1, 0.1, 0.2, 0.8, 0.1, 0.1, 0.1, 0.8));
    nb_tensor *p = nb_transpose(pt, 0, 1);
    /* rows of p: (0.7,0.2,0.1) (0.1,0.8,0.1) (0.1,0.1,0.8): labels 2, 1, 0 */
    assert_true(fabs(value(nb_sparse_categorical_crossentropy(p, lab)) +
                     (log(0.1) + log(0.8) + log(0.1)) / 3) <= 1e-15);
    assert_true(fabs(value(nb_sparse_categorical_accuracy(p, lab)) - 1.0 / 3) <= 1e-15);
    nb_tensor *bad = nb_slice(lab6, 0, 0, INT64_MAX, 2); /* 9, 9, 9 */
    FAILS(nb_sparse_categorical_crossentropy(p, bad), "nb_sparse_categorical_crossentropy",
          "labels[0] = 9", "[0, 3)");
    /* a broadcast target (every row the same one-hot) */
    nb_tensor *row = T(NB_F64, NB_SHAPE(1, 3), V(0, 1, 0));
    nb_tensor *tb = nb_broadcast_to(row, NB_SHAPE(3, 3));
    assert_true(fabs(value(nb_categorical_crossentropy(p, tb)) +
                     (log(0.2) + log(0.8) + log(0.1)) / 3) <= 1e-15);
    release();
}

/* ---- metrics ---- */

static void test_metrics(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        nb_dtype d = dtypes[k];
        nb_tensor *p = nb_set_requires_grad(
            T(d, NB_SHAPE(4, 3),
              V(0.1, 0.7, 0.2, 0.5, 0.3, 0.2, 0.2, 0.2, 0.6, 0.9, 0.05, 0.05)),
            true);
        /* predicted 1, 0, 2, 0; true 1, 0, 1, 2: half right. */
        nb_tensor *t = T(d, NB_SHAPE(4, 3), V(0, 1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1));
        nb_tensor *l = T(d, NB_SHAPE(4), V(1, 0, 1, 2));
        nb_tensor *a = nb_categorical_accuracy(p, t);
        assert_true(value(a) == 0.5);
        assert_int_equal(nb_dtype_of(a), d);
        assert_false(nb_requires_grad(a)); /* no gradient, even from a param */
        a = nb_sparse_categorical_accuracy(p, l);
        assert_true(value(a) == 0.5);
        assert_int_equal(nb_dtype_of(a), d);
        assert_false(nb_requires_grad(a));
        assert_true(value(nb_sparse_categorical_accuracy(p, T(d, NB_SHAPE(4), V(1, 0, 2, 0)))) ==
                    1);
        assert_true(value(nb_categorical_accuracy(t, t)) == 1);
        assert_true(value(nb_sparse_categorical_accuracy(p, T(d, NB_SHAPE(4), V(0, 1, 0, 1)))) ==
                    0);
        /* Logits work the same; a 3-D batch averages over all rows. */
        nb_tensor *p3 = T(d, NB_SHAPE(2, 2, 2), V(1, 0, 0, 1, 5, -5, -1, 3));
        nb_tensor *l3 = T(d, NB_SHAPE(2, 2), V(0, 1, 1, 1));
        assert_true(value(nb_sparse_categorical_accuracy(p3, l3)) == 0.75);
        /* Recording stays as it was. */
        assert_true(nb_is_grad_enabled());
        release();
    }
}

/* ---- errors ---- */

static void test_loss_errors(void **state)
{
    (void)state;
    nb_tensor *a = Z(NB_F32, NB_SHAPE(32, 10));
    nb_tensor *b = Z(NB_F32, NB_SHAPE(32, 1));
    nb_tensor *a64 = Z(NB_F64, NB_SHAPE(32, 10));
    nb_tensor *lab = Z(NB_F32, NB_SHAPE(32));
    nb_tensor *lab64 = Z(NB_F64, NB_SHAPE(32));
    nb_tensor *s = T(NB_F32, 0, NULL, V(0.5));
    nb_tensor *empty = Z(NB_F32, NB_SHAPE(0, 10));

    /* Shapes must match exactly (no broadcasting). */
    FAILS(nb_mse(a, b), "nb_mse: pred (32,10) and target (32,1) differ");
    FAILS(nb_mae(a, b), "nb_mae", "(32,10)", "(32,1)");
    FAILS(nb_huber(a, b, 1), "nb_huber", "(32,10)", "(32,1)");
    FAILS(nb_binary_crossentropy(a, b), "nb_binary_crossentropy", "(32,10)", "(32,1)");
    FAILS(nb_binary_crossentropy_logits(b, a), "nb_binary_crossentropy_logits", "(32,1)",
          "(32,10)");
    FAILS(nb_categorical_crossentropy(a, b), "nb_categorical_crossentropy", "(32,10)", "(32,1)");
    FAILS(nb_categorical_crossentropy_logits(a, b), "nb_categorical_crossentropy_logits",
          "(32,10)", "(32,1)");
    FAILS(nb_categorical_accuracy(a, b), "nb_categorical_accuracy", "(32,10)", "(32,1)");
    FAILS(nb_mse(a, s), "nb_mse", "()");

    /* dtypes must match. */
    FAILS(nb_mse(a, a64), "nb_mse", "dtypes differ", "f32", "f64");
    FAILS(nb_binary_crossentropy(a64, a), "nb_binary_crossentropy", "f64", "f32");
    FAILS(nb_categorical_crossentropy_logits(a, a64), "nb_categorical_crossentropy_logits",
          "f32", "f64");
    FAILS(nb_sparse_categorical_crossentropy(a, lab64), "nb_sparse_categorical_crossentropy",
          "f32", "f64");
    FAILS(nb_categorical_accuracy(a64, a), "nb_categorical_accuracy", "f64", "f32");
    FAILS(nb_sparse_categorical_accuracy(a, lab64), "nb_sparse_categorical_accuracy", "f32",
          "f64");

    /* Labels: shape = pred's without the last axis, whole numbers in range. */
    FAILS(nb_sparse_categorical_crossentropy(a, b), "nb_sparse_categorical_crossentropy",
          "labels (32,1)", "(32,)", "(32,10)");
    FAILS(nb_sparse_categorical_crossentropy_logits(a, a),
          "nb_sparse_categorical_crossentropy_logits", "labels (32,10)");
    FAILS(nb_sparse_categorical_accuracy(a, Z(NB_F32, NB_SHAPE(10))),
          "nb_sparse_categorical_accuracy", "labels (10,)", "(32,)");
    nb_tensor *l2 = T(NB_F32, NB_SHAPE(2, 3), V(0, 1, 2, 3, 1, 0));
    nb_tensor *p23 = Z(NB_F32, NB_SHAPE(2, 3, 3));
    FAILS(nb_sparse_categorical_crossentropy(p23, l2), "nb_sparse_categorical_crossentropy",
          "labels[1,0] = 3", "[0, 3)");
    ((float *)nb_data(l2))[3] = 1.5f;
    FAILS(nb_sparse_categorical_crossentropy_logits(p23, l2),
          "nb_sparse_categorical_crossentropy_logits", "labels[1,0] = 1.5", "not a whole number");
    ((float *)nb_data(l2))[3] = -1;
    FAILS(nb_sparse_categorical_accuracy(p23, l2), "nb_sparse_categorical_accuracy",
          "labels[1,0] = -1");
    ((float *)nb_data(l2))[3] = NAN;
    FAILS(nb_sparse_categorical_crossentropy(p23, l2), "labels[1,0] = nan");
    ((float *)nb_data(lab))[31] = 10;
    FAILS(nb_sparse_categorical_crossentropy(a, lab), "nb_sparse_categorical_crossentropy",
          "labels[31] = 10", "[0, 10)");
    ((float *)nb_data(lab))[31] = 9;
    assert_non_null(nb_sparse_categorical_crossentropy(a, lab));

    /* A class axis is needed; empty batches are refused. */
    FAILS(nb_categorical_crossentropy(s, s), "nb_categorical_crossentropy", "class axis");
    FAILS(nb_sparse_categorical_crossentropy_logits(s, s), "class axis");
    FAILS(nb_categorical_accuracy(s, s), "nb_categorical_accuracy", "class axis");
    FAILS(nb_mse(empty, empty), "nb_mse", "(0,10)", "empty");
    FAILS(nb_categorical_crossentropy_logits(empty, empty), "empty");

    /* Parameters. */
    FAILS(nb_huber(a, a, 0), "nb_huber", "delta", "0");
    FAILS(nb_huber(a, a, -1), "nb_huber", "delta", "-1");
    FAILS(nb_huber(a, a, NAN), "nb_huber", "delta");
    FAILS(nb_huber(a, a, INFINITY), "nb_huber", "delta");

    /* NULL inputs, each naming the function. */
    FAILS(nb_mse(NULL, a), "nb_mse", "pred is NULL");
    FAILS(nb_mse(a, NULL), "nb_mse", "target is NULL");
    FAILS(nb_mae(NULL, a), "nb_mae");
    FAILS(nb_huber(a, NULL, 1), "nb_huber");
    FAILS(nb_binary_crossentropy(NULL, a), "nb_binary_crossentropy", "prob is NULL");
    FAILS(nb_binary_crossentropy_logits(NULL, a), "nb_binary_crossentropy_logits",
          "logits is NULL");
    FAILS(nb_categorical_crossentropy(a, NULL), "nb_categorical_crossentropy", "target is NULL");
    FAILS(nb_categorical_crossentropy_logits(NULL, NULL), "nb_categorical_crossentropy_logits");
    FAILS(nb_sparse_categorical_crossentropy(a, NULL), "nb_sparse_categorical_crossentropy",
          "labels is NULL");
    FAILS(nb_sparse_categorical_crossentropy_logits(NULL, lab),
          "nb_sparse_categorical_crossentropy_logits", "logits is NULL");
    FAILS(nb_categorical_accuracy(NULL, a), "nb_categorical_accuracy", "pred is NULL");
    FAILS(nb_sparse_categorical_accuracy(a, NULL), "nb_sparse_categorical_accuracy",
          "labels is NULL");

    /* A NULL from an earlier failure keeps the first error. */
    FAILS(nb_mse(nb_matmul(a, b), a), "nb_matmul", "(32,10)", "(32,1)");
    FAILS(nb_sparse_categorical_crossentropy_logits(a, nb_reshape(lab, NB_SHAPE(7))),
          "nb_reshape");
    release();

    /* Without a current graph. */
    nb_graph *g = nb_graph_current();
    nb_graph_free(g);
    assert_null(nb_graph_current());
    nb_tensor *x = nb_ones(NB_F32, NB_SHAPE(2, 3));
    nb_tensor *lx = nb_zeros(NB_F32, NB_SHAPE(2));
    FAILS(nb_mse(x, x), "nb_mse", "no current graph");
    FAILS(nb_sparse_categorical_crossentropy(x, lx), "nb_sparse_categorical_crossentropy",
          "graph");
    FAILS(nb_categorical_accuracy(x, x), "nb_categorical_accuracy", "graph");
    nb_free(x);
    nb_free(lx);
    nb_graph_new();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_loss_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loss_gradients, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loss_gradcheck, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loss_stability, setup, teardown),
        cmocka_unit_test_setup_teardown(test_losses_of_views, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loss_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
