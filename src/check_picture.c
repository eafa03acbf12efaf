/* Pictures of failing gradient checks.
 *
 * nb_check_heatmap draws the error E = |analytic - numeric| of the Jacobian
 * a failing report kept: one cell per entry, rows the output elements (top
 * to bottom), columns the input elements (left to right). An entry is beyond
 * tolerance when E > atol + rtol |numeric| (as the check decides), and the
 * colour says which side it is on:
 *   within tolerance   white (E = 0) to light grey (E = T),
 *   beyond tolerance   light orange (E <= T) to dark red (E = the largest
 *                      error), on a log scale of E / T,
 *   NaN or infinity    black,
 * where T = atol + rtol max|numeric| is the loosest tolerance of any entry.
 * The worst entry (the report's worst, worst_out) is outlined in blue.
 * Beyond 256 rows or columns, cells aggregate blocks of entries by their
 * maximum (a block is beyond tolerance when any entry is), so a picture has
 * at most 256 x 256 cells. A cell is 480 / max(cells across, cells down)
 * pixels, within 2..24. The SVG adds a title (the input, the largest error,
 * the tolerances, the worst entry), axis ticks and labels, and a legend; the
 * PNG is the raster of the grid alone: the cells, a grey frame and the
 * outline, with a 4-pixel white margin.
 *
 * nb_check_graph records f at x in a graph of its own and gradchecks every
 * node's op on contiguous f64 copies of the values its inputs had (leaves
 * requiring grad where the node's input did and the op does not declare it
 * .nondiff), with the node's attributes. A node fails when its check finds a
 * wrong gradient; vacuous checks and kinks do not count, and a check that
 * cannot run (no f64 kernel, out of memory) is an error. A node costs
 * what nb_gradcheck of its op costs: meant for small inputs. The graph is
 * written through the DOT export with the failing nodes filled red
 * (nb_dot_opts.marked), each with its reason. Pictures number inputs from
 * 1, as nb_check_report_print does. */
#include "check_internal.h"
#include "io/png.h"

#include <math.h>
#include <stdio.h>

/* ---- files ---- */

typedef enum { FMT_NONE, FMT_DOT, FMT_SVG, FMT_PNG } fmt;

/* The format named by path's extension (any case). */
static fmt format_of(const char *path)
{
    const char *dot = strrchr(path, '.'), *slash = strrchr(path, '/');
    if (!dot || (slash && slash > dot) || strlen(dot + 1) != 3)
        return FMT_NONE;
    char e[4] = {0};
    for (int i = 0; i < 3; i++)
        e[i] = (char)(dot[1 + i] >= 'A' && dot[1 + i] <= 'Z' ? dot[1 + i] - 'A' + 'a' : dot[1 + i]);
    return strcmp(e, "dot") == 0 ? FMT_DOT
           : strcmp(e, "svg") == 0 ? FMT_SVG
           : strcmp(e, "png") == 0 ? FMT_PNG
                                   : FMT_NONE;
}


/* ---- the heat map's model ---- */

#define MAX_CELLS 256 /* per axis; more entries aggregate by max */
#define GRID_PX 480
#define CELL_MIN 2
#define CELL_MAX 24
#define PNG_PAD 4

typedef struct {
    uint8_t r, g, b;
} rgb;

static const rgb OUTLINE = {0x15, 0x65, 0xc0}, FRAME = {0x88, 0x88, 0x88}, WHITE = {255, 255, 255};
/* The beyond-tolerance ramp, from T up to the largest error; darkest last. */
static const rgb WARM[] = {
    {0xfd, 0xd4, 0x9e}, {0xfc, 0x8d, 0x59}, {0xd7, 0x30, 0x1f}, {0x67, 0x00, 0x0d}};
#define NWARM (int)(sizeof WARM / sizeof WARM[0])

typedef struct {
    const nb_check_report *r;
    const nb_check_input *in;
    int input;
    int64_t rows, cols;
    int64_t gr, gc; /* entries per cell, down and across */
    int dr, dc;     /* cells down and across */
    int cell;       /* pixels per cell side */
    double *err;    /* per cell: the largest error; NaN when an entry is not finite */
    bool *bad;      /* per cell: an entry is beyond tolerance */
    double emax, tol; /* the largest finite error; T */
    int64_t nbad;     /* entries beyond tolerance */
    int wr, wc;       /* the worst entry's cell */
    bool nonfinite;
} heat;

