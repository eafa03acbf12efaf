/* Out of memory everywhere: a small model's whole life (data, building,
 * compiling, fitting a few batches, predicting, saving its weights and
 * loading them into a fresh model, then a training checkpoint into a third)
 * is run once under a counting allocator
 * to learn its K allocations, then again for every N in 1..K with the Nth
 * allocation failing: "sticky" (the Nth and every later one fail, as when
 * memory has run out) and "one-shot" (only the Nth fails, as when a
 * transient spike passes). Every step that fails must return its error
 * value with a message that names a public function; nothing may crash or
 * leak (the hook counts its live blocks, nb_live_tensors counts tensors,
 * ASan and valgrind check the rest); and after every failed run the same
 * scenario under the normal allocator must succeed: the library still
 * works, with the same K allocations. In the one-shot sweep the failed
 * step is tried again and must succeed then, and so must every later step:
 * a failed call leaves things as they were. OOM_DEBUG=1 prints each N's
 * failing step and message. */
#define _POSIX_C_SOURCE 200809L

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "testing.h"

#include <ctype.h>
#include <dirent.h>
#include <math.h>
#include <time.h>
#include <unistd.h>

#include "nabla/nabla.h"

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

/* ---- the injecting allocator: one hook, its mode in statics ---- */

static int64_t calls;     /* allocations asked for since arm() */
static int64_t fail_at;   /* the call that fails (1-based); 0: none */
static bool sticky;       /* and every call after it */
static int64_t failed;    /* calls refused */
static int64_t live;      /* blocks from this hook not yet freed */

static void *inject_alloc(size_t n, void *ctx)
{
    (void)ctx;
    int64_t k = ++calls;
    if (fail_at && (k == fail_at || (sticky && k > fail_at))) {
        failed++;
        return NULL;
    }
    void *p = malloc(n);
    if (p)
        live++;
    return p;
}
static void inject_free(void *p, void *ctx)
{
    (void)ctx;
    if (p)
        live--;
    free(p);
}
static const nb_allocator injecting = {inject_alloc, inject_free, NULL};

static void arm(int64_t at, bool all_after)
{
    calls = 0;
    failed = 0;
    fail_at = at;
    sticky = all_after;
    assert_int_equal(nb_set_allocator(&injecting), 0);
}

/* ---- the scenario ---- */

enum { S_DATA, S_BUILD, S_COMPILE, S_FIT, S_PREDICT, S_PREDICT_U8, S_SAVE, S_BUILD2, S_LOAD,
       S_PREDICT2, S_CKSAVE, S_MODEL3, S_CKLOAD, S_PREDICT3, S_COUNT };
static const char *const step_name[S_COUNT] = {"data", "build", "compile", "fit", "predict",
                                               "predict from bytes", "save",
                                               "build a second model", "load",
                                               "predict with the loaded weights",
                                               "save a checkpoint", "compile a third model",
                                               "load the checkpoint",
                                               "predict with the checkpoint's weights"};

typedef struct {
    bool ran[S_COUNT], ok[S_COUNT];
    char msg[S_COUNT][160];
} outcome;

static char dir[64];
static char path[128], ckpath[128];
static int64_t bad_messages; /* failed steps whose message names no public function */

/* True when msg starts with a public function's name: "nb_fit: ...". */
static bool names_public_function(const char *msg)
{
    if (!msg || strncmp(msg, "nb_", 3) != 0)
        return false;
    const char *p = msg + 3;
    while (isalnum((unsigned char)*p) || *p == '_')
        p++;
    return p > msg + 3 && p[0] == ':' && p[1] == ' ';
}

/* Records the outcome of step s: ok, or failed with the message checked.
 * After a one-shot failure the step is tried again, now with memory, and
 * must succeed then: a failed call leaves things as they were. */
static bool note(outcome *o, int s, bool ok)
{
    o->ran[s] = true;
    o->ok[s] = ok;
    if (!ok) {
        const char *e = nb_last_error();
        if (!names_public_function(e) && ++bad_messages <= 20)
            print_error("oom at allocation %lld (%s): step '%s' failed with %s%s%s\n",
                        (long long)fail_at, sticky ? "sticky" : "one-shot", step_name[s],
                        e ? "the message \"" : "no message", e ? e : "", e ? "\"" : "");
        snprintf(o->msg[s], sizeof o->msg[s], "%s", e);
    }
    nb_clear_error();
    return ok;
}

static bool retried(const outcome *o, int s, bool ok)
{
    if (!ok)
        fail_msg("oom at allocation %lld (one-shot): step '%s' failed (%s), and again when "
                 "retried with memory: %s",
                 (long long)fail_at, step_name[s], o->msg[s], nb_last_error());
    return ok;
}

