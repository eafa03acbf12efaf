/* nabla: gradient checking. Compares the analytic gradient (backward) with
 * central differences computed in f64, and says where and by how much it is
 * wrong. Works on any function built from nabla ops, user ops included, and
 * can hand the function its inputs as strided views (layouts) so that
 * kernels are checked on the views the engine gives them. */
#ifndef NABLA_CHECK_H
#define NABLA_CHECK_H

#include "autograd.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The function under test: builds one output from n inputs (in the current
 * graph). ctx is passed through. */
typedef nb_tensor *(*nb_check_fn)(nb_tensor *const x[], int n, void *ctx);

/* How the inputs reach the function. For every layout but the first, each
 * input x (of shape S) is replaced by a leaf `base` of another shape, and
 * the function receives a view of base with shape S and x's values:
 *   NB_LAYOUT_PERMUTED   base has S's dimensions reversed and the view is
 *                        nb_permute(base, reversed): a transposed layout;
 *   NB_LAYOUT_SLICED     base is twice S along every dimension and the view
 *                        takes every second element, backwards along the
 *                        first dimension of size > 1 (nb_slice with step -2)
 *                        and forwards from index 1 along the others (step 2):
 *                        an offset, non-unit and negative strides;
 *   NB_LAYOUT_BROADCAST  base has size 1 along the first dimension of size
 *                        > 1 and the view is nb_broadcast_to(base, S): stride
 *                        0 there (the values of x at index 0 along that
 *                        dimension are repeated).
 * The elements of base outside a sliced view hold other values of x. An
 * input with at most one element (0-d, all dimensions 1, empty), or a
 * permuted input with fewer than two dimensions of size > 1, is passed as it
 * is. Gradients are checked with respect to the bases (so the view ops'
 * backward is checked too), and a report's indices are the bases'. */
typedef enum nb_check_layout {
    NB_LAYOUT_CONTIGUOUS = 0, /* the inputs themselves */
    NB_LAYOUT_PERMUTED,
    NB_LAYOUT_SLICED,
    NB_LAYOUT_BROADCAST,
} nb_check_layout;
#define NB_CHECK_LAYOUTS 4 /* number of layouts, for loops over them */

/* "contiguous", "permuted", "sliced", "broadcast"; "?" for anything else. */
const char *nb_check_layout_name(nb_check_layout layout);

typedef struct nb_check_opts {
    double eps;      /* central-difference step; 0: the op's (nb_op.tolerance) or 1e-6 */
    double atol;     /* 0: the op's, or 1e-5 (f64), 1e-3 (f32 analytic) */
    double rtol;     /* 0: the op's, or 1e-3 (f64), 1e-2 (f32 analytic) */
    nb_dtype dtype;  /* 0 or NB_F64: check in f64. NB_F32: run the function
                        and its backward in f32 and compare with the f64
                        numeric gradient at f32 tolerances */
    uint64_t seed;   /* every random draw (inputs of examples, projections,
                        directions); the report prints it; 0 is a seed too */
    nb_check_layout layout; /* how the inputs are handed over; 0: as they are */
    bool full;       /* compare the whole Jacobian of every input instead of
                        random directions first (slower, same verdicts) */
    bool keep_jacobians; /* keep a failing input's Jacobians in the report
                            (then free it with nb_check_report_free) */
    bool at_kinks;   /* nb_check_example: put input elements on the op's
                        declared kinks and compare the backward with the
                        declared subgradient there (default: draw away) */
} nb_check_opts;

/* What a check found. Only NB_CHECK_PASSED makes report.ok true. */
typedef enum nb_check_verdict {
    NB_CHECK_PASSED = 0,
    NB_CHECK_FAILED,  /* the analytic gradient differs from the numeric one */
    NB_CHECK_VACUOUS, /* it would pass with any backward: zero gradients, an
                         output that does not depend on an input, or an
                         input on a declared kink */
    NB_CHECK_KINK,    /* a mismatch at a non-differentiable point near the
                         drawn input (one-sided differences disagree) */
    NB_CHECK_ERROR,   /* the check could not run: see message */
} nb_check_verdict;

