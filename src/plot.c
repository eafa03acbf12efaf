/* Training curves: a history (nb_fit's) drawn with PLplot, one panel for
 * the loss and one per metric, each with the training and the validation
 * curve against the epoch.
 *
 * PLplot is a library of global state that prints and exits on trouble;
 * here it is kept from doing either:
 *   - it never opens a file: PNG is drawn by the memcairo device into a
 *     buffer (then encoded by src/io/png.c), SVG by the svg device into a
 *     memory stream (plsfile), and nabla writes the bytes;
 *   - the device is looked up first (plgDevs): an unknown one would make
 *     plinit prompt on stdin;
 *   - aborted operations report into plsError's buffer instead of stderr,
 *     and the limits and texts given to it are ones it takes without a
 *     warning (plwarn has no hook);
 *   - plexit (out of memory, a driver that does not load) calls the exit
 *     handler, which jumps back here before PLplot prints or exits. PLplot's
 *     state is then undefined: later calls give an error instead.
 * One plot at a time, under a mutex. */
#define _POSIX_C_SOURCE 200809L /* open_memstream */

#include "internal.h"
#include "io/png.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#ifdef NB_HAVE_PLPLOT
#include <plplot.h>
#include <setjmp.h>
#include <threads.h>
#endif

#define FN "nb_plot_history"

bool nb_plot_can_render(void)
{
#ifdef NB_HAVE_PLPLOT
    return true;
#else
    return false;
#endif
}

/* The history's shape, checked before PLplot sees it. */
static int check_history(const nb_history *h)
{
    if (!h)
        return nb__error(FN ": the history is NULL");
    if (h->epochs < 1)
        return nb__error(FN ": the history is empty (%d epochs)", h->epochs);
    if (h->epochs > 1000000 || h->initial_epoch < 0 || h->initial_epoch > INT32_MAX - h->epochs)
        return nb__error(FN ": %d epochs from epoch %d are more than a plot shows", h->epochs,
                         h->initial_epoch);
    if (!h->loss)
        return nb__error(FN ": the history has no loss values (loss is NULL)");
    if (h->nmetrics < 0 || h->nmetrics > NB_MAX_METRICS)
        return nb__error(FN ": nmetrics is %d, not in [0, %d]", h->nmetrics, NB_MAX_METRICS);
    for (int i = 0; i < h->nmetrics; i++) {
        if (!h->metric_names[i] || !h->metrics[i])
            return nb__error(FN ": metric %d has no %s", i, h->metrics[i] ? "name" : "values");
        if (!h->metric_names[i][0] || strlen(h->metric_names[i]) > 64)
            return nb__error(FN ": metric %d's name must have 1 to 64 characters", i);
    }
    return 0;
}

#ifdef NB_HAVE_PLPLOT

/* ---- PLplot under guard ---------------------------------------------------------- */

static once_flag pl_once = ONCE_FLAG_INIT;
static mtx_t pl_lock;
static bool pl_lock_ok;
static jmp_buf pl_jump;     /* where plexit comes back to, under pl_lock */
static bool pl_broken;      /* a plexit happened: PLplot's state is undefined */
static char pl_exit_msg[256], pl_broken_msg[256];

static void pl_init(void) { pl_lock_ok = mtx_init(&pl_lock, mtx_plain) == thrd_success; }

static int pl_on_exit(const char *msg)
{
    snprintf(pl_exit_msg, sizeof pl_exit_msg, "%s", msg ? msg : "");
    longjmp(pl_jump, 1);
}

/* Whether this PLplot has the device (a missing one would prompt on stdin). */
static bool has_device(const char *name)
{
    enum { CAP = 128 };
    const char *menu[CAP], *names[CAP];
    const char **pm = menu, **pn = names;
    int n = CAP;
    plgDevs(&pm, &pn, &n);
    for (int i = 0; i < n; i++)
        if (names[i] && strcmp(names[i], name) == 0)
            return true;
    return false;
}

