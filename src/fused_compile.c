/* Compiled fused programs: a traced program (src/fused_trace.c) written
 * out as one C loop, at build time.
 *
 * The interpreter (src/fused.c) runs each instruction's kernel over a
 * block: every op loads and stores the block once more, and Adam's dozen
 * ops cost several times one pass over the same memory. So the build runs
 * nabla-fusegen (src/fused_gen.c), which traces the built-in optimizers'
 * update functions (src/optim/optimizers.c, still compositions of ops) and
 * writes each program here as a loop whose body is the ops' element
 * expressions, in order; the library links the result and a traced
 * program takes the loop whose key (its ops, wiring and attributes, not
 * its constants' values and attributes, which are read at run time) is
 * its own.
 *
 * The expressions below are the kernels' own (ops/), in the same types,
 * and the build has no FP contraction: a compiled program gives the
 * interpreter's bits (tests/test_fused.c compares them, specials
 * included). An op missing here (the table has the ops the optimizers use)
 * leaves its programs interpreted. */
#include "fused_internal.h"

#include <stdio.h>

#define OPS(X)                                                                  \
    X(add, "$0 + $1", "$0 + $1")                                               \
    X(sub, "$0 - $1", "$0 - $1")                                               \
    X(mul, "$0 * $1", "$0 * $1")                                               \
    X(div, "$0 / $1", "$0 / $1")                                               \
    X(sqrt, "sqrtf($0)", "sqrt($0)")                                           \
    X(clamp, "$0 < $L ? $L : ($0 > $H ? $H : $0)", "$0 < $L ? $L : ($0 > $H ? $H : $0)")

#define DECLARE(name, e32, e64) extern const nb_op nb_op_##name;
OPS(DECLARE)
#undef DECLARE

typedef struct {
    const nb_op *op;
    const char *name, *expr[2]; /* f32, f64 */
} op_expr;

#define ENTRY(name, e32, e64) {&nb_op_##name, #name, {e32, e64}},
static const op_expr EXPRS[] = {OPS(ENTRY)};
#undef ENTRY

static const op_expr *expr_of(const nb_op *op)
{
    for (size_t i = 0; i < sizeof EXPRS / sizeof *EXPRS; i++)
        if (EXPRS[i].op == op)
            return &EXPRS[i];
    return NULL;
}

/* A bounded string builder: the text, or `over` once it ran out of room. */
typedef struct {
    char *s;
    size_t n, cap;
    bool over;
} text;

static void put(text *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t room = t->n < t->cap ? t->cap - t->n : 0;
    int k = vsnprintf(t->s + t->n, room, fmt, ap);
    va_end(ap);
    if (k < 0 || (size_t)k >= room)
        t->over = true;
    else
        t->n += (size_t)k;
}

int nb__program_key(const program *p, char *buf, size_t cap)
{
    if (p->dtype != NB_F32 && p->dtype != NB_F64)
        return -1;
    text t = {buf, 0, cap, false};
    put(&t, "%s", p->dtype == NB_F64 ? "f64" : "f32");
    for (int s = 0; s < p->nslots; s++)
        put(&t, "%c", "FSC"[p->kind[s]]);
    for (int i = 0; i < p->ninstr; i++) {
        const instr *in = &p->ins[i];
        const op_expr *e = expr_of(in->op);
        if (!e)
            return -1;
        put(&t, ";%d=%s(", in->out, e->name);
        for (int k = 0; k < in->n; k++)
            put(&t, k ? ",%d" : "%d", in->in[k]);
        put(&t, ")");
    }
    put(&t, ";out");
    for (int k = 0; k < p->n_out; k++)
        put(&t, ",%d", p->outs[k]);
    return t.over ? -1 : (int)t.n;
}

/* The name slot s has inside the loop: v<s> for full values, s<s> for
 * one-element ones (read once, before it). */
static void slot_name(text *t, const program *p, int s)
{
    put(t, "%c%d", p->kind[s] == FULL ? 'v' : 's', s);
}

