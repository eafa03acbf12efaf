/* The counted bad-argument test (test_bad_args.c: factories, inspection,
 * ops; test_bad_args_api.c: nb_apply, autograd, memory and threads, pictures, files, fused functions,
 * models, checks, no graph; test_bad_args_data.c: the PyTorch layout,
 * nb_batches, the initialisers; test_bad_args_pictures.c: training curves, the
 * layers, DOT text; test_bad_args_eval.c: nb_dist_* on one rank, nb_evaluate's
 * and nb_predict's options), its case runner and fixtures. Every public function, called with each class of bad argument that
 * applies: NULL (and NULL after a first error, which must be kept), bad
 * shapes and overflowing sizes, wrong dtypes, out-of-range axes, indices and
 * labels, and the wrong state (no current graph, a tensor of a reset graph,
 * a tensor freed while a graph uses it, fit before compile, ...). A case
 * passes when the call
 *   - returns the documented failure value (NULL, -1, NAN, false, 0),
 *   - leaves a message starting with the public function called
 *     ("nb_reshape: ...") and the documented code (nb_last_error_code),
 *   - keeps no partial result (nb_live_tensors unchanged) and prints nothing
 *     (stdout and stderr are redirected to a file that must stay empty),
 * and it must not crash or abort (cmocka fails the test on a signal); leaks
 * show in the ASan and valgrind runs. The last test of each program prints
 *   "# bad arguments (<part>): N cases tried, N gave the documented error".
 *
 * Deliberately not called with bad arguments (nothing to get wrong, or no
 * error channel by design):
 *   nb_last_error, nb_last_error_code, nb_clear_error, nb_rng_new,
 *   nb_set_grad_enabled, nb_is_grad_enabled, nb_set_flush_subnormals,
 *   nb_flush_subnormals, nb_num_threads, nb_gemm_backend, nb_graph_current,
 *   nb_scope_pop, nb_live_tensors,
 *   nb_builtin_ops, nb_dot_can_render, nb_plot_can_render (no arguments,
 *   or any value is valid);
 *   nb_error_code_name, nb_dtype_name, nb_dtype_size, nb_check_layout_name,
 *   nb_check_verdict_name, nb_check_pattern_name, nb_mutation_name,
 *   nb_contract_name, nb_shape_str, nb_dims_str, nb_op_find (documented
 *   fallbacks: "?", 0, "(null)", NULL for an unknown name; checked in the
 *   last test, not counted); nb_error_scope_begin/end, nb_mem_free,
 *   nb_dot_free, nb_check_report_free, nb_optimizer_free, nb_batches_free (NULL is a no-op
 *   like free(NULL)); nb_check_report_print (a NULL file is a no-op, a
 *   NULL report prints "(no report)"); nb_batch_rows, nb_iter_init, nb_iter_next,
 *   nb_reduce_init, nb_view_contiguous and the NB_MAP / NB_REDUCE macros
 *   (kernel helpers over views the engine made: no error channel, and a
 *   check would cost in inner loops); nb_dot_render's Graphviz failures
 *   (need a broken Graphviz). nb_graph_reset/free/nodes/bytes/generation and
 *   nb_free, nb_zero_grad, nb_bump_version take NULL as a no-op (documented)
 *   and are called here with freed or stale handles instead. */
#ifndef NABLA_BAD_ARGS_H
#define NABLA_BAD_ARGS_H
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "testing.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

enum {
    INV = NB_ERR_INVALID,
    SHP = NB_ERR_SHAPE,
    DTY = NB_ERR_DTYPE,
    MEM = NB_ERR_MEMORY,
    IOE = NB_ERR_IO,
    FMT = NB_ERR_FORMAT,
    STA = NB_ERR_STATE,
};

/* ---- the case runner ---- */

static int tried, passed, section_failed;
static int64_t live0;
static FILE *capture;
static int saved_out, saved_err;

/* The message of a pending error that a NULL argument must keep. */
static const char *const PENDING = "pending: the first error";

static void begin(void)
{
    nb_clear_error();
    live0 = nb_live_tensors();
    fflush(NULL);
    saved_out = dup(1);
    saved_err = dup(2);
    dup2(fileno(capture), 1);
    dup2(fileno(capture), 2);
}

