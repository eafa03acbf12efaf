/* Data-parallel training over MPI (include/nabla/dist.h). Every wait is a
 * loop of MPI_Test calls against a deadline, so that a lost rank is an
 * error here instead of a hang; the loop also answers the other ranks'
 * liveness probes, which is how a rank that timed out names the lost one. */
#define _POSIX_C_SOURCE 200809L
#include "internal.h"
#include "nabla/dist.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <math.h>
#include <mpi.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { TAG_PROBE = 1, TAG_ALIVE = 2, HOST_LEN = 64 };
/* How long a rank that timed out waits for the answers to its probes: the
 * live ranks are polling, and answer within milliseconds. */
#define PROBE_S 2.0

typedef struct {
    int pid;
    char host[HOST_LEN];
} peer;

/* One gradient bucket: a contiguous run of the flat buffer, allreduced as
 * one. Parameters are laid out last first, the order backward finishes
 * them in. */
typedef struct {
    size_t off, bytes;
    nb_dtype dtype;
    int pending; /* parameters whose gradients are not in yet */
    bool started, done;
    double t_start, t_end;
    MPI_Request req;
} bucket;

typedef struct {
    nb_tensor *const *params;
    int n;
    size_t *off;   /* each parameter's byte offset in the flat buffer */
    int *bkt;      /* and its bucket */
    bool *ready;
    int cursor;    /* where the next ready parameter is looked for first */
    int next;      /* the first bucket not started (they start in order on every rank) */
} plan;

static struct {
    bool on, owns_mpi, broken;
    MPI_Comm comm, probe;
    int rank, size;
    peer *peers;
    char lost[400]; /* why the last collective failed, repeated by later ones */
    /* nb_dist_backward's buffers, kept from call to call */
    char *flat;
    size_t flat_cap;
    bucket *bk;
    int nbk, bk_cap;
    size_t *off;
    int *bkt;
    bool *ready;
    int par_cap;
    nb_dist_stats stats;
} D = {.rank = 0, .size = 1};

bool nb_dist_built(void) { return true; }
int nb_dist_rank(void) { return D.rank; }
int nb_dist_size(void) { return D.size; }

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int dist_error(const char *fn, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static int dist_error(const char *fn, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return nb__error_code(NB_ERR_DIST, "%s: %s", fn, msg);
}

static int mpi_failed(const char *fn, const char *what, int rc)
{
    char s[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, s, &len) != MPI_SUCCESS)
        snprintf(s, sizeof s, "error %d", rc);
    D.broken = true;
    snprintf(D.lost, sizeof D.lost, "MPI failed in %s on rank %d of %d: %.200s", what, D.rank,
             D.size, s);
    return dist_error(fn, "%s", D.lost);
}

/* Answers the probes other ranks sent while they wait for this one. */
static void serve_probes(void)
{
    for (;;) {
        int flag = 0, v;
        MPI_Status st;
        if (MPI_Iprobe(MPI_ANY_SOURCE, TAG_PROBE, D.probe, &flag, &st) != MPI_SUCCESS || !flag)
            return;
        MPI_Recv(&v, 1, MPI_INT, st.MPI_SOURCE, TAG_PROBE, D.probe, MPI_STATUS_IGNORE);
        MPI_Request r;
        if (MPI_Isend(&D.rank, 1, MPI_INT, st.MPI_SOURCE, TAG_ALIVE, D.probe, &r) ==
            MPI_SUCCESS)
            MPI_Request_free(&r);
    }
}

/* Whether rank r's process is gone, as far as this host can tell: only for
 * a rank on this host (a zombie counts as gone). */
static bool gone(int r)
{
    char host[HOST_LEN] = "";
    gethostname(host, sizeof host - 1);
    if (!D.peers || strcmp(D.peers[r].host, host) != 0)
        return false;
    if (kill(D.peers[r].pid, 0) != 0 && errno == ESRCH)
        return true;
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%d/stat", D.peers[r].pid);
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    return p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X');
}

/* The deadline passed in a collective: probe every other rank, wait a
 * little for their answers (the live ones are waiting too, and answer),
 * and name those that did not. nabla's collectives fail from then on. */
