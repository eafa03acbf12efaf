/* nabla: the command-line tool.
 *
 *   nabla ops                 list the built-in ops and what they declare
 *   nabla gradcheck [OP...]   gradient-check built-in ops (all by default) on
 *                             contiguous and strided (permuted, sliced,
 *                             broadcast) inputs
 *   nabla train [options]     train an MLP on Fashion-MNIST (the Keras example)
 *   nabla help                usage
 *
 * Subcommands sit in one table (name, function, summary); a new one is a
 * function and a row. */
#define _POSIX_C_SOURCE 200809L /* open_memstream */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nabla/nabla.h"

#include "cli.h"

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv); /* argv[0] is the subcommand */
    const char *args, *summary;
} command;

static int cmd_help(int argc, char **argv);
static int cmd_ops(int argc, char **argv);
static int cmd_gradcheck(int argc, char **argv);

static const command commands[] = {
    {"ops", cmd_ops, "", "list the built-in ops: name, inputs, gradient, declarations"},
    {"gradcheck", cmd_gradcheck, "[-v] [--layout L] [OP...]",
     "check every op's gradients on its examples (all ops by default):\n"
     "                           f64 first and second order, f32 first order,\n"
     "                           each with the inputs contiguous, permuted, sliced\n"
     "                           and broadcast (--layout L, repeatable: only those);\n"
     "                           -v prints every report; exit 1 on any failure"},
    {"train", cli_train, "[options]",
     "train an MLP on Fashion-MNIST (default: the classic Keras example);\n"
     "                           see nabla train --help"},
    {"help", cmd_help, "", "this text"},
};
#define NCOMMANDS (int)(sizeof commands / sizeof commands[0])

static void usage(FILE *f)
{
    fprintf(f, "usage: nabla <command> [args]\n\ncommands:\n");
    for (int i = 0; i < NCOMMANDS; i++) {
        char head[64];
        snprintf(head, sizeof head, "%s %s", commands[i].name, commands[i].args);
        if (strlen(head) > 24) /* a long head gets a line of its own */
            fprintf(f, "  %s\n  %-24s %s\n", head, "", commands[i].summary);
        else
            fprintf(f, "  %-24s %s\n", head, commands[i].summary);
    }
}

static int cmd_help(int argc, char **argv)
{
    (void)argc, (void)argv;
    usage(stdout);
    return 0;
}

static int count_examples(const nb_op *op)
{
    int k = 0;
    for (const nb_op_example *e = op->examples; e && e->n > 0; e++)
        k++;
    return k;
}

/* An op needs a shape rule; a view op (reshape, permute, ...) has no kernel. */
static bool implemented(const nb_op *op) { return op->shape != NULL; }

/* "1", "1,3": the inputs (counted from 1) named by a NB_INPUT mask. */
static const char *inputs_str(unsigned mask, char *buf, size_t size)
{
    size_t k = 0;
    buf[0] = '\0';
    for (int i = 0; i < NB_MAX_INPUTS && k + 4 < size; i++)
        if (mask & NB_INPUT(i))
            k += (size_t)snprintf(buf + k, size - k, k ? ",%d" : "%d", i + 1);
    return buf;
}

/* What an op declares, for a reader: "broadcasts; no gradient for input 2". */
static void declarations(const nb_op *op, char *buf, size_t size)
{
    char in[32];
    size_t k = 0;
    buf[0] = '\0';
#define ADD(...)                                                               \
    do {                                                                       \
        if (k < size)                                                          \
            k += (size_t)snprintf(buf + k, size - k, k ? "; " : "");            \
        if (k < size)                                                          \
            k += (size_t)snprintf(buf + k, size - k, __VA_ARGS__);              \
    } while (0)
    if (op->broadcast)
        ADD("broadcasts");
    if (op->nondiff)
        ADD("no gradient for input%s %s", op->nondiff & (op->nondiff - 1) ? "s" : "",
            inputs_str(op->nondiff, in, sizeof in));
    if (op->contiguous)
        ADD("needs input%s %s contiguous", op->contiguous & (op->contiguous - 1) ? "s" : "",
            inputs_str(op->contiguous, in, sizeof in));
    if (!op->forward[NB_F32] && !op->forward[NB_F64])
        ADD("view (no kernel)");
    else if (!op->forward[NB_F32] || !op->forward[NB_F64])
        ADD("%s only", op->forward[NB_F32] ? "f32" : "f64");
    if (!k)
        snprintf(buf, size, "-");
#undef ADD
}