static rgb mix(rgb a, rgb b, double t)
{
    return (rgb){(uint8_t)lround(a.r + (b.r - a.r) * t), (uint8_t)lround(a.g + (b.g - a.g) * t),
                 (uint8_t)lround(a.b + (b.b - a.b) * t)};
}

/* Position 0..1 on the beyond-tolerance ramp of an error e. */
static double warm_pos(const heat *h, double e)
{
    if (h->emax <= h->tol || h->tol <= 0)
        return h->emax > 0 ? fmin(1, e / h->emax) : 1;
    return fmin(1, fmax(0, log(e / h->tol) / log(h->emax / h->tol)));
}

static rgb warm_at(double t)
{
    double s = t * (NWARM - 1);
    int k = (int)s < NWARM - 1 ? (int)s : NWARM - 2;
    return mix(WARM[k], WARM[k + 1], s - k);
}

static rgb grey_at(double t) { return mix(WHITE, (rgb){0xcc, 0xcc, 0xcc}, fmin(1, fmax(0, t))); }

static rgb cell_colour(const heat *h, int i, int j)
{
    double e = h->err[(size_t)i * h->dc + j];
    if (isnan(e))
        return (rgb){0, 0, 0};
    if (h->bad[(size_t)i * h->dc + j])
        return warm_at(warm_pos(h, e));
    return grey_at(h->tol > 0 ? e / h->tol : 0);
}

/* The worst entry's row and column: the report's, else the largest error. */
static void find_worst(const heat *h, int64_t *wrow, int64_t *wcol)
{
    const nb_check_input *in = h->in;
    *wcol = in->worst;
    *wrow = h->rows == 1 ? 0 : in->worst_out;
    if (*wcol >= 0 && *wcol < h->cols && *wrow >= 0 && *wrow < h->rows)
        return;
    double best = -1;
    for (int64_t k = 0; k < h->rows * h->cols; k++) {
        double e = fabs(in->jacobian_analytic[k] - in->jacobian_numeric[k]);
        if ((isfinite(e) ? e : INFINITY) > best)
            best = isfinite(e) ? e : INFINITY, *wrow = k / h->cols, *wcol = k % h->cols;
    }
}

/* Aggregates the Jacobians into cells. 0 or -1 (out of memory). */
static int heat_build(heat *h)
{
    h->gr = (h->rows + MAX_CELLS - 1) / MAX_CELLS;
    h->gc = (h->cols + MAX_CELLS - 1) / MAX_CELLS;
    h->dr = (int)((h->rows + h->gr - 1) / h->gr);
    h->dc = (int)((h->cols + h->gc - 1) / h->gc);
    int big = h->dr > h->dc ? h->dr : h->dc;
    h->cell = GRID_PX / big < CELL_MIN   ? CELL_MIN
              : GRID_PX / big > CELL_MAX ? CELL_MAX
                                         : GRID_PX / big;
    size_t ncell = (size_t)h->dr * (size_t)h->dc;
    h->err = nb__alloc(ncell * sizeof *h->err);
    h->bad = nb__alloc(ncell * sizeof *h->bad);
    if (!h->err || !h->bad)
        return -1;
    for (size_t k = 0; k < ncell; k++)
        h->err[k] = 0, h->bad[k] = false;
    const double *A = h->in->jacobian_analytic, *N = h->in->jacobian_numeric;
    double atol = h->r->atol, rtol = h->r->rtol, nmax = 0;
    for (int64_t k = 0; k < h->rows * h->cols; k++)
        if (isfinite(N[k]))
            nmax = fmax(nmax, fabs(N[k]));
    h->tol = atol + rtol * nmax;
    for (int64_t i = 0; i < h->rows; i++)
        for (int64_t j = 0; j < h->cols; j++) {
            double e = fabs(A[i * h->cols + j] - N[i * h->cols + j]);
            size_t k = (size_t)(i / h->gr) * h->dc + (size_t)(j / h->gc);
            bool bad = !(e <= atol + rtol * fabs(N[i * h->cols + j]));
            h->nbad += bad;
            h->bad[k] |= bad;
            if (!isfinite(e)) {
                h->nonfinite = true;
                h->err[k] = NAN;
            } else {
                h->emax = fmax(h->emax, e);
                if (!isnan(h->err[k]))
                    h->err[k] = fmax(h->err[k], e);
            }
        }
    int64_t wrow, wcol;
    find_worst(h, &wrow, &wcol);
    h->wr = (int)(wrow / h->gr);
    h->wc = (int)(wcol / h->gc);
    return 0;
}

