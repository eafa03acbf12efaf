/* `nabla gradcheck`: checks the built-in ops on their examples and prints a
 * table (or, with --report json, one JSON document for CI systems).
 *
 *   nabla gradcheck [-v] [--seed N] [--full] [--layout L]... [--at-kinks]
 *                   [--mutate] [--contract] [--picture DIR]
 *                   [--report json|table] [OP...]
 *
 * Per op and dtype, every example in every chosen layout, f64 at orders 1
 * and 2, f32 at order 1. --mutate adds the mutation table (which broken
 * backwards each op's check catches), --contract the contract table; the
 * JSON report always holds all three. Exit status 1 when anything fails. */
#define _POSIX_C_SOURCE 200809L /* open_memstream */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nabla/nabla.h"

#include "cli.h"

typedef struct {
    bool verbose, full, at_kinks, mutate, contract, json;
    bool layouts[NB_CHECK_LAYOUTS];
    uint64_t seed;
    const char *picture; /* directory for heat maps of failures, or NULL */
    FILE *out;           /* the JSON document */
    int reports;         /* JSON objects written to the "checks" array */
} options;

static int count_examples(const nb_op *op)
{
    int k = 0;
    for (const nb_op_example *e = op->examples; e && e->n > 0; e++)
        k++;
    return k;
}

/* ---- JSON ---- */

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static void json_num(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, "%.17g", v);
    else
        fprintf(f, "null");
}

static void json_index(FILE *f, const int64_t *idx)
{
    fputc('[', f);
    for (int d = 0; d < NB_MAX_DIMS && idx[d] >= 0; d++)
        fprintf(f, d ? ",%lld" : "%lld", (long long)idx[d]);
    fputc(']', f);
}

static void json_report(options *o, const nb_op *op, nb_dtype dtype, int example,
                        const nb_check_report *r)
{
    FILE *f = o->out;
    fprintf(f, "%s\n    {\"op\": ", o->reports++ ? "," : "");
    json_str(f, op->name);
    fprintf(f, ", \"dtype\": \"%s\", \"example\": %d, \"order\": %d, \"layout\": \"%s\", "
               "\"seed\": %llu, ",
            nb_dtype_name(dtype), example, r->order, nb_check_layout_name(r->layout), (unsigned long long)r->seed);
    fprintf(f, "\"verdict\": \"%s\", \"message\": ",
            nb_check_verdict_name(r->ok ? NB_CHECK_PASSED : r->verdict));
    json_str(f, r->message);
    fprintf(f, ", \"inputs\": [");
    for (int i = 0, k = 0; i < r->n && i < NB_MAX_INPUTS + 1; i++) {
        const nb_check_input *in = &r->input[i];
        if (!in->checked)
            continue;
        fprintf(f, "%s{\"input\": %d, \"verdict\": \"%s\", \"max_abs_err\": ", k++ ? ", " : "",
                i + 1, nb_check_verdict_name(in->verdict));
        json_num(f, in->max_abs_err);
        fprintf(f, ", \"max_rel_err\": ");
        json_num(f, in->max_rel_err);
        if (in->worst >= 0) {
            fprintf(f, ", \"worst\": ");
            json_index(f, in->worst_index);
            if (in->worst_out >= 0) {
                fprintf(f, ", \"worst_output\": ");
                json_index(f, in->worst_out_index);
            }
        }
        fprintf(f, ", \"analytic\": ");
        json_num(f, in->analytic);
        fprintf(f, ", \"numeric\": ");
        json_num(f, in->numeric);
        fprintf(f, ", \"pattern\": \"%s\"}", nb_check_pattern_name(in->pattern));
    }
    fprintf(f, "]}");
}

/* ---- the gradient table ---- */

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

/* Heat maps of a failing report's inputs into o->picture. */
static void pictures(const options *o, const nb_op *op, nb_dtype dtype, int example,
                     const nb_check_report *r, FILE *f)
{
    for (int i = 0; o->picture && i < r->n && i < NB_MAX_INPUTS + 1; i++) {
        if (!r->input[i].jacobian_analytic)
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s-%s-%s-example%d-order%d-input%d.svg", o->picture,
                 op->name, nb_dtype_name(dtype), nb_check_layout_name(r->layout), example,
                 r->order, i + 1);
        if (nb_check_heatmap(r, i, path) == 0)
            fprintf(f, "    picture: %s\n", path);
        else
            fprintf(f, "    picture: %s\n", nb_last_error());
    }
}

