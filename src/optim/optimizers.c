/* Optimizers (Keras 3 formulas) and learning-rate schedules.
 *
 * Every update is written with nabla ops, as one fused function (fuse.h)
 * per optimizer: the chain runs in one pass over each parameter, its
 * gradient and its state (as one loop: the build compiles the built-in
 * optimizers' traces, src/fused_compile.c), with recording off; the new
 * parameter is stored in place (its version bumped, so a graph that still
 * needs the old values fails loudly in backward), the new state into a
 * second buffer that then takes the old one's place.
 * With g the (clipped) gradient, lr the scheduled rate and t = 1, 2, ...:
 *
 *   weight decay  p = p - p * (wd * lr)                    (before the update)
 *   SGD           p = p - lr * g
 *     momentum    v = momentum * v - lr * g;  p = p + v
 *     nesterov    v = momentum * v - lr * g;  p = p + momentum * v - lr * g
 *   Adam(W)       m = b1 * m + (1 - b1) * g;  v = b2 * v + (1 - b2) * g^2
 *                 p = p - m * (lr * sqrt(1 - b2^t) / (1 - b1^t)) / (sqrt(v) + eps)
 *   RMSprop       v = rho * v + (1 - rho) * g^2;  inc = lr * g / sqrt(v + eps)
 *                 p = p - inc, or with momentum: buf = momentum * buf + inc; p = p - buf
 *   Adagrad       acc = acc + g^2 (acc starts at initial_accumulator)
 *                 p = p - lr * g / sqrt(acc + eps)
 *
 * Gradient processing happens on temporaries (the .grad tensors are never
 * written): clamp to [-clipvalue, clipvalue], then scale by
 * clipnorm / max(norm, clipnorm) where norm is the GLOBAL L2 norm over every
 * parameter that has a gradient (Keras's global_clipnorm; Keras's clipnorm is
 * per variable).
 *
 * Clipping happens inside the fused update too; only clipnorm's global
 * norm needs a pass of its own. State tensors (heap, in each parameter's
 * dtype and shape) are made for the whole parameter list on the first step;
 * after that a step allocates nothing outside the graph's arena (the new
 * values, before they are stored).
 *
 * Written on the public API only (nabla/nabla.h), like nn/. */
#include "optim_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

static const kind_info SGD_INFO = {SGD, "sgd", "nb_sgd", 0.01, 0, USES_MOMENTUM | USES_NESTEROV};
static const kind_info ADAM_INFO = {ADAM, "adam", "nb_adam", 1e-3, 0, USES_BETAS};
static const kind_info ADAMW_INFO = {ADAM, "adamw", "nb_adamw", 1e-3, 0.004, USES_BETAS};
static const kind_info RMSPROP_INFO = {RMSPROP, "rmsprop", "nb_rmsprop", 1e-3, 0,
                                       USES_MOMENTUM | USES_RHO};
static const kind_info ADAGRAD_INFO = {ADAGRAD, "adagrad", "nb_adagrad", 1e-3, 0,
                                       USES_INITIAL_ACC};

/* A field the caller wrote: anything but a plain 0 (NB_ZERO is -0.0). */
static bool given(double v) { return v != 0 || signbit(v); }
/* NB_ZERO: an explicit zero. */
static bool explicit_zero(double v) { return v == 0 && signbit(v); }
/* The value of an option: def where it was left 0, 0 for NB_ZERO. */
static double pick(double v, double def) { return given(v) ? v + 0.0 : def; }

static bool same_shape(const nb_tensor *a, const nb_tensor *b)
{
    return nb_ndim(a) == nb_ndim(b) &&
           memcmp(nb_shape(a), nb_shape(b), (size_t)nb_ndim(a) * sizeof(int64_t)) == 0;
}

/* ---- schedules ---- */