/* ---- the heat map as SVG ---- */

#define SVG_L 78  /* left margin: row ticks and label */
#define SVG_T 84  /* top: the title's three lines */
#define SVG_B 64  /* bottom: column ticks and label */
#define LEGEND_H 180

/* c as "#rrggbb" in s. */
static const char *hex(rgb c, char s[8])
{
    snprintf(s, 8, "#%02x%02x%02x", c.r, c.g, c.b);
    return s;
}

/* A rectangle filled with fill, then more attributes (or ""). */
static void svg_rect(nb_sbuf *b, int x, int y, int w, int h, const char *fill, const char *more)
{
    nb__sb_printf(b, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"%s\"%s/>\n",
                  x, y, w, h, fill, more);
}

/* A step of 1, 2 or 5 times a power of ten giving at most 6 ticks over n. */
static int64_t tick_step(int64_t n)
{
    static const int m[] = {1, 2, 5};
    for (int64_t s = 1;; s *= 10)
        for (int k = 0; k < 3; k++)
            if (s * m[k] * 6 >= n)
                return s * m[k];
}

static void svg_ticks(nb_sbuf *b, const heat *h, bool across)
{
    int64_t n = across ? h->cols : h->rows, g = across ? h->gc : h->gr;
    int gh = h->dr * h->cell;
    for (int64_t i = 0; i < n; i += tick_step(n)) {
        double at = ((double)(i / g) + 0.5) * h->cell;
        if (across)
            nb__sb_printf(b, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#888\"/>"
                             "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%lld</text>\n",
                          SVG_L + at, SVG_T + gh, SVG_L + at, SVG_T + gh + 4, SVG_L + at,
                          SVG_T + gh + 16, (long long)i);
        else
            nb__sb_printf(b, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#888\"/>"
                             "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%lld</text>\n",
                          SVG_L - 4, SVG_T + at, SVG_L, SVG_T + at, SVG_L - 7, SVG_T + at + 3.5,
                          (long long)i);
    }
}

/* The legend: the two ramps on one bar (0 at the bottom, T at the break,
 * the largest error on top), the outline, and black when present. */
static void svg_legend(nb_sbuf *b, const heat *h, int x, int y)
{
    const int w = 14, hb = LEGEND_H, split = hb / 3, steps = 24; /* split: the within part */
    char s[8], stroke[48];
    nb__sb_printf(b, "<text x=\"%d\" y=\"%d\" font-weight=\"bold\">|A \xe2\x88\x92 N|</text>\n", x,
                  y - 8);
    for (int k = 0; k < steps; k++) { /* bottom up */
        bool warm = k >= steps / 3;
        double t = warm ? (k - steps / 3 + 0.5) / (steps - steps / 3) : (k + 0.5) / (steps / 3);
        int y0 = y + hb - (k + 1) * hb / steps, y1 = y + hb - k * hb / steps;
        svg_rect(b, x, y0, w, y1 - y0, hex(warm ? warm_at(t) : grey_at(t), s), "");
    }
    svg_rect(b, x, y, w, hb, "none", " stroke=\"#888\"");
    int tx = x + w + 6;
    nb__sb_printf(b, "<text x=\"%d\" y=\"%d\">%.2e max</text>\n", tx, y + 4, h->emax);
    nb__sb_printf(b, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#333\"/>"
                     "<text x=\"%d\" y=\"%d\">%.1e tolerance</text>\n",
                  x - 3, y + hb - split, x + w + 3, y + hb - split, tx, y + hb - split + 4, h->tol);
    nb__sb_printf(b, "<text x=\"%d\" y=\"%d\">0</text>\n", tx, y + hb + 4);
    nb__sb_printf(b, "<text x=\"%d\" y=\"%d\" fill=\"#555\">beyond</text>"
                     "<text x=\"%d\" y=\"%d\" fill=\"#555\">within</text>\n",
                  tx, y + (hb - split) / 2 + 4, tx, y + hb - split / 2 + 4);
    int sy = y + hb + 24;
    snprintf(stroke, sizeof stroke, " stroke=\"%s\" stroke-width=\"2.5\"", hex(OUTLINE, s));
    svg_rect(b, x, sy, w, w, "none", stroke);
    nb__sb_printf(b, "<text x=\"%d\" y=\"%d\">worst entry</text>\n", tx, sy + 11);
    if (h->nonfinite) {
        svg_rect(b, x, sy + 22, w, w, "#000", "");
        nb__sb_printf(b, "<text x=\"%d\" y=\"%d\">NaN or inf</text>\n", tx, sy + 33);
    }
}

