/* Checkpoints and resumed training: the safetensors metadata they are
 * written with, an optimizer's state saved and restored by hand
 * (nb_optimizer_opts, _state, _set_steps), nb_save_checkpoint /
 * nb_load_checkpoint, nb_fit's .resume and the .full checkpoint callback. The promise tested: training resumed
 * from a checkpoint ends with the weights, bit for bit, of training that was
 * never interrupted. Files go to a fresh temporary folder per test. */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "testing.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nabla/nabla.h"

#define DIR_TEMPLATE "/tmp/nb_test_ck_XXXXXX"
#include "file_testing.h"
#include "optim_testing.h"

static int teardown(void **state)
{
    cleanup(state);
    return teardown_dir(state);
}

/* ---- safetensors metadata ---------------------------------------------------------- */

typedef struct {
    int calls, n;
    char keys[8][32], values[8][32];
    bool refuse;
} seen_meta;

static int look(int n, const nb_metadata *m, void *ctx)
{
    seen_meta *s = ctx;
    s->calls++;
    s->n = n;
    for (int i = 0; i < n && i < 8; i++) {
        snprintf(s->keys[i], sizeof s->keys[i], "%s", m[i].key);
        snprintf(s->values[i], sizeof s->values[i], "%s", m[i].value);
    }
    return s->refuse ? nb_set_error("look: refused") : 0;
}

static void test_metadata(void **state)
{
    (void)state;
    nb_tensor *w = nb_set_name(nb_full(NB_F32, NB_SHAPE(2), 3), "w");
    const nb_metadata kv[] = {{"run", "7"}, {"note", "a \"quoted\" \xc3\xa9"}, {"empty", ""}};
    assert_int_equal(nb_save_safetensors(P("m.st"), 1, &w, .metadata = kv, .nmetadata = 3), 0);
    /* The entries follow nabla's two, escaped as JSON. */
    FILE *f = fopen(P("m.st"), "rb");
    char head[256] = {0};
    assert_non_null(f);
    assert_true(fread(head, 1, sizeof head - 1, f) > 8);
    fclose(f);
    assert_non_null(strstr(head + 8, "\"nabla_crc32\":\""));
    assert_non_null(strstr(head + 8, "\",\"run\":\"7\",\"note\":\"a \\\"quoted\\\" \xc3\xa9\","
                                     "\"empty\":\"\"},\"w\":"));

    /* A load shows them, in order, before it writes; a refusal writes nothing. */
    nb_tensor *r = nb_set_name(nb_zeros(NB_F32, NB_SHAPE(2)), "w");
    seen_meta s = {0};
    assert_int_equal(nb_load_safetensors(P("m.st"), 1, &r, .on_metadata = look, .ctx = &s), 0);
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.n, 3);
    assert_string_equal(s.keys[0], "run");
    assert_string_equal(s.values[1], "a \"quoted\" \xc3\xa9");
    assert_string_equal(s.keys[2], "empty");
    assert_string_equal(s.values[2], "");
    assert_true(nb_get(r, NB_AT(1)) == 3);
    nb_tensor *r2 = nb_set_name(nb_zeros(NB_F32, NB_SHAPE(2)), "w");
    s = (seen_meta){.refuse = true};
    FAILS_RC(nb_load_safetensors(P("m.st"), 1, &r2, .on_metadata = look, .ctx = &s),
             "look: refused");
    assert_true(nb_get(r2, NB_AT(0)) == 0);
    /* The metadata alone. */
    s = (seen_meta){0};
    assert_int_equal(nb_load_safetensors(P("m.st"), 0, NULL, .partial = true, .on_metadata = look,
                                         .ctx = &s), 0);
    assert_int_equal(s.n, 3);

    /* Another writer's file: only entries with string values are shown. */
    const char *json = "{\"__metadata__\":{\"a\":\"x\",\"n\":5,\"b\":\"y\"},"
                       "\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
    unsigned char raw[256];
    size_t hl = strlen(json);
    for (int k = 0; k < 8; k++)
        raw[k] = (unsigned char)(hl >> (8 * k));
    memcpy(raw + 8, json, hl);
    memcpy(raw + 8 + hl, (float[]){1.5f}, 4);
    write_bytes(P("other.st"), raw, 8 + hl + 4);
    nb_tensor *one = nb_set_name(nb_zeros(NB_F32, NB_SHAPE(1)), "w");
    s = (seen_meta){0};
    assert_int_equal(nb_load_safetensors(P("other.st"), 1, &one, .on_metadata = look,
                                         .ctx = &s), 0);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.keys[1], "b");
    assert_true(nb_item(one) == 1.5);

    /* Bad metadata: refused before the file is touched. */
    const char *bad = P("bad.st");
    FAILS_RC(nb_save_safetensors(bad, 1, &w, .metadata = (nb_metadata[]){{"nabla_crc32", "0"}},
                                 .nmetadata = 1),
             "nb_save_safetensors: ", "bad.st: metadata 0: the key 'nabla_crc32' is nabla's own");
    FAILS_RC(nb_save_safetensors(bad, 1, &w, .metadata = (nb_metadata[]){{"k", "1"}, {"k", "2"}},
                                 .nmetadata = 2),
             "metadata 0 and 1 have the same key 'k'");
    FAILS_RC(nb_save_safetensors(bad, 1, &w, .metadata = (nb_metadata[]){{NULL, "1"}},
                                 .nmetadata = 1),
             "metadata 0: its key is NULL");
    FAILS_RC(nb_save_safetensors(bad, 1, &w, .metadata = (nb_metadata[]){{"k", "\xff"}},
                                 .nmetadata = 1),
             "metadata 0: its value is not valid UTF-8 (byte 0 is 0xff)");
    FAILS_RC(nb_save_safetensors(bad, 1, &w, .nmetadata = 1), "bad.st: metadata is NULL");
    FAILS_RC(nb_save_safetensors(bad, 1, &w, .metadata = kv, .nmetadata = -1), "nmetadata is -1");
    assert_int_equal(access(bad, F_OK), -1);

    nb_free(w);
    nb_free(r);
    nb_free(r2);
    nb_free(one);
}