static int check_schedule(const char *fn, nb_schedule s)
{
    switch (s.kind) {
    case NB_CONSTANT:
        if (s.steps != 0 || s.rate != 0)
            return nb_set_error("%s: schedule.steps/rate are set but schedule.kind is "
                                "NB_CONSTANT (pick NB_STEP_DECAY, NB_EXPONENTIAL_DECAY "
                                "or NB_COSINE_DECAY)", fn);
        return 0;
    case NB_STEP_DECAY:
    case NB_EXPONENTIAL_DECAY:
    case NB_COSINE_DECAY:
        break;
    default:
        return nb_set_error("%s: unknown schedule kind %d", fn, (int)s.kind);
    }
    const char *what = s.kind == NB_STEP_DECAY          ? "step decay"
                       : s.kind == NB_EXPONENTIAL_DECAY ? "exponential decay"
                                                        : "cosine decay";
    if (s.steps <= 0)
        return nb_set_error("%s: %s needs schedule.steps > 0, got %lld", fn, what,
                            (long long)s.steps);
    if (s.kind == NB_COSINE_DECAY) {
        if (!(s.rate >= 0 && s.rate <= 1))
            return nb_set_error("%s: cosine decay needs schedule.rate (alpha, the final "
                                "fraction of lr) in [0, 1], got %g", fn, s.rate);
    } else if (!(s.rate > 0 && isfinite(s.rate))) {
        return nb_set_error("%s: %s needs a positive schedule.rate (%s), got %g", fn, what,
                            s.kind == NB_STEP_DECAY ? "gamma" : "decay_rate", s.rate);
    }
    return 0;
}

static double schedule_lr(nb_schedule s, double lr, int64_t t)
{
    switch (s.kind) {
    case NB_STEP_DECAY:
        return lr * pow(s.rate, (double)(t / s.steps));
    case NB_EXPONENTIAL_DECAY:
        return lr * pow(s.rate, (double)t / (double)s.steps);
    case NB_COSINE_DECAY: {
        double done = (double)(t < s.steps ? t : s.steps) / (double)s.steps;
        return lr * ((1 - s.rate) * (1 + cos(M_PI * done)) / 2 + s.rate);
    }
    default:
        return lr;
    }
}

double nb_schedule_lr(nb_schedule s, double lr, int64_t t)
{
    if (check_schedule("nb_schedule_lr", s) < 0)
        return NAN;
    if (!isfinite(lr)) {
        nb_set_error("nb_schedule_lr: lr must be a finite number, got %g", lr);
        return NAN;
    }
    if (t < 0) {
        nb_set_error("nb_schedule_lr: step must be >= 0, got %lld", (long long)t);
        return NAN;
    }
    return schedule_lr(s, lr, t);
}

/* ---- construction ---- */

/* A hyper-parameter: finite, >= 0, and < 1 when `below_one`. */
static int check_value(const char *fn, const char *field, double v, bool below_one)
{
    if (!isfinite(v))
        return nb_set_error("%s: %s must be a finite number, got %g", fn, field, v);
    if (v < 0)
        return nb_set_error("%s: %s must be %s, got %g", fn, field,
                            below_one ? "in [0, 1)" : "positive", v);
    if (below_one && v >= 1)
        return nb_set_error("%s: %s must be in [0, 1), got %g", fn, field, v);
    return 0;
}

static int check_unused(const kind_info *k, const nb_optim_opts *o)
{
    static const struct {
        unsigned bit;
        const char *field, *who;
    } opts[] = {
        {USES_MOMENTUM, "momentum", "nb_sgd and nb_rmsprop"},
        {USES_NESTEROV, "nesterov", "nb_sgd"},
        {USES_BETAS, "betas", "nb_adam and nb_adamw"},
        {USES_RHO, "rho", "nb_rmsprop"},
        {USES_INITIAL_ACC, "initial_accumulator", "nb_adagrad"},
    };
    const bool set[] = {given(o->momentum), o->nesterov,
                        given(o->betas[0]) || given(o->betas[1]), given(o->rho),
                        given(o->initial_accumulator)};
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
        if (set[i] && !(k->uses & opts[i].bit))
            return nb_set_error("%s: %s is not an option of %s (only %s take it)", k->fn,
                                opts[i].field, k->name, opts[i].who);
    return 0;
}

/* Adam's betas: {0, 0} (unset) is the default {0.9, 0.999}; otherwise both
 * as given, except that a plain 0 for beta2 beside a beta1 is refused as the
 * likely remains of `.betas = {0.5}` (a real 0 is NB_ZERO). */