static void svg_heat(nb_sbuf *b, const heat *h)
{
    const nb_check_report *r = h->r;
    const nb_check_input *in = h->in;
    int gw = h->dc * h->cell, gh = h->dr * h->cell;
    int lx = SVG_L + gw + 30, W = lx + 130 < 600 ? 600 : lx + 130;
    int H = SVG_T + (gh > LEGEND_H + 60 ? gh : LEGEND_H + 60) + SVG_B;
    nb__sb_printf(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                     "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
                     "viewBox=\"0 0 %d %d\" font-family=\"Helvetica, Arial, sans-serif\" "
                     "font-size=\"11\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"#fff\"/>\n",
                  W, H, W, H);
    bool is_v = r->order == 2 && h->input == r->n - 1;
    char what[48];
    snprintf(what, sizeof what, is_v ? "the projection v" : "input %d", h->input + 1);
    nb__sb_printf(b, "<text x=\"12\" y=\"22\" font-size=\"15\" font-weight=\"bold\">%s: Jacobian "
                     "error |analytic \xe2\x88\x92 numeric| of %s</text>\n",
                  r->order == 2 ? "gradgradcheck" : "gradcheck", what);
    nb__sb_printf(b, "<text x=\"12\" y=\"42\">max abs error %.2e; %lld of %lld entries beyond "
                     "tolerance atol %.0e + rtol %.0e \xc2\xb7 |numeric|</text>\n",
                  in->max_abs_err, (long long)h->nbad, (long long)(h->rows * h->cols), r->atol,
                  r->rtol);
    char shape[NB_SHAPE_STR_LEN];
    nb__sb_printf(b, "<text x=\"12\" y=\"60\">output %s: %lld %s, %lld input elements",
                  nb_dims_str(r->out_ndim, r->out_shape, shape), (long long)h->rows,
                  h->rows == 1 && in->worst_out < 0 ? "row (projected)" : "rows",
                  (long long)h->cols);
    if (in->worst >= 0)
        nb__sb_printf(b, "; worst: analytic %.4g, numeric %.4g", in->analytic, in->numeric);
    nb__sb_puts(b, "</text>\n<g id=\"cells\" shape-rendering=\"crispEdges\">\n");
    char s[8];
    for (int i = 0; i < h->dr; i++)
        for (int j = 0; j < h->dc; j++)
            svg_rect(b, SVG_L + j * h->cell, SVG_T + i * h->cell, h->cell, h->cell,
                     hex(cell_colour(h, i, j), s), "");
    nb__sb_puts(b, "</g>\n");
    svg_rect(b, SVG_L, SVG_T, gw, gh, "none", " stroke=\"#888\"");
    /* The outline, just outside the worst cell. */
    double o = h->cell >= 8 ? 1.5 : 1;
    nb__sb_printf(b, "<rect id=\"worst\" data-row=\"%d\" data-col=\"%d\" x=\"%.1f\" y=\"%.1f\" "
                     "width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"%s\" "
                     "stroke-width=\"%.0f\"/>\n",
                  h->wr, h->wc, SVG_L + h->wc * h->cell - o, SVG_T + h->wr * h->cell - o,
                  h->cell + 2 * o, h->cell + 2 * o, hex(OUTLINE, s), 2 * o);
    svg_ticks(b, h, true);
    svg_ticks(b, h, false);
    nb__sb_printf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-size=\"12\">input "
                     "element</text>\n",
                  SVG_L + gw / 2, SVG_T + gh + 34);
    nb__sb_printf(b, "<text transform=\"translate(%d %d) rotate(-90)\" text-anchor=\"middle\" "
                     "font-size=\"12\">output element</text>\n",
                  SVG_L - 52, SVG_T + gh / 2);
    if (h->gr > 1 || h->gc > 1)
        nb__sb_printf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" fill=\"#555\">each "
                         "cell: the largest error of %lld x %lld entries</text>\n",
                      SVG_L + gw / 2, SVG_T + gh + 52, (long long)h->gr, (long long)h->gc);
    svg_legend(b, h, lx, SVG_T + 16);
    nb__sb_puts(b, "</svg>\n");
}