static int lost(const char *fn, const char *what, double waited)
{
    int n = D.size;
    MPI_Request *rq = nb_mem_alloc((size_t)(2 * n) * sizeof *rq);
    int *ans = nb_mem_alloc((size_t)n * sizeof *ans);
    char who[96] = "";
    size_t len = 0;
    int first = -1, nlost = 0;
    if (rq && ans) {
        for (int r = 0; r < n; r++) {
            rq[2 * r] = rq[2 * r + 1] = MPI_REQUEST_NULL;
            ans[r] = -1;
            if (r == D.rank)
                continue;
            MPI_Isend(&D.rank, 1, MPI_INT, r, TAG_PROBE, D.probe, &rq[2 * r]);
            MPI_Irecv(&ans[r], 1, MPI_INT, r, TAG_ALIVE, D.probe, &rq[2 * r + 1]);
        }
        double end = now() + (nb__dist.timeout < PROBE_S ? nb__dist.timeout : PROBE_S);
        for (int missing = n - 1; missing > 0 && now() < end;) {
            serve_probes();
            missing = 0;
            for (int r = 0; r < n; r++) {
                int done = 1;
                if (r != D.rank && rq[2 * r + 1] != MPI_REQUEST_NULL)
                    MPI_Test(&rq[2 * r + 1], &done, MPI_STATUS_IGNORE);
                missing += !done;
            }
            struct timespec nap = {0, 1000000};
            nanosleep(&nap, NULL);
        }
        for (int r = 0; r < n; r++) {
            if (r == D.rank || ans[r] == r)
                continue;
            if (first < 0)
                first = r;
            nlost++;
            if (len < sizeof who - 16)
                len += (size_t)snprintf(who + len, sizeof who - len, "%s%d", len ? ", " : "", r);
            /* The requests to a lost rank never finish: let MPI forget them. */
            if (rq[2 * r + 1] != MPI_REQUEST_NULL) {
                MPI_Cancel(&rq[2 * r + 1]);
                MPI_Request_free(&rq[2 * r + 1]);
            }
        }
        for (int r = 0; r < n; r++)
            if (rq[2 * r] != MPI_REQUEST_NULL)
                MPI_Request_free(&rq[2 * r]);
    }
    nb_mem_free(rq);
    nb_mem_free(ans);
    D.broken = true;
    if (first < 0)
        snprintf(D.lost, sizeof D.lost, "rank %d waited %.0f s for %s; every rank answers, "
                 "so one is stuck outside nabla's collectives", D.rank, waited, what);
    else if (gone(first) && nlost == 1)
        snprintf(D.lost, sizeof D.lost, "lost rank %d: its process (pid %d on %s) is gone; "
                 "rank %d waited %.0f s for %s", first, D.peers[first].pid,
                 D.peers[first].host, D.rank, waited, what);
    else
        snprintf(D.lost, sizeof D.lost, "lost rank%s %s: no answer within %.0f s to rank %d "
                 "waiting for %s", nlost > 1 ? "s" : "", who, nb__dist.timeout, D.rank, what);
    return dist_error(fn, "%s (nb_dist_set_timeout; distributed training cannot go on)",
                      D.lost);
}

/* Waits for reqs[0..n) until the deadline; 0 or -1 with the error. */
static int wait_all(const char *fn, const char *what, int n, MPI_Request *reqs)
{
    double t0 = now(), t = t0;
    for (long spins = 0;; spins++) {
        int done = 0, rc = MPI_Testall(n, reqs, &done, MPI_STATUSES_IGNORE);
        if (rc != MPI_SUCCESS)
            return mpi_failed(fn, what, rc);
        if (done)
            return 0;
        if (spins % 64 == 0) {
            serve_probes();
            t = now();
            if (t - t0 > nb__dist.timeout)
                return lost(fn, what, t - t0);
        }
        if (t - t0 > 1e-3) { /* past a millisecond, wait without spinning */
            struct timespec nap = {0, 20000};
            nanosleep(&nap, NULL);
        }
    }
}

