/* bptt._kernels: a recurrent step's elementwise work, one pass each way.
 *
 * The recurrence's GEMMs stay in NumPy (its BLAS); what is left per step is elementwise.
 * The vanilla tanh cell (bptt.drivers.rnn):
 *   forward    a⟨t⟩  = tanh(z⟨t⟩ + r)                 r = W_aa a⟨t−1⟩, z⟨t⟩ = W_ax x⟨t⟩ + b_a
 *   backward   da⟨t⟩ = dA[t] + da_next                 the whole message reaching a⟨t⟩
 *              dz⟨t⟩ = da⟨t⟩ ⊙ (1 − a⟨t⟩²)             through tanh, from the saved output
 * NumPy needs five or six passes and calls for these, and its float64 tanh and exp are scalar
 * on CPUs without AVX-512; here each is one loop the compiler vectorises (tanh_add,
 * tanh_backward).  For small steps, where a BLAS call costs more than its arithmetic, the
 * product with W_aa (r above; da_next = dz⟨t+1⟩ W_aa) joins the same call (tanh_gemv,
 * tanh_gemv_backward).
 *
 * The gated cells (bptt.cells.lstm, bptt.cells.gru; their equations are in those modules'
 * docstrings) have the same split: given a step's pre-activations — the input part W_ax x⟨t⟩ + b_a
 * and the recurrent GEMM's result W_aa a⟨t−1⟩ — lstm_step and gru_step compute the gates, the new
 * state and what the backward needs in one pass over the step's B·n_a units; given the incoming
 * messages and the saved gates, lstm_step_backward and gru_step_backward compute the gate
 * pre-activations' gradients (the rows the recurrent GEMM multiplies next) and the messages'
 * direct terms in one pass.  NumPy needs 10 to 14 calls a step each way for these.  Each takes
 * an optional (x, W): then the recurrent product r = x W is computed in the same call (small steps).
 *
 * Beside the steps, adam_step: the optimizer's update of one parameter in one pass (NumPy takes
 * thirteen over the whole array), rounded as NumPy rounds it, so the same bits.
 *
 * Optional: when this module is missing bptt computes the same equations in NumPy
 * (bptt.drivers.rnn, bptt.cells), and the tests hold the two to agree within a few ulp.
 *
 * tanh(x) = m / (m + 2) with m = e^{2x} − 1, which keeps full relative precision near 0.
 * m comes from 2x = n ln2 + r, |r| ≤ ln2/2:  e^{2x} − 1 = 2^n (e^r − 1) + (2^n − 1), with
 * e^r − 1 by its Taylor series in Horner form (the first omitted term is below 2^−55 of the
 * sum in double, 2^−30 in float).  It runs on |x| and takes x's sign at the end (so −0 stays
 * −0); |x| is clamped at 20 in double, 10 in float, past where tanh rounds to 1 (19.06, 9.01),
 * by a comparison that lets NaN through.
 *
 * σ(x) = 1 / (1 + e) for x ≥ 0 and e / (1 + e) for x < 0, with e = e^{−|x|} from the same
 * reduction (e^{−|x|} = 2^n (1 + (e^r − 1))): one rounding in e's few ulp, one in 1 + e, one in
 * the division, so no cancellation at either end (1 + tanh(x/2) would lose σ's digits for
 * x ≪ 0).  Past |x| = 708 in double, 87 in float, e is below the smallest normal number and is
 * taken as 0: σ is then exactly 1 (x > 0) or 0 (x < 0); σ(±inf) = 1, 0; NaN stays NaN (every
 * comparison lets it through); σ(−0) = σ(0) = 1/2.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <tgmath.h> /* fabs and copysign of the argument's type */
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) && __GNUC__ >= 11 && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
/* one AVX2+FMA build and one baseline build of each loop, picked by the CPU at load time ... */
#define VECTOR_LOOP __attribute__((target_clones("arch=x86-64-v3", "default")))
/* ... and for the loops that evaluate exp (tanh, σ) an AVX-512 build too: 1.5-1.65x faster than
 * AVX2 on the EPYC of BENCHMARKS.md (the backward loops, without exp, were 1.1-1.3x slower) */
#define EXP_LOOP __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define VECTOR_LOOP
#define EXP_LOOP
#endif

/* tanh and σ in type T (see the top of the file).  UINT is T's bits, MANT its mantissa width and
 * BIAS its exponent bias; CLAMP bounds 2|x| for tanh, SIG_LIMIT |x| for σ; ln2 = LN2_HI + LN2_LO
 * with LN2_HI's low bits zero, so n·LN2_HI is exact; the rest are e^r − 1's Taylor coefficients
 * 1/k!, highest k first, to 1/2. */