/* ---- an optimizer's state, by hand --------------------------------------------------- */

/* The optimizer of kind name made from opts. */
static nb_optimizer *remake(const char *name, nb_optim_opts o)
{
    return !strcmp(name, "sgd")       ? nb_sgd_(o)
           : !strcmp(name, "adam")    ? nb_adam_(o)
           : !strcmp(name, "adamw")   ? nb_adamw_(o)
           : !strcmp(name, "rmsprop") ? nb_rmsprop_(o)
                                      : nb_adagrad_(o);
}

/* A hand-written resumption: an optimizer made again from another's options
 * (nb_optimizer_opts), given its state (nb_optimizer_state) and step counts
 * (nb_optimizer_set_steps), steps on exactly as the first does, for every
 * state layout; without the state it does not. */
static void test_state_resumes_by_hand(void **state)
{
    (void)state;
    nb_optimizer *ref[] = {
        nb_sgd(.lr = 0.05, .momentum = 0.9, .nesterov = true,
               .schedule = {NB_STEP_DECAY, .steps = 2, .rate = 0.5}),
        nb_sgd(.lr = 0.05),
        nb_adam(.lr = 0.1, .betas = {NB_ZERO, 0.99}, .clipnorm = 1.0),
        nb_adamw(.lr = 0.1, .weight_decay = NB_ZERO),
        nb_rmsprop(.rho = NB_ZERO, .momentum = 0.5, .clipvalue = 0.5),
        nb_adagrad(.initial_accumulator = NB_ZERO),
        nb_adagrad(.lr = 0.1, .schedule = {NB_COSINE_DECAY, .steps = 4}),
    };
    const int counts[] = {2, 0, 4, 4, 4, 2, 2};
    nb_graph *g = nb_graph_new();
    nb_tensor *cs[2] = {vec(NB_F64, N, COEF), vec(NB_F64, N, COEF)};
    for (size_t k = 0; k < sizeof ref / sizeof ref[0]; k++) {
        assert_non_null(ref[k]);
        nb_tensor *ps[2] = {nb_set_name(nb_param(vec(NB_F64, N, P0)), "w"),
                            nb_param(vec(NB_F64, N, P0))};
        for (int s = 0; s < 3; s++)
            assert_int_equal(lib_step(g, ref[k], 2, ps, cs), 0);
        nb_optim_opts o;
        assert_int_equal(nb_optimizer_opts(ref[k], &o), 0);
        const char *name = nb_optimizer_name(ref[k]);
        nb_optimizer *again = remake(name, o), *bare = remake(name, o);
        assert_non_null(again);
        assert_non_null(bare);
        nb_tensor *qs[2] = {nb_set_name(nb_param(nb_clone(ps[0])), "w"), nb_param(nb_clone(ps[1]))};
        nb_tensor *rs[2] = {nb_param(nb_clone(ps[0])), nb_param(nb_clone(ps[1]))};
        nb_tensor *const *from, *const *to, *const *unused;
        int n = nb_optimizer_state(ref[k], 2, ps, &from);
        assert_int_equal(n, counts[k]);
        assert_int_equal(nb_optimizer_state(again, 2, qs, &to), n);
        assert_int_equal(nb_optimizer_state(bare, 2, rs, &unused), n);
        for (int i = 0; i < n; i++) {
            assert_string_equal(nb_name(to[i]), nb_name(from[i]));
            assert_int_equal(nb_assign(to[i], from[i]), 0);
        }
        assert_int_equal(nb_optimizer_set_steps(again, 3, 0), 0);
        assert_int_equal(nb_optimizer_set_steps(bare, 3, 0), 0);
        assert_true(nb_optimizer_lr(again) == nb_optimizer_lr(ref[k]));
        for (int s = 0; s < 3; s++) {
            assert_int_equal(lib_step(g, ref[k], 2, ps, cs), 0);
            assert_int_equal(lib_step(g, again, 2, qs, cs), 0);
            assert_int_equal(lib_step(g, bare, 2, rs, cs), 0);
        }
        for (int i = 0; i < 2; i++)
            assert_true(same_bits(ps[i], qs[i]));
        assert_int_equal(nb_optimizer_steps(again), 6);
        /* Without the state: other values wherever there is state. */
        assert_true(n == 0 ? same_bits(ps[0], rs[0]) : !same_bits(ps[0], rs[0]));
        for (int i = 0; i < 2; i++) {
            nb_free(ps[i]);
            nb_free(qs[i]);
            nb_free(rs[i]);
        }
        nb_optimizer_free(ref[k]);
        nb_optimizer_free(again);
        nb_optimizer_free(bare);
    }
    nb_free(cs[0]);
    nb_free(cs[1]);
    nb_graph_free(g);
}