/* One row: every example of op in one dtype, in every chosen layout, with a
 * status per layout; then the failing reports (all of them with -v).
 * Returns 1 on failure. */
static int check_row(options *o, const nb_op *op, nb_dtype dtype)
{
    int examples = op->shape ? count_examples(op) : 0, orders = dtype == NB_F64 ? 2 : 1;
    if (o->at_kinks)
        orders = 1;
    double abs_err = 0, rel_err = 0;
    bool ok = true, any = false, layout_ok[NB_CHECK_LAYOUTS];
    const char *why = NULL;
    if (!op->shape) {
        ok = false;
        why = "not implemented (no shape rule)";
    } else if (examples == 0 && op->backward) {
        ok = false;
        why = "no gradcheck examples";
    } else if (!op->backward && !op->no_gradient) {
        ok = false;
        why = "backward not implemented (and not declared .no_gradient)";
    }
    char *shown = NULL;
    size_t shown_len = 0;
    FILE *later = open_memstream(&shown, &shown_len);
    if (!later) {
        fprintf(stderr, "nabla gradcheck: out of memory\n");
        return 1;
    }
    /* Every example runs (even after a failure), so the errors are the
     * largest over all of them. */
    for (int l = 0; l < NB_CHECK_LAYOUTS; l++) {
        layout_ok[l] = true;
        if (!o->layouts[l])
            continue;
        for (int e = 0; e < examples; e++)
            for (int order = 1; order <= orders; order++) {
                nb_check_report r;
                nb_check_opts co = {.dtype = dtype, .layout = (nb_check_layout)l,
                                    .seed = o->seed, .full = o->full, .at_kinks = o->at_kinks,
                                    .keep_jacobians = o->picture != NULL};
                bool passed = nb_check_example(op, &op->examples[e], order, &co, &r);
                /* At kinks, an op that declares none has nothing to show. */
                if (o->at_kinks && !op->kink)
                    passed = true;
                fold(&r, &abs_err, &rel_err);
                for (int i = 0; i < r.n && i < NB_MAX_INPUTS + 1; i++)
                    any |= r.input[i].checked;
                layout_ok[l] &= passed;
                if (o->json)
                    json_report(o, op, dtype, e + 1, &r);
                if (!o->json && (o->verbose || !passed)) {
                    print_indented(&r, e + 1, later);
                    pictures(o, op, dtype, e + 1, &r, later);
                }
                nb_check_report_free(&r);
            }
        ok &= layout_ok[l];
    }
    fclose(later);
    if (!o->json) {
        char a[32] = "-", b[32] = "-";
        if (any) {
            snprintf(a, sizeof a, "%.1e", abs_err);
            snprintf(b, sizeof b, "%.1e", rel_err);
        }
        const char *status[NB_CHECK_LAYOUTS];
        for (int l = 0; l < NB_CHECK_LAYOUTS; l++)
            status[l] = !layout_ok[l] || why       ? "FAIL"
                        : op->no_gradient          ? "no-grad"
                        : o->at_kinks && !op->kink ? "-"
                                                   : "ok";
        char row[160];
        snprintf(row, sizeof row, "%-18s %-5s %8d %12s %12s ", op->name, nb_dtype_name(dtype),
                 examples, a, b);
        print_columns(row, o->layouts, status);
        if (why)
            printf("    %s\n", why);
        fputs(shown ? shown : "", stdout);
    }
    free(shown);
    return ok ? 0 : 1;
}

/* ---- mutations and contracts ---- */

static int mutation_row(options *o, const nb_op *op)
{
    nb_mutation_report m;
    nb_check_opts co = {.seed = o->seed, .full = o->full};
    bool ok = nb_gradcheck_mutations(op, &co, &m);
    if (o->json) {
        fprintf(o->out, "%s\n    {\"op\": ", o->reports++ ? "," : "");
        json_str(o->out, op->name);
        fprintf(o->out, ", \"ok\": %s, \"message\": ", ok ? "true" : "false");
        json_str(o->out, m.message);
        for (int k = 0; k < NB_MUTATIONS; k++)
            fprintf(o->out, ", \"%s\": {\"applicable\": %d, \"caught\": %d, \"equivalent\": %d}",
                    nb_mutation_name((nb_mutation)k), m.mutation[k].applicable,
                    m.mutation[k].caught, m.mutation[k].equivalent);
        fprintf(o->out, "}");
        return ok ? 0 : 1;
    }
    printf("%-18s", op->name);
    for (int k = 0; k < NB_MUTATIONS; k++) {
        char cell[32] = "-";
        if (m.mutation[k].applicable)
            snprintf(cell, sizeof cell, "%d/%d", m.mutation[k].caught, m.mutation[k].applicable);
        printf(" %-9s", cell);
    }
    printf(" %s\n", ok ? "ok" : "FAIL");
    if (!ok || (o->verbose && m.message[0]))
        printf("    %s\n", m.message);
    return ok ? 0 : 1;
}