static int cmd_ops(int argc, char **argv)
{
    (void)argv;
    if (argc > 1) {
        fprintf(stderr, "nabla ops: takes no arguments\n");
        return 2;
    }
    printf("%-16s %-7s %-9s %-18s %s\n", "op", "inputs", "examples", "gradient", "declares");
    for (const nb_op *const *p = nb_builtin_ops(); *p; p++) {
        const nb_op *op = *p;
        char arity[16], decl[160];
        if (op->arity < 0)
            snprintf(arity, sizeof arity, "1-%d", NB_MAX_INPUTS);
        else
            snprintf(arity, sizeof arity, "%d", op->arity);
        declarations(op, decl, sizeof decl);
        printf("%-16s %-7s %-9d %-18s %s\n", op->name, arity, count_examples(op),
               !implemented(op) ? "(no shape rule)"
               : op->backward   ? "differentiable"
               : op->no_gradient ? "none (by design)"
                                 : "not implemented",
               decl);
    }
    return 0;
}

/* Largest error over the inputs a report checked. */
static void fold(const nb_check_report *r, double *abs_err, double *rel_err)
{
    for (int i = 0; i < r->n && i < NB_MAX_INPUTS + 1; i++) {
        const nb_check_input *in = &r->input[i];
        if (!in->checked)
            continue;
        if (isnan(in->max_abs_err) || in->max_abs_err > *abs_err)
            *abs_err = in->max_abs_err;
        if (isnan(in->max_rel_err) || in->max_rel_err > *rel_err)
            *rel_err = in->max_rel_err;
    }
}

/* Prints a report indented under its table row, labelled with its example. */
static void print_indented(const nb_check_report *r, int example, FILE *f)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    if (!m)
        return;
    nb_check_report_print(r, m);
    fclose(m);
    fprintf(f, "    example %d, ", example);
    for (char *line = buf, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        fprintf(f, "%s%s\n", line == buf ? "" : "    ", line);
    }
    free(buf);
}

/* A table row: its start, then one column per chosen layout. */
static void print_columns(const char *start, const bool layouts[], const char *const col[])
{
    int last = -1;
    for (int l = 0; l < NB_CHECK_LAYOUTS; l++)
        if (layouts[l])
            last = l;
    printf("%s", start);
    for (int l = 0; l <= last; l++)
        if (layouts[l])
            printf(l == last ? " %s" : " %-10s", col[l]);
    printf("\n");
}

/* One row: every example of op in one dtype, in every chosen layout, with a
 * status per layout; then the failing reports (all of them with -v).
 * Returns 1 on failure. */