/* Step s is expr, tried a second time after a one-shot failure. */
#define STEP(o, s, expr) (note((o), (s), (expr)) || (!sticky && retried((o), (s), (expr))))

static nb_model *make_model(void)
{
    return nb_sequential(nb_dense(4, .activation = NB_TANH, .input = 2),
                         nb_dense(1, .activation = NB_SIGMOID));
}

/* x, y and x's values times 10 as bytes (predicted with scale 0.1). */
static bool make_data(nb_tensor **x, nb_tensor **y, nb_tensor **xu)
{
    static const float xs[] = {0, 0, 0, 1, 1, 0, 1, 1, 0.5f, 0.5f, 0.2f, 0.9f, 0.9f, 0.1f};
    static const uint8_t xb[] = {0, 0, 0, 10, 10, 0, 10, 10, 5, 5, 2, 9, 9, 1};
    static const float ys[] = {0, 1, 1, 0, 1, 1, 1};
    nb_free(*x);
    nb_free(*y);
    nb_free(*xu);
    *x = nb_from_array(NB_F32, NB_SHAPE(7, 2), xs);
    *y = nb_from_array(NB_F32, NB_SHAPE(7, 1), ys);
    *xu = nb_from_array(NB_U8, NB_SHAPE(7, 2), xb);
    return *x && *y && *xu;
}

/* The second model is built by hand (nb_build on the same model when it is
 * retried) and left uncompiled: loading needs no optimizer. */
static bool build_second(nb_model **m2)
{
    if (!*m2)
        *m2 = make_model();
    return *m2 && nb_build(*m2, 2, 99) == 0;
}

/* The third model, compiled (a checkpoint needs the optimizer); a retry
 * compiles again with the optimizer it kept, if a failed build did. */
static bool compile_third(nb_model **m3)
{
    if (!*m3)
        *m3 = make_model();
    nb_optimizer *opt = *m3 ? nb_model_optimizer(*m3) : NULL;
    return *m3 && nb_compile(*m3, opt ? opt : nb_adam(.lr = 0.05), NB_BINARY_CROSSENTROPY,
                             NB_ACCURACY) == 0;
}

/* Runs the whole scenario, freeing everything it made; the outcome of each
 * step in *o. */
static void scenario(outcome *o)
{
    memset(o, 0, sizeof *o);
    nb_clear_error();
    nb_tensor *x = NULL, *y = NULL, *xu = NULL;
    nb_model *m = NULL, *m2 = NULL, *m3 = NULL;
    nb_tensor *p = NULL, *pu = NULL, *p2 = NULL, *p3 = NULL;
    if (!STEP(o, S_DATA, make_data(&x, &y, &xu)))
        goto done;
    if (!STEP(o, S_BUILD, (m = make_model()) != NULL))
        goto done;
    if (!STEP(o, S_COMPILE, nb_compile(m, nb_adam(.lr = 0.05), NB_BINARY_CROSSENTROPY,
                                       NB_ACCURACY) == 0))
        goto done;
    /* 7 rows in batches of 3: three steps, the last one of 1 row. */
    (void)STEP(o, S_FIT, nb_fit(m, (nb_dataset){.x = x, .y = y}, .batch_size = 3) != NULL);
    (void)STEP(o, S_PREDICT, (p = nb_predict(m, (nb_dataset){.x = x}, .batch_size = 4)) != NULL);
    /* Batches of 4 converted into one buffer, the last 3 rows through a
     * slice of it: the same predictions to within the rounding of 0.1. */
    if (STEP(o, S_PREDICT_U8,
             (pu = nb_predict(m, (nb_dataset){.x = xu, .scale = 0.1}, .batch_size = 4)) != NULL) &&
        p) {
        for (int64_t i = 0; i < 7; i++)
            assert_true(fabs(nb_get_flat(p, i) - nb_get_flat(pu, i)) < 1e-6);
    }
    bool saved = STEP(o, S_SAVE, nb_save_weights(m, path) == 0);
    if (!STEP(o, S_BUILD2, build_second(&m2)))
        goto done;
    if (!saved || !STEP(o, S_LOAD, nb_load_weights(m2, path) == 0))
        goto done;
    if (STEP(o, S_PREDICT2, (p2 = nb_predict(m2, (nb_dataset){.x = x}, .batch_size = 4)) != NULL) &&
        p) {
        /* The loaded weights predict what the saved ones did. */
        for (int64_t i = 0; i < 7; i++)
            assert_true(nb_get_flat(p, i) == nb_get_flat(p2, i));
    }
    bool ck = STEP(o, S_CKSAVE, nb_save_checkpoint(m, ckpath) == 0);
    if (!STEP(o, S_MODEL3, compile_third(&m3)))
        goto done;
    if (!ck || !STEP(o, S_CKLOAD, nb_load_checkpoint(m3, ckpath) == 0))
        goto done;
    if (STEP(o, S_PREDICT3, (p3 = nb_predict(m3, (nb_dataset){.x = x}, .batch_size = 4)) != NULL) &&
        p) {
        for (int64_t i = 0; i < 7; i++)
            assert_true(nb_get_flat(p, i) == nb_get_flat(p3, i));
    }
done:
    nb_free(p);
    nb_free(pu);
    nb_free(p2);
    nb_free(p3);
    nb_model_free(m);
    nb_model_free(m2);
    nb_model_free(m3);
    nb_free(x);
    nb_free(y);
    nb_free(xu);
    unlink(path);
    unlink(ckpath);
}