/* The options as resolved, the state's names and first values, and misuse. */
static void test_state_details(void **state)
{
    (void)state;
    nb_optim_opts o;
    nb_optimizer *adam = nb_adam(), *adamw = nb_adamw(.weight_decay = NB_ZERO);
    assert_int_equal(nb_optimizer_opts(adam, &o), 0);
    assert_true(o.lr == 1e-3 && o.eps == 1e-7 && o.betas[0] == 0.9 && o.betas[1] == 0.999);
    assert_true(o.rho == 0 && o.initial_accumulator == 0 && o.weight_decay == 0 &&
                !signbit(o.weight_decay));
    assert_int_equal(nb_optimizer_opts(adamw, &o), 0);
    assert_true(o.weight_decay == 0 && signbit(o.weight_decay)); /* NB_ZERO: not the default */
    nb_optimizer *ada = nb_adagrad(.initial_accumulator = 0.25);
    assert_int_equal(nb_optimizer_opts(ada, &o), 0);
    assert_true(o.initial_accumulator == 0.25 && o.rho == 0 && o.betas[0] == 0);

    nb_tensor *a = nb_set_name(nb_param(vec(NB_F64, N, P0)), "w");
    nb_tensor *b = nb_param(vec(NB_F32, N, P0)), *c = vec(NB_F64, N, COEF);
    nb_tensor *const *st;
    assert_int_equal(nb_optimizer_state(adam, 2, (nb_tensor *[]){a, b}, &st), 4);
    const char *names[] = {"optimizer.w.m", "optimizer.w.v", "optimizer.1.m", "optimizer.1.v"};
    for (int i = 0; i < 4; i++) {
        assert_string_equal(nb_name(st[i]), names[i]);
        assert_int_equal(nb_dtype_of(st[i]), i < 2 ? NB_F64 : NB_F32);
        assert_true(nb_get(st[i], NB_AT(2)) == 0);
    }
    assert_int_equal(nb_optimizer_state(ada, 1, &a, &st), 1);
    assert_string_equal(nb_name(st[0]), "optimizer.w.accumulator");
    assert_true(nb_get(st[0], NB_AT(0)) == 0.25);

    /* Before the first update another list makes the state anew; after, it is fixed. */
    nb_graph *g = nb_graph_new();
    assert_int_equal(lib_step(g, adam, 1, &a, &c), 0);
    assert_int_equal(nb_optimizer_state(adam, 1, &a, &st), 2);
    assert_true(nb_get(st[0], NB_AT(0)) != 0); /* m moved */
    nb_clear_error();
    assert_int_equal(nb_optimizer_state(adam, 2, (nb_tensor *[]){a, b}, &st), -1);
    assert_msg("nb_optimizer_state: the parameter list changed: the first step had 1 "
               "parameters, this one has 2");
    assert_int_equal(nb_optimizer_state(NULL, 1, &a, &st), -1);
    assert_msg("nb_optimizer_state: optimizer is NULL");
    assert_int_equal(nb_optimizer_state(adam, 1, &a, NULL), -1);
    assert_msg("nb_optimizer_state: state is NULL");
    assert_int_equal(nb_optimizer_state(adamw, 2, (nb_tensor *[]){a, a}, &st), -1);
    assert_msg("nb_optimizer_state: params[0] and params[1] are the same tensor");
    assert_int_equal(nb_optimizer_opts(NULL, &o), -1);
    assert_msg("nb_optimizer_opts: optimizer is NULL");
    assert_int_equal(nb_optimizer_opts(adam, NULL), -1);
    assert_msg("nb_optimizer_opts: opts is NULL");
    assert_int_equal(nb_optimizer_set_steps(adam, -1, 0), -1);
    assert_msg("nb_optimizer_set_steps: steps and skipped must be >= 0, got -1 and 0");
    assert_int_equal(nb_optimizer_set_steps(adamw, 5, 0), -1); /* no state yet */
    assert_msg("nb_optimizer_set_steps: 5 steps, but the optimizer has no state yet");
    assert_int_equal(nb_last_error_code(), NB_ERR_STATE);
    assert_int_equal(nb_optimizer_set_steps(NULL, 1, 0), -1);
    assert_msg("nb_optimizer_set_steps: optimizer is NULL");
    assert_int_equal(nb_optimizer_steps(adam), 1); /* unchanged by the failures */

    nb_graph_free(g);
    nb_optimizer_free(adam);
    nb_optimizer_free(adamw);
    nb_optimizer_free(ada);
    nb_free(a);
    nb_free(b);
    nb_free(c);
}