#define EXP_FUNCS(T, SUFFIX, UINT, MANT, BIAS, CLAMP, SIG_LIMIT, LN2_HI, LN2_LO, ...)                    \
    /* e^y = scale (1 + p): returns scale = 2^n and sets *p = e^r − 1, for 2^n a normal number */      \
    static inline T exp_parts_##SUFFIX(T y, T *p_out)                                                  \
    {                                                                                                  \
        static const T c[] = {__VA_ARGS__};                                                            \
        const T shifter = (T)0x1.8p##MANT; /* adding it rounds to an integer, kept in the low bits */  \
        T k = y * (T)1.4426950408889634 + shifter; /* log2(e) */                                      \
        T n = k - shifter;                                                                             \
        T r = (y - n * (T)LN2_HI) - n * (T)LN2_LO;                                                     \
        T p = c[0];                                                                                    \
        for (size_t i = 1; i < sizeof c / sizeof c[0]; i++)                                            \
            p = p * r + c[i];                                                                          \
        *p_out = p * (r * r) + r; /* e^r − 1 */                                                        \
        UINT bits;                                                                                     \
        memcpy(&bits, &k, sizeof bits);                                                                \
        bits = (bits + BIAS) << MANT; /* 2^n: the low bits of k hold n */                              \
        T scale;                                                                                       \
        memcpy(&scale, &bits, sizeof scale);                                                           \
        return scale;                                                                                  \
    }                                                                                                  \
    static inline T tanh1_##SUFFIX(T x)                                                                \
    {                                                                                                  \
        T y = (T)2 * fabs(x);                                                                          \
        y = y > (T)CLAMP ? (T)CLAMP : y;                                                               \
        T p, scale = exp_parts_##SUFFIX(y, &p);                                                        \
        T m = scale * p + (scale - (T)1);                                                              \
        return copysign(m / (m + (T)2), x); /* tanh(−x) = −tanh(x), −0 included */                     \
    }                                                                                                  \
    static inline T sigmoid1_##SUFFIX(T x)                                                             \
    {                                                                                                  \
        T y = fabs(x);                                                                                 \
        T y_c = y > (T)SIG_LIMIT ? (T)SIG_LIMIT : y; /* keeps 2^n normal; NaN passes */               \
        T p, scale = exp_parts_##SUFFIX(-y_c, &p);                                                     \
        T e = scale * p + scale;                     /* e^{−|x|} */                                    \
        e = y > (T)SIG_LIMIT ? (T)0 : e;             /* below the smallest normal number */            \
        return (x >= (T)0 ? (T)1 : e) / ((T)1 + e); /* NaN: e is NaN */                                \
    }

EXP_FUNCS(double, d, uint64_t, 52, 1023, 40.0, 708.0, 0x1.62e42fefa0000p-1, 0x1.cf79abc9e3b3ap-40,
          1.0 / 87178291200.0, 1.0 / 6227020800.0, 1.0 / 479001600.0, 1.0 / 39916800.0, 1.0 / 3628800.0,
          1.0 / 362880.0, 1.0 / 40320.0, 1.0 / 5040.0, 1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5)
EXP_FUNCS(float, f, uint32_t, 23, 127, 20.0f, 87.0f, 0x1.62e4p-1f, 0x1.7f7d1cp-20f, 1.0f / 362880.0f,
          1.0f / 40320.0f, 1.0f / 5040.0f, 1.0f / 720.0f, 1.0f / 120.0f, 1.0f / 24.0f, 1.0f / 6.0f, 0.5f)

#define STEP_LOOPS(T, SUFFIX, TANH)                                                                    \
    EXP_LOOP static void tanh_add_##SUFFIX(const T *z, const T *r, T *out, Py_ssize_t n)             \
    {                                                                                                  \
        for (Py_ssize_t i = 0; i < n; i++)                                                             \
            out[i] = TANH(z[i] + r[i]);                                                                \
    }                                                                                                  \
    VECTOR_LOOP static void tanh_back_##SUFFIX(const T *dA, const T *da_next, const T *a, T *dz,        \
                                               Py_ssize_t n)                                           \
    {                                                                                                  \
        for (Py_ssize_t i = 0; i < n; i++)                                                             \
            dz[i] = (dA[i] + da_next[i]) * ((T)1 - a[i] * a[i]);                                       \
    }                                                                                                  \
    VECTOR_LOOP static void tanh_back_keep_##SUFFIX(const T *dA, const T *da_next, const T *a, T *dz,   \
                                                    T *da, Py_ssize_t n)                               \
    {                                                                                                  \
        for (Py_ssize_t i = 0; i < n; i++) {                                                           \
            T m = dA[i] + da_next[i];                                                                  \
            da[i] = m;                                                                                 \
            dz[i] = m * ((T)1 - a[i] * a[i]);                                                          \
        }                                                                                              \
    }                                                                                                  \
    /* out = tanh(x W + r) for one row x of n_in numbers, W (n_in, n) row-major; out may be r */       \
    EXP_LOOP static void tanh_mv_##SUFFIX(const T *x, const T *W, const T *r, T *out, Py_ssize_t n_in, \
                                             Py_ssize_t n)                                             \
    {                                                                                                  \
        if (out != r)                                                                                  \
            memcpy(out, r, n * sizeof(T));                                                             \
        for (Py_ssize_t i = 0; i < n_in; i++) {                                                        \
            const T x_i = x[i], *w = W + i * n;                                                        \
            for (Py_ssize_t j = 0; j < n; j++)                                                         \
                out[j] += x_i * w[j];                                                                  \
        }                                                                                              \
        for (Py_ssize_t j = 0; j < n; j++)                                                             \
            out[j] = TANH(out[j]);                                                                     \
    }                                                                                                  \
    /* da = d W + dA and dz = da (1 − a²) for one row d of n_in numbers, W (n_in, n) row-major */      \
    VECTOR_LOOP static void tanh_mv_back_##SUFFIX(const T *d, const T *W, const T *dA, const T *a, T *dz, \
                                                  T *da, Py_ssize_t n_in, Py_ssize_t n)                \
    {                                                                                                  \
        memcpy(da, dA, n * sizeof(T));                                                                 \
        for (Py_ssize_t i = 0; i < n_in; i++) {                                                        \
            const T d_i = d[i], *w = W + i * n;                                                        \
            for (Py_ssize_t j = 0; j < n; j++)                                                         \
                da[j] += d_i * w[j];                                                                   \
        }                                                                                              \
        for (Py_ssize_t j = 0; j < n; j++)                                                             \
            dz[j] = da[j] * ((T)1 - a[j] * a[j]);                                                      \
    }

STEP_LOOPS(double, d, tanh1_d)
STEP_LOOPS(float, f, tanh1_f)

