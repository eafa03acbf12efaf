/* Training checkpoints (nn.h): one safetensors file holding a model's
 * weights, its optimizer's state and where training stands, so that
 * training resumed from it goes on bit for bit as if never interrupted.
 *
 * Tensors: the weights under their own names, in layer order (as
 * nb_save_weights writes them), then the optimizer's state tensors
 * (nb_optimizer_state: "optimizer.dense.kernel.m", ...). Metadata (strings):
 *
 *   nabla_checkpoint     NB_CHECKPOINT_FORMAT
 *   dtype                "f32" or "f64", the model's
 *   model.rng            the model's generator (dropout masks): 64 hex digits,
 *                        its four words in order
 *   fit.epochs           epochs done
 *   fit.seed, fit.shuffles  the shuffling stream: its seed and the shuffles
 *                        drawn (absent when the model was never trained)
 *   optimizer            its name ("adam")
 *   optimizer.steps, optimizer.skipped
 *   optimizer.<option>   every option that is not 0 (nb_optimizer_opts: lr,
 *                        beta1, beta2, eps, ..., schedule, schedule.steps,
 *                        schedule.rate), in the fewest digits that read back
 *                        exactly
 *
 * Loading checks the metadata first (nb_load_safetensors's on_metadata,
 * before anything is written): a checkpoint, of this format, the model's
 * dtype, its optimizer's kind and options, well-formed counts; then the
 * tensors are matched strictly (the same layers and state). Only once they
 * are in does the rest change (the generator, the counts). */
#include "nn_internal.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#define MAX_META 32

/* A list of metadata entries with room for their values. */
typedef struct {
    nb_metadata kv[MAX_META];
    char val[MAX_META][72];
    int n;
} meta_list;

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void put(meta_list *l, const char *key, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->val[l->n], sizeof l->val[l->n], fmt, ap);
    va_end(ap);
    l->kv[l->n].key = key;
    l->kv[l->n].value = l->val[l->n];
    l->n++;
}

/* v in the fewest digits that read back as v ("0.01", not
 * "0.01000000000000000021"; -0 stays "-0"). */
static void put_number(meta_list *l, const char *key, double v)
{
    char b[32];
    for (int p = 15; p <= 17; p++) {
        snprintf(b, sizeof b, "%.*g", p, v);
        if (strtod(b, NULL) == v)
            break;
    }
    put(l, key, "%s", b);
}

/* A field set: anything but a plain 0 (NB_ZERO, -0.0, is set). */
static bool set(double v) { return v != 0 || signbit(v); }

static const char *schedule_name(nb_schedule_kind k)
{
    return k == NB_STEP_DECAY          ? "step_decay"
           : k == NB_EXPONENTIAL_DECAY ? "exponential_decay"
           : k == NB_COSINE_DECAY      ? "cosine_decay"
                                       : "constant";
}

/* The optimizer's options as entries "optimizer.<option>": those not 0. */
static void put_options(meta_list *l, const nb_optimizer *opt)
{
    nb_optim_opts o;
    nb_optimizer_opts(opt, &o);
    const struct {
        const char *key;
        double v;
    } f[] = {{"optimizer.lr", o.lr},
             {"optimizer.momentum", o.momentum},
             {"optimizer.beta1", o.betas[0]},
             {"optimizer.beta2", o.betas[1]},
             {"optimizer.rho", o.rho},
             {"optimizer.eps", o.eps},
             {"optimizer.weight_decay", o.weight_decay},
             {"optimizer.initial_accumulator", o.initial_accumulator},
             {"optimizer.clipnorm", o.clipnorm},
             {"optimizer.clipvalue", o.clipvalue}};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (set(f[i].v))
            put_number(l, f[i].key, f[i].v);
    if (o.nesterov)
        put(l, "optimizer.nesterov", "true");
    if (o.schedule.kind != NB_CONSTANT) {
        put(l, "optimizer.schedule", "%s", schedule_name(o.schedule.kind));
        put(l, "optimizer.schedule.steps", "%" PRId64, o.schedule.steps);
        put_number(l, "optimizer.schedule.rate", o.schedule.rate);
    }
}