/* How a failing input's analytic Jacobian A relates to the numeric one N. */
typedef enum nb_check_pattern {
    NB_PATTERN_NONE = 0,   /* none recognised (or the input passed) */
    NB_PATTERN_ZERO,       /* A is 0 where N is not */
    NB_PATTERN_SCALED,     /* A = factor * N everywhere */
    NB_PATTERN_BROADCAST,  /* wrong only through broadcast output positions */
    NB_PATTERN_TRANSPOSED, /* A is N with the input's last two dims swapped */
    NB_PATTERN_SWAPPED,    /* A is the numeric gradient of another input */
    NB_PATTERN_FEW,        /* a few elements wrong, the rest right */
    NB_PATTERN_NAN,        /* A has NaN or infinity where N is finite */
} nb_check_pattern;

/* "passed", "failed", "vacuous", "kink", "error"; and "", "zero", "scaled",
 * "broadcast", "transposed", "swapped", "few", "nan"; "?" for anything else. */
const char *nb_check_verdict_name(nb_check_verdict v);
const char *nb_check_pattern_name(nb_check_pattern p);

/* One input's result. With opts.keep_jacobians, a failing input keeps its
 * Jacobians: rows x cols doubles, row-major, one row per output element and
 * one column per input element (cols = the input's numel); at order 2, or
 * when the whole Jacobian would exceed 2^22 entries, one row (the output
 * contracted with the projection). */
typedef struct nb_check_input {
    bool ok;             /* no error found (verdict PASSED or VACUOUS) */
    bool checked;        /* false: skipped (does not require grad) */
    nb_check_verdict verdict;
    double max_abs_err;  /* max |analytic - numeric| */
    double max_rel_err;  /* max |analytic - numeric| / max(|numeric|, 1e-8)*/
    /* Element `worst` has the largest error beyond tolerance (or the largest
     * error, when all pass) of an element-by-element comparison; -1 when
     * the input passed along the random directions alone or was skipped.
     * worst_index entries past the input's ndim are -1. In a non-contiguous
     * layout both index the input's base. */
    int64_t worst;
    int64_t worst_index[NB_MAX_DIMS];
    /* The output element of the worst entry (full Jacobian), else -1. */
    int64_t worst_out;
    int64_t worst_out_index[NB_MAX_DIMS];
    double analytic, numeric; /* the two values there */
    int directions;           /* random directions compared before the elements */
    nb_check_pattern pattern;
    double factor;            /* NB_PATTERN_SCALED: A / N; SWAPPED: the other input */
    int64_t rows, cols;       /* of the Jacobians below; 0 when not kept */
    double *jacobian_analytic, *jacobian_numeric; /* NULL unless kept */
} nb_check_input;

typedef struct nb_check_report {
    bool ok;
    nb_check_verdict verdict;
    int n;                  /* entries of input[] in use */
    int order;              /* 1: gradcheck, 2: gradgradcheck */
    nb_check_layout layout; /* the layout checked */
    uint64_t seed;          /* opts.seed: pass it back to replay the check */
    double eps, atol, rtol; /* the step and tolerances used */
    int out_ndim;           /* the function's output (order 2: 0-d) */
    int64_t out_shape[NB_MAX_DIMS];
    /* the inputs; at order 2, then the projection v */
    nb_check_input input[NB_MAX_INPUTS + 1];
    /* Why the check failed or could not run, what the pattern of the error
     * usually means, or why it is vacuous; "" when it passed. */
    char message[1024];
} nb_check_report;

/* Frees the Jacobians a report kept (opts.keep_jacobians); safe on any
 * report that a check filled, and twice. */
void nb_check_report_free(nb_check_report *report);

/* Checks d f(x) / d x[i] for every input that requires grad. The output is
 * contracted with a random vector u, and each input's gradient is first
 * compared along two random directions d (the analytic u'Jd against the
 * central difference of u'f along d): two evaluations per direction, so
 * large shapes stay cheap. An input that fails there (or every input, with
 * opts.full) is compared element by element on its whole Jacobian, which
 * the report keeps, with the worst entry, the pattern of the error and, in
 * the message, what that pattern usually means. An element whose one-sided
 * differences disagree at growing steps is reported as a kink; zero
 * gradients, an output that does not depend on an input and an input on a
 * declared kink of an op of f as vacuous. x (1 to NB_MAX_INPUTS tensors)
 * must be f64; in the contiguous layout they are perturbed in place and
 * restored bit for bit, so none may be a view whose elements share memory
 * (a broadcast). opts NULL: defaults. Clears the pending error first; a
 * failure to run leaves its reason in report->message. Returns report->ok. */