/* The arguments: arrays of one float dtype, 1-D or 2-D with contiguous rows (a step's (B, n_a)
 * slice of a (T, B, ·) buffer, or a block of columns of a wider one), all of one shape but for
 * those the caller checks itself (a matrix, a GEMV's input). */
#define MAX_ARGS 12

typedef struct {
    Py_buffer views[MAX_ARGS];
    int held;
    char kind;                   /* 'd' or 'f' */
    Py_ssize_t rows, cols;        /* the shared shape */
    char *data[MAX_ARGS];        /* NULL for an optional argument given as None */
    Py_ssize_t stride[MAX_ARGS]; /* bytes from one row to the next */
    Py_ssize_t rows_of[MAX_ARGS], cols_of[MAX_ARGS];
    int ndim_of[MAX_ARGS];
} Args;

static void release(Args *b)
{
    for (int i = 0; i < b->held; i++)
        PyBuffer_Release(&b->views[i]);
    b->held = 0;
}

/* Takes the buffers of args: writable where bit i of `writable` is set, None (as NULL) allowed
 * where bit i of `optional` is set, any shape where bit i of `own_shape` is set.
 * Returns 0, or −1 with an exception set. */
static int take(Args *b, PyObject *const *args, Py_ssize_t nargs, Py_ssize_t expected, unsigned writable,
                unsigned optional, unsigned own_shape, const char *name)
{
    b->held = 0;
    b->kind = 0;
    b->rows = -1;
    if (nargs != expected) {
        PyErr_Format(PyExc_TypeError, "%s: expected %zd arguments, got %zd", name, expected, nargs);
        return -1;
    }
    if (expected > MAX_ARGS) {
        PyErr_Format(PyExc_SystemError, "%s: too many arguments for take()", name);
        return -1;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) {
        b->data[i] = NULL;
        b->stride[i] = 0;
        b->rows_of[i] = b->cols_of[i] = 0;
        b->ndim_of[i] = 0;
        if (args[i] == Py_None && (optional >> i & 1))
            continue;
        Py_buffer *v = &b->views[b->held];
        if (PyObject_GetBuffer(args[i], v, PyBUF_STRIDES | PyBUF_FORMAT | ((writable >> i & 1) ? PyBUF_WRITABLE : 0)) < 0) {
            release(b);
            return -1;
        }
        b->held++;
        const char *f = v->format;
        char kind = (f[0] == '=' || f[0] == '<' || f[0] == '@') ? f[1] : f[0];
        Py_ssize_t rows = v->ndim == 2 ? v->shape[0] : 1, cols = v->ndim >= 1 ? v->shape[v->ndim - 1] : 0;
        const char *problem = NULL;
        if (!((kind == 'd' && v->itemsize == 8) || (kind == 'f' && v->itemsize == 4)))
            problem = "expected float32 or float64";
        else if (v->ndim < 1 || v->ndim > 2 || (cols > 1 && v->strides[v->ndim - 1] != v->itemsize))
            problem = "expected a 1-D or 2-D array with contiguous rows";
        else if (b->kind && kind != b->kind)
            problem = "dtype differs from the first argument's";
        else if (!(own_shape >> i & 1) && b->rows >= 0 && (rows != b->rows || cols != b->cols))
            problem = "shape differs from the first argument's";
        if (problem) {
            PyErr_Format(PyExc_ValueError, "%s: argument %zd: %s", name, i + 1, problem);
            release(b);
            return -1;
        }
        b->kind = kind;
        if (!(own_shape >> i & 1)) {
            b->rows = rows;
            b->cols = cols;
        }
        b->rows_of[i] = rows;
        b->cols_of[i] = cols;
        b->ndim_of[i] = v->ndim;
        b->data[i] = v->buf;
        b->stride[i] = v->ndim == 2 ? v->strides[0] : 0;
    }
    return 0;
}

/* row r of argument i, or NULL */
#define ROW(b, i, r, T) ((T *)((b).data[i] ? (b).data[i] + (r) * (b).stride[i] : NULL))

PyDoc_STRVAR(tanh_add_doc, "tanh_add(z, r, out)\n--\n\n"
                           "out = tanh(z + r), elementwise; out may be z.");