static int usable(const char *fn)
{
    if (D.broken)
        return dist_error(fn, "%s; distributed training cannot go on", D.lost);
    return 0;
}

static int attach(const char *fn, MPI_Comm comm)
{
    int rc = MPI_Comm_dup(comm, &D.comm);
    if (rc == MPI_SUCCESS)
        rc = MPI_Comm_dup(comm, &D.probe);
    if (rc != MPI_SUCCESS)
        return mpi_failed(fn, "MPI_Comm_dup", rc);
    MPI_Comm_set_errhandler(D.comm, MPI_ERRORS_RETURN);
    MPI_Comm_set_errhandler(D.probe, MPI_ERRORS_RETURN);
    MPI_Comm_rank(D.comm, &D.rank);
    MPI_Comm_size(D.comm, &D.size);
    D.on = true;
    const char *env = getenv("NB_DIST_TIMEOUT");
    if (env && *env) {
        char *end;
        double s = strtod(env, &end);
        if (*end || !(s > 0) || !isfinite(s))
            return dist_error(fn, "NB_DIST_TIMEOUT is '%s': seconds > 0 are needed", env);
        nb__dist.timeout = s;
    }
    /* Who is where, to say which process was lost. */
    D.peers = nb_mem_alloc((size_t)D.size * sizeof *D.peers);
    if (!D.peers)
        return -1;
    peer me = {.pid = (int)getpid()};
    gethostname(me.host, sizeof me.host - 1);
    MPI_Request r;
    rc = MPI_Iallgather(&me, (int)sizeof me, MPI_BYTE, D.peers, (int)sizeof me, MPI_BYTE, D.comm,
                        &r);
    return rc != MPI_SUCCESS ? mpi_failed(fn, "MPI_Iallgather", rc)
                             : wait_all(fn, "the other ranks to start", 1, &r);
}

int nb_dist_init(int *argc, char ***argv)
{
    if (D.on)
        return 0;
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited) {
        int provided;
        if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
            return dist_error("nb_dist_init", "MPI_Init_thread failed");
        D.owns_mpi = true;
    }
    return attach("nb_dist_init", MPI_COMM_WORLD);
}

int nb_dist_attach(const void *comm)
{
    if (!comm)
        return nb__error("nb_dist_attach: comm is NULL (pass a pointer to an MPI_Comm)");
    if (D.on)
        return nb__state_error("nb_dist_attach: nabla already has a communicator "
                               "(nb_dist_finalize first)");
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited)
        return nb__state_error("nb_dist_attach: MPI is not initialised (MPI_Init, or "
                               "nb_dist_init)");
    return attach("nb_dist_attach", *(const MPI_Comm *)comm);
}

int nb_dist_finalize(void)
{
    if (!D.on)
        return 0;
    bool broken = D.broken;
    if (!broken) {
        MPI_Comm_free(&D.comm);
        MPI_Comm_free(&D.probe);
        if (D.owns_mpi)
            MPI_Finalize();
    }
    char why[sizeof D.lost];
    snprintf(why, sizeof why, "%s", D.lost);
    nb_mem_free(D.peers);
    nb_mem_free(D.flat);
    nb_mem_free(D.bk);
    nb_mem_free(D.off);
    nb_mem_free(D.bkt);
    nb_mem_free(D.ready);
    memset(&D, 0, sizeof D);
    D.size = 1;
    if (broken)
        return dist_error("nb_dist_finalize", "MPI not finalised after the failure (%s): exit "
                          "the process with a failure status", why);
    return 0;
}

int nb_dist_allreduce(double *v, int n)
{
    const char *fn = "nb_dist_allreduce";
    if (n < 0 || (n > 0 && !v))
        return nb__error("%s: %d values at %p", fn, n, (void *)v);
    if (usable(fn))
        return -1;
    if (D.size == 1 || n == 0)
        return 0;
    MPI_Request r;
    int rc = MPI_Iallreduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, MPI_SUM, D.comm, &r);
    return rc != MPI_SUCCESS ? mpi_failed(fn, "MPI_Iallreduce", rc)
                             : wait_all(fn, "an allreduce", 1, &r);
}