/* Restores stdout and stderr; what was written to them meanwhile, into out. */
static long restore(char *out, size_t cap)
{
    fflush(NULL);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(saved_out);
    close(saved_err);
    int fd = fileno(capture);
    long n = (long)lseek(fd, 0, SEEK_END);
    out[0] = '\0';
    if (n > 0) {
        lseek(fd, 0, SEEK_SET);
        ssize_t k = read(fd, out, cap - 1);
        out[k > 0 ? k : 0] = '\0';
        if (ftruncate(fd, 0) != 0)
            n = -n;
        lseek(fd, 0, SEEK_SET);
    }
    return n;
}

static void end(const char *fn, int code, bool failed_as_documented, const char *what, int line)
{
    char printed[256];
    long n = restore(printed, sizeof printed);
    const char *m = nb_last_error();
    size_t k = strlen(fn);
    bool keep = fn == PENDING;
    char why[512] = "";
    if (!failed_as_documented)
        snprintf(why, sizeof why, "did not return the failure value");
    else if (!m)
        snprintf(why, sizeof why, "no error message");
    else if (keep ? strcmp(m, PENDING) != 0 : strncmp(m, fn, k) != 0 || m[k] != ':')
        snprintf(why, sizeof why, "the message does not %s \"%s\"",
                 keep ? "keep the first error" : "start with", fn);
    else if ((int)nb_last_error_code() != code)
        snprintf(why, sizeof why, "code %s, not %s", nb_error_code_name(nb_last_error_code()),
                 nb_error_code_name((nb_error_code)code));
    else if (nb_live_tensors() != live0)
        snprintf(why, sizeof why, "%lld live tensors, %lld before (a partial result kept)",
                 (long long)nb_live_tensors(), (long long)live0);
    else if (n != 0)
        snprintf(why, sizeof why, "printed %ld bytes: %s", n, printed);
    tried++;
    if (!why[0]) {
        passed++;
        return;
    }
    section_failed++;
    print_error("line %d: %s [%s]: %s (message: %s)\n", line, what, keep ? "keep" : fn, why,
                m ? m : "none");
}

/* CASE("nb_add", SHP, nb_add(a, b) == NULL): the call, compared with its
 * failure value; the function its message must name; the code. */