/* ---- models and data ----------------------------------------------------------------- */

typedef enum { ADAM, SGD_SCHEDULED, SGD_PLAIN } which_opt;

static nb_optimizer *optimizer(which_opt w)
{
    switch (w) {
    case ADAM:
        return nb_adam(.lr = 0.01);
    case SGD_SCHEDULED:
        return nb_sgd(.lr = 0.05, .momentum = 0.9, .nesterov = true,
                      .schedule = {NB_STEP_DECAY, .steps = 5, .rate = 0.7});
    default:
        return nb_sgd(.lr = 0.05);
    }
}

/* Dense, BatchNormalization (state), Dropout (the model's generator),
 * Dense: every kind of thing a checkpoint must carry. Built from seed, in
 * dtype, compiled with w. */
static nb_model *model(uint64_t seed, nb_dtype dt, which_opt w, int64_t width)
{
    nb_model *m = nb_sequential(nb_dense(width, .activation = NB_RELU, .input = 4),
                                nb_batch_normalization(), nb_dropout(0.3),
                                nb_dense(3, .activation = NB_SOFTMAX));
    assert_non_null(m);
    assert_int_equal(nb_build(m, 0, seed), 0);
    assert_int_equal(nb_model_set_dtype(m, dt), 0);
    assert_int_equal(nb_compile(m, optimizer(w), NB_CATEGORICAL_CROSSENTROPY, NB_ACCURACY), 0);
    return m;
}

/* A whole file (caller frees), its size in *n. */
static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long len = ftell(f);
    assert_true(len > 0);
    rewind(f);
    unsigned char *b = malloc((size_t)len);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return b;
}

static bool same_file(const char *a, const char *b)
{
    size_t na, nb;
    unsigned char *x = slurp(a, &na), *y = slurp(b, &nb);
    bool same = na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return same;
}

/* The models' weights and state, bit for bit: their weight files are the
 * same bytes (names, shapes, data, CRC). */
static bool same_model(nb_model *a, nb_model *b)
{
    assert_int_equal(nb_save_weights(a, P("cmp_a.st")), 0);
    assert_int_equal(nb_save_weights(b, P("cmp_b.st")), 0);
    return same_file(P("cmp_a.st"), P("cmp_b.st"));
}

/* A path in the test's folder that outlives P's rotating buffers. */
#define PATH(var, name)                                                        \
    char var[600];                                                             \
    snprintf(var, sizeof var, "%s", P(name))

#define FIT(m, xs, ys, ...)                                                    \
    nb_fit((m), (nb_dataset){.x = (xs), .y = (ys)}, .batch_size = 16, __VA_ARGS__)

/* ---- resuming ---------------------------------------------------------------------- */

/* Four epochs straight, against two, a checkpoint, a new model (another
 * seed) loading it and going on to four: the same weights, state, optimizer
 * and history, bit for bit; restarting the shuffles instead does not. */