static PyObject *py_tanh_add(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs)
{
    Args b;
    if (take(&b, args, nargs, 3, 0x4, 0, 0, "tanh_add") < 0)
        return NULL;
    for (Py_ssize_t r = 0; r < b.rows; r++) {
        if (b.kind == 'd')
            tanh_add_d(ROW(b, 0, r, double), ROW(b, 1, r, double), ROW(b, 2, r, double), b.cols);
        else
            tanh_add_f(ROW(b, 0, r, float), ROW(b, 1, r, float), ROW(b, 2, r, float), b.cols);
    }
    release(&b);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(tanh_backward_doc, "tanh_backward(dA_t, da_next, a_t, dz_t, da_t)\n--\n\n"
                                "dz_t = (dA_t + da_next) * (1 - a_t**2), elementwise; also writes\n"
                                "da_t = dA_t + da_next unless da_t is None.");

static PyObject *py_tanh_backward(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs)
{
    Args b;
    if (take(&b, args, nargs, 5, 0x18, 0x10, 0, "tanh_backward") < 0)
        return NULL;
    for (Py_ssize_t r = 0; r < b.rows; r++) {
        if (b.kind == 'd' && b.data[4])
            tanh_back_keep_d(ROW(b, 0, r, double), ROW(b, 1, r, double), ROW(b, 2, r, double),
                             ROW(b, 3, r, double), ROW(b, 4, r, double), b.cols);
        else if (b.kind == 'd')
            tanh_back_d(ROW(b, 0, r, double), ROW(b, 1, r, double), ROW(b, 2, r, double), ROW(b, 3, r, double),
                        b.cols);
        else if (b.data[4])
            tanh_back_keep_f(ROW(b, 0, r, float), ROW(b, 1, r, float), ROW(b, 2, r, float), ROW(b, 3, r, float),
                             ROW(b, 4, r, float), b.cols);
        else
            tanh_back_f(ROW(b, 0, r, float), ROW(b, 1, r, float), ROW(b, 2, r, float), ROW(b, 3, r, float),
                        b.cols);
    }
    release(&b);
    Py_RETURN_NONE;
}

/* Checks a GEMV's input x (argument ix) against the matrix W (argument iw) and the shared shape
 * (B, n): x is (B, n_in), W is (n_in, n) with dense rows.  Returns 0, or −1 with an exception set. */
static int check_gemv(Args *b, int ix, int iw, const char *name)
{
    Py_ssize_t item = b->kind == 'd' ? 8 : 4;
    if (b->rows_of[iw] != b->cols_of[ix] || b->cols_of[iw] != b->cols || b->rows_of[ix] != b->rows ||
        (b->rows_of[iw] > 1 && b->stride[iw] != b->cols * item)) {
        PyErr_Format(PyExc_ValueError, "%s: expected x (B, n_in), W (n_in, n) with dense rows, and (B, n) others",
                     name);
        release(b);
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(tanh_gemv_doc, "tanh_gemv(x, W, r, out)\n--\n\n"
                            "out = tanh(x @ W + r): x (B, n_in), W (n_in, n), r and out (B, n); out may be r.\n"
                            "For small steps, where a BLAS call costs more than the arithmetic.");

static PyObject *py_tanh_gemv(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs)
{
    Args b;
    if (take(&b, args, nargs, 4, 0x8, 0, 0x3, "tanh_gemv") < 0 || check_gemv(&b, 0, 1, "tanh_gemv") < 0)
        return NULL;
    Py_ssize_t n_in = b.rows_of[1];
    for (Py_ssize_t r = 0; r < b.rows; r++) {
        if (b.kind == 'd')
            tanh_mv_d(ROW(b, 0, r, double), ROW(b, 1, 0, double), ROW(b, 2, r, double), ROW(b, 3, r, double), n_in,
                      b.cols);
        else
            tanh_mv_f(ROW(b, 0, r, float), ROW(b, 1, 0, float), ROW(b, 2, r, float), ROW(b, 3, r, float), n_in,
                      b.cols);
    }
    release(&b);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(tanh_gemv_backward_doc,
             "tanh_gemv_backward(d, W, dA_t, a_t, dz_t, da_t)\n--\n\n"
             "da_t = d @ W + dA_t and dz_t = da_t * (1 - a_t**2): d (B, n_in), W (n_in, n), the others (B, n).");

static PyObject *py_tanh_gemv_backward(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs)
{
    Args b;
    if (take(&b, args, nargs, 6, 0x30, 0, 0x3, "tanh_gemv_backward") < 0 ||
        check_gemv(&b, 0, 1, "tanh_gemv_backward") < 0)
        return NULL;
    Py_ssize_t n_in = b.rows_of[1];
    for (Py_ssize_t r = 0; r < b.rows; r++) {
        if (b.kind == 'd')
            tanh_mv_back_d(ROW(b, 0, r, double), ROW(b, 1, 0, double), ROW(b, 2, r, double), ROW(b, 3, r, double),
                           ROW(b, 4, r, double), ROW(b, 5, r, double), n_in, b.cols);
        else
            tanh_mv_back_f(ROW(b, 0, r, float), ROW(b, 1, 0, float), ROW(b, 2, r, float), ROW(b, 3, r, float),
                           ROW(b, 4, r, float), ROW(b, 5, r, float), n_in, b.cols);
    }
    release(&b);
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------------------ the gated cells
 *
 * Row loops of one dtype.  Every array argument is its own restrict pointer (a gate block of a
 * row is passed as its own pointer too), so the compiler vectorises each loop without alias
 * checks; the Python wrappers refuse arguments whose memory overlaps.  In place: only where an
 * argument is both read and written through the same pointer (z, dc_next, carry). */
#define GATE_LOOPS(T, SUFFIX)                                                                          \
    /* out = x W for one row x of n_in numbers, W (n_in, n) row-major */                               \
    VECTOR_LOOP static void mv_##SUFFIX(const T *restrict x, const T *restrict W, T *restrict out,      \
                                        Py_ssize_t n_in, Py_ssize_t n)                                 \
    {                                                                                                  \
        for (Py_ssize_t j = 0; j < n; j++)                                                             \
            out[j] = 0;                                                                                \
        for (Py_ssize_t i = 0; i < n_in; i++) {                                                        \
            const T x_i = x[i], *restrict w = W + i * n;                                               \
            for (Py_ssize_t j = 0; j < n; j++)                                                         \
                out[j] += x_i * w[j];                                                                  \
        }                                                                                              \
    }                                                                                                  \
    /* LSTM forward, one row: z_k holds gate k's input part on entry and the gate on return, r_k its  \
     * recurrent part; c = f c_prev + i g, tc = tanh c, a = o tc */                                    \
    EXP_LOOP static void lstm_row_##SUFFIX(T *restrict zi, T *restrict zf, T *restrict zg,           \
                                              T *restrict zo, const T *restrict ri,                    \
                                              const T *restrict rf, const T *restrict rg,              \
                                              const T *restrict ro, const T *restrict c_prev,          \
                                              T *restrict c, T *restrict tc, T *restrict a, Py_ssize_t n) \
    {                                                                                                  \
        for (Py_ssize_t j = 0; j < n; j++) {                                                           \
            T i = sigmoid1_##SUFFIX(zi[j] + ri[j]);                                                    \
            T f = sigmoid1_##SUFFIX(zf[j] + rf[j]);                                                    \
            T g = tanh1_##SUFFIX(zg[j] + rg[j]);                                                       \
            T o = sigmoid1_##SUFFIX(zo[j] + ro[j]);                                                    \
            T c_j = f * c_prev[j] + i * g;                                                             \
            T t = tanh1_##SUFFIX(c_j);                                                                 \
            zi[j] = i;                                                                                 \
            zf[j] = f;                                                                                 \
            zg[j] = g;                                                                                 \
            zo[j] = o;                                                                                 \
            c[j] = c_j;                                                                                \
            tc[j] = t;                                                                                 \
            a[j] = o * t;                                                                              \
        }                                                                                              \
    }                                                                                                  \
    /* LSTM backward, one row: da = dA + r, dc = dc_next + da o (1 − tc²), the gate gradients          \
     * [dc g i(1−i) | dc c_prev f(1−f) | dc i(1−g²) | da tc o(1−o)], and dc_next ← dc f */            \
    VECTOR_LOOP static void lstm_back_row_##SUFFIX(                                                    \
        const T *restrict dA, const T *restrict r, T *restrict dc_next, const T *restrict gi,          \
        const T *restrict gf, const T *restrict gg, const T *restrict go, const T *restrict c_prev,    \
        const T *restrict tc, T *restrict d_i, T *restrict d_f, T *restrict d_g, T *restrict d_o,      \
        T *restrict da, T *restrict dc, Py_ssize_t n)                                                  \
    {                                                                                                  \
        for (Py_ssize_t j = 0; j < n; j++) {                                                           \
            T d_a = dA[j] + r[j];                                                                      \
            T i = gi[j], f = gf[j], g = gg[j], o = go[j], t = tc[j];                                   \
            T d_c = dc_next[j] + d_a * (o * ((T)1 - t * t));                                           \
            d_i[j] = d_c * (g * (i * ((T)1 - i)));                                                     \
            d_f[j] = d_c * (c_prev[j] * (f * ((T)1 - f)));                                             \
            d_g[j] = d_c * (i * ((T)1 - g * g));                                                       \
            d_o[j] = d_a * (t * (o * ((T)1 - o)));                                                     \
            dc_next[j] = d_c * f;                                                                      \
            da[j] = d_a;                                                                               \
            dc[j] = d_c;                                                                               \
        }                                                                                              \
    }                                                                                                  \
    /* GRU forward, one row: z_k holds gate k's input part on entry and the gate on return, r_k the   \
     * recurrent part (r_n without b_hn); h_n = r_n + b_hn, n = tanh(z_n + r h_n),                     \
     * a = n + z (a_prev − n) */                                                                       \
    EXP_LOOP static void gru_row_##SUFFIX(T *restrict zr, T *restrict zz, T *restrict zn,            \
                                             const T *restrict rr, const T *restrict rz,               \
                                             const T *restrict rn, const T *restrict b_hn,             \
                                             const T *restrict a_prev, T *restrict h_n, T *restrict a, \
                                             Py_ssize_t n)                                             \
    {                                                                                                  \
        for (Py_ssize_t j = 0; j < n; j++) {                                                           \
            T r = sigmoid1_##SUFFIX(zr[j] + rr[j]);                                                    \
            T z = sigmoid1_##SUFFIX(zz[j] + rz[j]);                                                    \
            T h = rn[j] + b_hn[j];                                                                     \
            T g = tanh1_##SUFFIX(zn[j] + r * h);                                                       \
            zr[j] = r;                                                                                 \
            zz[j] = z;                                                                                 \
            zn[j] = g;                                                                                 \
            h_n[j] = h;                                                                                \
            a[j] = g + z * (a_prev[j] - g);                                                            \
        }                                                                                              \
    }                                                                                                  \
    /* GRU backward, one row: da = dA + (carry + r), the gate gradients [dr̂ | dẑ | dh_n | dn̂] of     \
     * bptt.cells.gru, and carry ← da z (the share of da that goes straight to a_prev) */             \
    VECTOR_LOOP static void gru_back_row_##SUFFIX(                                                     \
        const T *restrict dA, const T *restrict r_in, T *restrict carry, const T *restrict gr,         \
        const T *restrict gz, const T *restrict gn, const T *restrict h_n, const T *restrict a_prev,   \
        T *restrict d_r, T *restrict d_z, T *restrict d_h, T *restrict d_n, T *restrict da,            \
        Py_ssize_t n)                                                                                  \
    {                                                                                                  \
        for (Py_ssize_t j = 0; j < n; j++) {                                                           \
            T d = dA[j] + (carry[j] + r_in[j]);                                                        \
            T r = gr[j], z = gz[j], g = gn[j];                                                         \
            T dn = d * (((T)1 - z) * ((T)1 - g * g));                                                  \
            T dh = dn * r;                                                                             \
            d_r[j] = dh * (h_n[j] * ((T)1 - r));                                                       \
            d_z[j] = d * ((a_prev[j] - g) * (z * ((T)1 - z)));                                         \
            d_h[j] = dh;                                                                               \
            d_n[j] = dn;                                                                               \
            da[j] = d;                                                                                 \
            carry[j] = d * z;                                                                          \
        }                                                                                              \
    }                                                                                                  \
    /* the wrappers' row drivers: argument indices as in the docstrings below */                      \
    static void lstm_step_rows_##SUFFIX(const Args *b)                                                 \
    {                                                                                                  \
        Py_ssize_t n = b->cols;                                                                        \
        for (Py_ssize_t row = 0; row < b->rows; row++) {                                               \
            T *r = ROW(*b, 2, row, T), *z = ROW(*b, 3, row, T);                                        \
            if (b->data[0])                                                                            \
                mv_##SUFFIX(ROW(*b, 0, row, T), ROW(*b, 1, 0, T), r, b->cols_of[0], 4 * n);            \
            lstm_row_##SUFFIX(z, z + n, z + 2 * n, z + 3 * n, r, r + n, r + 2 * n, r + 3 * n,          \
                              ROW(*b, 4, row, T), ROW(*b, 5, row, T), ROW(*b, 6, row, T),              \
                              ROW(*b, 7, row, T), n);                                                  \
        }                                                                                              \
    }                                                                                                  \
    static void lstm_back_rows_##SUFFIX(const Args *b)                                                 \
    {                                                                                                  \
        Py_ssize_t n = b->cols;                                                                        \
        for (Py_ssize_t row = 0; row < b->rows; row++) {                                               \
            T *r = ROW(*b, 2, row, T), *G = ROW(*b, 5, row, T), *dG = ROW(*b, 8, row, T);              \
            if (b->data[0])                                                                            \
                mv_##SUFFIX(ROW(*b, 0, row, T), ROW(*b, 1, 0, T), r, b->cols_of[0], n);                \
            lstm_back_row_##SUFFIX(ROW(*b, 3, row, T), r, ROW(*b, 4, row, T), G, G + n, G + 2 * n,     \
                                   G + 3 * n, ROW(*b, 6, row, T), ROW(*b, 7, row, T), dG, dG + n,      \
                                   dG + 2 * n, dG + 3 * n, ROW(*b, 9, row, T), ROW(*b, 10, row, T), n); \
        }                                                                                              \
    }                                                                                                  \
    static void gru_step_rows_##SUFFIX(const Args *b)                                                  \
    {                                                                                                  \
        Py_ssize_t n = b->cols;                                                                        \
        for (Py_ssize_t row = 0; row < b->rows; row++) {                                               \
            T *r = ROW(*b, 2, row, T), *z = ROW(*b, 4, row, T);                                        \
            if (b->data[0])                                                                            \
                mv_##SUFFIX(ROW(*b, 0, row, T), ROW(*b, 1, 0, T), r, b->cols_of[0], 3 * n);            \
            gru_row_##SUFFIX(z, z + n, z + 2 * n, r, r + n, r + 2 * n, ROW(*b, 3, 0, T),               \
                             ROW(*b, 5, row, T), ROW(*b, 6, row, T), ROW(*b, 7, row, T), n);           \
        }                                                                                              \
    }                                                                                                  \
    static void gru_back_rows_##SUFFIX(const Args *b)                                                  \
    {                                                                                                  \
        Py_ssize_t n = b->cols;                                                                        \
        for (Py_ssize_t row = 0; row < b->rows; row++) {                                               \
            T *r = ROW(*b, 2, row, T), *G = ROW(*b, 5, row, T), *D = ROW(*b, 8, row, T);               \
            if (b->data[0])                                                                            \
                mv_##SUFFIX(ROW(*b, 0, row, T), ROW(*b, 1, 0, T), r, b->cols_of[0], n);                \
            gru_back_row_##SUFFIX(ROW(*b, 3, row, T), r, ROW(*b, 4, row, T), G, G + n, G + 2 * n,      \
                                  ROW(*b, 6, row, T), ROW(*b, 7, row, T), D, D + n, D + 2 * n,         \
                                  D + 3 * n, ROW(*b, 9, row, T), n);                                   \
        }                                                                                              \
    }