int nb_dist_check(const char *fn, int n, const int64_t v[], const char *const names[])
{
    const char *me = fn ? fn : "nb_dist_check";
    if (n < 1 || !v || !names)
        return nb__error("%s: %d values at %p named at %p", me, n, (const void *)v,
                         (const void *)names);
    if (usable(me))
        return -1;
    if (D.size == 1)
        return 0;
    /* First the counts, then the values. */
    int64_t *all = nb_mem_alloc((size_t)D.size * (size_t)(n + 1) * sizeof *all);
    if (!all)
        return -1;
    int64_t cnt = n;
    MPI_Request r;
    int rc = MPI_Iallgather(&cnt, 1, MPI_INT64_T, all, 1, MPI_INT64_T, D.comm, &r);
    rc = rc != MPI_SUCCESS ? mpi_failed(me, "MPI_Iallgather", rc)
                           : wait_all(me, "the ranks' settings", 1, &r);
    for (int k = 1; rc == 0 && k < D.size; k++)
        if (all[k] != n)
            rc = dist_error(me, "rank %d checks %lld settings, rank 0 %lld", k,
                            (long long)all[k], (long long)all[0]);
    if (rc == 0) {
        rc = MPI_Iallgather(v, n, MPI_INT64_T, all, n, MPI_INT64_T, D.comm, &r);
        rc = rc != MPI_SUCCESS ? mpi_failed(me, "MPI_Iallgather", rc)
                               : wait_all(me, "the ranks' settings", 1, &r);
    }
    for (int k = 1; rc == 0 && k < D.size; k++)
        for (int i = 0; i < n; i++)
            if (all[(size_t)k * (size_t)n + (size_t)i] != all[i]) {
                rc = dist_error(me, "rank %d has %s %lld, rank 0 has %lld (every rank must "
                                "run the same configuration)", k, names[i] ? names[i] : "?",
                                (long long)all[(size_t)k * (size_t)n + (size_t)i],
                                (long long)all[i]);
                break;
            }
    nb_mem_free(all);
    return rc;
}

/* The tensors' dtypes and shapes, the same on every rank. */
static int check_tensors(const char *fn, int n, nb_tensor *const t[])
{
    if (nb__dist_check_tensors(fn, n, t))
        return -1;
    uint64_t h = 1469598103934665603u;
    for (int i = 0; i < n; i++) {
        int64_t d[NB_MAX_DIMS + 1] = {t[i]->dtype};
        memcpy(d + 1, t[i]->shape, (size_t)t[i]->ndim * sizeof *d);
        for (int j = 0; j <= t[i]->ndim; j++)
            h = (h ^ (uint64_t)d[j]) * 1099511628211u;
    }
    int64_t v[2] = {n, (int64_t)(h >> 1)};
    static const char *const names[] = {"the number of tensors", "a hash of their shapes"};
    return nb_dist_check(fn, 2, v, names);
}

static MPI_Datatype mpi_type(nb_dtype d) { return d == NB_F64 ? MPI_DOUBLE : MPI_FLOAT; }

/* One collective per tensor, all in flight at once: rank 0's values
 * (broadcast) or the sums over the ranks (allreduce). */
static int each_tensor(const char *fn, int n, nb_tensor *const t[], bool sum)
{
    if (usable(fn) || check_tensors(fn, n, t))
        return -1;
    if (D.size == 1 || n == 0)
        return 0;
    MPI_Request *r = nb_mem_alloc((size_t)n * sizeof *r);
    if (!r)
        return -1;
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        void *p = nb__ptr(t[i]);
        int cnt = (int)t[i]->numel;
        MPI_Datatype ty = mpi_type(t[i]->dtype);
        rc = sum ? MPI_Iallreduce(MPI_IN_PLACE, p, cnt, ty, MPI_SUM, D.comm, &r[i])
                 : MPI_Ibcast(p, cnt, ty, 0, D.comm, &r[i]);
        if (rc != MPI_SUCCESS)
            rc = mpi_failed(fn, sum ? "MPI_Iallreduce" : "MPI_Ibcast", rc);
    }
    rc = rc ? rc : wait_all(fn, sum ? "an allreduce" : "rank 0's values", n, r);
    for (int i = 0; rc == 0 && i < n; i++)
        nb__bump(t[i]);
    nb_mem_free(r);
    return rc;
}