static int resolve_betas(const char *fn, const double b[2], double *b1, double *b2)
{
    if (!given(b[0]) && !given(b[1])) {
        *b1 = 0.9;
        *b2 = 0.999;
        return 0;
    }
    if (check_value(fn, "betas[0] (beta1)", b[0], true) < 0 ||
        check_value(fn, "betas[1] (beta2)", b[1], true) < 0)
        return -1;
    if (!given(b[1]))
        return nb_set_error("%s: betas = {%g, 0} sets beta1 but leaves beta2 at 0; give both, "
                            "as in .betas = {%g, 0.999} (NB_ZERO for a real beta2 of 0)",
                            fn, b[0], b[0]);
    *b1 = b[0] + 0.0;
    *b2 = b[1] + 0.0;
    return 0;
}

/* ---- the update, one fused function ---- */

/* The new values from in = (p, g, rate, wd * lr, scale[, s1][, s2]), rate
 * being lr, or alpha for Adam: out = (p, [s1,] [s2,] then p as it was).
 * The options are read here, when the function is traced; what changes per
 * step is an input. */
static int update_fn(nb_tensor *out[], nb_tensor *const in[], void *ctx)
{
    const nb_optimizer *opt = ctx;
    const nb_optim_opts *o = &opt->o;
    nb_tensor *p = in[0], *g = in[1], *rate = in[2], *wd_lr = in[3], *scale = in[4];
    nb_tensor *s1 = opt->has_s1 ? in[5] : NULL, *s2 = opt->has_s2 ? in[5 + opt->has_s1] : NULL;
    nb_tensor *np = NULL, *n1 = NULL, *n2 = NULL;
#define K(v) nb_scalar_like(p, (v))
    if (o->clipvalue > 0)
        g = nb_clamp(g, -o->clipvalue, o->clipvalue);
    if (o->clipnorm > 0)
        g = nb_mul(g, scale);
    nb_tensor *p0 = p; /* after weight decay */
    if (o->weight_decay > 0)
        p0 = nb_sub(p, nb_mul(p, wd_lr));
    nb_tensor *lr_g = opt->kind->algo == ADAM ? NULL : nb_mul(g, rate);
    switch (opt->kind->algo) {
    case SGD:
        if (!s1) {
            np = nb_sub(p0, lr_g);
        } else {
            n1 = nb_sub(nb_mul(s1, K(o->momentum)), lr_g);
            nb_tensor *step = o->nesterov ? nb_sub(nb_mul(n1, K(o->momentum)), lr_g) : n1;
            np = nb_add(p0, step);
        }
        break;
    case ADAM:
        n1 = nb_add(nb_mul(s1, K(opt->beta1)), nb_mul(g, K(1 - opt->beta1)));
        n2 = nb_add(nb_mul(s2, K(opt->beta2)), nb_mul(nb_square(g), K(1 - opt->beta2)));
        np = nb_sub(p0, nb_div(nb_mul(n1, rate), nb_add(nb_sqrt(n2), K(o->eps))));
        break;
    case RMSPROP: {
        n1 = nb_add(nb_mul(s1, K(o->rho)), nb_mul(nb_square(g), K(1 - o->rho)));
        nb_tensor *inc = nb_div(lr_g, nb_sqrt(nb_add(n1, K(o->eps))));
        if (s2)
            inc = n2 = nb_add(nb_mul(s2, K(o->momentum)), inc);
        np = nb_sub(p0, inc);
        break;
    }
    case ADAGRAD:
        n1 = nb_add(s1, nb_square(g));
        np = nb_sub(p0, nb_div(lr_g, nb_sqrt(nb_add(n1, K(o->eps)))));
        break;
    }
#undef K
    /* The new values, then the old parameter (kept to undo the step). */
    int m = 0;
    out[m++] = np;
    if (s1)
        out[m++] = n1;
    if (s2)
        out[m++] = n2;
    out[m++] = p;
    return 0;
}

