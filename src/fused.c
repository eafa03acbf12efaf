/* Fused elementwise functions (fuse.h): running a traced program
 * (src/fused_trace.c makes it).
 *
 * Running: the flat index range is cut into blocks of NB_FUSED_BLOCK
 * elements; for each block every instruction's own kernel runs on views of
 * the block (1-d, packed; scalars as 0-d views), intermediates in scratch
 * buffers reused by liveness, so a chain touches its inputs and outputs
 * once. Outputs that copy an input go out first; a computed output is
 * written straight into its tensor where no later op reads what it
 * overwrites, else copied out at the end; each is checked for NaN and
 * infinity while it is in L1. Large calls split the blocks among OpenMP
 * threads (each with its own scratch).
 *
 * Backward: a node per output whose rule replays the program with ops on
 * its real inputs and runs each instruction's rule in reverse: the parts'
 * own rules, so a fused function differentiates (also twice) like f. */
#include "fused_internal.h"

#include <stdlib.h>

#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__SSE2__)
#include <xmmintrin.h>
#endif

/* ---- running ---- */

/* Whether v[0..n) holds a NaN or an infinity: the exponent bits, in one
 * vectorised pass. */
NB_KERNEL_TARGETS static bool nonfinite_f32(const float *v, int64_t n)
{
    const uint32_t *u = (const uint32_t *)(const void *)v;
    uint32_t bad = 0;
    for (int64_t i = 0; i < n; i++)
        bad |= (u[i] & 0x7f800000u) == 0x7f800000u;
    return bad != 0;
}

NB_KERNEL_TARGETS static bool nonfinite_f64(const double *v, int64_t n)
{
    const uint64_t *u = (const uint64_t *)(const void *)v;
    uint64_t bad = 0;
    for (int64_t i = 0; i < n; i++)
        bad |= (u[i] & 0x7ff0000000000000ull) == 0x7ff0000000000000ull;
    return bad != 0;
}

typedef struct {
    const program *p;
    nb_dtype dtype;
    size_t es;
    int64_t numel;
    int n_out;
    bool stream;      /* outputs beyond the caches: stored without reading them first */
    bool stage;       /* an output is written over an input: outputs that are inputs
                         are read into scratch before any is written */
    unsigned inplace; /* bit k: out[k] is written over an input */
    unsigned early;   /* bit k: out[k] copies an input to memory apart from the inputs:
                         done before the block's ops (and so fetches the block) */
    int *direct;      /* per slot: the output its op writes straight into, or -1 */
    char **in;        /* per slot: full inputs' data */
    char *scal;       /* per slot: scalars' values (8 bytes each) */
    char **out;       /* per output: its data */
} job;

/* Where slot s of block `off` is read from or written to. */
static char *where_(const job *j, char *scratch, int s, int64_t off)
{
    const program *p = j->p;
    if (p->kind[s] != FULL)
        return j->scal + 8 * (size_t)s;
    if (j->in[s])
        return j->in[s] + (size_t)off * j->es;
    if (j->direct[s] >= 0)
        return j->out[j->direct[s]] + (size_t)off * j->es;
    return scratch + (size_t)p->buf[s] * NB_FUSED_BLOCK * j->es;
}

static void set_view(nb_view *v, const job *j, int s, char *data, int64_t len)
{
    v->data = data;
    v->dtype = j->dtype;
    if (j->p->kind[s] != FULL) {
        v->ndim = 0;
        v->numel = 1;
    } else {
        v->ndim = 1;
        v->numel = len;
        v->shape[0] = len;
        v->strides[0] = 1;
    }
}

/* bytes from src to dst, 64-byte aligned, with streaming stores: a store
 * that misses the caches then does not first read the line it fills. */