/* Nothing left in the folder but what a successful save leaves (no
 * temporary file of a failed save). */
static void expect_empty_dir(void)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            fail_msg("oom at allocation %lld: %s/%s left behind", (long long)fail_at, dir,
                     e->d_name);
    closedir(d);
}

static void expect_clean(void)
{
    nb_set_allocator(NULL);
    if (live != 0)
        fail_msg("oom at allocation %lld (%s): %lld blocks leaked", (long long)fail_at,
                 sticky ? "sticky" : "one-shot", (long long)live);
    assert_int_equal(nb_live_tensors(), 0);
    assert_null(nb_graph_current());
    expect_empty_dir();
}

static bool all_ok(const outcome *o)
{
    for (int s = 0; s < S_COUNT; s++)
        if (!o->ran[s] || !o->ok[s])
            return false;
    return true;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int setup(void **state)
{
    (void)state;
    strcpy(dir, "/tmp/nabla-oom-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(path, sizeof path, "%s/w.safetensors", dir);
    snprintf(ckpath, sizeof ckpath, "%s/c.safetensors", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    rmdir(dir);
    return 0;
}

static void test_sweep(void **state)
{
    (void)state;
    outcome o;
    arm(0, false);
    scenario(&o);
    expect_clean();
    assert_true(all_ok(&o));
    const int64_t K = calls;
    assert_true(K > 0);

    /* Every N in both sweeps, each followed by a clean run, in every build:
     * the scenario is small enough (~250 runs take under a second even
     * under valgrind) that no stride is needed. */
    double t0 = now();
    int64_t runs = 0, failures[2] = {0, 0};
    for (int mode = 0; mode < 2; mode++) {
        bool all_after = mode == 0;
        for (int64_t n = 1; n <= K; n++) {
            arm(n, all_after);
            scenario(&o);
            expect_clean();
            runs++;
            if (failed == 0)
                fail_msg("allocation %lld of %lld never came", (long long)n, (long long)K);
            int first = -1;
            for (int s = 0; s < S_COUNT && first < 0; s++)
                if (o.ran[s] && !o.ok[s])
                    first = s;
            /* A refused allocation must surface as a failed step. */
            if (first < 0)
                fail_msg("oom at allocation %lld (%s): every step succeeded", (long long)n,
                         all_after ? "sticky" : "one-shot");
            failures[mode]++;
            if (getenv("OOM_DEBUG"))
                printf("# %s %lld/%lld: %s: %s\n", all_after ? "sticky" : "one-shot", (long long)n,
                       (long long)K, step_name[first], o.msg[first]);
            /* One-shot: the later steps, given memory again, succeed. */
            for (int s = first + 1; !all_after && s < S_COUNT; s++)
                if (o.ran[s] && !o.ok[s])
                    fail_msg("oom at allocation %lld (one-shot, step '%s' failed): then '%s' "
                             "failed too: %s",
                             (long long)n, step_name[first], step_name[s], o.msg[s]);
            /* The library works afterwards, exactly as before: every step
             * succeeds, with the same K allocations (malloc behind the
             * counting hook). */
            arm(0, false);
            scenario(&o);
            expect_clean();
            if (!all_ok(&o) || calls != K)
                fail_msg("after oom at allocation %lld, a clean run %s (%lld allocations, "
                         "%lld before)",
                         (long long)n, all_ok(&o) ? "succeeded" : "failed", (long long)calls,
                         (long long)K);
            runs++;
        }
    }
    if (bad_messages)
        fail_msg("%lld failed steps had no message naming a public function",
                 (long long)bad_messages);
    /* "# ": a TAP comment, so meson's TAP reader passes it through. */
    printf("# oom sweep: %lld allocation points, each failed in turn: all clean "
           "(%lld sticky and %lld one-shot failures, %lld scenario runs, %.2f s%s)\n",
           (long long)K, (long long)failures[0], (long long)failures[1], (long long)runs,
           now() - t0, RUNNING_ON_VALGRIND ? ", under valgrind" : "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_sweep, cleanup),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
