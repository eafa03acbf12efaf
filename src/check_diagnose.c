/* What a failing (or vacuous) gradient check means.
 *
 * Patterns, read off a failing input's analytic Jacobian A and numeric one
 * N (entry e failing when |A - N| > atol + rtol |N|), in this order:
 *   NaN         A not finite where N is
 *   zero        A ~ 0 where N is not
 *   scaled      A = c N for one constant c (least squares, then every entry
 *               within tolerance of c N)
 *   swapped     A equals the numeric Jacobian of another failing input
 *   transposed  A equals N with the input's last two indices exchanged
 *   broadcast   every failing entry sits at an output position the input
 *               was repeated to (not the first along a broadcast dimension)
 *   few         at most a quarter of the input's elements are wrong
 *
 * Kinks: near a smooth point the one-sided differences of L at step h
 * differ by about h |L''|, so the gap grows 4x and 16x from step h to 4h
 * and 16h; at a non-differentiable point within the step it does not grow
 * like that (it stays near the jump in slope, or shrinks for a step). */
#include "check_internal.h"

#include <math.h>

/* "(2,1)" for a flat index into a shape (a 0-d shape gives "()"). */
static const char *index_str(int ndim, const int64_t *shape, int64_t flat, char *buf,
                             size_t size)
{
    int64_t idx[NB_MAX_DIMS];
    nb__check_unravel(ndim, shape, flat, idx);
    size_t k = (size_t)snprintf(buf, size, "(");
    for (int d = 0; d < ndim && k < size; d++)
        k += (size_t)snprintf(buf + k, size - k, d ? ",%lld" : "%lld", (long long)idx[d]);
    if (k < size)
        snprintf(buf + k, size - k, "%s)", ndim == 1 ? "," : "");
    return buf;
}

static bool close_to(double a, double n, const nb_check_conf *o)
{
    return fabs(a - n) <= o->atol + o->rtol * fabs(n);
}

/* What a constant factor c usually means. */
static void say_factor(nb_check_report *r, int i, double c)
{
    if (fabs(c - 2) < 0.02)
        nb__check_say(r, "The gradient of input %d is 2x the numeric one everywhere: the "
                         "backward counts a term twice.", i + 1);
    else if (fabs(c - 0.5) < 0.01)
        nb__check_say(r, "The gradient of input %d is half the numeric one everywhere: a "
                         "factor 2 is missing (d/dx x^2 = 2x).", i + 1);
    else if (fabs(c + 1) < 0.02)
        nb__check_say(r, "The gradient of input %d has the wrong sign everywhere: a "
                         "subtraction the wrong way round, or a missing minus.", i + 1);
    else if (fabs(c) < 0.05 || fabs(c - 1) < 0.05)
        nb__check_say(r, "The gradient of input %d is %.6g times the numeric one everywhere: "
                         "a slightly wrong constant (a rounded coefficient, a wrong epsilon, "
                         "a step counted in the scale).", i + 1, c);
    else if (fabs(c - round(c)) < 0.01 * fabs(c) || fabs(1 / c - round(1 / c)) < 0.01 / fabs(c))
        nb__check_say(r, "The gradient of input %d is %.6g times the numeric one everywhere: a "
                         "count is wrong (a sum where a mean is meant, or the reverse; an "
                         "exponent).", i + 1, c);
    else
        nb__check_say(r, "The gradient of input %d is %.6g times the numeric one everywhere: a "
                         "constant factor in the backward is wrong.", i + 1, c);
}

/* Whether every entry of A is within tolerance of N read through map. */
static bool matches(const double *A, const double *N, int64_t rows, int64_t cols,
                    const int64_t *map, const nb_check_conf *o)
{
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < cols; j++)
            if (!close_to(A[r * cols + j], N[r * cols + (map ? map[j] : j)], o))
                return false;
    return true;
}

/* Whether output row o is at the first position along every dimension the
 * input (of shape xs) is broadcast over; false when there is none. */
static bool first_position(const nb_check_report *r, int xnd, const int64_t *xs, int64_t o,
                           bool *broadcast)
{
    int64_t idx[NB_MAX_DIMS];
    nb__check_unravel(r->out_ndim, r->out_shape, o, idx);
    bool first = true;
    *broadcast = false;
    for (int d = 0; d < r->out_ndim; d++) {
        int xd = d - (r->out_ndim - xnd);
        if (r->out_shape[d] > 1 && (xd < 0 || xs[xd] == 1)) {
            *broadcast = true;
            first &= idx[d] == 0;
        }
    }
    return first;
}