int nb_dist_broadcast(int n, nb_tensor *const tensors[])
{
    return each_tensor("nb_dist_broadcast", n, tensors, false);
}

int nb_dist_average(int n, nb_tensor *const tensors[])
{
    if (each_tensor("nb_dist_average", n, tensors, true))
        return -1;
    for (int i = 0; D.size > 1 && i < n; i++) {
        nb_tensor *t = tensors[i];
        for (int64_t j = 0; j < t->numel; j++)
            if (t->dtype == NB_F64)
                ((double *)nb__ptr(t))[j] /= D.size;
            else
                ((float *)nb__ptr(t))[j] /= (float)D.size;
    }
    return 0;
}

int nb_dist_gather_rows(nb_tensor *t)
{
    const char *fn = "nb_dist_gather_rows";
    if (!t) /* a pending error made the NULL: it stays */
        return nb__has_error() ? -1 : nb__error("%s: tensor is NULL", fn);
    if (usable(fn) || check_tensors(fn, 1, &t))
        return -1;
    if (t->ndim < 1)
        return nb__error("%s: a 0-d tensor has no rows", fn);
    if (D.size == 1)
        return 0;
    int64_t rows = t->shape[0], row = t->numel / (rows ? rows : 1) * (int64_t)nb__dtype_size(t->dtype);
    if (t->numel * (int64_t)nb__dtype_size(t->dtype) > INT32_MAX)
        return nb__error("%s: %lld bytes; at most 2^31 - 1 at once", fn,
                         (long long)(t->numel * (int64_t)nb__dtype_size(t->dtype)));
    int *cnt = nb_mem_alloc(2 * (size_t)D.size * sizeof *cnt);
    if (!cnt)
        return -1;
    int64_t q = rows / D.size, rem = rows % D.size;
    for (int r = 0; r < D.size; r++) {
        cnt[r] = (int)((q + (r < rem)) * row);
        cnt[D.size + r] = (int)((r * q + (r < rem ? r : rem)) * row);
    }
    MPI_Request rq;
    int rc = MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_BYTE, nb__ptr(t), cnt, cnt + D.size, MPI_BYTE,
                             D.comm, &rq);
    rc = rc != MPI_SUCCESS ? mpi_failed(fn, "MPI_Iallgatherv", rc)
                           : wait_all(fn, "the other ranks' rows", 1, &rq);
    if (rc == 0)
        nb__bump(t);
    nb_mem_free(cnt);
    return rc;
}

void nb_dist_stats_get(nb_dist_stats *s, bool reset)
{
    if (s)
        *s = D.stats;
    if (reset)
        memset(&D.stats, 0, sizeof D.stats);
}

/* ---- nb_dist_backward ---- */

/* p with room for need elements of each bytes (its contents are rebuilt
 * on every call, so not copied); *ok false when out of memory. */
static void *grow(void *p, int *cap, int need, size_t each, bool *ok)
{
    if (need <= *cap)
        return p;
    void *q = nb_mem_alloc((size_t)need * each);
    if (!q) {
        *ok = false;
        return p;
    }
    nb_mem_free(p);
    *cap = need;
    return q;
}

/* Lays params out last first in the flat buffer, in buckets of about
 * nb__dist.bucket_bytes of one dtype. */