/* PLplot text: '#' starts its escapes, so it is doubled. */
static void pl_text(char *dst, size_t cap, const char *s)
{
    size_t k = 0;
    for (; *s && k + 3 < cap; s++) {
        if (*s == '#')
            dst[k++] = '#';
        dst[k++] = *s;
    }
    dst[k] = '\0';
}

/* ---- the picture ------------------------------------------------------------------- */

enum { PANEL_W = 560, PANEL_H = 400, TITLE_H = 56 };
/* Letters of the same size on any page: PLplot would scale them with it.
 * Both devices draw at 72 dots per inch, so 4.4 mm are 12.5 pixels. */
#define CHR_MM 4.4
enum { C_BG, C_FG, C_TRAIN, C_VAL, C_GRID, C_TEXT };

typedef struct {
    const char *name;
    const double *train, *val; /* val may be NULL */
} series;

static void range_of(const series *s, int n, double *lo, double *hi)
{
    double a = INFINITY, b = -INFINITY;
    for (int i = 0; i < n; i++) {
        double v[2] = {s->train[i], s->val ? s->val[i] : NAN};
        for (int k = 0; k < 2; k++)
            if (isfinite(v[k])) {
                a = v[k] < a ? v[k] : a;
                b = v[k] > b ? v[k] : b;
            }
    }
    if (!(a <= b)) { /* nothing finite */
        a = 0, b = 1;
    }
    double pad = (b - a) * 0.08;
    if (!(pad > 0))
        pad = fabs(a) > 1e-6 ? fabs(a) * 0.05 : 0.05;
    double l = a - pad, h = b + pad;
    if (!isfinite(l) || !isfinite(h) || !(h > l)) { /* beyond what a plot shows */
        l = -1, h = 1;
    }
    *lo = l, *hi = h;
}

/* The last finite value of v, NAN if none. */
static double last_of(const double *v, int n)
{
    for (int i = n - 1; v && i >= 0; i--)
        if (isfinite(v[i]))
            return v[i];
    return NAN;
}

/* A curve through the finite values, broken at the others, with a dot at
 * each point while they are few enough to tell apart. */
static void curve(const double *x, const double *y, int n, int colour, int style)
{
    plcol0(colour);
    pllsty(style);
    plwidth(2.2);
    for (int i = 0; i < n;) {
        while (i < n && !isfinite(y[i]))
            i++;
        int j = i;
        while (j < n && isfinite(y[j]))
            j++;
        if (j - i > 1)
            plline(j - i, x + i, y + i);
        plschr(CHR_MM, 1.5);
        if (n <= 40)
            for (int k = i; k < j; k++)
                plstring(1, x + k, y + k, "•");
        plschr(CHR_MM, 1.0);
        i = j;
    }
    pllsty(1);
    plwidth(1);
}

/* Ticks on whole epochs: 1, 2, 5, 10, 20, ... apart, at most 10 of them. */
static double epoch_step(double span)
{
    double step = 1;
    for (int k = 0; span / step > 10 && k < 30; k++)
        step *= k % 3 == 1 ? 2.5 : 2; /* 1, 2, 5, 10, 20, 50 ... */
    return step;
}

/* Points of the curves (and of their segments) that fall in the box
 * [x0, x1] x [y0, y1] of the panel, in fractions of its window. */
static int crowding(const series *s, const double *x, int n, double wx0, double wx1, double lo,
                    double hi, double x0, double x1, double y0, double y1)
{
    int count = 0;
    for (int c = 0; c < 2; c++) {
        const double *y = c ? s->val : s->train;
        for (int i = 0; y && i < n; i++) {
            bool seg = i + 1 < n && isfinite(y[i + 1]);
            for (int k = 0; isfinite(y[i]) && k < (seg ? 8 : 1); k++) {
                double t = k / 8.0, px = x[i] + (seg ? (x[i + 1] - x[i]) * t : 0),
                       py = y[i] + (seg ? (y[i + 1] - y[i]) * t : 0);
                double fx = (px - wx0) / (wx1 - wx0), fy = (py - lo) / (hi - lo);
                count += fx >= x0 && fx <= x1 && fy >= y0 && fy <= y1;
            }
        }
    }
    return count;
}

