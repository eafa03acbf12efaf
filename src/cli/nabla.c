/* nabla: the command-line tool.
 *
 *   nabla ops                 list the built-in ops
 *   nabla gradcheck [OP...]   gradient-check built-in ops (all by default)
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
    {"ops", cmd_ops, "", "list the built-in ops: name, inputs, gradient"},
    {"gradcheck", cmd_gradcheck, "[-v] [OP...]",
     "check every op's gradients on its examples (all ops by default):\n"
     "                           f64 first and second order, f32 first order;\n"
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

static bool implemented(const nb_op *op) { return op->shape && op->forward; }

static int cmd_ops(int argc, char **argv)
{
    (void)argv;
    if (argc > 1) {
        fprintf(stderr, "nabla ops: takes no arguments\n");
        return 2;
    }
    printf("%-16s %-7s %-9s %s\n", "op", "inputs", "examples", "gradient");
    for (const nb_op *const *p = nb_builtin_ops(); *p; p++) {
        const nb_op *op = *p;
        char arity[16];
        if (op->arity < 0)
            snprintf(arity, sizeof arity, "any");
        else
            snprintf(arity, sizeof arity, "%d", op->arity);
        printf("%-16s %-7s %-9d %s\n", op->name, arity, count_examples(op),
               !implemented(op) ? "(not implemented)"
               : op->backward   ? "differentiable"
                                : "none (by design)");
    }
    return 0;
}

/* Largest error over the inputs a report checked. */
static void fold(const nb_check_report *r, double *abs_err, double *rel_err)
{
    for (int i = 0; i < r->n && i < NB_CHECK_MAX_INPUTS; i++) {
        const nb_check_input *in = &r->input[i];
        if (in->worst < 0)
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

/* One row: every example of op in one dtype, then the failing reports (all
 * of them with -v). Returns 1 on failure. */
static int check_row(const nb_op *op, nb_dtype dtype, bool verbose)
{
    int examples = implemented(op) ? count_examples(op) : 0, orders = dtype == NB_F64 ? 2 : 1;
    double abs_err = 0, rel_err = 0;
    bool ok = true, any = false;
    const char *why = NULL;
    nb_check_report *reports = calloc((size_t)(examples * orders + 1), sizeof *reports);
    bool *passed = calloc((size_t)(examples * orders + 1), sizeof *passed);
    if (!reports || !passed) {
        free(reports);
        free(passed);
        fprintf(stderr, "nabla gradcheck: out of memory\n");
        return 1;
    }

    if (!implemented(op)) {
        ok = false;
        why = "not implemented (no shape rule or forward)";
    } else if (examples == 0 && op->backward) {
        ok = false;
        why = "no gradcheck examples";
    }
    /* Every example runs (even after a failure), so the errors are the
     * largest over all of them. */
    for (int e = 0; e < examples; e++)
        for (int order = 1; order <= orders; order++) {
            nb_check_report *r = &reports[e * orders + order - 1];
            bool pass = nb_check_example(op, &op->examples[e], order,
                                         &(nb_check_opts){.dtype = dtype}, r);
            passed[e * orders + order - 1] = pass;
            fold(r, &abs_err, &rel_err);
            for (int i = 0; i < r->n && i < NB_CHECK_MAX_INPUTS; i++)
                any |= r->input[i].worst >= 0;
            ok &= pass;
        }

    const char *status = !ok ? "FAIL" : op->backward ? "ok" : "no-grad";
    char a[32] = "-", b[32] = "-";
    if (any) {
        snprintf(a, sizeof a, "%.1e", abs_err);
        snprintf(b, sizeof b, "%.1e", rel_err);
    }
    printf("%-16s %-5s %8d %12s %12s  %s\n", op->name, nb_dtype_name(dtype), examples, a, b,
           status);
    if (why)
        printf("    %s\n", why);
    for (int k = 0; k < examples * orders; k++)
        if (verbose || !passed[k])
            print_indented(&reports[k], k / orders + 1, stdout);
    free(reports);
    free(passed);
    return ok ? 0 : 1;
}

static int cmd_gradcheck(int argc, char **argv)
{
    bool verbose = false;
    const nb_op *chosen[256];
    int n = 0, unknown = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-v")) {
            verbose = true;
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

    printf("%-16s %-5s %8s %12s %12s  %s\n", "op", "dtype", "examples", "max abs err",
           "max rel err", "status");
    int failed = 0;
    for (int i = 0; i < n; i++) {
        int f = check_row(chosen[i], NB_F64, verbose);
        f |= check_row(chosen[i], NB_F32, verbose);
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
