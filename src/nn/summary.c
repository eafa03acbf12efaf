/* nb_summary: Keras 3's model.summary() table (keras/src/utils/summary_utils.py,
 * which draws it with rich): box-drawing borders, the columns "Layer (type)",
 * "Output Shape" and "Param #" at the widths Keras gives them on an
 * 80-column console (31, 22 and 13 characters inside one space of padding
 * each side), a cell too long for its column wrapped at spaces (a word too
 * long for it cut), as rich does. On a terminal, Keras's bold and colours.
 * tests/test_keras_format.c compares the text to Keras's own. */
#include "nn_internal.h"

#include <stdio.h>
#include <unistd.h>

enum { COLS = 3, CELL = 160 };
static const int width[COLS] = {31, 22, 13};

/* A cell's text and, per character, its colour: 0 none, else an index
 * into codes. */
typedef struct {
    char s[CELL];
    char colour[CELL];
    int n;
} cell;
static const char *const codes[] = {NULL, "94", "96", "32"};
enum { C_TYPE = 1, C_NONE, C_NUMBER };

static void add(cell *c, const char *s, int colour)
{
    for (; *s && c->n < CELL - 1; s++, c->n++) {
        c->s[c->n] = *s;
        c->colour[c->n] = (char)colour;
    }
    c->s[c->n] = '\0';
}

char *nn_thousands(char b[NN_THOUSANDS_LEN], int64_t v)
{
    char raw[24];
    int n = snprintf(raw, sizeof raw, "%lld", (long long)v), k = 0;
    for (int i = 0; i < n; i++) {
        if (i > 0 && (n - i) % 3 == 0 && raw[i - 1] != '-')
            b[k++] = ',';
        b[k++] = raw[i];
    }
    b[k] = '\0';
    return b;
}

static void add_number(cell *c, int64_t v)
{
    char b[NN_THOUSANDS_LEN];
    add(c, nn_thousands(b, v), C_NUMBER);
}

/* The lines of c in a column of w: [start[i], start[i] + len[i]). */
static int wrap(const cell *c, int w, int *start, int *len, int max)
{
    int lines = 0, pos = 0;
    while (lines < max) {
        if (c->n - pos <= w) {
            start[lines] = pos;
            len[lines++] = c->n - pos;
            break;
        }
        int sp = pos + w;
        while (sp > pos && c->s[sp] != ' ')
            sp--;
        start[lines] = pos;
        len[lines++] = sp > pos ? sp - pos : w;
        pos = sp > pos ? sp + 1 : pos + w;
    }
    return lines;
}

/* Characters [from, from + n) of c, each colour run in its code. */
static void put_run(FILE *f, const cell *c, int from, int n, bool tty)
{
    for (int i = from; i < from + n;) {
        int k = c->colour[i], j = i;
        while (j < from + n && c->colour[j] == k)
            j++;
        if (tty && k)
            fprintf(f, "\x1b[%sm%.*s\x1b[0m", codes[k], j - i, c->s + i);
        else
            fprintf(f, "%.*s", j - i, c->s + i);
        i = j;
    }
}

static void rule(FILE *f, const char *left, const char *line, const char *mid, const char *right)
{
    fputs(left, f);
    for (int i = 0; i < COLS; i++) {
        for (int k = 0; k < width[i] + 2; k++)
            fputs(line, f);
        fputs(i < COLS - 1 ? mid : right, f);
    }
    fputc('\n', f);
}

/* A row of cells (the last right-aligned), wrapped onto as many lines as
 * its tallest cell needs. */
static void row(FILE *f, const cell *cells, bool tty)
{
    int start[COLS][8], len[COLS][8], lines[COLS], tall = 1;
    for (int i = 0; i < COLS; i++) {
        lines[i] = wrap(&cells[i], width[i], start[i], len[i], 8);
        tall = lines[i] > tall ? lines[i] : tall;
    }
    for (int l = 0; l < tall; l++) {
        fputs("│", f);
        for (int i = 0; i < COLS; i++) {
            int n = l < lines[i] ? len[i][l] : 0, pad = width[i] - n;
            fprintf(f, " %*s", i == COLS - 1 ? pad : 0, "");
            if (n)
                put_run(f, &cells[i], start[i][l], n, tty);
            fprintf(f, "%*s │", i == COLS - 1 ? 0 : pad, "");
        }
        fputc('\n', f);
    }
}