NB_KERNEL_TARGETS static void stream_copy(char *dst, const char *src, size_t bytes)
{
    size_t i = 0;
#if defined(__SSE2__)
    for (; i + 64 <= bytes; i += 64)
        for (int q = 0; q < 64; q += 16)
            _mm_stream_ps((float *)(void *)(dst + i + q),
                          _mm_load_ps((const float *)(const void *)(src + i + q)));
#endif
    memcpy(dst + i, src + i, bytes - i);
}

/* out[k]'s block from src: streamed where that pays (see job). */
static void store(const job *j, int k, char *dst, const char *src, size_t bytes, bool copy)
{
    bool stream = !(j->inplace >> k & 1u) && (j->stream || copy);
    if (stream && ((uintptr_t)dst & 63) == 0)
        stream_copy(dst, src, bytes);
    else
        memcpy(dst, src, bytes);
}

/* Blocks [b0, b1): the early copies, every full instruction (outputs
 * written straight into their tensors where that is safe), the other
 * outputs, then the check of the computed ones. The mask of outputs
 * holding a NaN or an inf. */
static unsigned run_blocks(const job *j, int64_t b0, int64_t b1, char *scratch)
{
    const program *p = j->p;
    unsigned bad = 0;
    if (p->compiled) {
        /* One loop over the blocks at once. Beyond the caches, the outputs
         * not written over an input go out with streaming stores (a plain
         * store that misses first reads the line it fills); an output
         * written over an input was just read, its lines are in cache. */
        int64_t off = b0 * NB_FUSED_BLOCK, end = b1 * NB_FUSED_BLOCK;
        end = end < j->numel ? end : j->numel;
        char *in[NB_FUSED_MAX] = {0}, *out[NB_FUSED_MAX] = {0};
        unsigned nt = 0;
        for (int s = 0; s < p->n_in; s++)
            in[s] = j->in[s] ? j->in[s] + (size_t)off * j->es : NULL;
        for (int k = 0; k < j->n_out; k++) {
            out[k] = j->out[k] + (size_t)off * j->es;
            if (j->stream && !(j->inplace >> k & 1u) && ((uintptr_t)out[k] & 63) == 0)
                nt |= 1u << k;
        }
        bad = p->compiled(in, out, j->scal, p->attrs, end - off, nt);
#if defined(__SSE2__)
        if (nt)
            _mm_sfence();
#endif
        return bad;
    }
    for (int64_t b = b0; b < b1; b++) {
        int64_t off = b * NB_FUSED_BLOCK;
        int64_t len = j->numel - off < NB_FUSED_BLOCK ? j->numel - off : NB_FUSED_BLOCK;
        size_t bytes = (size_t)len * j->es;
        /* The next block of every input, asked for at once: each kernel
         * reads one stream, and alone would wait for memory one stream at
         * a time. */
        if (j->stream && b + 1 < b1)
            for (int s = 0; s < p->nslots; s++)
                if (j->in[s]) {
                    const char *q = j->in[s] + (size_t)(off + NB_FUSED_BLOCK) * j->es;
                    for (size_t e = 0; e < NB_FUSED_BLOCK * j->es; e += 64)
                        __builtin_prefetch(q + e);
                }
        for (int k = 0; k < j->n_out; k++)
            if (j->early >> k & 1u)
                store(j, k, j->out[k] + (size_t)off * j->es,
                      where_(j, scratch, p->outs[k], off), bytes, true);
        for (int i = 0; i < p->ninstr; i++) {
            const instr *in = &p->ins[i];
            if (p->kind[in->out] == SCALAR)
                continue;
            nb_view y, x[NB_MAX_INPUTS];
            set_view(&y, j, in->out, where_(j, scratch, in->out, off), len);
            for (int k = 0; k < in->n; k++)
                set_view(&x[k], j, in->in[k], where_(j, scratch, in->in[k], off), len);
            in->op->forward[j->dtype](&y, x, in->n, in->attr);
        }
        /* Copies written over an input read their inputs into scratch
         * first, so that none reads what another wrote. */
        const char *from[NB_FUSED_MAX];
        for (int k = 0; k < j->n_out; k++) {
            int s = p->outs[k];
            from[k] = where_(j, scratch, s, off);
            if (j->stage && p->kind[s] == FULL && p->buf[s] < 0 && !(j->early >> k & 1u)) {
                char *st = scratch + (size_t)(p->nbuf + k) * NB_FUSED_BLOCK * j->es;
                memcpy(st, from[k], bytes);
                from[k] = st;
            }
        }
        for (int k = 0; k < j->n_out; k++) {
            int s = p->outs[k];
            if (j->early >> k & 1u)
                continue;
            bool copy = p->kind[s] == FULL && p->buf[s] < 0;
            char *dst = j->out[k] + (size_t)off * j->es;
            const char *src = from[k];
            if (p->kind[s] != FULL) {
                for (int64_t e = 0; e < len; e++)
                    memcpy(dst + (size_t)e * j->es, src, j->es);
                src = dst;
            }
            if (!copy && (j->dtype == NB_F64
                              ? nonfinite_f64((const double *)(const void *)src, len)
                              : nonfinite_f32((const float *)(const void *)src, len)))
                bad |= 1u << k;
            if (src != dst)
                store(j, k, dst, src, bytes, copy);
        }
    }
#if defined(__SSE2__)
    _mm_sfence(); /* streamed stores are seen by the other threads */
#endif
    return bad;
}