#define CASE(fn, code, test)                                                   \
    do {                                                                       \
        begin();                                                               \
        bool ok_ = (test);                                                     \
        end((fn), (code), ok_, #test, __LINE__);                               \
    } while (0)
/* With an error pending, a NULL argument fails and keeps that error. */
#define KEEP(test)                                                             \
    do {                                                                       \
        begin();                                                               \
        nb_set_error_code(NB_ERR_IO, "%s", PENDING);                           \
        bool ok_ = (test);                                                     \
        end(PENDING, NB_ERR_IO, ok_, #test, __LINE__);                         \
    } while (0)

/* Each area is one cmocka test, failing when any of its cases did; it
 * prints how many it tried. */
static int section_start;
#define SECTION_BEGIN() (section_failed = 0, section_start = tried)
#define SECTION_END()                                                          \
    do {                                                                       \
        printf("# %s: %d cases\n", __func__ + 5, tried - section_start);      \
        assert_int_equal(section_failed, 0);                                   \
    } while (0)

/* ---- fixtures ---- */

static nb_graph *outer, *g;
static nb_tensor *f23, *d23, *f4, *f32_, *s0, *f13, *e03, *lab, *frac, *lab64, *idx2d, *p23;
static nb_tensor *stale, *stale_view, *zombie, *zombie_view, *bcast;
static nb_tensor *f8d; /* 8 dimensions */
static nb_tensor *idx01, *lab01; /* valid indices, valid labels of 3 classes */

static int setup(void **state)
{
    (void)state;
    capture = tmpfile();
    if (!capture)
        return -1;
    f23 = nb_ones(NB_F32, NB_SHAPE(2, 3));
    d23 = nb_ones(NB_F64, NB_SHAPE(2, 3));
    f4 = nb_ones(NB_F32, NB_SHAPE(4));
    f32_ = nb_ones(NB_F32, NB_SHAPE(3, 2));
    s0 = nb_scalar(NB_F32, 1);
    f13 = nb_ones(NB_F32, NB_SHAPE(1, 3));
    e03 = nb_zeros(NB_F32, NB_SHAPE(0, 3));
    lab = nb_from_array(NB_F32, NB_SHAPE(2), (float[]){0, 5});
    frac = nb_from_array(NB_F32, NB_SHAPE(2), (float[]){0, 0.5f});
    lab64 = nb_from_array(NB_F64, NB_SHAPE(2), (double[]){0, 1});
    idx2d = nb_zeros(NB_F32, NB_SHAPE(1, 2));
    p23 = nb_param(nb_ones(NB_F32, NB_SHAPE(2, 3)));
    f8d = nb_zeros(NB_F32, NB_SHAPE(1, 1, 1, 1, 1, 1, 1, 1));
    idx01 = nb_from_array(NB_F32, NB_SHAPE(2), (float[]){0, 1});
    lab01 = nb_from_array(NB_F32, NB_SHAPE(2), (float[]){0, 2});
    /* A tensor of a reset generation, and a live view (in g) of a tensor of
     * a graph reset since (outer). */
    outer = nb_graph_new();
    stale = nb_add(f23, f23);
    nb_tensor *base = nb_add(f23, f23);
    g = nb_graph_new();
    stale_view = nb_slice(base, 0, 0, 1, 1);
    nb_graph_reset(outer);
    /* A heap leaf freed while g's node still holds it, and a view of a heap
     * tensor freed since. */
    zombie = nb_param(nb_ones(NB_F32, NB_SHAPE(2, 3)));
    if (!nb_mul(zombie, zombie))
        return -1;
    nb_free(zombie);
    nb_tensor *h = nb_ones(NB_F32, NB_SHAPE(2, 3));
    zombie_view = nb_slice(h, 0, 0, 2, 1);
    nb_free(h);
    bcast = nb_broadcast_to(f4, NB_SHAPE(3, 4));
    nb_clear_error();
    return stale && stale_view && zombie_view && bcast && f8d && p23 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    while (nb_graph_current())
        nb_graph_free(nb_graph_current());
    nb_graph_free(outer);
    nb_tensor *all[] = {f23,   d23,   f4,  f32_, s0,  f13,   e03,
                        lab,   frac,  lab64, idx2d, p23, f8d, idx01, lab01};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        nb_free(all[i]);
    fclose(capture);
    nb_set_allocator(NULL);
    nb_clear_error();
    return 0;
}

/* ---- shapes that cannot be ---- */

typedef struct {
    int ndim;
    const int64_t *dims;
    int code;
} bad_shape;

#define BIG ((int64_t)1 << 40)
static const bad_shape bad_shapes[] = {
    {-1, (const int64_t[]){2}, SHP},
    {9, (const int64_t[]){1, 1, 1, 1, 1, 1, 1, 1, 1}, SHP},
    {INT_MAX, (const int64_t[]){1}, SHP},
    {2, NULL, INV},
    {2, (const int64_t[]){2, -3}, SHP},
    {1, (const int64_t[]){INT64_MIN}, SHP},
    {2, (const int64_t[]){BIG, BIG}, SHP},                   /* 2^80 */
    {2, (const int64_t[]){9, 6148914691236517206}, SHP},     /* wraps to 6 */
    {3, (const int64_t[]){0, BIG, BIG}, SHP},                /* empty, but too many */
    {1, (const int64_t[]){INT64_MAX}, SHP},
    {1, (const int64_t[]){NB_MAX_NUMEL + 1}, SHP},
};
#define NBAD (int)(sizeof bad_shapes / sizeof bad_shapes[0])
static const nb_dtype bad_dtypes[] = {(nb_dtype)0, (nb_dtype)4, (nb_dtype)-1};

/* The tensors of the wrong state: stale (a reset graph's), a view of one, a
 * zombie (freed while a graph uses it), a view of one. */
static nb_tensor *const *bad_tensors(void)
{
    static nb_tensor *t[4];
    t[0] = stale, t[1] = stale_view, t[2] = zombie, t[3] = zombie_view;
    return t;
}

#endif