static void resumes_bit_for_bit(nb_dtype dt, which_opt w)
{
    nb_tensor *x, *y;
    three_blobs(100, 11, dt, 0.5, false, &x, &y); /* 7 batches of 16 per epoch, the last of 4 */
    nb_model *a = model(1, dt, w, 16), *b = model(1, dt, w, 16), *c = model(99, dt, w, 16);
    const nb_history *ha = FIT(a, x, y, .epochs = 4, .seed = 3);
    assert_non_null(ha);
    double loss[4];
    memcpy(loss, ha->loss, sizeof loss);

    assert_non_null(FIT(b, x, y, .epochs = 2, .seed = 3));
    PATH(mid, "mid.ckpt");
    assert_int_equal(nb_save_checkpoint(b, mid), 0);
    assert_false(same_model(a, c)); /* another seed, other weights */
    assert_int_equal(nb_load_checkpoint(c, mid), 0);
    assert_true(same_model(b, c));
    assert_int_equal(nb_optimizer_steps(nb_model_optimizer(c)), 14);
    const nb_history *hc = FIT(c, x, y, .epochs = 4, .resume = true);
    assert_non_null(hc);
    assert_int_equal(hc->initial_epoch, 2);
    assert_int_equal(hc->epochs, 2);
    assert_true(hc->loss[0] == loss[2] && hc->loss[1] == loss[3]);
    assert_true(same_model(a, c));
    assert_int_equal(nb_optimizer_steps(nb_model_optimizer(c)), 28);
    assert_int_equal(nb_optimizer_steps(nb_model_optimizer(a)), 28);
    /* Everything else too: the two runs' checkpoints are the same bytes
     * (optimizer state, generator, epochs, shuffles). */
    assert_int_equal(nb_save_checkpoint(a, P("a.ckpt")), 0);
    assert_int_equal(nb_save_checkpoint(c, P("c.ckpt")), 0);
    assert_true(same_file(P("a.ckpt"), P("c.ckpt")));

    /* The model that saved it goes on as well. */
    assert_non_null(FIT(b, x, y, .epochs = 4, .resume = true));
    assert_true(same_model(a, b));

    /* Without .resume the shuffles start again from .seed: other weights. */
    nb_model *d = model(99, dt, w, 16);
    assert_int_equal(nb_load_checkpoint(d, mid), 0);
    assert_non_null(FIT(d, x, y, .epochs = 2, .seed = 3));
    assert_false(same_model(a, d));

    nb_model_free(a);
    nb_model_free(b);
    nb_model_free(c);
    nb_model_free(d);
    nb_free(x);
    nb_free(y);
}

static void test_resume_adam_f32(void **state)
{
    (void)state;
    resumes_bit_for_bit(NB_F32, ADAM);
}

static void test_resume_adam_f64(void **state)
{
    (void)state;
    resumes_bit_for_bit(NB_F64, ADAM);
}

/* SGD with Nesterov momentum and a step-decay schedule: the rate follows
 * the restored step count. */
static void test_resume_sgd_schedule(void **state)
{
    (void)state;
    resumes_bit_for_bit(NB_F32, SGD_SCHEDULED);
    resumes_bit_for_bit(NB_F64, SGD_PLAIN); /* no optimizer state at all */
}

/* Stops the fit after epoch `at` (from 0), as a killed run would. */
static int stop_at(nb_model *m, const nb_logs *logs, void *ctx)
{
    (void)m;
    return logs->epoch == *(int *)ctx;
}

/* A run interrupted after its second epoch resumes from the last full
 * checkpoint its callback wrote, numbering its epochs as Keras does. */
static void test_resume_from_callback(void **state)
{
    (void)state;
    nb_tensor *x, *y;
    three_blobs(100, 11, NB_F32, 0.5, false, &x, &y);
    nb_model *a = model(1, NB_F32, ADAM, 16), *b = model(1, NB_F32, ADAM, 16);
    assert_non_null(FIT(a, x, y, .epochs = 4, .seed = 3));

    nb_model_checkpoint ck = {.path = P("run.ckpt"), .full = true};
    int at = 1;
    nb_callback cbs[2] = {nb_model_checkpoint_callback(&ck), {.on_epoch = stop_at, .ctx = &at}};
    const nb_history *h = FIT(b, x, y, .epochs = 4, .seed = 3, .callbacks = cbs, .ncallbacks = 2);
    assert_non_null(h);
    assert_int_equal(h->epochs, 2);
    assert_int_equal(ck.saved_epoch, 1);
    nb_model_free(b); /* the run is gone; its checkpoint stays */

    nb_model *c = model(7, NB_F32, ADAM, 16);
    assert_int_equal(nb_load_checkpoint(c, P("run.ckpt")), 0);
    nb_model_checkpoint ck2 = {.path = P("run.ckpt"), .full = true};
    nb_callback cb = nb_model_checkpoint_callback(&ck2);
    FILE *out = tmpfile();
    assert_non_null(out);
    h = nb_fit(c, (nb_dataset){.x = x, .y = y}, .epochs = 4, .batch_size = 16, .resume = true,
               .seed = 3, .callbacks = &cb, .ncallbacks = 1, .verbose = 2, .out = out);
    assert_non_null(h);
    assert_int_equal(h->initial_epoch, 2);
    assert_int_equal(ck2.saved_epoch, 3); /* epochs are numbered from the start */
    assert_int_equal(ck2.saves, 2);
    assert_true(same_model(a, c));
    char text[512] = {0};
    rewind(out);
    assert_true(fread(text, 1, sizeof text - 1, out) > 0);
    fclose(out);
    assert_non_null(strstr(text, "Epoch 3/4\n"));
    assert_non_null(strstr(text, "Epoch 4/4\n"));
    assert_null(strstr(text, "Epoch 1/"));

    /* The last checkpoint holds the finished run. */
    nb_model *d = model(8, NB_F32, ADAM, 16);
    assert_int_equal(nb_load_checkpoint(d, P("run.ckpt")), 0);
    assert_true(same_model(a, d));
    h = FIT(d, x, y, .epochs = 4, .resume = true);
    assert_non_null(h); /* nothing left to do */
    assert_int_equal(h->epochs, 0);
    assert_int_equal(h->initial_epoch, 4);
    assert_true(same_model(a, d));

    nb_model_free(a);
    nb_model_free(c);
    nb_model_free(d);
    nb_free(x);
    nb_free(y);
}