/* The scalar instructions, once, in order. */
static void run_scalars(const job *j)
{
    const program *p = j->p;
    for (int i = 0; i < p->ninstr; i++) {
        const instr *in = &p->ins[i];
        if (p->kind[in->out] != SCALAR)
            continue;
        nb_view y, x[NB_MAX_INPUTS];
        set_view(&y, j, in->out, j->scal + 8 * (size_t)in->out, 1);
        for (int k = 0; k < in->n; k++)
            set_view(&x[k], j, in->in[k], j->scal + 8 * (size_t)in->in[k], 1);
        in->op->forward[j->dtype](&y, x, in->n, in->attr);
    }
}

static int threads_for(int64_t numel)
{
#ifdef _OPENMP
    if (numel >= NB_FUSED_PARALLEL && !omp_in_parallel()) {
        int t = nb_num_threads();
        int64_t most = numel / (NB_FUSED_PARALLEL / 2);
        return t < most ? t : (int)most;
    }
#endif
    (void)numel;
    return 1;
}

static unsigned run(const job *j, char *scratch, size_t per_thread, int nt)
{
    int64_t nblocks = (j->numel + NB_FUSED_BLOCK - 1) / NB_FUSED_BLOCK;
    if (nt <= 1)
        return run_blocks(j, 0, nblocks, scratch);
    unsigned bad = 0;
#ifdef _OPENMP
#if defined(__SSE2__)
    unsigned csr = _mm_getcsr(); /* subnormal flushing follows the caller */
#endif
    NB__TSAN_RELEASE((void *)j);
#pragma omp parallel num_threads(nt) reduction(| : bad)
    {
        NB__TSAN_ACQUIRE((void *)j);
#if defined(__SSE2__)
        _mm_setcsr(csr);
#endif
        int t = omp_get_thread_num(), n = omp_get_num_threads();
        int64_t b0 = nblocks * t / n, b1 = nblocks * (t + 1) / n;
        bad |= run_blocks(j, b0, b1, scratch + (size_t)t * per_thread);
        NB__TSAN_RELEASE((char *)j + 1);
    }
    NB__TSAN_ACQUIRE((char *)j + 1);
#else
    (void)per_thread;
#endif
    return bad;
}

/* ---- the op of a recorded output ---- */

static void fused_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y, nb_tensor *const x[],
                           int n, const void *attr);