static nb_optimizer *make(const kind_info *k, nb_optim_opts o)
{
    const char *fn = k->fn;
    double b1 = 0, b2 = 0;
    if (check_unused(k, &o) < 0 || check_value(fn, "lr", o.lr, false) < 0 ||
        check_value(fn, "momentum", o.momentum, true) < 0 ||
        ((k->uses & USES_BETAS) && resolve_betas(fn, o.betas, &b1, &b2) < 0) ||
        check_value(fn, "rho", o.rho, true) < 0 || check_value(fn, "eps", o.eps, false) < 0 ||
        check_value(fn, "weight_decay", o.weight_decay, false) < 0 ||
        check_value(fn, "initial_accumulator", o.initial_accumulator, false) < 0 ||
        check_value(fn, "clipnorm", o.clipnorm, false) < 0 ||
        check_value(fn, "clipvalue", o.clipvalue, false) < 0 ||
        check_schedule(fn, o.schedule) < 0)
        return NULL;
    /* A rate or an eps of exactly 0 is never what anyone means. */
    if (explicit_zero(o.lr) || explicit_zero(o.eps)) {
        nb_set_error("%s: %s must be > 0 (leave it 0 for the default), got NB_ZERO", fn,
                     explicit_zero(o.lr) ? "lr" : "eps");
        return NULL;
    }
    /* A field left 0 takes its default; NB_ZERO becomes 0. */
    o.lr = pick(o.lr, k->lr);
    o.momentum = pick(o.momentum, 0);
    o.rho = pick(o.rho, 0.9);
    o.eps = pick(o.eps, 1e-7);
    o.weight_decay = pick(o.weight_decay, k->weight_decay);
    o.initial_accumulator = pick(o.initial_accumulator, 0.1);
    o.clipnorm = pick(o.clipnorm, 0);
    o.clipvalue = pick(o.clipvalue, 0);
    nb_optimizer *opt = nb_mem_alloc(sizeof *opt);
    if (!opt) {
        nb_set_error_code(NB_ERR_MEMORY, "%s: out of memory for the optimizer", fn);
        return NULL;
    }
    memset(opt, 0, sizeof *opt);
    opt->kind = k;
    opt->o = o;
    opt->beta1 = b1;
    opt->beta2 = b2;
    opt->n = -1;
    /* s1: SGD velocity, Adam m, RMSprop v, Adagrad accumulator;
     * s2: Adam v, RMSprop momentum buffer. */
    opt->has_s1 = k->algo != SGD || o.momentum > 0;
    opt->has_s2 = k->algo == ADAM || (k->algo == RMSPROP && o.momentum > 0);
    int n_in = 5 + opt->has_s1 + opt->has_s2, n_out = 2 + opt->has_s1 + opt->has_s2;
    if (!(opt->fused = nb_fused_new(k->name, n_in, n_out, update_fn, opt))) {
        nb_mem_free(opt);
        return NULL;
    }
    return opt;
}

nb_optimizer *nb_sgd_(nb_optim_opts o) { return make(&SGD_INFO, o); }
nb_optimizer *nb_adam_(nb_optim_opts o) { return make(&ADAM_INFO, o); }
nb_optimizer *nb_adamw_(nb_optim_opts o) { return make(&ADAMW_INFO, o); }
nb_optimizer *nb_rmsprop_(nb_optim_opts o) { return make(&RMSPROP_INFO, o); }
nb_optimizer *nb_adagrad_(nb_optim_opts o) { return make(&ADAGRAD_INFO, o); }

static void free_state(nb_optimizer *opt)
{
    if (opt->n > 0) {
        for (int i = 0; i < opt->n; i++) {
            nb_free(opt->s1[i]);
            nb_free(opt->s2[i]);
            nb_free(opt->old[i]);
            nb_free(opt->o1[i]);
            nb_free(opt->o2[i]);
        }
        nb_mem_free(opt->params); /* one block holds params, s1, s2, old, o1, o2, view */
    }
    opt->params = opt->s1 = opt->s2 = opt->old = opt->o1 = opt->o2 = opt->view = NULL;
    opt->n = -1;
}

void nb_optimizer_free(nb_optimizer *opt)
{
    if (!opt)
        return;
    free_state(opt);
    nb_fused_free(opt->fused);
    nb_mem_free(opt);
}

int64_t nb_optimizer_steps(const nb_optimizer *opt)
{
    if (!opt) {
        nb_set_error("nb_optimizer_steps: optimizer is NULL");
        return -1;
    }
    return opt->t;
}

int64_t nb_optimizer_skipped(const nb_optimizer *opt)
{
    if (!opt) {
        nb_set_error("nb_optimizer_skipped: optimizer is NULL");
        return -1;
    }
    return opt->skipped;
}

