/* nabla: the command-line tool.
 *
 *   nabla ops                 list the built-in ops and what they declare
 *   nabla gradcheck [OP...]   gradient-check built-in ops (all by default):
 *                             src/cli/gradcheck.c
 *   nabla train [options]     train an MLP on Fashion-MNIST (the Keras example)
 *   nabla help                usage
 *
 * Subcommands sit in one table (name, function, summary); a new one is a
 * function and a row. */

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

static const command commands[] = {
    {"ops", cmd_ops, "", "list the built-in ops: name, inputs, gradient, declarations"},
    {"gradcheck", cli_gradcheck, "[options] [OP...]",
     "check every op's gradients on its examples (all ops by default):\n"
     "                           f64 first and second order, f32 first order, each\n"
     "                           with the inputs contiguous, permuted, sliced and\n"
     "                           broadcast; random directions first, the whole\n"
     "                           Jacobian of a failing input. Options:\n"
     "                             --layout L     only these layouts (repeatable)\n"
     "                             --seed N       other random inputs (replays a report)\n"
     "                             --full         whole Jacobians of every input\n"
     "                             --at-kinks     the declared subgradients at kinks (f64)\n"
     "                             --mutate       which broken backwards each check catches\n"
     "                             --contract     determinism, accumulation, batches,\n"
     "                                            layouts, in-place writes, elementwise\n"
     "                             --picture DIR  heat maps of failing Jacobians\n"
     "                             --report json  all of it as one JSON document\n"
     "                             -v             every report, not only failures\n"
     "                           exit status 1 on any failure"},
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
    printf("%-18s %-7s %-9s %-18s %s\n", "op", "inputs", "examples", "gradient", "declares");
    for (const nb_op *const *p = nb_builtin_ops(); *p; p++) {
        const nb_op *op = *p;
        char arity[16], decl[160];
        if (op->arity < 0)
            snprintf(arity, sizeof arity, "1-%d", NB_MAX_INPUTS);
        else
            snprintf(arity, sizeof arity, "%d", op->arity);
        declarations(op, decl, sizeof decl);
        printf("%-18s %-7s %-9d %-18s %s\n", op->name, arity, count_examples(op),
               !implemented(op) ? "(no shape rule)"
               : op->backward   ? "differentiable"
               : op->no_gradient ? "none (by design)"
                                 : "not implemented",
               decl);
    }
    return 0;
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