nb_fused *nb_fused_new(const char *name, int n_in, int n_out, nb_fused_fn f, void *ctx)
{
    if (!name || !*name || !f) {
        nb__error("nb_fused_new: %s", !f ? "f is NULL" : !name ? "name is NULL" : "name is empty");
        return NULL;
    }
    if (n_in < 1 || n_in > NB_FUSED_MAX || n_out < 1 || n_out > NB_FUSED_MAX) {
        nb__error("nb_fused_new: '%s' takes %d inputs and %d outputs; each must be 1 to %d", name,
                  n_in, n_out, NB_FUSED_MAX);
        return NULL;
    }
    nb_fused *fn = nb__alloc(sizeof *fn);
    char *nm = nb__alloc(strlen(name) + 1);
    if (!fn || !nm) {
        nb__free(fn);
        nb__free(nm);
        nb__memory_error("nb_fused_new: out of memory for '%s'", name);
        return NULL;
    }
    memset(fn, 0, sizeof *fn);
    strcpy(nm, name);
    fn->name = nm;
    fn->n_in = n_in;
    fn->n_out = n_out;
    fn->f = f;
    fn->ctx = ctx;
    pthread_mutex_init(&fn->lock, NULL);
    for (int k = 0; k < n_out; k++) {
        if (n_out == 1)
            snprintf(fn->names[k], sizeof fn->names[k], "%s", name);
        else
            snprintf(fn->names[k], sizeof fn->names[k], "%s[%d]", name, k);
        fn->ops[k] = (nb_op){.name = fn->names[k], .arity = n_in, .shape = nb_shape_broadcast,
                             .attr_size = sizeof(fused_attr), .backward = fused_backward,
                             .broadcast = true, .saves = (1u << n_in) - 1u};
    }
    return fn;
}

void nb_fused_free(nb_fused *fn)
{
    if (!fn)
        return;
    while (fn->programs) {
        program *p = fn->programs;
        fn->programs = p->next;
        nb__program_free(p);
    }
    pthread_mutex_destroy(&fn->lock);
    nb__free(fn->name);
    nb__free(fn);
}

static int check_inputs(const nb_fused *fn, nb_tensor *const in[], int *ndim, int64_t *shape)
{
    char what[32], b[NB_SHAPE_STR_LEN], c[NB_SHAPE_STR_LEN];
    *ndim = 0;
    for (int i = 0; i < fn->n_in; i++) {
        if (!nb__live(in[i])) {
            snprintf(what, sizeof what, "input %d", i + 1);
            return nb__usable("nb_fused_apply", what, in[i]);
        }
        if (!nb__dtype_ok(in[i]->dtype) || in[i]->dtype != in[0]->dtype)
            return nb__dtype_error("nb_fused_apply: '%s': input %d is %s, input 1 %s (one "
                                   "dtype, f32 or f64)", fn->name, i + 1,
                                   nb_dtype_name(in[i]->dtype), nb_dtype_name(in[0]->dtype));
        int64_t out[NB_MAX_DIMS];
        int nd = nb__broadcast_shape(*ndim, shape, in[i]->ndim, in[i]->shape, out);
        if (nd < 0)
            return nb__shape_error("nb_fused_apply: '%s': input %d %s does not broadcast with "
                                   "%s", fn->name, i + 1, nb_shape_str(in[i], b),
                                   nb_dims_str(*ndim, shape, c));
        *ndim = nd;
        memcpy(shape, out, sizeof out);
    }
    int64_t numel = nb__numel(*ndim, shape);
    for (int i = 0; i < fn->n_in; i++)
        if (in[i]->numel != numel && in[i]->numel != 1)
            return nb__shape_error("nb_fused_apply: '%s': input %d is %s; each input has the "
                                   "result's shape %s or one element", fn->name, i + 1,
                                   nb_shape_str(in[i], b), nb_dims_str(*ndim, shape, c));
    return 0;
}

/* A given output: a tensor of the result's dtype and shape, packed, and
 * either apart from every full input or exactly one of them (the results
 * of a block are copied out after the block's inputs were read). */