/* ---- the heat map as PNG ---- */

static void fill(uint8_t *px, int w, int x0, int y0, int x1, int y1, rgb c)
{
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) {
            uint8_t *p = px + 3 * ((size_t)y * w + x);
            p[0] = c.r, p[1] = c.g, p[2] = c.b;
        }
}

/* A frame of thickness t just outside the box [x0, x1) x [y0, y1). */
static void frame(uint8_t *px, int w, int x0, int y0, int x1, int y1, int t, rgb c)
{
    fill(px, w, x0 - t, y0 - t, x1 + t, y0, c);
    fill(px, w, x0 - t, y1, x1 + t, y1 + t, c);
    fill(px, w, x0 - t, y0, x0, y1, c);
    fill(px, w, x1, y0, x1 + t, y1, c);
}

static int png_heat(const heat *h, uint8_t **out, size_t *n)
{
    int c = h->cell, w = h->dc * c + 2 * PNG_PAD, ht = h->dr * c + 2 * PNG_PAD;
    uint8_t *px = nb__alloc((size_t)w * ht * 3);
    if (!px)
        return -1;
    fill(px, w, 0, 0, w, ht, WHITE);
    for (int i = 0; i < h->dr; i++)
        for (int j = 0; j < h->dc; j++)
            fill(px, w, PNG_PAD + j * c, PNG_PAD + i * c, PNG_PAD + (j + 1) * c,
                 PNG_PAD + (i + 1) * c, cell_colour(h, i, j));
    frame(px, w, PNG_PAD, PNG_PAD, w - PNG_PAD, ht - PNG_PAD, 1, FRAME);
    int x0 = PNG_PAD + h->wc * c, y0 = PNG_PAD + h->wr * c;
    frame(px, w, x0, y0, x0 + c, y0 + c, c >= 8 ? 2 : 1, OUTLINE);
    int rc = nb__png_encode("nb_check_heatmap", px, w, ht, out, n);
    nb__free(px);
    return rc;
}

int nb_check_heatmap(const nb_check_report *report, int input, const char *path)
{
    if (!report)
        return nb__error("nb_check_heatmap: report is NULL");
    if (!path)
        return nb__error("nb_check_heatmap: path is NULL");
    fmt f = format_of(path);
    if (f != FMT_SVG && f != FMT_PNG)
        return nb__error("nb_check_heatmap: cannot tell the format of '%s': the name must end "
                         "in .svg or .png",
                         path);
    int n = report->n < 0 ? 0 : report->n > NB_MAX_INPUTS + 1 ? NB_MAX_INPUTS + 1 : report->n;
    if (input < 0 || input >= n)
        return nb__error("nb_check_heatmap: input index %d is out of range (the report's "
                         "entries: %d)",
                         input, report->n);
    const nb_check_input *in = &report->input[input];
    if (in->rows <= 0 || in->cols <= 0 || !in->jacobian_analytic || !in->jacobian_numeric)
        return nb__error("nb_check_heatmap: no Jacobian kept for input index %d (rows %lld, cols "
                         "%lld): reports keep one only for a failing input",
                         input, (long long)in->rows, (long long)in->cols);
    if (in->rows > INT64_MAX / in->cols || in->rows * in->cols > NB_MAX_NUMEL)
        return nb__error("nb_check_heatmap: a Jacobian of %lld x %lld entries is too large",
                         (long long)in->rows, (long long)in->cols);
    heat h = {.r = report, .in = in, .input = input, .rows = in->rows, .cols = in->cols};
    int rc = heat_build(&h);
    if (rc == 0 && f == FMT_SVG) {
        nb_sbuf b = {0};
        svg_heat(&b, &h);
        rc = b.failed ? -1 : nb__write_file("nb_check_heatmap", path, b.p, b.n);
        nb__free(b.p);
    } else if (rc == 0) {
        uint8_t *png = NULL;
        size_t len = 0;
        rc = png_heat(&h, &png, &len);
        if (rc == 0)
            rc = nb__write_file("nb_check_heatmap", path, png, len);
        nb__free(png);
    }
    nb__free(h.err);
    nb__free(h.bad);
    return rc;
}