static int make_plan(plan *pl, int n, nb_tensor *const params[])
{
    bool ok = true;
    int pc = D.par_cap, bc = D.bk_cap;
    D.off = grow(D.off, &pc, n, sizeof *D.off, &ok);
    pc = D.par_cap;
    D.bkt = grow(D.bkt, &pc, n, sizeof *D.bkt, &ok);
    pc = D.par_cap;
    D.ready = grow(D.ready, &pc, n, sizeof *D.ready, &ok);
    D.bk = grow(D.bk, &bc, n, sizeof *D.bk, &ok);
    if (!ok) { /* the caps stay where the smallest array is */
        nb_mem_free(D.off), nb_mem_free(D.bkt), nb_mem_free(D.ready), nb_mem_free(D.bk);
        D.off = NULL, D.bkt = NULL, D.ready = NULL, D.bk = NULL;
        D.par_cap = D.bk_cap = 0;
        return -1;
    }
    D.par_cap = pc;
    D.bk_cap = bc;
    size_t total = 0;
    int nb = 0;
    for (int i = 0; i < n; i++)
        if (params[i]->numel > INT32_MAX) /* MPI counts are ints */
            return nb__error("nb_dist_backward: param %d has %lld elements; at most 2^31 - 1",
                             i + 1, (long long)params[i]->numel);
    for (int i = n - 1; i >= 0; i--) {
        nb_tensor *p = params[i];
        size_t es = nb__dtype_size(p->dtype), bytes = (size_t)p->numel * es;
        total = (total + 7) & ~(size_t)7;
        bucket *b = nb ? &D.bk[nb - 1] : NULL;
        if (!b || b->dtype != p->dtype || b->bytes >= nb__dist.bucket_bytes ||
            (b->bytes + bytes) / es > INT32_MAX) {
            b = &D.bk[nb++];
            *b = (bucket){.off = total, .dtype = p->dtype, .req = MPI_REQUEST_NULL};
        } else {
            total = b->off + b->bytes; /* no gap inside a bucket: one dtype */
        }
        D.off[i] = total;
        D.bkt[i] = nb - 1;
        D.ready[i] = false;
        b->bytes += bytes;
        b->pending++;
        total += bytes;
    }
    if (total > D.flat_cap) {
        char *f = nb_mem_alloc(total);
        if (!f)
            return -1;
        nb_mem_free(D.flat);
        D.flat = f;
        D.flat_cap = total;
    }
    D.nbk = nb;
    *pl = (plan){.params = params, .n = n, .off = D.off, .bkt = D.bkt, .ready = D.ready,
                 .cursor = n - 1};
    return 0;
}

/* Starts the buckets that are complete, in order, and tests those in
 * flight. */
static void progress(plan *pl)
{
    for (; pl->next < D.nbk && D.bk[pl->next].pending == 0; pl->next++) {
        bucket *b = &D.bk[pl->next];
        size_t es = nb__dtype_size(b->dtype);
        b->t_start = now();
        b->started = true;
        if (MPI_Iallreduce(MPI_IN_PLACE, D.flat + b->off, (int)(b->bytes / es),
                           mpi_type(b->dtype), MPI_SUM, D.comm, &b->req) != MPI_SUCCESS)
            b->req = MPI_REQUEST_NULL, b->done = true, D.broken = true;
    }
    for (int i = 0; i < pl->next; i++) {
        bucket *b = &D.bk[i];
        int done = 0;
        if (!b->done && MPI_Test(&b->req, &done, MPI_STATUS_IGNORE) == MPI_SUCCESS && done) {
            b->done = true;
            b->t_end = now();
        }
    }
}

/* A view of parameter i's slot in the flat buffer. */
static nb_view slot(const plan *pl, int i)
{
    const nb_tensor *p = pl->params[i];
    nb_view v = {.data = D.flat + pl->off[i], .dtype = p->dtype, .ndim = p->ndim,
                 .numel = p->numel};
    int64_t st = 1;
    for (int d = p->ndim - 1; d >= 0; d--) {
        v.shape[d] = p->shape[d];
        v.strides[d] = st;
        st *= p->shape[d];
    }
    return v;
}

/* Parameter i's gradient of this pass (NULL: none) into its slot. */
static void put(plan *pl, int i, const nb_tensor *g)
{
    const nb_tensor *p = pl->params[i];
    memset(D.flat + pl->off[i], 0, (size_t)p->numel * nb__dtype_size(p->dtype));
    if (g) {
        nb_view dst = slot(pl, i), src;
        nb__view(g, &src);
        nb__accumulate(&dst, &src, false);
    }
    pl->ready[i] = true;
    D.bk[pl->bkt[i]].pending--;
}