static int contract_row(options *o, const nb_op *op)
{
    nb_contract_report c;
    nb_check_opts co = {.seed = o->seed};
    bool ok = nb_check_contract(op, &co, &c);
    static const char *const word[] = {"-", "held", "BROKEN"};
    if (o->json) {
        fprintf(o->out, "%s\n    {\"op\": ", o->reports++ ? "," : "");
        json_str(o->out, op->name);
        fprintf(o->out, ", \"ok\": %s, \"message\": ", ok ? "true" : "false");
        json_str(o->out, c.message);
        for (int k = 0; k < NB_CONTRACTS; k++) {
            fprintf(o->out, ", \"%s\": {\"status\": \"%s\", \"detail\": ",
                    nb_contract_name((nb_contract)k),
                    c.status[k] == NB_CONTRACT_HELD     ? "held"
                    : c.status[k] == NB_CONTRACT_BROKEN ? "broken"
                                                        : "not applicable");
            json_str(o->out, c.detail[k]);
            fprintf(o->out, "}");
        }
        fprintf(o->out, "}");
        return ok ? 0 : 1;
    }
    printf("%-18s", op->name);
    for (int k = 0; k < NB_CONTRACTS; k++)
        printf(k + 1 < NB_CONTRACTS ? " %-14s" : " %s",
               (int)c.status[k] >= 0 && c.status[k] <= 2 ? word[c.status[k]] : "?");
    printf("\n");
    for (int k = 0; k < NB_CONTRACTS; k++)
        if (c.status[k] == NB_CONTRACT_BROKEN || (o->verbose && c.detail[k][0]))
            printf("    %s: %s\n", nb_contract_name((nb_contract)k), c.detail[k]);
    if (c.message[0])
        printf("    %s\n", c.message);
    return ok ? 0 : 1;
}

/* ---- the command ---- */

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "nabla gradcheck: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see nabla help)\n");
    return 2;
}

/* The value of option argv[*i] ("--seed 3" or "--seed=3"), or NULL. */
static const char *value(int argc, char **argv, int *i, const char *name)
{
    size_t n = strlen(name);
    if (strncmp(argv[*i], name, n))
        return NULL;
    if (argv[*i][n] == '=')
        return argv[*i] + n + 1;
    if (argv[*i][n] == '\0')
        return *i + 1 < argc ? argv[++*i] : "";
    return NULL;
}