/* ---- the graph with its failing nodes ---- */

#define NOTE_LEN 128

/* Checks node nd's op on copies of its inputs: 1 when its backward is
 * wrong (note filled), 0 when not (passed, vacuous, at a kink), -1 with an
 * error when the check cannot run. */
static int check_node(const nb_node *nd, const nb_check_opts *opts, char *note)
{
    nb_check_report r;
    nb__check_report_init(&r, nd->n, 1, NULL);
    nb_tensor *c[NB_MAX_INPUTS] = {0};
    bool ran = nb__check_copies(nd->x, nd->n, NB_F64, c, &r);
    for (int i = 0; ran && i < nd->n; i++)
        c[i]->requires_grad = false;
    for (int i = 0; ran && i < nd->n; i++)
        c[i]->requires_grad |= nd->x[i]->requires_grad && !(nd->op->nondiff & NB_INPUT(i));
    nb_check_op oc = {nd->op, nd->attr};
    if (ran)
        nb_gradcheck(nb__check_apply, &oc, nd->n, c, opts, &r);
    /* The worst failing input. */
    int worst = -1;
    for (int i = 0; ran && i < r.n && i < NB_MAX_INPUTS; i++) {
        const nb_check_input *in = &r.input[i];
        if (in->verdict != NB_CHECK_FAILED)
            continue;
        if (worst < 0 || isnan(in->max_abs_err) || in->max_abs_err > r.input[worst].max_abs_err)
            worst = i;
    }
    int rc = 0;
    if (!ran || r.verdict == NB_CHECK_ERROR)
        rc = nb__error("nb_check_graph: the check of the %s node could not run: %s",
                       nd->op->name ? nd->op->name : "?", r.message);
    else if (r.verdict == NB_CHECK_FAILED && worst >= 0) {
        const nb_check_input *in = &r.input[worst];
        char what[48] = "";
        if (in->pattern == NB_PATTERN_SCALED)
            snprintf(what, sizeof what, ", scaled by %.3g", in->factor);
        else if (in->pattern == NB_PATTERN_SWAPPED)
            snprintf(what, sizeof what, ", input %d's", (int)in->factor + 1);
        else if (in->pattern > NB_PATTERN_NONE && in->pattern <= NB_PATTERN_NAN)
            snprintf(what, sizeof what, ", %s",
                     (const char *[]){"", "zero", "", "through broadcasting", "transposed", "",
                                      "in a few elements", "NaN"}[in->pattern]);
        snprintf(note, NOTE_LEN, "gradcheck FAIL: max abs err %.1e (input %d%s)",
                 in->max_abs_err, worst + 1, what);
        rc = 1;
    }
    nb_check_report_free(&r);
    nb__check_free_copies(nd->x, c, nd->n);
    if (rc >= 0)
        nb_clear_error(); /* what the check's own evaluations left */
    return rc;
}