static void human_bytes(double bytes, char *buf)
{
    static const char *unit[] = {"B", "KB", "MB", "GB", "TB"};
    int u = 0;
    while (bytes >= 1024 && u < 4) {
        bytes /= 1024;
        u++;
    }
    snprintf(buf, 32, "%.2f %s", bytes, unit[u]);
}

static void total(FILE *f, const char *what, int64_t n, double bytes, bool tty)
{
    cell c = {.n = 0};
    char b[32];
    add_number(&c, n);
    human_bytes(bytes, b);
    fprintf(f, tty ? "\x1b[1m %s params: \x1b[0m" : " %s params: ", what);
    put_run(f, &c, 0, c.n, tty);
    fprintf(f, " (%s)\n", b);
}

int nb_summary(const nb_model *m, FILE *f)
{
    if (nn_bad_model(m, "nb_summary"))
        return -1;
    if (!f)
        return nb_set_error("nb_summary: FILE is NULL");
    bool tty = isatty(fileno(f));
    const char *b = tty ? "\x1b[1m" : "", *e = tty ? "\x1b[0m" : "";
    fprintf(f, "%sModel: \"sequential\"%s\n", b, e);
    rule(f, "┏", "━", "┳", "┓");
    static const char *const head[COLS] = {"Layer (type)", "Output Shape", "Param #"};
    fputs("┃", f);
    for (int i = 0; i < COLS; i++) /* Keras bolds the padding and the title apart */
        fprintf(f, "%s %s%s%*s%s%s %s┃", b, e, b, i == COLS - 1 ? width[i] : -width[i],
                head[i], e, b, e);
    fputc('\n', f);
    rule(f, "┡", "━", "╇", "┩");
    int shown = 0;
    for (int i = 0; i < m->n; i++)
        shown += m->layers[i]->type != &nn_input_type;
    int64_t trainable = 0, state = 0;
    for (int i = 0, r = 0; i < m->n; i++) {
        const nb_layer *l = m->layers[i];
        if (l->type == &nn_input_type)
            continue;
        cell c[COLS] = {{.n = 0}};
        add(&c[0], l->name, 0);
        add(&c[0], " (", 0);
        add(&c[0], l->type->type, C_TYPE);
        add(&c[0], ")", 0);
        bool dense = l->type == &nn_dense_type;
        if (l->built || dense) {
            int nd = l->built ? l->out_ndim : 1;
            add(&c[1], "(", 0);
            add(&c[1], "None", C_NONE);
            for (int d = 0; d < nd; d++) {
                add(&c[1], ", ", 0);
                char n[24];
                snprintf(n, sizeof n, "%lld", (long long)(l->built ? l->out[d]
                                          : ((const nb_dense_opts *)l->ctx)->units));
                add(&c[1], n, C_NUMBER);
            }
            add(&c[1], ")", 0);
        } else {
            add(&c[1], "?", 0); /* Keras's mark of a shape not known yet */
        }
        int64_t params = 0;
        for (int k = 0; k < l->nw; k++) {
            params += nb_numel(l->w[k]);
            *(l->trainable[k] ? &trainable : &state) += nb_numel(l->w[k]);
        }
        add_number(&c[2], params);
        if (!l->built)
            add(&c[2], " (unbuilt)", 0);
        row(f, c, tty);
        if (++r < shown)
            rule(f, "├", "─", "┼", "┤");
    }
    rule(f, "└", "─", "┴", "┘");
    double es = (double)nb_dtype_size(m->built ? m->dtype : NB_F32);
    total(f, "Total", trainable + state, es * (double)(trainable + state), tty);
    total(f, "Trainable", trainable, es * (double)trainable, tty);
    total(f, "Non-trainable", state, es * (double)state, tty);
    return ferror(f) ? nb_set_error_code(NB_ERR_IO, "nb_summary: write failed") : 0;
}