bool nb_gradcheck(nb_check_fn f, void *ctx, int n, nb_tensor *const x[],
                  const nb_check_opts *opts, nb_check_report *report);

/* Checks the second derivative: gradcheck of x -> grad(<f(x), v>, x) with
 * create_graph, with respect to x and the projection v (reported as entry
 * n, after the inputs). When an op's backward gave a gradient computed
 * outside the graph (a kernel loop or a detached tensor instead of ops) the
 * message names the op: its gradient, and so this check's, is zero. */
bool nb_gradgradcheck(nb_check_fn f, void *ctx, int n, nb_tensor *const x[],
                      const nb_check_opts *opts, nb_check_report *report);

/* Checks op (built-in or user-defined) on random inputs in [-1, 1] of the
 * given shapes, first order, in f64, in every layout (contiguous first); it
 * stops at the first layout that fails and reports that one, else the
 * contiguous report:
 *   nb_gradcheck_op(&my_op, NULL, NB_SHAPES({4, 3}, {3}), &report)
 * A shape is its sizes in order; the first 0 ends it (so no 0-size dims).
 * Inputs the op declares .nondiff are 0/1 masks. */
#define NB_SHAPES(...)                                                         \
    (int)(sizeof((const int64_t[][NB_MAX_DIMS]){__VA_ARGS__}) /                \
          sizeof(int64_t[NB_MAX_DIMS])),                                       \
        (const int64_t[][NB_MAX_DIMS]){__VA_ARGS__}
bool nb_gradcheck_op(const nb_op *op, const void *attr, int n,
                     const int64_t shapes[][NB_MAX_DIMS], nb_check_report *report);

/* Runs one example of an op in opts->layout: order 1 is gradcheck, order 2
 * gradgradcheck. The inputs are drawn from ex->domain with a fixed seed;
 * inputs the op declares .nondiff (indices, masks) are whole numbers in
 * [ceil(lo), ceil(hi)) (all-zero domain: 0 or 1), never require grad and
 * are never perturbed. For an op declaring .no_gradient it checks that the
 * output does not require grad although its inputs do. Returns report->ok. */
bool nb_check_example(const nb_op *op, const nb_op_example *ex, int order,
                      const nb_check_opts *opts, nb_check_report *report);

/* Prints a report: the verdict, the seed, per input ok or FAIL with the
 * errors, the worst element (input and output coordinates) and the
 * pattern, then the message. */
void nb_check_report_print(const nb_check_report *report, FILE *f);

/* ---- pictures ---------------------------------------------------------------------- */

/* Writes the Jacobian error |analytic - numeric| that a failing report kept
 * for input `input` (from 0) as a heat map: rows are output elements,
 * columns input elements, the worst entry marked. The format comes from the
 * extension (.svg or .png). 0, or -1 with an error (no Jacobian kept,
 * unknown extension, cannot write). */
int nb_check_heatmap(const nb_check_report *report, int input, const char *path);

/* Records f at x, checks the backward of every node of its graph on the
 * inputs that node saw (first order, f64, opts as for nb_gradcheck), and
 * writes the graph as DOT (.dot) or a picture (.svg, .png) with the failing
 * nodes filled red. The number of failing nodes, or -1 with an error. */
int nb_check_graph(nb_check_fn f, void *ctx, int n, nb_tensor *const x[],
                   const nb_check_opts *opts, const char *path);

/* ---- mutation testing: checks that prove they can fail ---------------------------- */

/* Ways to break an op's backward on purpose. Each applies to the gradient
 * the backward gives for one input (after the broadcast reduction), in every
 * node of the op. */
typedef enum nb_mutation {
    NB_MUTATE_ZERO = 0,  /* the gradient zeroed */
    NB_MUTATE_SCALE,     /* scaled by 1.01 */
    NB_MUTATE_NEGATE,    /* scaled by -1 */
    NB_MUTATE_SWAP,      /* exchanged with another input's of the same shape */
    NB_MUTATE_PERTURB,   /* its middle element moved by 0.1 (1 + max |gradient|) */
    NB_MUTATE_BROADCAST, /* a broadcast input's gradient not summed over the
                            broadcast positions: only the first one kept */
    NB_MUTATE_DETACH,    /* detached: the second-order graph cut (order 2) */
} nb_mutation;
#define NB_MUTATIONS 7