static int check_out(const nb_fused *fn, int k, nb_tensor *o, nb_tensor *const in[],
                     nb_dtype dtype, int ndim, const int64_t *shape, bool grad, unsigned *inplace,
                     unsigned *over)
{
    char what[32], b[NB_SHAPE_STR_LEN], c[NB_SHAPE_STR_LEN];
    if (!nb__live(o)) { /* the message is made only when needed */
        snprintf(what, sizeof what, "out[%d]", k);
        return nb__usable("nb_fused_apply", what, o);
    }
    if (o->dtype != dtype || o->ndim != ndim || memcmp(o->shape, shape, (size_t)ndim * 8) ||
        !o->contiguous)
        return nb__error_code(o->dtype != dtype ? NB_ERR_DTYPE : NB_ERR_SHAPE,
                              "nb_fused_apply: '%s': out[%d] is %s %s%s; the result is %s %s",
                              fn->name, k, nb_dtype_name(o->dtype), nb_shape_str(o, b),
                              o->contiguous ? "" : " (not packed)", nb_dtype_name(dtype),
                              nb_dims_str(ndim, shape, c));
    if (grad)
        return nb__state_error("nb_fused_apply: '%s': out[%d] is given while an input requires "
                               "grad: results written into given tensors are not recorded "
                               "(pass NULL, or turn gradients off)", fn->name, k);
    if (o->requires_grad && nb_is_grad_enabled())
        return nb__state_error("nb_fused_apply: '%s': out[%d] requires grad; writing into it "
                               "while gradients are recorded is refused (turn them off with "
                               "nb_set_grad_enabled(false))", fn->name, k);
    for (int i = 0; i < fn->n_in; i++) {
        if (in[i]->storage != o->storage || in[i]->numel == 1)
            continue;
        if (in[i]->offset != o->offset)
            return nb__error("nb_fused_apply: '%s': out[%d] overlaps input %d at another "
                             "offset (an output is written over an input only exactly)",
                             fn->name, k, i + 1);
        *inplace |= 1u << k;
        *over |= 1u << i;
    }
    return 0;
}