/* Expression e of instruction i, its $0..$2 the operands, $L/$H clamp's
 * bounds (read from its attributes before the loop). */
static void expand(text *t, const program *p, int i, const char *e)
{
    for (; *e; e++) {
        if (*e != '$') {
            put(t, "%c", *e);
            continue;
        }
        e++;
        if (*e == 'L' || *e == 'H')
            put(t, "%s%d", *e == 'L' ? "lo" : "hi", i);
        else
            slot_name(t, p, p->ins[i].in[*e - '0']);
    }
}

/* The body for element `ix`: the inputs read, every op's expression, the
 * computed outputs' NaN/inf checks, then the stores (into the line's
 * locals t<k>[e] when `local`). */
static void emit_element(text *t, const program *p, const char *ix, const char *ind, bool local)
{
    bool f64 = p->dtype == NB_F64;
    const char *T = f64 ? "double" : "float", *U = f64 ? "uint64_t" : "uint32_t";
    const char *exp = f64 ? "0x7ff0000000000000u" : "0x7f800000u";
    for (int s = 0; s < p->n_in; s++)
        if (p->kind[s] == FULL)
            put(t, "%sconst %s v%d = x%d[%s];\n", ind, T, s, s, ix);
    for (int i = 0; i < p->ninstr; i++) {
        const instr *in = &p->ins[i];
        if (p->kind[in->out] != FULL)
            continue;
        put(t, "%sconst %s v%d = ", ind, T, in->out);
        expand(t, p, i, expr_of(in->op)->expr[f64]);
        put(t, ";\n");
    }
    for (int k = 0; k < p->n_out; k++) {
        if (p->outs[k] >= p->n_in || p->kind[p->outs[k]] != FULL) {
            put(t, "%s%s u%d;\n%smemcpy(&u%d, &", ind, U, k, ind, k);
            slot_name(t, p, p->outs[k]);
            put(t, ", sizeof u%d);\n%sb%d |= (u%d & %s) == %s;\n", k, ind, k, k, exp, exp);
        }
    }
    for (int k = 0; k < p->n_out; k++) {
        if (local)
            put(t, "%st%d[e] = ", ind, k);
        else
            put(t, "%sy%d[%s] = ", ind, k, ix);
        slot_name(t, p, p->outs[k]);
        put(t, ";\n");
    }
}

/* The loop named fname, with the function attribute attr, storing whole
 * lines with `stream`. */