GATE_LOOPS(double, d)
GATE_LOOPS(float, f)

/* Argument i is (B, k·n) for the shared shape (B, n).  Returns 0, or −1 with an exception set. */
static int check_cols(Args *b, int i, Py_ssize_t k, const char *name)
{
    if (b->rows_of[i] != b->rows || b->cols_of[i] != k * b->cols) {
        PyErr_Format(PyExc_ValueError, "%s: argument %d: expected shape (%zd, %zd), the gates of (B, n) = (%zd, %zd)",
                     name, i + 1, b->rows, k * b->cols, b->rows, b->cols);
        release(b);
        return -1;
    }
    return 0;
}

/* Argument i is a 1-D vector of n numbers.  Returns 0, or −1 with an exception set. */
static int check_vector(Args *b, int i, const char *name)
{
    if (b->ndim_of[i] != 1 || b->cols_of[i] != b->cols) {
        PyErr_Format(PyExc_ValueError, "%s: argument %d: expected a vector of n = %zd numbers", name, i + 1,
                     b->cols);
        release(b);
        return -1;
    }
    return 0;
}

/* The optional product r = x W: x (argument ix) and W (iw) both None, or x (B, n_in) and W (n_in, r's
 * columns) with dense rows.  Returns 0, or −1 with an exception set. */