static nb_check_pattern classify(const nb_check_ctx *c, int i)
{
    nb_check_report *r = c->r;
    nb_check_input *res = &r->input[i];
    const nb_check_conf *o = c->o;
    const nb_tensor *x = c->x[i];
    const double *A = res->jacobian_analytic, *N = res->jacobian_numeric;
    int64_t rows = res->rows, cols = res->cols, all = rows * cols;
    char at[96];
    if (!A || !N || all == 0)
        return NB_PATTERN_NONE;

    for (int64_t e = 0; e < all; e++)
        if (!isfinite(A[e]) && isfinite(N[e])) {
            nb__check_say(r, "The gradient of input %d is %g at element %s where the numeric "
                             "one is %.6g: a division by zero or a log of 0 in the backward, "
                             "often of a value that cancels in the forward (use a stable "
                             "formula).", i + 1, A[e],
                          index_str(x->ndim, x->shape, e % cols, at, sizeof at), N[e]);
            return NB_PATTERN_NAN;
        }

    double max_a = 0, max_n = 0, an = 0, nn = 0;
    for (int64_t e = 0; e < all; e++) {
        max_a = fmax(max_a, fabs(A[e]));
        max_n = fmax(max_n, fabs(N[e]));
        an += A[e] * N[e];
        nn += N[e] * N[e];
    }
    if (max_a <= o->atol && max_n > o->atol) {
        if (!(c->used & NB_INPUT(i)))
            nb__check_say(r, "The output has no path to input %d in the graph, yet depends on "
                             "it (numeric gradient up to %.3g): the function or a backward "
                             "computes outside the graph (a detached tensor, values copied "
                             "out and back in).", i + 1, max_n);
        else
            nb__check_say(r, "The gradient of input %d is zero everywhere but the numeric one "
                             "is not (up to %.3g): the backward does not set it, or multiplies "
                             "it by a mask that is always 0.", i + 1, max_n);
        return NB_PATTERN_ZERO;
    }

    if (nn > 0) {
        double k = an / nn;
        bool scaled = true;
        for (int64_t e = 0; e < all && scaled; e++)
            scaled = close_to(A[e], k * N[e], o);
        if (scaled && !(fabs(k - 1) <= o->rtol)) {
            res->factor = k;
            say_factor(r, i, k);
            return NB_PATTERN_SCALED;
        }
    }

    for (int j = 0; j < c->n; j++) {
        const nb_check_input *other = &r->input[j];
        if (j == i || other->rows != rows || other->cols != cols || !other->jacobian_numeric)
            continue;
        if (matches(A, other->jacobian_numeric, rows, cols, NULL, o)) {
            res->factor = j;
            nb__check_say(r, "The gradient of input %d is the numeric gradient of input %d: "
                             "the backward swaps their gradients (dx[%d] and dx[%d]).",
                          i + 1, j + 1, i, j);
            return NB_PATTERN_SWAPPED;
        }
    }

    int nd = x->ndim;
    if (nd >= 2 && x->shape[nd - 1] == x->shape[nd - 2] && x->shape[nd - 1] > 1) {
        int64_t *map = nb__alloc((size_t)cols * sizeof *map), m = x->shape[nd - 1];
        if (map) {
            for (int64_t j = 0; j < cols; j++) {
                int64_t q = j % m, p = (j / m) % m, base = j - p * m - q;
                map[j] = base + q * m + p;
            }
            bool t = matches(A, N, rows, cols, map, o);
            nb__free(map);
            if (t) {
                nb__check_say(r, "The gradient of input %d is the numeric one with its last two "
                                 "dimensions swapped: the backward transposes it, or misses a "
                                 "transpose (for C = A B: dA = dC B^T, dB = A^T dC).", i + 1);
                return NB_PATTERN_TRANSPOSED;
            }
        }
    }

    if (res->worst_out >= 0 && r->order == 1) {
        bool any_bc = false, only_repeats = true, some = false;
        for (int64_t row = 0; row < rows && only_repeats; row++) {
            bool bc, first = first_position(r, nd, x->shape, row, &bc);
            any_bc |= bc;
            for (int64_t j = 0; j < cols && only_repeats; j++)
                if (!close_to(A[row * cols + j], N[row * cols + j], o)) {
                    some = true;
                    only_repeats = bc && !first;
                }
        }
        if (any_bc && some && only_repeats) {
            nb__check_say(r, "Only the broadcast positions of input %d are wrong: its gradient "
                             "must sum over every output position the input was repeated to, "
                             "and the backward counts only the first (declare .broadcast and "
                             "return the output-shaped gradient, or sum it with nb_sum_to).",
                          i + 1);
            return NB_PATTERN_BROADCAST;
        }
    }

    int64_t bad = 0;
    for (int64_t j = 0; j < cols; j++)
        for (int64_t row = 0; row < rows; row++)
            if (!close_to(A[row * cols + j], N[row * cols + j], o)) {
                bad++;
                break;
            }
    if (bad * 4 <= cols && bad > 0) {
        nb__check_say(r, "Only %lld of the %lld elements of input %d are wrong (the worst at "
                         "%s): an indexing mistake (an off-by-one, a wrong stride or offset, "
                         "a special case).", (long long)bad, (long long)cols, i + 1,
                      index_str(nd, x->shape, res->worst, at, sizeof at));
        return NB_PATTERN_FEW;
    }
    nb__check_say(r, "The gradient of input %d is wrong in %lld of its %lld elements, with no "
                     "simple pattern (worst at %s: analytic %.6g, numeric %.6g).", i + 1,
                  (long long)bad, (long long)cols,
                  index_str(nd, x->shape, res->worst, at, sizeof at), res->analytic,
                  res->numeric);
    return NB_PATTERN_NONE;
}