double nb_optimizer_lr(const nb_optimizer *opt)
{
    if (!opt) {
        nb_set_error("nb_optimizer_lr: optimizer is NULL");
        return NAN;
    }
    return schedule_lr(opt->o.schedule, opt->o.lr, opt->t);
}

const char *nb_optimizer_name(const nb_optimizer *opt)
{
    if (!opt) {
        nb_set_error("nb_optimizer_name: optimizer is NULL");
        return NULL;
    }
    return opt->kind->name;
}

/* ---- the step ---- */

/* A heap state tensor shaped like p, filled with v, named "optimizer.<p's
 * name>.<slot>" ("optimizer.<i>.<slot>" for an unnamed params[i]) when slot
 * is given; an error names the function the user called. */
static nb_tensor *state_like(const nb_tensor *p, int i, const char *slot, double v)
{
    nb_tensor *s = nb_full(nb_dtype_of(p), nb_ndim(p), nb_shape(p), v);
    if (s && slot) {
        char num[24], *name;
        snprintf(num, sizeof num, "%d", i);
        const char *pn = nb_name(p) ? nb_name(p) : num;
        size_t len = strlen("optimizer.") + strlen(pn) + 1 + strlen(slot) + 1;
        if ((name = nb_mem_alloc(len)) != NULL) {
            snprintf(name, len, "optimizer.%s.%s", pn, slot);
            if (!nb_set_name(s, name)) {
                nb_free(s);
                s = NULL;
            }
            nb_mem_free(name);
        } else {
            nb_free(s);
            s = NULL;
        }
    }
    if (!s) {
        char msg[512], b[NB_SHAPE_STR_LEN];
        const char *e = nb_last_error();
        snprintf(msg, sizeof msg, "%s", e ? e : "out of memory");
        nb_set_error("nb_optimizer_step: no memory for the state of a %s %s parameter (%s)",
                     nb_dtype_name(nb_dtype_of(p)), nb_shape_str(p, b), msg);
    }
    return s;
}

/* The names of the state tensors (nb_optimizer_state): s1 then s2. */
static const char *slot_name(const nb_optimizer *opt, int which)
{
    switch (opt->kind->algo) {
    case SGD:
        return "velocity";
    case ADAM:
        return which == 1 ? "m" : "v";
    case RMSPROP:
        return which == 1 ? "v" : "momentum";
    default:
        return "accumulator";
    }
}

/* The first step (or nb_optimizer_state) records the list and makes the
 * state, and the arrays that hold each step's new values. */
int optim_make_state(nb_optimizer *opt, int n, nb_tensor *const params[])
{
    free_state(opt);
    if (n == 0) {
        opt->n = 0;
        return 0;
    }
    nb_tensor **block = nb_mem_alloc(8 * (size_t)n * sizeof *block);
    if (!block)
        return -1;
    memset(block, 0, 8 * (size_t)n * sizeof *block);
    opt->params = block;
    opt->s1 = block + n;
    opt->s2 = block + 2 * n;
    opt->old = block + 3 * n;
    opt->o1 = block + 4 * n;
    opt->o2 = block + 5 * n;
    opt->view = block + 6 * n; /* 2n */
    opt->n = n;
    const nb_optim_opts *o = &opt->o;
    double s1_init = opt->kind->algo == ADAGRAD ? o->initial_accumulator : 0.0;
    for (int i = 0; i < n; i++) {
        nb_tensor *p = params[i];
        opt->params[i] = p;
        if (!(opt->old[i] = state_like(p, i, NULL, 0.0)))
            goto fail;
        /* Both buffers of a state carry its name: they take turns. */
        if (opt->has_s1 && (!(opt->s1[i] = state_like(p, i, slot_name(opt, 1), s1_init)) ||
                            !(opt->o1[i] = state_like(p, i, slot_name(opt, 1), 0.0))))
            goto fail;
        if (opt->has_s2 && (!(opt->s2[i] = state_like(p, i, slot_name(opt, 2), 0.0)) ||
                            !(opt->o2[i] = state_like(p, i, slot_name(opt, 2), 0.0))))
            goto fail;
    }
    return 0;
fail:
    free_state(opt);
    return -1;
}