static int graph_args(nb_check_fn f, int n, nb_tensor *const x[], const nb_check_opts *opts,
                      const char *path, fmt *format)
{
    if (!path)
        return nb__error("nb_check_graph: path is NULL");
    *format = format_of(path);
    if (*format == FMT_NONE)
        return nb__error("nb_check_graph: cannot tell the format of '%s': the name must end "
                         "in .dot, .svg or .png",
                         path);
    if (*format != FMT_DOT && !nb_dot_can_render())
        return nb__error("nb_check_graph: cannot write '%s': this nabla was built without "
                         "Graphviz (libgvc); write a .dot file and run `dot -Tsvg`",
                         path);
    if (!f)
        return nb__error("nb_check_graph: the function is NULL");
    if (n < 1 || n > NB_MAX_INPUTS)
        return nb__error("nb_check_graph: needs 1 to %d inputs (NB_MAX_INPUTS), got %d",
                         NB_MAX_INPUTS, n);
    if (!x)
        return nb__error("nb_check_graph: the input array is NULL");
    for (int i = 0; i < n; i++)
        if (!x[i])
            return nb__error("nb_check_graph: input %d is NULL", i + 1);
    nb_check_report r;
    if (!nb__check_opts_valid("nb_check_graph", opts, &r))
        return nb__error("%s", r.message);
    return 0;
}

/* Prefixes the pending error with "nb_check_graph: ", keeping its code (a
 * u8 input's NB_ERR_DTYPE, ...). Returns -1. */
static int graph_error(const char *what)
{
    char msg[sizeof nb__thread()->err_msg];
    nb_error_code code = nb_last_error_code();
    snprintf(msg, sizeof msg, "%s", nb_last_error() ? nb_last_error() : "no message");
    return nb__error_code(code ? code : NB_ERR_INVALID, "nb_check_graph: %s: %s", what, msg);
}

int nb_check_graph(nb_check_fn f, void *ctx, int n, nb_tensor *const x[],
                   const nb_check_opts *opts, const char *path)
{
    nb_clear_error();
    fmt format;
    if (graph_args(f, n, x, opts, path, &format))
        return -1;
    nb_check_opts o = opts ? *opts : (nb_check_opts){0};
    o.dtype = NB_F64;
    o.layout = NB_LAYOUT_CONTIGUOUS;

    bool was = nb_set_grad_enabled(true);
    nb_graph *g = nb_graph_new(); /* current until freed; the caller's comes back */
    nb_tensor *y = g ? f(x, n, ctx) : NULL;
    nb_set_grad_enabled(was);
    nb_walk w = {0};
    const char *stage = !g ? "nb_graph_new" : !y ? "the function failed" : NULL;
    if (!stage && nb__walk(&w, y, false, NULL))
        stage = "walking the graph";
    /* The failing nodes' outputs, and their notes for the picture. */
    size_t count = stage ? 0 : (size_t)w.order.n;
    nb_tensor **marked = NULL;
    const char **notes = NULL;
    char(*text)[NOTE_LEN] = NULL;
    if (!stage && (!(marked = nb__alloc(count * sizeof *marked)) ||
                   !(notes = nb__alloc(count * sizeof *notes)) ||
                   !(text = nb__alloc(count * sizeof *text))))
        stage = "out of memory";
    int rc = -1, failing = 0, nodes = 0;
    if (stage) {
        graph_error(stage);
        goto done;
    }
    for (size_t k = 0; k < count; k++) {
        nb_tensor *t = ((nb_tensor **)w.order.v)[k];
        if (!t->node)
            continue;
        nodes++;
        int bad = check_node(t->node, &o, text[failing]);
        if (bad < 0)
            goto done;
        if (bad) {
            marked[failing] = t;
            notes[failing] = text[failing];
            failing++;
        }
    }
    char title[96];
    snprintf(title, sizeof title, "gradcheck of each node: %d of %d failing", failing, nodes);
    nb_dot_opts d = {.title = title, .marked = marked, .marked_notes = notes, .n_marked = failing};
    if ((format == FMT_DOT ? nb_dot_write(y, path, &d) : nb_dot_render(y, path, &d)) != 0)
        graph_error("writing the picture");
    else
        rc = failing;
done:
    nb__free(marked);
    nb__free(notes);
    nb__free(text);
    nb__walk_free(&w);
    if (g)
        nb_graph_free(g);
    return rc;
}