void nb__check_pattern(const nb_check_ctx *c, int i)
{
    c->r->input[i].pattern = classify(c, i);
}

bool nb__check_is_kink(const nb_check_ctx *c, int i, int64_t j, double *left, double *right)
{
    nb_tensor *x = c->x[i];
    double *p = nb__ptr(x);
    int64_t at = nb__elem(x, j);
    double old = p[at], L0 = 0, gap[3] = {0};
    bool ok = nb__check_eval(c, &L0, NULL);
    for (int s = 0; ok && s < 3; s++) {
        double h = c->o->eps * (double)(1 << (2 * s)), lp = 0, lm = 0;
        p[at] = old + h;
        ok = nb__check_eval(c, &lp, NULL);
        p[at] = old - h;
        ok = ok && nb__check_eval(c, &lm, NULL);
        p[at] = old;
        double rt = (lp - L0) / h, lt = (L0 - lm) / h;
        gap[s] = fabs(rt - lt);
        if (s == 0) {
            *left = lt;
            *right = rt;
        }
    }
    p[at] = old;
    if (!ok)
        return false;
    if (close_to(*left, *right, c->o))
        return false; /* the two sides agree at the step the check used */
    bool smooth = fabs(gap[1] / gap[0] - 4) < 1 && fabs(gap[2] / gap[0] - 16) < 4;
    return !smooth;
}

bool nb__check_on_kink(nb_check_ctx *c, nb_tensor *y, double dist)
{
    nb_walk w;
    bool found = false;
    if (nb__walk(&w, y, true, c->g)) {
        nb_clear_error();
        return false;
    }
    for (int64_t t = 0; t < w.order.n && !found; t++) {
        nb_tensor *v = ((nb_tensor **)w.order.v)[t];
        const nb_node *nd = v->node;
        if (!nd || !nd->op->kink)
            continue;
        for (int i = 0; i < nd->n && !found; i++) {
            nb_tensor *xi = nd->x[i];
            if (!xi->requires_grad || (nd->op->nondiff & NB_INPUT(i)))
                continue;
            for (int64_t j = 0; j < xi->numel && !found; j++) {
                nb_kink k = {0};
                double d = nd->op->kink(nd->x, nd->n, i, j, nd->attr, &k);
                if (!(d <= dist))
                    continue;
                char at[96];
                nb__check_say(c->r,
                              "Element %s of input %d of %s%s is %.2g from a point where it is "
                              "not differentiable (at %.9g): a central difference there mixes "
                              "the two sides, so the check proves nothing. Draw inputs away "
                              "from it (nb_check_example does), or check the subgradient there "
                              "with opts.at_kinks.",
                              index_str(xi->ndim, xi->shape, j, at, sizeof at), i + 1,
                              nb__op_prefix(nd->op), nd->op->name, d, k.at);
                found = true;
            }
        }
    }
    nb__walk_free(&w);
    return found;
}