bool optim_same_list(const nb_optimizer *opt, int n, nb_tensor *const params[])
{
    if (opt->n < 0 || n != opt->n)
        return false;
    for (int i = 0; i < n; i++)
        if (params[i] != opt->params[i] || nb_dtype_of(params[i]) != nb_dtype_of(opt->old[i]) ||
            !same_shape(params[i], opt->old[i]))
            return false;
    return true;
}

int optim_check_list(const nb_optimizer *opt, const char *fn, int n, nb_tensor *const params[])
{
    char b[96];
    if (n < 0 || (n > 0 && !params))
        return nb_set_error("%s: %s", fn, n < 0 ? "negative parameter count" : "params is NULL");
    if (opt->n >= 0 && opt->t > 0) {
        if (n != opt->n)
            return nb_set_error("%s: the parameter list changed: the first step had %d "
                                "parameters, this one has %d (an optimizer updates one fixed "
                                "list; make a new optimizer for other parameters)",
                                fn, opt->n, n);
        for (int i = 0; i < n; i++)
            if (params[i] != opt->params[i])
                return nb_set_error("%s: the parameter list changed: params[%d] is not the "
                                    "tensor the first step had there (an optimizer updates "
                                    "one fixed list; make a new optimizer for other "
                                    "parameters)", fn, i);
        return 0;
    }
    for (int i = 0; i < n; i++) {
        nb_tensor *p = params[i];
        if (!p)
            return nb_set_error("%s: params[%d] is NULL", fn, i);
        if (!nb_is_heap(p))
            return nb_set_error("%s: params[%d] %s is an op's result in a graph; "
                                "parameters must be heap tensors (nb_zeros, nb_randn, ...)",
                                fn, i, nb_shape_str(p, b));
        if (nb_dtype_of(p) != NB_F32 && nb_dtype_of(p) != NB_F64) /* u8: data, no grad */
            return nb_set_error_code(NB_ERR_DTYPE, "%s: params[%d] %s is %s; parameters "
                                     "are f32 or f64", fn, i, nb_shape_str(p, b),
                                     nb_dtype_name(nb_dtype_of(p)));
        for (int j = 0; j < i; j++)
            if (params[j] == p)
                return nb_set_error("%s: params[%d] and params[%d] are the same tensor",
                                    fn, j, i);
    }
    return 0;
}

/* Each gradient has its parameter's dtype and shape. */
static int check_grads(int n, nb_tensor *const params[])
{
    char b[96], c[96];
    for (int i = 0; i < n; i++) {
        nb_tensor *p = params[i], *g = nb_grad_of(p);
        if (g && (nb_dtype_of(g) != nb_dtype_of(p) || !same_shape(g, p)))
            return nb_set_error("nb_optimizer_step: params[%d] is %s %s but its gradient is "
                                "%s %s", i, nb_dtype_name(nb_dtype_of(p)), nb_shape_str(p, b),
                                nb_dtype_name(nb_dtype_of(g)), nb_shape_str(g, c));
    }
    return 0;
}

/* Parameter i's gradient after clipping, as the update sees it (for the
 * global norm and for messages); NULL with an error. */
static nb_tensor *processed_grad(const nb_optimizer *opt, int i, double scale)
{
    nb_tensor *g = nb_grad_of(opt->params[i]);
    if (g && opt->o.clipvalue > 0)
        g = nb_clamp(g, -opt->o.clipvalue, opt->o.clipvalue);
    if (g && scale != 1.0)
        g = nb_mul(g, nb_scalar_like(g, scale));
    return g;
}

/* "(2,3)": the multi-index of row-major element i of t. */
static const char *index_str(const nb_tensor *t, int64_t i, char *buf)
{
    int nd = nb_ndim(t);
    int64_t at[NB_MAX_DIMS];
    for (int d = nd - 1; d >= 0; d--) {
        int64_t k = nb_dim(t, d);
        at[d] = k ? i % k : 0;
        i = k ? i / k : 0;
    }
    return nb_dims_str(nd, at, buf);
}

static const char *kind(double v) { return isnan(v) ? "NaN" : v > 0 ? "inf" : "-inf"; }