static int check_row(const nb_op *op, nb_dtype dtype, const bool layouts[], bool verbose)
{
    int examples = implemented(op) ? count_examples(op) : 0, orders = dtype == NB_F64 ? 2 : 1;
    int per_layout = examples * orders;
    double abs_err = 0, rel_err = 0;
    bool ok = true, any = false, layout_ok[NB_CHECK_LAYOUTS];
    const char *why = NULL;
    size_t count = (size_t)(per_layout * NB_CHECK_LAYOUTS + 1);
    nb_check_report *reports = calloc(count, sizeof *reports);
    bool *passed = calloc(count, sizeof *passed);
    if (!reports || !passed) {
        free(reports);
        free(passed);
        fprintf(stderr, "nabla gradcheck: out of memory\n");
        return 1;
    }

    if (!implemented(op)) {
        ok = false;
        why = "not implemented (no shape rule)";
    } else if (examples == 0 && op->backward) {
        ok = false;
        why = "no gradcheck examples";
    } else if (!op->backward && !op->no_gradient) {
        ok = false;
        why = "backward not implemented (and not declared .no_gradient)";
    }
    /* Every example runs (even after a failure), so the errors are the
     * largest over all of them. */
    for (int l = 0; l < NB_CHECK_LAYOUTS; l++) {
        layout_ok[l] = true;
        if (!layouts[l])
            continue;
        for (int e = 0; e < examples; e++)
            for (int order = 1; order <= orders; order++) {
                int k = l * per_layout + e * orders + order - 1;
                nb_check_report *r = &reports[k];
                nb_check_opts o = {.dtype = dtype, .layout = (nb_check_layout)l};
                passed[k] = nb_check_example(op, &op->examples[e], order, &o, r);
                fold(r, &abs_err, &rel_err);
                for (int i = 0; i < r->n && i < NB_MAX_INPUTS + 1; i++)
                    any |= r->input[i].checked;
                layout_ok[l] &= passed[k];
            }
        ok &= layout_ok[l];
    }

    char a[32] = "-", b[32] = "-";
    if (any) {
        snprintf(a, sizeof a, "%.1e", abs_err);
        snprintf(b, sizeof b, "%.1e", rel_err);
    }
    const char *status[NB_CHECK_LAYOUTS];
    for (int l = 0; l < NB_CHECK_LAYOUTS; l++)
        status[l] = !layout_ok[l] || why ? "FAIL" : op->no_gradient ? "no-grad" : "ok";
    char row[160];
    snprintf(row, sizeof row, "%-16s %-5s %8d %12s %12s ", op->name, nb_dtype_name(dtype),
             examples, a, b);
    print_columns(row, layouts, status);
    if (why)
        printf("    %s\n", why);
    for (int l = 0; l < NB_CHECK_LAYOUTS; l++)
        for (int k = l * per_layout; layouts[l] && k < (l + 1) * per_layout; k++)
            if (verbose || !passed[k])
                print_indented(&reports[k], (k - l * per_layout) / orders + 1, stdout);
    free(reports);
    free(passed);
    return ok ? 0 : 1;
}

static int cmd_gradcheck(int argc, char **argv)
{
    bool verbose = false, layouts[NB_CHECK_LAYOUTS] = {false}, some_layout = false;
    const nb_op *chosen[256];
    int n = 0, unknown = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-v")) {
            verbose = true;
            continue;
        }
        if (!strcmp(argv[i], "--layout") || !strncmp(argv[i], "--layout=", 9)) {
            const char *name = argv[i][8] == '=' ? argv[i] + 9 : i + 1 < argc ? argv[++i] : "";
            int l = 0;
            while (l < NB_CHECK_LAYOUTS && strcmp(name, nb_check_layout_name((nb_check_layout)l)))
                l++;
            if (l == NB_CHECK_LAYOUTS) {
                fprintf(stderr, "nabla gradcheck: unknown layout '%s' (contiguous, permuted, "
                                "sliced or broadcast)\n", name);
                return 2;
            }
            layouts[l] = some_layout = true;
            continue;
        }
        const nb_op *op = nb_op_find(argv[i]);
        if (!op) {
            fprintf(stderr, "nabla gradcheck: unknown op '%s' (see `nabla ops`)\n", argv[i]);
            unknown++;
        } else if (n < 256) {
            chosen[n++] = op;
        }
    }
    if (unknown)
        return 1;
    if (n == 0)
        for (const nb_op *const *p = nb_builtin_ops(); *p && n < 256; p++)
            chosen[n++] = *p;
    for (int l = 0; !some_layout && l < NB_CHECK_LAYOUTS; l++)
        layouts[l] = true;

    char head[160];
    const char *names[NB_CHECK_LAYOUTS];
    for (int l = 0; l < NB_CHECK_LAYOUTS; l++)
        names[l] = nb_check_layout_name((nb_check_layout)l);
    snprintf(head, sizeof head, "%-16s %-5s %8s %12s %12s ", "op", "dtype", "examples",
             "max abs err", "max rel err");
    print_columns(head, layouts, names);
    int failed = 0;
    for (int i = 0; i < n; i++) {
        int f = check_row(chosen[i], NB_F64, layouts, verbose);
        f |= check_row(chosen[i], NB_F32, layouts, verbose);
        failed += f;
    }
    printf("%d of %d ops passed\n", n - failed, n);
    return failed ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))
        return cmd_help(argc - 1, argv + 1);
    for (int i = 0; i < NCOMMANDS; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "nabla: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