static int check_product(Args *b, int ix, int iw, int ir, const char *name)
{
    Py_ssize_t item = b->kind == 'd' ? 8 : 4;
    if (!b->data[ix] && !b->data[iw])
        return 0;
    if (!b->data[ix] || !b->data[iw] || b->rows_of[ix] != b->rows || b->rows_of[iw] != b->cols_of[ix] ||
        b->cols_of[iw] != b->cols_of[ir] || (b->rows_of[iw] > 1 && b->stride[iw] != b->cols_of[iw] * item)) {
        PyErr_Format(PyExc_ValueError,
                     "%s: expected x and W both None, or x (B, n_in) and W (n_in, %zd) with dense rows", name,
                     b->cols_of[ir]);
        release(b);
        return -1;
    }
    return 0;
}

/* No argument written to (bit i of `written`) shares memory with any other argument: the loops
 * read and write through restrict pointers.  Returns 0, or −1 with an exception set. */
static int check_disjoint(Args *b, Py_ssize_t nargs, unsigned written, const char *name)
{
    Py_ssize_t item = b->kind == 'd' ? 8 : 4;
    uintptr_t lo[MAX_ARGS], hi[MAX_ARGS];
    for (Py_ssize_t i = 0; i < nargs; i++) {
        if (!b->data[i])
            continue;
        Py_ssize_t span = (b->rows_of[i] - 1) * b->stride[i];
        lo[i] = (uintptr_t)b->data[i] + (span < 0 ? span : 0);
        hi[i] = (uintptr_t)b->data[i] + (span > 0 ? span : 0) + b->cols_of[i] * item;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) {
        if (!(written >> i & 1) || !b->data[i])
            continue;
        for (Py_ssize_t j = 0; j < nargs; j++) {
            if (j != i && b->data[j] && lo[i] < hi[j] && lo[j] < hi[i]) {
                PyErr_Format(PyExc_ValueError, "%s: argument %zd overlaps argument %zd in memory", name, i + 1,
                             j + 1);
                release(b);
                return -1;
            }
        }
    }
    return 0;
}

