/* xoshiro256** seeded by splitmix64. Normals use the polar method with a
 * log written from + - * / only, so the numbers are the same on every
 * platform (libm's log may differ in the last bit between systems). */
#include "internal.h"

/* sqrt is correctly rounded by IEEE 754, so it is safe to use; NAN for errors. */
#include <math.h>

#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

nb_rng nb_rng_new(uint64_t seed)
{
    nb_rng r;
    for (int i = 0; i < 4; i++)
        r.s[i] = splitmix64(&seed);
    return r;
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* A NULL generator: an error naming fn. */
static bool no_rng(const nb_rng *r, const char *fn)
{
    if (r)
        return false;
    nb__error("%s: rng is NULL", fn);
    return true;
}

static uint64_t next(nb_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint64_t nb_rng_next(nb_rng *r) { return no_rng(r, "nb_rng_next") ? 0 : next(r); }

static double uniform(nb_rng *r) { return (double)(next(r) >> 11) * 0x1.0p-53; }

double nb_rng_uniform(nb_rng *r) { return no_rng(r, "nb_rng_uniform") ? NAN : uniform(r); }

/* p[i] = keep where the i-th nb_rng_uniform would be >= rate, else 0, with
 * the state in registers: that uniform is k * 2^-53 exactly (k the top 53
 * bits of next), so it is >= rate exactly when k >= ceil(rate * 2^53), an
 * integer comparison (rate * 2^53 is exact, a power-of-two scaling). */
#define MASK_FN(name, T)                                                       \
    void name(nb_rng *r, T *p, int64_t n, double rate, T keep)                 \
    {                                                                          \
        uint64_t s0 = r->s[0], s1 = r->s[1], s2 = r->s[2], s3 = r->s[3];       \
        const uint64_t t = (uint64_t)ceil(rate * 0x1p53);                      \
        for (int64_t i = 0; i < n; i++) {                                      \
            uint64_t k = (rotl(s1 * 5, 7) * 9) >> 11, u = s1 << 17;            \
            s2 ^= s0;                                                          \
            s3 ^= s1;                                                          \
            s1 ^= s2;                                                          \
            s0 ^= s3;                                                          \
            s2 ^= u;                                                           \
            s3 = rotl(s3, 45);                                                 \
            p[i] = k >= t ? keep : 0;                                          \
        }                                                                      \
        r->s[0] = s0, r->s[1] = s1, r->s[2] = s2, r->s[3] = s3;                \
    }
MASK_FN(nb__rng_mask_f32, float)
MASK_FN(nb__rng_mask_f64, double)

uint64_t nb_rng_below(nb_rng *r, uint64_t n)
{
    if (no_rng(r, "nb_rng_below"))
        return 0;
    if (n == 0)
        return 0;
    /* Rejection keeps it unbiased. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do
        x = next(r);
    while (x >= limit);
    return x % n;
}

/* ln(x) for x > 0: x = m * 2^e with m in [sqrt(1/2), sqrt(2)), then
 * ln(m) = 2 atanh(z), z = (m-1)/(m+1), |z| < 0.172, series to 1e-17. */
static double det_log(double x)
{
    int e = 0;
    while (x >= 1.4142135623730951) {
        x *= 0.5;
        e++;
    }
    while (x < 0.7071067811865476) {
        x *= 2.0;
        e--;
    }
    double z = (x - 1.0) / (x + 1.0), z2 = z * z, term = z, sum = 0.0;
    for (int k = 1; k < 48; k += 2) {
        sum += term / k;
        term *= z2;
    }
    return 2.0 * sum + e * 0.6931471805599453;
}

double nb_rng_normal(nb_rng *r)
{
    if (no_rng(r, "nb_rng_normal"))
        return NAN;
    double u, v, s;
    do {
        u = 2.0 * uniform(r) - 1.0;
        v = 2.0 * uniform(r) - 1.0;
        s = u * u + v * v;
    } while (s >= 1.0 || s == 0.0);
    /* One of the pair is discarded: keeps the generator state simple. */
    return u * sqrt(-2.0 * det_log(s) / s);
}
