/* Soak: a small model trained for 100,000 steps keeps its resident memory
 * flat. The test reads its own RSS (/proc/self/statm) after a warm-up and
 * at the end, and, as the reason the RSS stays flat, counts allocations
 * through the hook: after the warm-up a step makes none, the graph's
 * bytes are the same every step and no heap tensor is left behind.
 *
 * Two loops of 100,000 steps each: one written by hand (forward, loss,
 * backward, Adam, reset: what a custom training loop does) and nb_fit
 * called 100 times for 1,000 epochs of a one-batch dataset (each call makes
 * and frees its graph, batches and history, so this one checks that
 * repeated calls return what they take).
 *
 * Under valgrind (RUNNING_ON_VALGRIND) each loop runs 5,000 steps (a step
 * is ~50 times slower there: 100,000 would take ~100 s): RSS there is
 * valgrind's, not ours, so the RSS bounds are not checked; the allocation
 * counts and valgrind's own checks are. */
#define _POSIX_C_SOURCE 200809L

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "testing.h"

#include <math.h>
#include <time.h>
#include <unistd.h>

#include "nabla/nabla.h"

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

/* AddressSanitizer keeps freed blocks in quarantine (256 MB by default)
 * instead of reusing them, so memory that is freed and made again, as
 * nb_fit's graph and batches are on every call, shows up as RSS growth
 * until the quarantine is full. Under ASan that leg's RSS is reported, not
 * bounded; its block balance (what each call frees, it made) is checked. */
#if defined(__SANITIZE_ADDRESS__)
#define ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ASAN 1
#endif
#endif
#ifndef ASAN
#define ASAN 0
#endif

enum { STEPS = 100000, VALGRIND_STEPS = 5000, WARMUP = 1000 };

/* Resident bytes of this process (VmRSS: the second field of
 * /proc/self/statm, in pages), and of them the file-backed ones (the third:
 * code and other mapped files) in *file. */
typedef struct {
    long rss, file;
} mem;

static mem resident(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, rss = -1, file = -1, page = sysconf(_SC_PAGESIZE);
    if (f) {
        if (fscanf(f, "%ld %ld %ld", &size, &rss, &file) != 3)
            rss = -1;
        fclose(f);
    }
    return (mem){rss < 0 ? -1 : rss * page, file < 0 ? -1 : file * page};
}

/* The bounds on growth after the warm-up. No step allocates, so nothing of
 * ours can grow. What does grow, once: code first run after the warm-up
 * (libm's paths for the saturated values of a converged model, say) faults
 * in file-backed pages, 64 KB at a time (the kernel's fault-around), and
 * the stack may take a page. Measured growth of VmRSS: 0 to 64 KB plain,
 * 80 to 140 KB under ASan; of the anonymous part (VmRSS less the
 * file-backed pages, where a leak would show): 0 to 16 KB. A leak of one
 * 64-byte block per step would add 6.3 MB of anonymous memory over the
 * 99,000 steps after the warm-up, 100 times the anonymous bound. */
#define RSS_BOUND (512 * 1024L)
#define ANON_BOUND (64 * 1024L)

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static nb_model *xor_model(void)
{
    nb_model *m = nb_sequential(nb_dense(4, .activation = NB_TANH, .input = 2),
                                nb_dense(1, .activation = NB_SIGMOID));
    assert_non_null(m);
    assert_int_equal(nb_compile(m, nb_adam(.lr = 0.01), NB_BINARY_CROSSENTROPY, NB_ACCURACY),
                     0);
    return m;
}

static void xor_data(nb_tensor **x, nb_tensor **y)
{
    *x = nb_from_array(NB_F32, NB_SHAPE(4, 2), (float[]){0, 0, 0, 1, 1, 0, 1, 1});
    *y = nb_from_array(NB_F32, NB_SHAPE(4, 1), (float[]){0, 1, 1, 0});
    assert_non_null(*x);
    assert_non_null(*y);
}

/* Every prediction on the right side of 0.5. */
static void expect_learned(nb_model *m, nb_tensor *x, nb_tensor *y)
{
    nb_tensor *p = nb_predict(m, (nb_dataset){.x = x});
    assert_non_null(p);
    for (int i = 0; i < 4; i++)
        assert_true((nb_get_flat(p, i) > 0.5) == (nb_get_flat(y, i) > 0.5));
    nb_free(p);
}

static int steps(void) { return RUNNING_ON_VALGRIND ? VALGRIND_STEPS : STEPS; }