static void panel(const series *s, const double *x, int n, bool has_val, double vx0, double vx1,
                  double vy0, double vy1)
{
    double lo, hi;
    range_of(s, n, &lo, &hi);
    double span = x[n - 1] - x[0], pad = span > 0 ? span * 0.04 : 0.5;
    double wx0 = x[0] - pad, wx1 = x[n - 1] + pad;
    /* The legend goes into the first corner no curve passes through
     * (matplotlib's "best"); if every corner is taken, the top gets room. */
    static const PLINT corners[4] = {PL_POSITION_TOP | PL_POSITION_RIGHT,
                                     PL_POSITION_BOTTOM | PL_POSITION_RIGHT,
                                     PL_POSITION_TOP | PL_POSITION_LEFT,
                                     PL_POSITION_BOTTOM | PL_POSITION_LEFT};
    static const double boxes[4][4] = {{0.5, 1, 0.74, 1}, {0.5, 1, 0, 0.26},
                                       {0, 0.5, 0.74, 1}, {0, 0.5, 0, 0.26}};
    int corner = -1;
    for (int k = 0; k < 4 && corner < 0; k++)
        if (!crowding(s, x, n, wx0, wx1, lo, hi, boxes[k][0], boxes[k][1], boxes[k][2],
                      boxes[k][3]))
            corner = k;
    if (corner < 0) {
        hi += (hi - lo) * 0.4;
        corner = 0;
    }
    plvpor(vx0, vx1, vy0, vy1);
    plwind(wx0, wx1, lo, hi);
    plcol0(C_GRID);
    plbox("g", epoch_step(span), 1, "g", 0, 0);
    plcol0(C_FG);
    plbox("bcnst", epoch_step(span), 1, "bcnstv", 0, 0);
    char name[160];
    pl_text(name, sizeof name, s->name);
    plcol0(C_TEXT);
    plmtex("b", 3.0, 0.5, 0.5, "epoch");
    plmtex("l", 5.0, 0.5, 0.5, name);
    plschr(CHR_MM, 1.1);
    plmtex("t", 1.0, 0.0, 0.0, name);
    plschr(CHR_MM, 1.0);

    if (has_val)
        curve(x, s->val, n, C_VAL, 2);
    curve(x, s->train, n, C_TRAIN, 1);

    /* Each entry ends with the last value. */
    double lt = last_of(s->train, n), lv = last_of(s->val, n);
    char t0[64], t1[64];
    snprintf(t0, sizeof t0, isfinite(lt) ? "training %.4g" : "training", lt);
    snprintf(t1, sizeof t1, isfinite(lv) ? "validation %.4g" : "validation", lv);
    int nl = has_val ? 2 : 1;
    PLINT opt[2] = {PL_LEGEND_LINE, PL_LEGEND_LINE}, tcol[2] = {C_TEXT, C_TEXT},
          lcol[2] = {C_TRAIN, C_VAL}, lsty[2] = {1, 2};
    PLFLT lw[2] = {2.2, 2.2}, w, hgt;
    const char *txt[2] = {t0, t1};
    pllegend(&w, &hgt, PL_LEGEND_BACKGROUND | PL_LEGEND_BOUNDING_BOX,
             PL_POSITION_INSIDE | corners[corner], 0.02, 0.03, 0.08, C_BG, C_GRID, 1, nl, 1, nl,
             opt, 0.8, 0.85, 1.8, 0.0, tcol, txt, NULL, NULL, NULL, NULL, lcol, lsty, lw, NULL,
             NULL, NULL, NULL);
}