/* The model's checks shared by saving and loading; fn names the call. */
static int check_model(const nb_model *m, const char *fn, const char *path)
{
    if (nn_bad_model(m, fn))
        return -1;
    if (!path)
        return nb_set_error("%s: path is NULL", fn);
    if (!m->built)
        return nb_set_error_code(NB_ERR_STATE, "%s: %s: the model is not built", fn, path);
    if (!m->opt)
        return nb_set_error_code(NB_ERR_STATE, "%s: %s: the model is not compiled: a checkpoint "
                                 "holds its optimizer's state too (nb_save_weights and "
                                 "nb_load_weights take the weights alone)", fn, path);
    return 0;
}

/* The weights, then the optimizer's state (made now if no step has made
 * it), into *all (the caller frees it); the count, or -1. */
static int tensors(nb_model *m, const char *fn, nb_tensor ***all)
{
    nb_tensor *const *st;
    int k = nb_optimizer_state(m->opt, m->nparams, m->params, &st);
    if (k < 0) {
        nn_as_caller("nb_optimizer_state", fn);
        return -1;
    }
    int n = m->nweights + k;
    if (!(*all = nb_mem_alloc((size_t)(n ? n : 1) * sizeof **all))) {
        nn_blame(fn);
        return -1;
    }
    memcpy(*all, m->weights, (size_t)m->nweights * sizeof **all);
    memcpy(*all + m->nweights, st, (size_t)k * sizeof **all);
    return n;
}

int nb_save_checkpoint(nb_model *m, const char *path)
{
    const char *fn = "nb_save_checkpoint";
    if (check_model(m, fn, path))
        return -1;
    if (nn_distributed(m) && nb_dist_rank() != 0)
        return 0; /* rank 0 writes; the training state is the same on every rank */
    nb_tensor **all = NULL;
    int n = tensors(m, fn, &all);
    if (n < 0)
        return -1;
    meta_list l = {.n = 0};
    put(&l, "nabla_checkpoint", "%d", NB_CHECKPOINT_FORMAT);
    put(&l, "dtype", "%s", nb_dtype_name(m->dtype));
    put(&l, "model.rng", "%016" PRIx64 "%016" PRIx64 "%016" PRIx64 "%016" PRIx64, m->rng.s[0],
        m->rng.s[1], m->rng.s[2], m->rng.s[3]);
    put(&l, "fit.epochs", "%d", m->trained ? m->epochs_done : 0);
    if (m->trained) {
        put(&l, "fit.seed", "%" PRIu64, m->shuffle_seed);
        put(&l, "fit.shuffles", "%" PRId64, m->shuffles);
    }
    put(&l, "optimizer", "%s", nb_optimizer_name(m->opt));
    put(&l, "optimizer.steps", "%" PRId64, nb_optimizer_steps(m->opt));
    put(&l, "optimizer.skipped", "%" PRId64, nb_optimizer_skipped(m->opt));
    put_options(&l, m->opt);
    int rc = nb_save_safetensors(path, n, all, .metadata = l.kv, .nmetadata = l.n);
    nb_mem_free(all);
    if (rc < 0) {
        nn_as_caller("nb_save_safetensors", fn);
        return nn_blame(fn);
    }
    return 0;
}

/* ---- loading ---- */

/* What a load reads from the metadata, and what it checks it against. */
typedef struct {
    const nb_model *m;
    const char *path;
    nb_rng rng;
    bool trained;
    int epochs;
    uint64_t seed;
    int64_t shuffles, steps, skipped;
} reading;

#define FN "nb_load_checkpoint"

static const char *find(int n, const nb_metadata *kv, const char *key)
{
    for (int i = 0; i < n; i++)
        if (strcmp(kv[i].key, key) == 0)
            return kv[i].value;
    return NULL;
}