/* .resume without a checkpoint: an untrained model starts with .seed's
 * stream, a trained one refuses another seed, early stopping marks the
 * resumed fit's first epoch, and a fit without .resume starts again. */
static void test_resume_rules(void **state)
{
    (void)state;
    nb_tensor *x, *y;
    three_blobs(100, 11, NB_F32, 0.5, false, &x, &y);
    nb_model *a = model(1, NB_F32, ADAM, 16), *b = model(1, NB_F32, ADAM, 16);
    assert_non_null(FIT(a, x, y, .epochs = 2, .seed = 3));
    assert_non_null(FIT(b, x, y, .epochs = 2, .seed = 3, .resume = true));
    assert_true(same_model(a, b));
    FAILS(FIT(b, x, y, .epochs = 3, .seed = 4, .resume = true),
          "nb_fit: .seed is 4, but the model's training goes on with the shuffling of seed 3");
    assert_true(same_model(a, b)); /* nothing trained */
    assert_non_null(FIT(b, x, y, .epochs = 3, .seed = 3, .resume = true)); /* the same seed: fine */

    nb_early_stopping es = {.patience = 5, .monitor_loss = true};
    nb_callback cb = nb_early_stopping_callback(&es);
    const nb_history *h = FIT(b, x, y, .epochs = 6, .resume = true, .callbacks = &cb,
                              .ncallbacks = 1);
    assert_non_null(h);
    assert_int_equal(h->initial_epoch, 3);
    assert_int_equal(h->epochs, 3);
    assert_true(es.best > 0 && es.best_epoch >= 3);
    assert_false(es.stopped);

    h = FIT(b, x, y, .epochs = 1, .seed = 3); /* not resumed: epoch 0 again */
    assert_non_null(h);
    assert_int_equal(h->initial_epoch, 0);
    assert_int_equal(h->epochs, 1);
    nb_early_stopping_free(&es);
    nb_model_free(a);
    nb_model_free(b);
    nb_free(x);
    nb_free(y);
}

/* A checkpoint of a compiled model that never trained (no optimizer step,
 * no shuffles) loads, and training from it is training from the start. */
static void test_checkpoint_before_training(void **state)
{
    (void)state;
    nb_tensor *x, *y;
    three_blobs(100, 11, NB_F32, 0.5, false, &x, &y);
    nb_model *a = model(1, NB_F32, ADAM, 16), *b = model(1, NB_F32, ADAM, 16);
    assert_int_equal(nb_save_checkpoint(b, P("fresh.ckpt")), 0);
    /* The save made the optimizer's state; before any step the model may
     * still change its dtype, and the first step makes the state anew. */
    assert_int_equal(nb_model_set_dtype(b, NB_F64), 0);
    nb_tensor *x64, *y64;
    three_blobs(100, 11, NB_F64, 0.5, false, &x64, &y64);
    assert_non_null(FIT(b, x64, y64, .epochs = 1));
    nb_tensor *const *st;
    nb_tensor *const *ps;
    int np = nb_model_params(b, &ps);
    assert_int_equal(nb_optimizer_state(nb_model_optimizer(b), np, ps, &st), 2 * np);
    assert_int_equal(nb_dtype_of(st[0]), NB_F64);
    nb_free(x64);
    nb_free(y64);
    nb_model_free(b);
    nb_model *c = model(5, NB_F32, ADAM, 16);
    assert_non_null(FIT(c, x, y, .epochs = 1, .seed = 9)); /* trained, then put back */
    assert_int_equal(nb_load_checkpoint(c, P("fresh.ckpt")), 0);
    assert_int_equal(nb_optimizer_steps(nb_model_optimizer(c)), 0);
    assert_non_null(FIT(a, x, y, .epochs = 2, .seed = 3));
    assert_non_null(FIT(c, x, y, .epochs = 2, .seed = 3, .resume = true));
    assert_true(same_model(a, c));
    nb_model_free(a);
    nb_model_free(c);
    nb_free(x);
    nb_free(y);
}