static void emit_fn(text *t, const program *p, const char *fname, const char *attr,
                    const char *stream)
{
    bool f64 = p->dtype == NB_F64;
    const char *T = f64 ? "double" : "float", *U = f64 ? "uint64_t" : "uint32_t";
    put(t, "%s static unsigned %s(char *const *in, char *const *out, const char *scal, "
           "const void *const *attr, int64_t n, unsigned nt)\n{\n", attr, fname);
    put(t, "    (void)in, (void)scal, (void)attr;\n");
    for (int s = 0; s < p->n_in; s++)
        if (p->kind[s] == FULL)
            put(t, "    const %s *x%d = (const %s *)(const void *)in[%d];\n", T, s, T, s);
    /* The one-element values the loop reads. */
    for (int s = 0; s < p->nslots; s++) {
        bool used = false;
        for (int i = 0; i < p->ninstr && !used; i++)
            for (int k = 0; p->kind[p->ins[i].out] == FULL && k < p->ins[i].n; k++)
                used |= p->ins[i].in[k] == s;
        for (int k = 0; k < p->n_out; k++)
            used |= p->outs[k] == s;
        if (p->kind[s] != FULL && used)
            put(t, "    const %s s%d = *(const %s *)(const void *)(scal + %d);\n", T, s, T, 8 * s);
    }
    for (int k = 0; k < p->n_out; k++)
        put(t, "    %s *y%d = (%s *)(void *)out[%d];\n", T, k, T, k);
    /* Clamp's bounds, as its kernel takes them: (T)lo, (T)hi. */
    for (int i = 0; i < p->ninstr; i++)
        if (p->ins[i].op == &nb_op_clamp && p->kind[p->ins[i].out] == FULL)
            put(t, "    const %s lo%d = (%s)((const double *)attr[%d])[0], hi%d = (%s)((const "
                   "double *)attr[%d])[1];\n", T, i, T, i, i, T, i);
    /* Computed outputs are checked for NaN/inf; copies of inputs are not. */
    for (int k = 0; k < p->n_out; k++)
        if (p->outs[k] >= p->n_in || p->kind[p->outs[k]] != FULL)
            put(t, "    %s b%d = 0;\n", U, k);
    /* Reads of element i come before its writes: an output written over
     * an input (exactly, as nb_fused_apply allows) reads it first, and no
     * element depends on another. With streaming stores (nt), whole lines
     * of each output are computed into locals, which stay in registers,
     * and stored at once; the rest, and everything without nt, element by
     * element. */
    int line = f64 ? 8 : 16;
    put(t, "    int64_t i = 0;\n    if (nt) {\n        for (; i + %d <= n; i += %d) {\n", line, line);
    for (int k = 0; k < p->n_out; k++)
        put(t, "            %s t%d[%d] __attribute__((aligned(64)));\n", T, k, line);
    put(t, "            NB_IVDEP\n            for (int e = 0; e < %d; e++) {\n", line);
    emit_element(t, p, "i + e", "                ", true);
    put(t, "            }\n");
    for (int k = 0; k < p->n_out; k++)
        put(t, "            if (nt >> %d & 1u)\n                %s(y%d + i, t%d);\n"
               "            else\n                memcpy(y%d + i, t%d, sizeof t%d);\n",
            k, stream, k, k, k, k, k);
    put(t, "        }\n    }\n    NB_IVDEP\n    for (; i < n; i++) {\n");
    emit_element(t, p, "i", "        ", false);
    put(t, "    }\n    return 0");
    for (int k = 0; k < p->n_out; k++)
        if (p->outs[k] >= p->n_in || p->kind[p->outs[k]] != FULL)
            put(t, " | (unsigned)(b%d != 0) << %d", k, k);
    put(t, ";\n}\n\n");
}

int nb__program_emit(const program *p, const char *fname, FILE *f)
{
    size_t cap = 1 << 17;
    char *body = nb__alloc(cap);
    if (!body)
        return -1;
    text t = {body, 0, cap, false};
    char name512[64];
    snprintf(name512, sizeof name512, "%s_512", fname);
    put(&t, "#ifdef NB_KERNEL_AVX512\n");
    emit_fn(&t, p, name512, "NB_KERNEL_AVX512", "nb__stream_line512");
    put(&t, "#endif\n");
    emit_fn(&t, p, fname, "NB_FUSED_TARGETS", "nb__stream_line");
    int rc = !t.over && fwrite(body, 1, t.n, f) == t.n ? 0 : -1;
    nb__free(body);
    return rc;
}

bool nb__fused_portable;

static bool cpu_avx512(void)
{
#ifdef NB_KERNEL_AVX512
    return __builtin_cpu_supports("avx512f");
#else
    return false;
#endif
}

int nb__program_compile(program *p)
{
    static char key[1 << 14];
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    nb_compiled_fn fn = NULL;
    pthread_mutex_lock(&lock);
    if (nb__program_key(p, key, sizeof key) >= 0)
        for (const nb_compiled *c = nb__compiled_programs; c->key && !fn; c++)
            if (strcmp(c->key, key) == 0)
                fn = c->fn512 && !nb__fused_portable && cpu_avx512() ? c->fn512 : c->fn;
    pthread_mutex_unlock(&lock);
    if (!fn)
        return 0;
    if (!(p->attrs = nb__alloc((size_t)(p->ninstr ? p->ninstr : 1) * sizeof *p->attrs)))
        return nb__memory_error("nb_fused_apply: out of memory for a compiled program");
    for (int i = 0; i < p->ninstr; i++)
        p->attrs[i] = p->ins[i].attr;
    p->compiled = fn;
    return 0;
}