static void report(const char *what, int n, mem m0, mem m1, double secs, bool frees)
{
    bool check = !RUNNING_ON_VALGRIND && !(ASAN && frees);
    /* "# ": TAP comments, shown in meson's log. */
    printf("# soak (%s): %d steps in %.2f s (%.1f us/step); RSS %ld KB after %d steps "
           "(%ld KB file-backed), %ld KB at the end (%ld KB file-backed): %+ld KB%s\n",
           what, n, secs, 1e6 * secs / n, m0.rss / 1024, WARMUP, m0.file / 1024, m1.rss / 1024,
           m1.file / 1024, (m1.rss - m0.rss) / 1024,
           RUNNING_ON_VALGRIND ? " (valgrind's memory, not checked)"
           : check            ? ""
                              : " (ASan's quarantine holds what is freed: not checked)");
    if (check) {
        assert_true(m0.rss > 0);
        if (m1.rss - m0.rss >= RSS_BOUND)
            fail_msg("soak (%s): RSS grew by %ld bytes, bound %ld", what, m1.rss - m0.rss,
                     RSS_BOUND);
        long anon = (m1.rss - m1.file) - (m0.rss - m0.file);
        if (anon >= ANON_BOUND)
            fail_msg("soak (%s): anonymous memory grew by %ld bytes, bound %ld", what, anon,
                     ANON_BOUND);
    }
}

/* Forward, loss, backward, Adam, reset: 100,000 times in one graph. */
static void test_hand_loop(void **state)
{
    (void)state;
    nb_tensor *x, *y;
    xor_data(&x, &y);
    nb_model *m = xor_model();
    nb_tensor *const *params;
    int np = nb_model_params(m, &params);
    nb_optimizer *opt = nb_model_optimizer(m);
    nb_set_allocator(&counting_allocator);
    int64_t live0 = -1; /* with the gradients and Adam's moments, made by the first step */
    nb_graph *g = nb_graph_new();
    assert_non_null(g);
    mem m0 = {-1, -1};
    long allocs0 = 0;
    size_t bytes0 = 0;
    double t0 = now(), loss = NAN;
    const int n = steps();
    for (int s = 1; s <= n; s++) {
        nb_tensor *out = nb_model_forward(m, x);
        nb_tensor *l = nb_model_loss(m, out, y);
        assert_non_null(l);
        for (int i = 0; i < np; i++)
            nb_zero_grad(params[i]);
        assert_int_equal(nb_backward(l), 0);
        assert_int_equal(nb_optimizer_step(opt, np, params), 0);
        loss = nb_item(l);
        if (s == WARMUP) {
            m0 = resident();
            allocs0 = allocs;
            bytes0 = nb_graph_bytes(g);
            live0 = nb_live_tensors();
        } else if (s > WARMUP && nb_graph_bytes(g) != bytes0)
            fail_msg("step %d used %zu graph bytes, step %d %zu", s, nb_graph_bytes(g),
                     (int)WARMUP, bytes0);
        nb_graph_reset(g);
    }
    double secs = now() - t0;
    mem m1 = resident();
    assert_int_equal(allocs - allocs0, 0); /* no step after the warm-up allocated */
    assert_int_equal(nb_live_tensors(), live0);
    nb_graph_free(g);
    nb_set_allocator(NULL);
    assert_true(loss < 0.1);
    expect_learned(m, x, y);
    report("hand-written loop", n, m0, m1, secs, false);
    nb_model_free(m);
    nb_free(x);
    nb_free(y);
    assert_int_equal(nb_live_tensors(), 0);
}

/* nb_fit, 100 calls of 1,000 epochs of one batch: each call's graph,
 * batches and history are made and freed again. */
static void test_fit_calls(void **state)
{
    (void)state;
    nb_tensor *x, *y;
    xor_data(&x, &y);
    nb_model *m = xor_model();
    const int per_call = 1000, calls = steps() / per_call;
    nb_set_allocator(&counting_allocator);
    int64_t live0 = -1;
    mem m0 = {-1, -1};
    long balance0 = 0;
    double t0 = now();
    const nb_history *h = NULL;
    for (int c = 1; c <= calls; c++) {
        h = nb_fit(m, (nb_dataset){.x = x, .y = y}, .epochs = per_call, .batch_size = 4);
        assert_non_null(h);
        if (c == WARMUP / per_call) {
            m0 = resident();
            live0 = nb_live_tensors(); /* with the gradients and Adam's moments */
            balance0 = allocs - frees; /* the blocks the model holds (optimizer, history) */
        } else if (c > WARMUP / per_call) {
            if (allocs - frees != balance0)
                fail_msg("after nb_fit call %d, %ld blocks are held, %ld after call %d", c,
                         allocs - frees, balance0, WARMUP / per_call);
            assert_int_equal(nb_live_tensors(), live0);
        }
    }
    double secs = now() - t0;
    mem m1 = resident();
    nb_set_allocator(NULL);
    assert_true(h->loss[h->epochs - 1] < 0.1);
    expect_learned(m, x, y);
    report("nb_fit", calls * per_call, m0, m1, secs, true);
    nb_model_free(m);
    nb_free(x);
    nb_free(y);
    assert_int_equal(nb_live_tensors(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_hand_loop, cleanup),
        cmocka_unit_test_teardown(test_fit_calls, cleanup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