/* The value of key, which must be there. */
static const char *need(const reading *r, int n, const nb_metadata *kv, const char *key)
{
    const char *v = find(n, kv, key);
    if (!v)
        nb_set_error_code(NB_ERR_FORMAT, FN ": %s: the checkpoint's metadata has no '%s' (a "
                          "damaged file?)", r->path, key);
    return v;
}

/* A whole number in [0, max], in decimal digits only. */
static int whole(const reading *r, const char *key, const char *s, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    bool ok = s && *s && strlen(s) <= 20;
    for (const char *p = s; ok && *p; p++) {
        unsigned d = (unsigned)(*p - '0');
        ok = d <= 9 && v <= (max - d) / 10;
        v = v * 10 + d;
    }
    if (!ok)
        return nb_set_error_code(NB_ERR_FORMAT, FN ": %s: the checkpoint's '%s' is '%.40s', not "
                                 "a whole number up to %" PRIu64, r->path, key, s ? s : "",
                                 max);
    *out = v;
    return 0;
}

/* 64 lowercase hex digits: the generator's four words. */
static int hex_rng(const reading *r, const char *s, nb_rng *out)
{
    bool ok = strlen(s) == 64;
    for (int i = 0; ok && i < 64; i++)
        ok = (s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f');
    uint64_t any = 0;
    for (int w = 0; ok && w < 4; w++) {
        char word[17];
        memcpy(word, s + 16 * w, 16);
        word[16] = '\0';
        any |= out->s[w] = strtoull(word, NULL, 16);
    }
    if (!ok || !any) /* all zeros: xoshiro's one state that never leaves itself */
        return nb_set_error_code(NB_ERR_FORMAT, FN ": %s: the checkpoint's model.rng '%.70s' is "
                                 "not a generator's state (64 hex digits, not all 0)",
                                 r->path, s);
    return 0;
}

/* The model's optimizer against the file's: kind, then each option. */
static int same_optimizer(const reading *r, int n, const nb_metadata *kv)
{
    static const char hint[] = "(compile the model with the optimizer it was trained with)";
    const char *name = nb_optimizer_name(r->m->opt), *theirs = need(r, n, kv, "optimizer");
    if (!theirs)
        return -1;
    if (strcmp(theirs, name) != 0)
        return nb_set_error_code(NB_ERR_FORMAT, FN ": %s: the checkpoint's optimizer is %.20s, "
                                 "the model's %s %s", r->path, theirs, name, hint);
    meta_list mine = {.n = 0};
    put_options(&mine, r->m->opt);
    for (int i = 0; i < mine.n; i++) {
        const char *v = find(n, kv, mine.kv[i].key);
        if (!v || strcmp(v, mine.kv[i].value) != 0)
            return nb_set_error_code(NB_ERR_FORMAT, FN ": %s: the checkpoint's %s has %s %.40s, "
                                     "the model's %s %s", r->path, name,
                                     mine.kv[i].key + strlen("optimizer."), v ? v : "unset",
                                     mine.kv[i].value, hint);
    }
    for (int i = 0; i < n; i++) {
        const char *k = kv[i].key;
        if (strncmp(k, "optimizer.", 10) != 0 || !strcmp(k, "optimizer.steps") ||
            !strcmp(k, "optimizer.skipped") || find(mine.n, mine.kv, k))
            continue;
        return nb_set_error_code(NB_ERR_FORMAT, FN ": %s: the checkpoint's %s has %.40s %.40s, "
                                 "the model's has it unset %s", r->path, name, k + 10,
                                 kv[i].value, hint);
    }
    return 0;
}

/* on_metadata: everything about the file but its tensors, checked before
 * they are matched or written. */
static int read_metadata(int n, const nb_metadata *kv, void *ctx)
{
    reading *r = ctx;
    const char *format = find(n, kv, "nabla_checkpoint");
    if (!format)
        return nb_set_error_code(NB_ERR_FORMAT, FN ": %s: not a checkpoint (its metadata has no "
                                 "'nabla_checkpoint'; a file of nb_save_weights loads with "
                                 "nb_load_weights)", r->path);
    char mine[16];
    snprintf(mine, sizeof mine, "%d", NB_CHECKPOINT_FORMAT);
    if (strcmp(format, mine) != 0)
        return nb_set_error_code(NB_ERR_FORMAT, FN ": %s: the checkpoint is in format '%.20s'; "
                                 "this nabla reads format %s", r->path, format, mine);
    const char *dtype = need(r, n, kv, "dtype");
    if (!dtype)
        return -1;
    if (strcmp(dtype, nb_dtype_name(r->m->dtype)) != 0)
        return nb_set_error_code(NB_ERR_DTYPE, FN ": %s: the checkpoint's weights are %.20s, the "
                                 "model's %s (nb_model_set_dtype before training, as the "
                                 "checkpointed model was)", r->path, dtype,
                                 nb_dtype_name(r->m->dtype));
    if (same_optimizer(r, n, kv))
        return -1;
    const char *rng = need(r, n, kv, "model.rng"), *epochs = need(r, n, kv, "fit.epochs");
    const char *steps = need(r, n, kv, "optimizer.steps");
    const char *skipped = need(r, n, kv, "optimizer.skipped");
    const char *seed = find(n, kv, "fit.seed"), *shuffles = find(n, kv, "fit.shuffles");
    uint64_t e, sh = 0, t, sk, sd = 0;
    if (!rng || !epochs || !steps || !skipped || hex_rng(r, rng, &r->rng) ||
        whole(r, "fit.epochs", epochs, INT32_MAX, &e) ||
        whole(r, "optimizer.steps", steps, INT64_MAX, &t) ||
        whole(r, "optimizer.skipped", skipped, INT64_MAX, &sk))
        return -1;
    if (!seed != !shuffles || (!seed && e > 0))
        return nb_set_error_code(NB_ERR_FORMAT, FN ": %s: the checkpoint's fit.epochs, fit.seed "
                                 "and fit.shuffles do not go together (a damaged file?)",
                                 r->path);
    if (seed && (whole(r, "fit.seed", seed, UINT64_MAX, &sd) ||
                 whole(r, "fit.shuffles", shuffles, e, &sh)))
        return -1;
    r->trained = seed != NULL;
    r->epochs = (int)e;
    r->seed = sd;
    r->shuffles = (int64_t)sh;
    r->steps = (int64_t)t;
    r->skipped = (int64_t)sk;
    return 0;
}

/* The strict load's hint is nb_load_weights's to give here. */
static void hint_weights(void)
{
    const char *e = nb_last_error(), *hint = "(.partial = true loads the tensors that match)";
    const char *at = e ? strstr(e, hint) : NULL;
    if (!at)
        return;
    char msg[600];
    snprintf(msg, sizeof msg, "%.*s(nb_load_weights(m, path, .partial = true) loads the weights "
             "that match)%s", (int)(at - e), e, at + strlen(hint));
    nb_set_error_code(nb_last_error_code(), "%s", msg);
}

int nb_load_checkpoint(nb_model *m, const char *path)
{
    if (check_model(m, FN, path))
        return -1;
    nb_tensor **all = NULL;
    int n = tensors(m, FN, &all);
    if (n < 0)
        return -1;
    reading r = {.m = m, .path = path};
    int rc = nb_load_safetensors(path, n, all, .on_metadata = read_metadata, .ctx = &r);
    nb_mem_free(all);
    if (rc < 0) {
        nn_as_caller("nb_load_safetensors", FN);
        hint_weights();
        return nn_blame(FN);
    }
    /* Everything is checked and the tensors are in: the rest cannot fail. */
    m->rng = r.rng;
    m->trained = r.trained;
    m->epochs_done = r.epochs;
    m->shuffle_seed = r.seed;
    m->shuffles = r.shuffles;
    return nb_optimizer_set_steps(m->opt, r.steps, r.skipped) ? nn_blame(FN) : 0;
}