/* ---- errors ---------------------------------------------------------------------------- */

/* Replaces the first `from` in the file's header with `to` (as long). */
static void patch(const char *path, const char *from, const char *to)
{
    size_t n;
    unsigned char *b = slurp(path, &n);
    assert_int_equal(strlen(from), strlen(to));
    unsigned char *at = NULL;
    for (size_t i = 8; i + strlen(from) <= n && !at; i++)
        if (memcmp(b + i, from, strlen(from)) == 0)
            at = b + i;
    assert_non_null(at);
    memcpy(at, to, strlen(to));
    write_bytes(path, b, n);
    free(b);
}

static void test_load_errors(void **state)
{
    (void)state;
    nb_tensor *x, *y;
    three_blobs(40, 11, NB_F32, 0.5, false, &x, &y);
    nb_model *m = model(1, NB_F32, ADAM, 16);
    assert_non_null(FIT(m, x, y, .epochs = 1, .seed = 3));
    PATH(ck, "m.ckpt");
    assert_int_equal(nb_save_checkpoint(m, ck), 0);
    nb_model *t = model(2, NB_F32, ADAM, 16);
    assert_int_equal(nb_save_weights(t, P("t_before.st")), 0);

    /* Another optimizer, or other options of the same. */
    nb_model *sgd = model(2, NB_F32, SGD_SCHEDULED, 16);
    FAILS_RC(nb_load_checkpoint(sgd, ck), "nb_load_checkpoint: ", "m.ckpt: the checkpoint's "
             "optimizer is adam, the model's sgd");
    nb_model *lr = nb_sequential(nb_dense(16, .activation = NB_RELU, .input = 4),
                                 nb_batch_normalization(), nb_dropout(0.3),
                                 nb_dense(3, .activation = NB_SOFTMAX));
    assert_int_equal(nb_compile(lr, nb_adam(.lr = 0.02, .clipnorm = 1),
                                NB_CATEGORICAL_CROSSENTROPY, NB_ACCURACY), 0);
    FAILS_RC(nb_load_checkpoint(lr, ck), "nb_load_checkpoint: ", "the checkpoint's adam has lr "
             "0.01, the model's 0.02");
    /* Other layers: another width, one layer more. */
    nb_model *wide = model(2, NB_F32, ADAM, 8);
    FAILS_RC(nb_load_checkpoint(wide, ck), "nb_load_checkpoint: ", "tensor 'dense.kernel' has "
             "shape (4,16) in the file, (4,8) expected");
    nb_model *deep = nb_sequential(nb_dense(16, .activation = NB_RELU, .input = 4),
                                   nb_batch_normalization(), nb_dropout(0.3),
                                   nb_dense(3, .activation = NB_RELU),
                                   nb_dense(3, .activation = NB_SOFTMAX));
    assert_int_equal(nb_compile(deep, nb_adam(.lr = 0.01), NB_CATEGORICAL_CROSSENTROPY,
                                NB_ACCURACY), 0);
    FAILS_RC(nb_load_checkpoint(deep, ck), "nb_load_checkpoint: ", "tensor 'dense_2.kernel' is "
             "not in the file", "(nb_load_weights(m, path, .partial = true) loads the weights "
             "that match)");
    /* Another dtype. */
    nb_model *f64 = model(2, NB_F64, ADAM, 16);
    FAILS_RC(nb_load_checkpoint(f64, ck), "nb_load_checkpoint: ", "the checkpoint's weights are "
             "f32, the model's f64");
    assert_int_equal(nb_last_error_code(), NB_ERR_DTYPE);
    /* A weights file is not a checkpoint; the other way, a checkpoint gives
     * its weights to nb_load_weights's partial load. */
    assert_int_equal(nb_save_weights(m, P("w.st")), 0);
    FAILS_RC(nb_load_checkpoint(t, P("w.st")), "nb_load_checkpoint: ", "w.st: not a checkpoint");
    FAILS_RC(nb_load_weights(t, ck), "nb_load_weights: ", "'optimizer.dense.kernel.m'");
    assert_int_equal(nb_load_weights(t, ck, .partial = true), 0);
    assert_true(same_model(m, t));
    assert_int_equal(nb_load_weights(t, P("t_before.st")), 0);

    /* Damage: a truncated copy, a flipped bit in the data, a metadata value
     * that is not one (the CRC covers the data only). */
    size_t n;
    unsigned char *raw = slurp(ck, &n);
    write_bytes(P("short.ckpt"), raw, n - 3);
    FAILS_RC(nb_load_checkpoint(t, P("short.ckpt")), "nb_load_checkpoint: ", "short.ckpt: "
             "truncated file");
    raw[n - 5] ^= 0x10;
    write_bytes(P("flip.ckpt"), raw, n);
    FAILS_RC(nb_load_checkpoint(t, P("flip.ckpt")), "nb_load_checkpoint: ", "flip.ckpt: checksum "
             "mismatch");
    free(raw);
    assert_int_equal(nb_save_checkpoint(m, P("meta.ckpt")), 0);
    patch(P("meta.ckpt"), "\"optimizer.steps\":\"3\"", "\"optimizer.steps\":\"x\"");
    FAILS_RC(nb_load_checkpoint(t, P("meta.ckpt")), "nb_load_checkpoint: ", "the checkpoint's "
             "'optimizer.steps' is 'x', not a whole number");
    assert_int_equal(nb_save_checkpoint(m, P("meta.ckpt")), 0);
    patch(P("meta.ckpt"), "\"model.rng\":\"", "\"model.rnh\":\"");
    FAILS_RC(nb_load_checkpoint(t, P("meta.ckpt")), "nb_load_checkpoint: ", "metadata has no "
             "'model.rng'");
    assert_int_equal(nb_save_checkpoint(m, P("meta.ckpt")), 0);
    patch(P("meta.ckpt"), "\"nabla_checkpoint\":\"1\"", "\"nabla_checkpoint\":\"9\"");
    FAILS_RC(nb_load_checkpoint(t, P("meta.ckpt")), "nb_load_checkpoint: ", "format '9'");
    FAILS_RC(nb_load_checkpoint(t, P("missing.ckpt")), "nb_load_checkpoint: ", "missing.ckpt: "
             "cannot open");
    /* After every failure the model is as it was. */
    assert_int_equal(nb_save_weights(t, P("t_after.st")), 0);
    assert_true(same_file(P("t_before.st"), P("t_after.st")));
    assert_int_equal(nb_optimizer_steps(nb_model_optimizer(t)), 0);

    /* NULLs and models that cannot hold one. */
    FAILS_RC(nb_load_checkpoint(NULL, ck), "nb_load_checkpoint: model is NULL");
    FAILS_RC(nb_load_checkpoint(t, NULL), "nb_load_checkpoint: path is NULL");
    FAILS_RC(nb_save_checkpoint(NULL, ck), "nb_save_checkpoint: model is NULL");
    FAILS_RC(nb_save_checkpoint(m, NULL), "nb_save_checkpoint: path is NULL");
    nb_model *raw_model = nb_sequential(nb_dense(3, .input = 4));
    assert_int_equal(nb_build(raw_model, 0, 1), 0);
    FAILS_RC(nb_save_checkpoint(raw_model, ck), "nb_save_checkpoint: ", "not compiled");
    FAILS_RC(nb_load_checkpoint(raw_model, ck), "nb_load_checkpoint: ", "not compiled");
    nb_model *unbuilt = nb_sequential(nb_dense(3));
    assert_int_equal(nb_compile(unbuilt, nb_adam(), NB_MEAN_SQUARED_ERROR, NB_NO_METRIC), 0);
    FAILS_RC(nb_save_checkpoint(unbuilt, ck), "nb_save_checkpoint: ", "not built");
    FAILS_RC(nb_save_checkpoint(m, "/nonexistent-dir/m.ckpt"), "nb_save_checkpoint: ",
             "/nonexistent-dir/m.ckpt");
    nb_model *freed = model(3, NB_F32, ADAM, 16);
    nb_model_free(freed);
    FAILS_RC(nb_save_checkpoint(freed, ck), "nb_save_checkpoint: ", "not a live model");

    nb_model *all[] = {m, t, sgd, lr, wide, deep, f64, raw_model, unbuilt};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        nb_model_free(all[i]);
    nb_free(x);
    nb_free(y);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_metadata, setup_dir, teardown),
        cmocka_unit_test_teardown(test_state_resumes_by_hand, cleanup),
        cmocka_unit_test_teardown(test_state_details, cleanup),
        cmocka_unit_test_setup_teardown(test_resume_adam_f32, setup_dir, teardown),
        cmocka_unit_test_setup_teardown(test_resume_adam_f64, setup_dir, teardown),
        cmocka_unit_test_setup_teardown(test_resume_sgd_schedule, setup_dir, teardown),
        cmocka_unit_test_setup_teardown(test_resume_from_callback, setup_dir, teardown),
        cmocka_unit_test_setup_teardown(test_resume_rules, setup_dir, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_before_training, setup_dir, teardown),
        cmocka_unit_test_setup_teardown(test_load_errors, setup_dir, teardown),
        cmocka_unit_test(test_no_leaks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