/* "zero", "scale", "negate", "swap", "perturb", "broadcast", "detach"; "?". */
const char *nb_mutation_name(nb_mutation m);

/* One mutation over every example and input of an op. A mutant (example,
 * input) is applicable when the mutation can be made there and changes the
 * gradient; one that leaves it as it was (swapping the equal gradients of
 * add) is equivalent: no check could catch it. */
typedef struct nb_mutation_count {
    int applicable, caught, equivalent;
    int missed_example, missed_input; /* the first mutant missed, from 1; 0: none */
} nb_mutation_count;

typedef struct nb_mutation_report {
    bool ok;        /* every applicable mutant was caught */
    const char *op; /* its name */
    nb_mutation_count mutation[NB_MUTATIONS];
    char message[256]; /* why it could not run, or the first mutant missed */
} nb_mutation_report;

/* Runs the check of every example of op (built-in or user-defined) again
 * with its backward broken by each mutation, on each input it applies to:
 * in f64, contiguous, first order (second order for detach), with opts'
 * seed and tolerances. Returns report->ok. */
bool nb_gradcheck_mutations(const nb_op *op, const nb_check_opts *opts,
                            nb_mutation_report *report);

/* ---- the contract of an op, beyond its derivative ---------------------------------- */

typedef enum nb_contract {
    NB_CONTRACT_DETERMINISTIC = 0, /* two backward runs give the same bits */
    NB_CONTRACT_ACCUMULATES,       /* a second nb_backward adds into .grad */
    NB_CONTRACT_NO_GRAD_INPUTS,    /* inputs that do not require grad get no .grad */
    NB_CONTRACT_NONDIFF,           /* inputs declared .nondiff get no gradient */
    NB_CONTRACT_BATCH,             /* the gradient of a batch is the sum of the
                                      per-sample ones (nb_op.batch) */
    NB_CONTRACT_LAYOUTS,           /* permuted, sliced and broadcast inputs get
                                      the gradients contiguous ones get */
    NB_CONTRACT_INPLACE,           /* writing to a saved input after recording
                                      makes backward fail (nb_op.saves) */
    NB_CONTRACT_ELEMENTWISE,       /* the kernel on 1-d blocks, single elements
                                      (0-d) and reordered elements gives the
                                      output's elements (nb_op.elementwise) */
} nb_contract;
#define NB_CONTRACTS 8

/* "deterministic", "accumulates", "no-grad-inputs", "nondiff", "batch",
 * "layouts", "inplace", "elementwise"; "?". */
const char *nb_contract_name(nb_contract c);

typedef enum nb_contract_status {
    NB_CONTRACT_NOT_APPLICABLE = 0, /* e.g. batch for an op that mixes rows */
    NB_CONTRACT_HELD,
    NB_CONTRACT_BROKEN,
} nb_contract_status;

typedef struct nb_contract_report {
    bool ok;        /* no contract broken */
    const char *op; /* its name */
    nb_contract_status status[NB_CONTRACTS];
    char detail[NB_CONTRACTS][160]; /* how it broke (example, input, values) */
    char message[256];              /* why it could not run, or "" */
} nb_contract_report;

/* Checks every contract on every example of op, in f64, with inputs drawn
 * from opts->seed (the other options do not apply). An op declaring
 * .no_gradient is checked to give outputs that do not require grad (under
 * nondiff); inplace also catches a backward that reads a tensor its .saves
 * leaves out. elementwise, for an op declaring .elementwise (not applicable
 * otherwise), runs the op's kernel as fused functions do: on the inputs
 * broadcast to the output's shape and packed, as one 1-d block, with
 * one-element inputs as 0-d views, element by element as 0-d views, in
 * blocks of 2 and 5, and in reversed and shuffled order; each must give the
 * op's output bit for bit, of the inputs' broadcast shape, without failing
 * or writing to its inputs; in f64 and, with an f32 kernel, f32, and on
 * made-up (3,5) inputs for an op without examples or attributes. ok is
 * false when a contract broke or an example could not run (message).
 * Returns report->ok. */
bool nb_check_contract(const nb_op *op, const nb_check_opts *opts, nb_contract_report *report);

#ifdef __cplusplus
}
#endif
#endif