/* Draws every panel on a page of w x h (PLplot set up for a device). */
static void draw(const nb_history *h, const double *x, int cols, int rows, int w, int ht)
{
    plscolbg(255, 255, 255);
    plscol0(C_FG, 40, 40, 40);
    plscol0(C_TRAIN, 31, 119, 180); /* matplotlib's first two: blue, orange */
    plscol0(C_VAL, 255, 127, 14);
    plscol0(C_GRID, 225, 225, 225);
    plscol0(C_TEXT, 20, 20, 20);
    plinit();
    plschr(CHR_MM, 1.0);
    pladv(0);
    plvpor(0, 1, 0, 1);
    plwind(0, 1, 0, 1);
    bool has_val = false;
    for (int i = 0; h->val_loss && i < h->epochs; i++)
        has_val |= isfinite(h->val_loss[i]);
    char title[96], epochs[40];
    if (h->epochs == 1)
        snprintf(epochs, sizeof epochs, "epoch %d", h->initial_epoch + 1);
    else
        snprintf(epochs, sizeof epochs, "epochs %d to %d", h->initial_epoch + 1,
                 h->initial_epoch + h->epochs);
    snprintf(title, sizeof title, "training curves, %s%s", epochs,
             has_val ? "" : " (no validation data)");
    plcol0(C_TEXT);
    plschr(CHR_MM, 1.35);
    plptex(0.5, 1 - (TITLE_H * 0.55) / ht, 1, 0, 0.5, title);
    plschr(CHR_MM, 1.0);
    /* Margins in pixels, as fractions of the page: room for the tick
     * labels, the axis labels and the panel's title. */
    double ml = 88.0 / w, mr = 24.0 / w, mt = (TITLE_H + 40.0) / ht, mb = 60.0 / ht;
    double pw = 1.0 / cols, ph = (1.0 - (double)TITLE_H / ht) / rows;
    for (int k = 0; k <= h->nmetrics; k++) {
        series s = k == 0 ? (series){"loss", h->loss, h->val_loss}
                          : (series){h->metric_names[k - 1], h->metrics[k - 1],
                                     h->val_metrics[k - 1]};
        int c = k % cols, r = k / cols;
        double x0 = c * pw, y1 = 1.0 - (double)TITLE_H / ht - r * ph;
        panel(&s, x, h->epochs, has_val && s.val, x0 + ml, x0 + pw - mr, y1 - ph + mb,
              y1 - (mt - (double)TITLE_H / ht));
    }
}

/* PNG or SVG bytes of the picture into *out (nb_mem_alloc'd), under
 * pl_lock. The message of a failure into msg. */