static bool on_ready(nb_tensor *leaf, nb_tensor *grad, void *ctx)
{
    plan *pl = ctx;
    bool taken = false;
    if (leaf) {
        int i = pl->cursor, n = pl->n;
        for (int k = 0; k < n && pl->params[i] != leaf; k++)
            i = i > 0 ? i - 1 : n - 1;
        if (pl->params[i] != leaf || pl->ready[i])
            return false; /* not one of the parameters: its .grad as usual */
        pl->cursor = i > 0 ? i - 1 : n - 1;
        put(pl, i, grad);
        taken = true;
    }
    progress(pl);
    return taken;
}

int nb_dist_backward_(nb_dist_backward_args a)
{
    const char *fn = "nb_dist_backward";
    double t0 = now();
    if (nb__dist_check_backward(fn, &a) || usable(fn))
        return -1;
    if (D.size == 1)
        return nb__dist_backward_alone(fn, &a);
    plan pl;
    if (make_plan(&pl, a.n, a.params))
        return -1;
    int failed = nb__dist_local_backward(&a, on_ready, &pl); /* its error stays set */
    /* Every rank takes part whatever happened: the parameters this pass
     * gave no gradient (unused, or all of them after a failure) add zeros. */
    for (int i = a.n - 1; i >= 0; i--)
        if (!pl.ready[i])
            put(&pl, i, NULL);
    progress(&pl);
    double t_back = now();
    /* The sums, with a last value counting the ranks that failed. */
    enum { SMALL = 32 };
    double small[SMALL + 1];
    int ns = a.nsums;
    double *sv = ns > SMALL ? nb_mem_alloc((size_t)(ns + 1) * sizeof *sv) : small;
    if (!sv)
        return -1;
    if (ns)
        memcpy(sv, a.sums, (size_t)ns * sizeof *sv);
    sv[ns] = failed ? 1 : 0;
    MPI_Request sr;
    int rc = MPI_Iallreduce(MPI_IN_PLACE, sv, ns + 1, MPI_DOUBLE, MPI_SUM, D.comm, &sr);
    if (rc != MPI_SUCCESS)
        rc = mpi_failed(fn, "MPI_Iallreduce", rc);
    else if (D.broken)
        rc = mpi_failed(fn, "MPI_Iallreduce", MPI_ERR_OTHER);
    else {
        rc = wait_all(fn, "the gradient allreduce", 1, &sr);
        for (int b = 0; rc == 0 && b < D.nbk; b++)
            if (!D.bk[b].done) {
                rc = wait_all(fn, "the gradient allreduce", 1, &D.bk[b].req);
                D.bk[b].done = true;
                D.bk[b].t_end = now();
            }
    }
    double t_end = now();
    if (rc == 0 && (failed || sv[ns] > 0)) {
        if (!failed)
            dist_error(fn, "%.0f rank%s failed in the backward (the gradients are not usable)",
                       sv[ns], sv[ns] > 1 ? "s" : "");
        rc = -1;
    }
    if (rc == 0) {
        for (int i = 0; i < a.n && rc == 0; i++) {
            /* .grad accumulates the sum, as nb_backward's would. */
            nb_tensor *p = a.params[i];
            if ((rc = nb__dist_grad_or_zeros(fn, p)))
                break;
            nb_view dst, src = slot(&pl, i);
            nb__view(p->grad, &dst);
            nb__accumulate(&dst, &src, false);
            nb__bump(p->grad);
        }
        if (ns)
            memcpy(a.sums, sv, (size_t)ns * sizeof *sv);
        D.stats.calls++;
        D.stats.buckets += D.nbk;
        for (int b = 0; b < D.nbk; b++) {
            D.stats.bytes += (int64_t)D.bk[b].bytes;
            D.stats.comm_s += D.bk[b].t_end - D.bk[b].t_start;
        }
        D.stats.exposed_s += t_end - t_back;
        D.stats.backward_s += t_end - t0;
    }
    if (sv != small)
        nb_mem_free(sv);
    return rc;
}