/* "'dense.kernel' (4,8)", or "params[3] (4,8)" for a tensor without a name. */
static const char *param_str(const nb_optimizer *opt, int i, char *buf, size_t n)
{
    char b[NB_SHAPE_STR_LEN];
    const nb_tensor *p = opt->params[i];
    if (nb_name(p))
        snprintf(buf, n, "'%s' %s", nb_name(p), nb_shape_str(p, b));
    else
        snprintf(buf, n, "params[%d] %s", i, nb_shape_str(p, b));
    return buf;
}

/* Why the new value of parameter `bad` holds a NaN or an infinity, as the
 * step's error: the first gradient (after clipping) that does, else the
 * parameter itself, else the update overflowed. */
static void refuse(const nb_optimizer *opt, int bad, double scale)
{
    const char *fn = "nb_optimizer_step", *tail = "; nothing was updated";
    const nb_optim_opts *o = &opt->o;
    char who[160], e[NB_SHAPE_STR_LEN];
    for (int i = 0; i < opt->n; i++) {
        nb_tensor *gs = processed_grad(opt, i, scale);
        int64_t j = gs ? nb_find_nonfinite(gs) : -1;
        if (j < 0)
            continue;
        double v = nb_get_flat(gs, j), raw = nb_get_flat(nb_grad_of(opt->params[i]), j);
        char before[64] = "";
        if (o->clipvalue > 0 || o->clipnorm > 0)
            snprintf(before, sizeof before, " after clipping (%s before)",
                     isfinite(raw) ? "finite" : kind(raw));
        nb_set_error_code(NB_ERR_NUMERIC, "%s: the gradient of %s is %s at element %s%s%s", fn,
                     param_str(opt, i, who, sizeof who), kind(v), index_str(gs, j, e),
                     before, tail);
        return;
    }
    const nb_tensor *p = opt->old[bad], *np = opt->params[bad]; /* before, after */
    int64_t j = nb_find_nonfinite(p);
    if (j >= 0) {
        nb_set_error_code(NB_ERR_NUMERIC, "%s: %s is already %s at element %s%s", fn, param_str(opt, bad, who,
                     sizeof who), kind(nb_get_flat(p, j)), index_str(p, j, e), tail);
        return;
    }
    j = nb_find_nonfinite(np);
    nb_set_error_code(NB_ERR_NUMERIC, "%s: the update of %s overflows to %s at element %s (its gradient there is %g; "
                 "lower the learning rate, or clip the gradients)%s", fn,
                 param_str(opt, bad, who, sizeof who), kind(nb_get_flat(np, j)),
                 index_str(p, j, e), nb_get_flat(processed_grad(opt, bad, scale), j), tail);
}

/* The update: the global norm for clipnorm, then per parameter one fused
 * pass that writes the new parameter in place and the old one beside it,
 * and the new state into o1/o2. A NaN or an infinite gradient
 * always makes its parameter's new value non-finite (for every algorithm
 * here: lr * inf, inf / sqrt(inf) ...), and so does an update that
 * overflows, so checking the new values (which the pass does as it writes
 * them) catches both: then the parameters written so far are put back
 * (the state is kept until every parameter is stored), and the error says
 * which. 0 when stored; 1
 * when a value is not finite (nothing changed; the error is set unless
 * quiet); -1 on error. */