static int apply(nb_fused *fn, nb_tensor *const in_[], nb_tensor *out[])
{
    nb_thread *th = nb__thread();
    nb_graph *g = th->graph;
    if (!g)
        return nb__state_error("nb_fused_apply: no current graph (create one with nb_graph_new)");
    int ndim;
    int64_t shape[NB_MAX_DIMS];
    if (check_inputs(fn, in_, &ndim, shape))
        return -1;
    int64_t numel = nb__numel(ndim, shape);
    nb_dtype dtype = in_[0]->dtype;
    unsigned given = 0;
    for (int k = 0; k < fn->n_out; k++)
        given |= out[k] ? 1u << k : 0;
    /* With one element in all, every input is full (blocks of one). */
    nb_tensor *in[NB_FUSED_MAX];
    unsigned scalars = 0;
    bool grad = false;
    for (int i = 0; i < fn->n_in; i++) {
        in[i] = in_[i];
        if (in[i]->numel == 1 && numel != 1)
            scalars |= 1u << i;
        else if (!in[i]->contiguous && !(in[i] = nb_contiguous(in[i])))
            return -1;
        grad |= in[i]->requires_grad && !th->grad_disabled;
    }
    const program *p = nb__program_for(fn, dtype, scalars);
    if (!p)
        return -1;
    unsigned inplace = 0, over[NB_FUSED_MAX] = {0}; /* over[k]: the inputs out[k] is */
    for (int k = 0; k < fn->n_out; k++) {
        if (out[k]) {
            if (check_out(fn, k, out[k], in, dtype, ndim, shape, grad, &inplace, &over[k]))
                return -1;
        } else if (!(out[k] = nb__new_graph_tensor(g, dtype, ndim, shape, true))) {
            return -1;
        }
    }
    /* Copies of inputs: before the ops when written apart from the
     * inputs; after them, read into scratch first, when one goes over an
     * input. A computed output is written straight by its op, unless it
     * goes over an input that a later op (or copy) still reads. */
    bool stage = false;
    unsigned early = 0;
    int *direct = nb__arena_alloc(g, (size_t)p->nslots * sizeof *direct);
    if (!direct)
        return -1;
    for (int s = 0; s < p->nslots; s++)
        direct[s] = -1;
    unsigned late_read = 0; /* inputs read by copies after the ops */
    for (int k = 0; k < fn->n_out; k++) {
        int s = p->outs[k];
        if (p->kind[s] != FULL || p->buf[s] >= 0)
            continue;
        if (over[k]) {
            stage = true;
            late_read |= 1u << s;
        } else {
            early |= 1u << k;
        }
    }
    for (int k = 0; k < fn->n_out; k++) {
        int s = p->outs[k], at = -1;
        if (p->kind[s] != FULL || p->buf[s] < 0 || direct[s] >= 0)
            continue;
        for (int i = 0; i < p->ninstr && at < 0; i++)
            if (p->ins[i].out == s)
                at = i;
        bool ok = !(over[k] & late_read);
        for (int i = at; ok && i < p->ninstr; i++)
            for (int q = 0; q < p->ins[i].n; q++)
                ok &= !(p->ins[i].in[q] < fn->n_in && (over[k] >> p->ins[i].in[q] & 1u));
        for (int q = 0; ok && q < k; q++) /* nor another output's tensor */
            ok = out[q] != out[k];
        if (ok)
            direct[s] = k;
    }
    size_t es = nb__dtype_size(dtype);
    char **base = nb__arena_alloc(g, (size_t)p->nslots * sizeof *base + (size_t)fn->n_out *
                                                                            sizeof(char *));
    char *scal = nb__arena_alloc(g, 8 * (size_t)p->nslots);
    if (!base || !scal)
        return -1;
    char **outp = base + p->nslots;
    memset(base, 0, (size_t)p->nslots * sizeof *base);
    for (int s = 0; s < p->nslots; s++) {
        if (s < fn->n_in) {
            if (p->kind[s] == FULL)
                base[s] = nb__ptr(in[s]);
            else
                memcpy(scal + 8 * (size_t)s, nb__ptr(in[s]), es);
        } else if (p->kind[s] == CONST) {
            if (dtype == NB_F64)
                *(double *)(void *)(scal + 8 * (size_t)s) = p->value[s];
            else
                *(float *)(void *)(scal + 8 * (size_t)s) = (float)p->value[s];
        }
    }
    for (int k = 0; k < fn->n_out; k++)
        outp[k] = nb__ptr(out[k]);
    job j = {.p = p, .dtype = dtype, .es = es, .numel = numel, .n_out = fn->n_out,
             .stream = (size_t)numel * es >= NB_FUSED_STREAM, .stage = stage,
             .inplace = inplace, .early = early, .direct = direct, .in = base,
             .scal = scal, .out = outp};
    run_scalars(&j);
    int nt = threads_for(numel);
    size_t bufs = p->compiled ? 0 : (size_t)p->nbuf + (stage ? (size_t)fn->n_out : 0);
    size_t per_thread = ((bufs ? bufs : 1) * NB_FUSED_BLOCK * es + 63) & ~(size_t)63;
    char *scratch = nb__arena_alloc(g, per_thread * (size_t)nt);
    if (!scratch)
        return -1;
    unsigned bad = numel ? run(&j, scratch, per_thread, nt) : 0;
    for (int k = 0; k < fn->n_out; k++)
        if (given >> k & 1u)
            nb__bump(out[k]);
    if (grad) {
        for (int k = 0; k < fn->n_out; k++)
            if (nb__record(g, &fn->ops[k], out[k], in, fn->n_in, &(fused_attr){p, k}))
                return -1;
    }
    if (th->anomaly)
        for (int k = 0; k < fn->n_out; k++)
            if (nb__anomaly_forward(&fn->ops[k], g, out[k], in, fn->n_in))
                return -1;
    return (int)bad;
}