PyDoc_STRVAR(lstm_step_doc,
             "lstm_step(x, W, r, z, c_prev, c, tanh_c, a)\n--\n\n"
             "One LSTM step's gate work in one pass (bptt.cells.lstm), for the shared shape (B, n):\n"
             "z (B, 4n) holds the pre-activations' input part W_ax x + b_a on entry and the gates\n"
             "[i | f | g | o] on return; r (B, 4n) holds their recurrent part a_prev W_aa^T, or, when x\n"
             "(B, n_in) and W (n_in, 4n) are given (else both None), is first set to x @ W here.\n"
             "Writes c = f c_prev + i g, tanh_c = tanh(c) and a = o tanh_c, each (B, n).");

static PyObject *py_lstm_step(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs)
{
    const char *name = "lstm_step";
    Args b;
    if (take(&b, args, nargs, 8, 0xEC, 0x3, 0xF, name) < 0 || check_cols(&b, 2, 4, name) < 0 ||
        check_cols(&b, 3, 4, name) < 0 || check_product(&b, 0, 1, 2, name) < 0 ||
        check_disjoint(&b, nargs, 0xEC, name) < 0)
        return NULL;
    if (b.kind == 'd')
        lstm_step_rows_d(&b);
    else
        lstm_step_rows_f(&b);
    release(&b);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(lstm_step_backward_doc,
             "lstm_step_backward(x, W, r, dA, dc_next, G, c_prev, tanh_c, dG, da, dc)\n--\n\n"
             "One LSTM step's backward in one pass, for the shared shape (B, n): da = dA + r, where r\n"
             "(B, n) is the message through a⟨t+1⟩'s gates, dG⟨t+1⟩ W_aa, or, when x (B, n_in) and W\n"
             "(n_in, n) are given (else both None), is first set to x @ W here; dc = dc_next + da o (1 -\n"
             "tanh_c^2); dG (B, 4n) = [dc g i(1-i) | dc c_prev f(1-f) | dc i(1-g^2) | da tanh_c o(1-o)]\n"
             "from the gates G (B, 4n) = [i | f | g | o]; dc_next = dc f, in place; writes da and dc.");

static PyObject *py_lstm_step_backward(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs)
{
    const char *name = "lstm_step_backward";
    Args b;
    if (take(&b, args, nargs, 11, 0x714, 0x3, 0x123, name) < 0 || check_cols(&b, 5, 4, name) < 0 ||
        check_cols(&b, 8, 4, name) < 0 || check_product(&b, 0, 1, 2, name) < 0 ||
        check_disjoint(&b, nargs, 0x714, name) < 0)
        return NULL;
    if (b.kind == 'd')
        lstm_back_rows_d(&b);
    else
        lstm_back_rows_f(&b);
    release(&b);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(gru_step_doc,
             "gru_step(x, W, r, b_hn, z, a_prev, h_n, a)\n--\n\n"
             "One GRU step's gate work in one pass (bptt.cells.gru), for the shared shape (B, n):\n"
             "z (B, 3n) holds the pre-activations' input part W_ax x + b_a on entry and the gates\n"
             "[r | z | n] on return; r (B, 3n) holds the recurrent part a_prev W_aa^T (b_hn not added), or,\n"
             "when x (B, n_in) and W (n_in, 3n) are given (else both None), is first set to x @ W here.\n"
             "b_hn (n,); writes h_n = r_n + b_hn and a = n + z (a_prev - n), each (B, n).");

static PyObject *py_gru_step(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs)
{
    const char *name = "gru_step";
    Args b;
    if (take(&b, args, nargs, 8, 0xD4, 0x3, 0x1F, name) < 0 || check_cols(&b, 2, 3, name) < 0 ||
        check_cols(&b, 4, 3, name) < 0 || check_vector(&b, 3, name) < 0 ||
        check_product(&b, 0, 1, 2, name) < 0 || check_disjoint(&b, nargs, 0xD4, name) < 0)
        return NULL;
    if (b.kind == 'd')
        gru_step_rows_d(&b);
    else
        gru_step_rows_f(&b);
    release(&b);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(gru_step_backward_doc,
             "gru_step_backward(x, W, r, dA, carry, G, h_n, a_prev, D, da)\n--\n\n"
             "One GRU step's backward in one pass, for the shared shape (B, n): da = dA + (carry + r),\n"
             "where carry (B, n) is da⟨t+1⟩ z⟨t+1⟩ and r (B, n) the message through a⟨t+1⟩'s gates,\n"
             "D⟨t+1⟩[:, :3n] W_aa, or, when x (B, n_in) and W (n_in, n) are given (else both None), is\n"
             "first set to x @ W here; from the gates G (B, 3n) = [r | z | n], h_n and a_prev, writes\n"
             "D (B, 4n) = [dr^ | dz^ | dh_n | dn^] (bptt.cells.gru), da, and carry = da z, in place.");

static PyObject *py_gru_step_backward(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs)
{
    const char *name = "gru_step_backward";
    Args b;
    if (take(&b, args, nargs, 10, 0x314, 0x3, 0x123, name) < 0 || check_cols(&b, 5, 3, name) < 0 ||
        check_cols(&b, 8, 4, name) < 0 || check_product(&b, 0, 1, 2, name) < 0 ||
        check_disjoint(&b, nargs, 0x314, name) < 0)
        return NULL;
    if (b.kind == 'd')
        gru_back_rows_d(&b);
    else
        gru_back_rows_f(&b);
    release(&b);
    Py_RETURN_NONE;
}

/* Adam's update (bptt.training.optim.Adam), one pass over a parameter instead of NumPy's thirteen:
 *   m ← β₁ m + (1 − β₁) g,   v ← β₂ v + (1 − β₂) g²,   θ ← θ − (η / c₁) m / (√(v / c₂) + ε)
 * in the parameter's dtype, each operation rounded as NumPy rounds it (no fused multiply-adds), so the
 * result is bit-identical to the NumPy update. */
#define ADAM_LOOP(T, SUFFIX)                                                                           \
    VECTOR_LOOP __attribute__((optimize("fp-contract=off"))) static void              \
    adam_row_##SUFFIX(T *restrict p, const T *restrict g, T *restrict m, T *restrict v, Py_ssize_t n,   \
                      const double *k)                                                                 \
    {                                                                                                  \
        const T b1 = (T)k[0], a1 = (T)k[1], b2 = (T)k[2], a2 = (T)k[3], c2 = (T)k[4], eps = (T)k[5];    \
        const T step = (T)k[6];                                                                        \
        for (Py_ssize_t j = 0; j < n; j++) {                                                           \
            T mj = m[j] * b1 + a1 * g[j];                                                              \
            T vj = v[j] * b2 + a2 * (g[j] * g[j]);                                                     \
            m[j] = mj;                                                                                 \
            v[j] = vj;                                                                                 \
            p[j] = p[j] - (step * mj) / (sqrt(vj / c2) + eps);                                         \
        }                                                                                              \
    }

ADAM_LOOP(double, d)
ADAM_LOOP(float, f)

PyDoc_STRVAR(adam_step_doc,
             "adam_step(p, g, m, v, beta1, beta2, c2, eps, step)\n--\n\n"
             "Adam's update of one parameter in one pass, in place on p, m and v (one shape, one float dtype,\n"
             "contiguous rows): m = beta1 m + (1 - beta1) g, v = beta2 v + (1 - beta2) g^2,\n"
             "p -= step m / (sqrt(v / c2) + eps), where step = lr / c1 (c1, c2: the bias corrections).\n"
             "Rounded as NumPy's operations on the same dtype: the same bits.");

static PyObject *py_adam_step(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs)
{
    const char *name = "adam_step";
    if (nargs != 9) {
        PyErr_Format(PyExc_TypeError, "%s: expected 9 arguments, got %zd", name, nargs);
        return NULL;
    }
    double beta1 = PyFloat_AsDouble(args[4]), beta2 = PyFloat_AsDouble(args[5]);
    double k[7] = {beta1, 1.0 - beta1, beta2, 1.0 - beta2, PyFloat_AsDouble(args[6]), PyFloat_AsDouble(args[7]),
                   PyFloat_AsDouble(args[8])};
    if (PyErr_Occurred())
        return NULL;
    Args b;
    if (take(&b, args, 4, 4, 0xD, 0, 0, name) < 0 || check_disjoint(&b, 4, 0xD, name) < 0)
        return NULL;
    for (Py_ssize_t row = 0; row < b.rows; row++) {
        if (b.kind == 'd')
            adam_row_d(ROW(b, 0, row, double), ROW(b, 1, row, double), ROW(b, 2, row, double),
                       ROW(b, 3, row, double), b.cols, k);
        else
            adam_row_f(ROW(b, 0, row, float), ROW(b, 1, row, float), ROW(b, 2, row, float),
                       ROW(b, 3, row, float), b.cols, k);
    }
    release(&b);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"tanh_add", (PyCFunction)(void (*)(void))py_tanh_add, METH_FASTCALL, tanh_add_doc},
    {"tanh_backward", (PyCFunction)(void (*)(void))py_tanh_backward, METH_FASTCALL, tanh_backward_doc},
    {"tanh_gemv", (PyCFunction)(void (*)(void))py_tanh_gemv, METH_FASTCALL, tanh_gemv_doc},
    {"tanh_gemv_backward", (PyCFunction)(void (*)(void))py_tanh_gemv_backward, METH_FASTCALL,
     tanh_gemv_backward_doc},
    {"lstm_step", (PyCFunction)(void (*)(void))py_lstm_step, METH_FASTCALL, lstm_step_doc},
    {"lstm_step_backward", (PyCFunction)(void (*)(void))py_lstm_step_backward, METH_FASTCALL,
     lstm_step_backward_doc},
    {"gru_step", (PyCFunction)(void (*)(void))py_gru_step, METH_FASTCALL, gru_step_doc},
    {"gru_step_backward", (PyCFunction)(void (*)(void))py_gru_step_backward, METH_FASTCALL,
     gru_step_backward_doc},
    {"adam_step", (PyCFunction)(void (*)(void))py_adam_step, METH_FASTCALL, adam_step_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_kernels", "A recurrent step's elementwise work in one pass: tanh RNN, LSTM, GRU; Adam's update (see _kernels.c).", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__kernels(void) { return PyModule_Create(&module); }