static int update(nb_optimizer *opt, const nb_tensor *loss, bool quiet)
{
    const nb_optim_opts *o = &opt->o;
    int n = opt->n;
    int64_t t = opt->t + 1;
    double lr = schedule_lr(o->schedule, o->lr, t - 1);

    int64_t at_loss = loss ? nb_find_nonfinite(loss) : -1;
    if (at_loss >= 0) {
        char e[NB_SHAPE_STR_LEN], at[NB_SHAPE_STR_LEN + 16] = "";
        if (nb_numel(loss) > 1)
            snprintf(at, sizeof at, " at element %s", index_str(loss, at_loss, e));
        if (!quiet)
            nb_set_error_code(NB_ERR_NUMERIC, "nb_optimizer_step: the loss is %s%s; nothing was updated",
                         kind(nb_get_flat(loss, at_loss)), at);
        return 1;
    }

    /* clipnorm scales every gradient by clipnorm / max(norm, clipnorm),
     * norm over all of them after clipvalue. */
    double scale = 1.0;
    if (o->clipnorm > 0) {
        double sumsq = 0;
        for (int i = 0; i < n; i++) {
            if (!nb_grad_of(opt->params[i]))
                continue;
            nb_tensor *g = processed_grad(opt, i, 1.0), *s = g ? nb_sum(nb_square(g)) : NULL;
            if (!s)
                return -1;
            sumsq += nb_item(s);
        }
        double norm = sqrt(sumsq);
        scale = norm > o->clipnorm ? o->clipnorm / norm : 1.0;
    }

    /* Bias corrections of Adam are folded into the rate, as Keras does. */
    const double b1 = opt->beta1, b2 = opt->beta2;
    double alpha = lr * sqrt(1 - pow(b2, (double)t)) / (1 - pow(b1, (double)t));
    double rate = opt->kind->algo == ADAM ? alpha : lr;
    /* The step's scalars, once per dtype. */
    nb_tensor *k[NB_F64 + 1][3] = {{0}};
    int done = 0, bad = -1; /* parameters written; the first with a non-finite value */
    for (int i = 0; i < n && bad < 0; i++) {
        nb_tensor *p = opt->params[i], *g = nb_grad_of(p);
        if (!g) {
            done++;
            continue;
        }
        nb_tensor **kd = k[nb_dtype_of(p)];
        if (!kd[0] && (!(kd[0] = nb_scalar_like(p, rate)) ||
                       !(kd[1] = nb_scalar_like(p, o->weight_decay * lr)) ||
                       !(kd[2] = nb_scalar_like(p, scale))))
            goto undo;
        nb_tensor *in[7] = {p, g, kd[0], kd[1], kd[2]}, *out[6];
        int m = 5, q = 0;
        out[q++] = p;
        if (opt->has_s1) {
            in[m++] = opt->s1[i];
            out[q++] = opt->o1[i];
        }
        if (opt->has_s2) {
            in[m++] = opt->s2[i];
            out[q++] = opt->o2[i];
        }
        out[q++] = opt->old[i];
        int rc = nb_fused_apply(opt->fused, in, out);
        if (rc < 0)
            goto undo;
        done++;
        if (rc & 1)
            bad = i;
    }
    if (bad < 0) {
        for (int i = 0; i < n; i++) {
            if (!nb_grad_of(opt->params[i]))
                continue;
            nb_tensor *t = opt->s1[i];
            opt->s1[i] = opt->o1[i];
            opt->o1[i] = t;
            t = opt->s2[i];
            opt->s2[i] = opt->o2[i];
            opt->o2[i] = t;
        }
        return 0;
    }
    if (!quiet)
        refuse(opt, bad, scale);
undo:;
    /* Nothing non-finite is stored: the parameters written go back (the
     * state was not written over). */
    int rc = bad >= 0 ? 1 : -1;
    for (int i = 0; i < done; i++)
        if (nb_grad_of(opt->params[i]) && nb_assign(opt->params[i], opt->old[i]))
            rc = -1;
    return rc;
}

int nb_optimizer_step_(nb_step_args a)
{
    nb_optimizer *opt = a.opt;
    if (!opt)
        return nb_set_error("nb_optimizer_step: optimizer is NULL");
    if (optim_check_list(opt, "nb_optimizer_step", a.n, a.params) < 0 ||
        check_grads(a.n, a.params) < 0)
        return -1;
    if (!nb_graph_current())
        return nb_set_error("nb_optimizer_step: no current graph (create one with "
                            "nb_graph_new; the update's temporaries live there)");
    /* Before the first update, a new list makes the state anew (there is
     * nothing in it but initial values). */
    bool fresh = !optim_same_list(opt, a.n, a.params);
    if (fresh && optim_make_state(opt, a.n, a.params) < 0)
        return -1;
    /* The step judges its own values: anomaly mode would stop at the first
     * of its ops to see a NaN, with that op's message instead of ours. */
    bool prev = nb_set_grad_enabled(false), anomaly = nb_set_detect_anomaly(false);
    int rc = update(opt, a.loss, a.skip_nonfinite);
    nb_set_detect_anomaly(anomaly);
    nb_set_grad_enabled(prev);
    if (rc == 0) {
        opt->t++;
        return 0;
    }
    if (fresh)
        free_state(opt); /* the list is fixed by the first step that updates */
    if (rc == 1 && a.skip_nonfinite) {
        opt->skipped++;
        return 1;
    }
    return -1;
}