int nb_fused_apply(nb_fused *fn, nb_tensor *const in[], nb_tensor *out[])
{
    if (!fn || !in || !out)
        return nb__error("nb_fused_apply: %s is NULL", !fn ? "fn" : !in ? "in" : "out");
    for (int i = 0; i < fn->n_in; i++)
        if (!in[i])
            return nb__has_error() ? -1
                                   : nb__error("nb_fused_apply: '%s': input %d is NULL",
                                               fn->name, i + 1);
    nb_tensor *given[NB_FUSED_MAX];
    memcpy(given, out, (size_t)fn->n_out * sizeof *given);
    int rc = apply(fn, in, out);
    if (rc < 0)
        memcpy(out, given, (size_t)fn->n_out * sizeof *given);
    return rc;
}

/* ---- backward: the parts' rules ---- */

static void fused_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y, nb_tensor *const x[],
                           int n, const void *attr)
{
    (void)y;
    const fused_attr *a = attr;
    const program *p = a->p;
    nb_graph *g = nb__graph();
    int ns = p->nslots;
    nb_tensor **val = nb__arena_alloc(g, 2 * (size_t)ns * sizeof *val);
    bool *active = nb__arena_alloc(g, (size_t)ns);
    if (!val || !active)
        return;
    nb_tensor **grad = val + ns;
    memset(val, 0, 2 * (size_t)ns * sizeof *val);
    memset(active, 0, (size_t)ns);
    for (int s = 0; s < ns; s++) {
        if (s < n) {
            val[s] = x[s];
            active[s] = x[s]->requires_grad;
        } else if (p->kind[s] == CONST && !(val[s] = nb_scalar_like(x[0], p->value[s]))) {
            return;
        }
    }
    /* The forward again, with ops: intermediates that depend on an input
     * requiring grad are marked so, for the rules that look. */
    for (int i = 0; i < p->ninstr; i++) {
        const instr *in = &p->ins[i];
        nb_tensor *xs[NB_MAX_INPUTS];
        bool act = false;
        for (int k = 0; k < in->n; k++) {
            xs[k] = val[in->in[k]];
            act |= active[in->in[k]] && !(in->op->nondiff & NB_INPUT(k));
        }
        nb_tensor *r = nb_apply(in->op, xs, in->n, in->attr);
        if (!r)
            return;
        if (act && !in->op->no_gradient)
            r->requires_grad = true;
        val[in->out] = r;
        active[in->out] = act && !in->op->no_gradient;
    }
    grad[p->outs[a->k]] = dy;
    for (int i = p->ninstr - 1; i >= 0; i--) {
        const instr *in = &p->ins[i];
        nb_tensor *gy = grad[in->out];
        if (!gy || !active[in->out])
            continue;
        nb_tensor *xs[NB_MAX_INPUTS], *d[NB_MAX_INPUTS] = {0};
        for (int k = 0; k < in->n; k++)
            xs[k] = val[in->in[k]];
        in->op->backward(d, gy, val[in->out], xs, in->n, in->attr);
        for (int k = 0; k < in->n; k++) {
            int s = in->in[k];
            if (!active[s] || (in->op->nondiff & NB_INPUT(k)))
                continue;
            nb_tensor *gk = d[k];
            if (!gk) {
                if (!nb__has_error())
                    nb__error("backward of %s%s gave no gradient for input %d",
                              nb__op_prefix(in->op), in->op->name, k + 1);
                return;
            }
            if (!nb__same_shape(gk, xs[k]) && !(gk = nb_sum_to(gk, xs[k]->ndim, xs[k]->shape)))
                return;
            if (!(grad[s] = grad[s] ? nb_add(grad[s], gk) : gk))
                return;
        }
    }
    for (int i = 0; i < n; i++)
        if (x[i]->requires_grad)
            dx[i] = grad[i] ? grad[i] : nb_zeros_like(x[i]);
}