int cli_gradcheck(int argc, char **argv)
{
    options o = {.out = stdout};
    bool some_layout = false;
    const nb_op *chosen[256];
    int n = 0, unknown = 0;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (!strcmp(argv[i], "-v")) {
            o.verbose = true;
        } else if (!strcmp(argv[i], "--full")) {
            o.full = true;
        } else if (!strcmp(argv[i], "--at-kinks")) {
            o.at_kinks = true;
        } else if (!strcmp(argv[i], "--mutate")) {
            o.mutate = true;
        } else if (!strcmp(argv[i], "--contract")) {
            o.contract = true;
        } else if ((v = value(argc, argv, &i, "--seed"))) {
            uint64_t seed;
            if (!cli_parse_u64(v, 0, &seed))
                return usage_error("--seed wants a whole number in [0, 2^64), got '%s'", v);
            o.seed = seed;
        } else if ((v = value(argc, argv, &i, "--report"))) {
            if (strcmp(v, "json") && strcmp(v, "table"))
                return usage_error("--report is json or table, got '%s'", v);
            o.json = !strcmp(v, "json");
        } else if ((v = value(argc, argv, &i, "--picture"))) {
            if (!*v)
                return usage_error("--picture wants a directory%s", "");
            o.picture = v;
        } else if ((v = value(argc, argv, &i, "--layout"))) {
            int l = 0;
            while (l < NB_CHECK_LAYOUTS && strcmp(v, nb_check_layout_name((nb_check_layout)l)))
                l++;
            if (l == NB_CHECK_LAYOUTS)
                return usage_error("unknown layout '%s' (contiguous, permuted, sliced or "
                                   "broadcast)", v);
            o.layouts[l] = some_layout = true;
        } else if (argv[i][0] == '-') {
            return usage_error("unknown option '%s'", argv[i]);
        } else {
            const nb_op *op = nb_op_find(argv[i]);
            if (!op) {
                fprintf(stderr, "nabla gradcheck: unknown op '%s' (see `nabla ops`)\n", argv[i]);
                unknown++;
            } else if (n < 256) {
                chosen[n++] = op;
            }
        }
    }
    if (unknown)
        return 1;
    if (n == 0)
        for (const nb_op *const *p = nb_builtin_ops(); *p && n < 256; p++)
            chosen[n++] = *p;
    for (int l = 0; !some_layout && l < NB_CHECK_LAYOUTS; l++)
        o.layouts[l] = true;
    /* At kinks the inputs are placed, not handed over: f64, as they are. */
    for (int l = 1; o.at_kinks && l < NB_CHECK_LAYOUTS; l++)
        o.layouts[l] = false;
    o.layouts[0] |= o.at_kinks;

    int failed = 0, mut_failed = 0, con_failed = 0;
    if (o.json) {
        fprintf(o.out, "{\n  \"tool\": \"nabla gradcheck\", \"seed\": %llu,\n  \"checks\": [",
                (unsigned long long)o.seed);
        for (int i = 0; i < n; i++)
            failed += check_row(&o, chosen[i], NB_F64) | check_row(&o, chosen[i], NB_F32);
        fprintf(o.out, "\n  ],\n  \"mutations\": [");
        o.reports = 0;
        for (int i = 0; i < n; i++)
            mut_failed += mutation_row(&o, chosen[i]);
        fprintf(o.out, "\n  ],\n  \"contracts\": [");
        o.reports = 0;
        for (int i = 0; i < n; i++)
            con_failed += contract_row(&o, chosen[i]);
        fprintf(o.out, "\n  ],\n  \"failed\": {\"checks\": %d, \"mutations\": %d, "
                       "\"contracts\": %d}\n}\n",
                failed, mut_failed, con_failed);
        return failed || mut_failed || con_failed ? 1 : 0;
    }

    char head[160];
    const char *names[NB_CHECK_LAYOUTS];
    for (int l = 0; l < NB_CHECK_LAYOUTS; l++)
        names[l] = nb_check_layout_name((nb_check_layout)l);
    snprintf(head, sizeof head, "%-18s %-5s %8s %12s %12s ", "op", "dtype", "examples",
             "max abs err", "max rel err");
    print_columns(head, o.layouts, names);
    for (int i = 0; i < n; i++)
        failed += check_row(&o, chosen[i], NB_F64) |
                  (o.at_kinks ? 0 : check_row(&o, chosen[i], NB_F32));
    printf("%d of %d ops passed%s (seed %llu; replay with --seed %llu)\n", n - failed, n,
           o.at_kinks ? " at their kinks" : "", (unsigned long long)o.seed,
           (unsigned long long)o.seed);
    if (o.mutate) {
        printf("\nmutations caught / applicable (a check must fail on each broken backward)\n");
        printf("%-18s", "op");
        for (int k = 0; k < NB_MUTATIONS; k++)
            printf(" %-9s", nb_mutation_name((nb_mutation)k));
        printf("\n");
        for (int i = 0; i < n; i++)
            mut_failed += mutation_row(&o, chosen[i]);
        printf("%d of %d ops caught every applicable mutation\n", n - mut_failed, n);
    }
    if (o.contract) {
        printf("\ncontracts (held, BROKEN, or - when not applicable)\n%-18s", "op");
        for (int k = 0; k < NB_CONTRACTS; k++)
            printf(k + 1 < NB_CONTRACTS ? " %-14s" : " %s", nb_contract_name((nb_contract)k));
        printf("\n");
        for (int i = 0; i < n; i++)
            con_failed += contract_row(&o, chosen[i]);
        printf("%d of %d ops kept every contract\n", n - con_failed, n);
    }
    return failed || mut_failed || con_failed ? 1 : 0;
}