static int render(const nb_history *h, const double *x, const char *fmt, uint8_t **out,
                  size_t *n, char *msg, size_t cap, int *code_out)
{
    *code_out = NB_ERR_STATE; /* PLplot's troubles; allocations say NB_ERR_MEMORY */
    int panels = 1 + h->nmetrics;
    int cols = panels < 3 ? panels : panels == 4 ? 2 : 3, rows = (panels + cols - 1) / cols;
    int w = cols * PANEL_W, ht = rows * PANEL_H + TITLE_H;
    bool png = strcmp(fmt, "png") == 0;
    const char *dev = png ? "memcairo" : "svg";
    /* Touched between setjmp and a longjmp back: volatile. */
    uint8_t *volatile rgb = NULL;
    char *volatile text = NULL;
    FILE *volatile stream = NULL;
    size_t text_n = 0;
    PLINT code = 0;
    char errmsg[1024] = "";
    pl_exit_msg[0] = '\0';
    plsexit(pl_on_exit);
    if (setjmp(pl_jump)) {
        pl_broken = true;
        snprintf(pl_broken_msg, sizeof pl_broken_msg, "%s", pl_exit_msg);
        snprintf(msg, cap, "PLplot stopped: %s", pl_exit_msg);
        /* The stream, if open, may or may not be closed: left as it is. */
        nb__free(rgb);
        plsexit(NULL);
        return -1;
    }
    if (!has_device(dev)) {
        snprintf(msg, cap, "PLplot has no '%s' device (install its cairo driver, Debian's "
                           "plplot-driver-cairo)",
                 dev);
        plsexit(NULL);
        return -1;
    }
    int rc = -1;
    plsError(&code, errmsg);
    plsdev(dev);
    char *buf = NULL; /* open_memstream's, set when PLplot closes the stream */
    if (png) {
        size_t bytes = (size_t)w * (size_t)ht * 3;
        if (!(rgb = nb__alloc(bytes))) {
            *code_out = NB_ERR_MEMORY;
            snprintf(msg, cap, "out of memory for a %dx%d picture", w, ht);
            plsexit(NULL);
            return -1;
        }
        memset(rgb, 255, bytes); /* memcairo draws on what the buffer holds */
        plsmem(w, ht, rgb);
    } else {
        if (!(stream = open_memstream(&buf, &text_n))) {
            *code_out = NB_ERR_MEMORY;
            snprintf(msg, cap, "cannot open a memory stream: %s", strerror(errno));
            plsexit(NULL);
            return -1;
        }
        plsfile(stream); /* PLplot closes it in plend1 */
        plspage(0, 0, w, ht, 0, 0);
    }
    draw(h, x, cols, rows, w, ht);
    plend1();
    text = buf;
    plsexit(NULL);
    if (code) {
        size_t k = strlen(errmsg);
        while (k && (errmsg[k - 1] == '\n' || errmsg[k - 1] == ' '))
            errmsg[--k] = '\0';
        snprintf(msg, cap, "PLplot: %s", errmsg);
    } else if (png) {
        rc = nb__png_encode(FN, rgb, w, ht, out, n);
        if (rc) {
            *code_out = (int)nb_last_error_code();
            snprintf(msg, cap, "%s", nb_last_error());
        }
    } else if (!text || text_n < 8 || !strstr(text + text_n - 8, "</svg>")) {
        *code_out = NB_ERR_MEMORY; /* a memory stream fails only so */
        snprintf(msg, cap, "the SVG text is incomplete (%zu bytes; out of memory?)", text_n);
    } else if (!(*out = nb__alloc(text_n))) {
        *code_out = NB_ERR_MEMORY;
        snprintf(msg, cap, "out of memory for %zu bytes of SVG", text_n);
    } else {
        memcpy(*out, text, text_n);
        *n = text_n;
        rc = 0;
    }
    free(text); /* open_memstream's, from malloc */
    nb__free(rgb);
    return rc;
}

#endif

int nb_plot_history(const nb_history *h, const char *path)
{
    if (!nb_plot_can_render())
        return nb__state_error(FN ": this nabla was built without PLplot (libplplot-dev and "
                                  "plplot-driver-cairo; meson -Dplplot=enabled)");
    if (!path)
        return nb__error(FN ": path is NULL");
    const char *fmt = nb__picture_format(path);
    if (!fmt)
        return nb__error(FN ": cannot tell the format of '%s': the name must end in .svg or "
                            ".png",
                         path);
    if (check_history(h))
        return -1;
#ifdef NB_HAVE_PLPLOT
    double *x = nb__alloc((size_t)h->epochs * sizeof *x);
    if (!x)
        return nb__memory_error(FN ": out of memory for %d epochs", h->epochs);
    for (int i = 0; i < h->epochs; i++)
        x[i] = h->initial_epoch + 1 + i;
    call_once(&pl_once, pl_init);
    if (!pl_lock_ok) {
        nb__free(x);
        return nb__error(FN ": could not make PLplot's lock");
    }
    uint8_t *data = NULL;
    size_t n = 0;
    char msg[400] = "";
    int code = NB_ERR_STATE;
    mtx_lock(&pl_lock);
    int rc;
    if (pl_broken) {
        snprintf(msg, sizeof msg, "PLplot stopped earlier in this process (%s) and cannot be "
                                  "used again",
                 pl_broken_msg);
        rc = -1;
    } else
        rc = render(h, x, fmt, &data, &n, msg, sizeof msg, &code);
    mtx_unlock(&pl_lock);
    nb__free(x);
    if (rc == 0)
        rc = nb__write_file(FN, path, data, n);
    else
        nb__error_code((nb_error_code)code, FN ": drawing '%s' failed: %s", path, msg);
    nb__free(data);
    return rc;
#else
    return -1;
#endif
}
