/* bptt._kernels: a tanh RNN step's elementwise work, one pass each way.
 *
 * The recurrence's GEMMs stay in NumPy (its BLAS); what is left per step is elementwise:
 *   forward    a⟨t⟩  = tanh(z⟨t⟩ + r)                 r = W_aa a⟨t−1⟩, z⟨t⟩ = W_ax x⟨t⟩ + b_a
 *   backward   da⟨t⟩ = dA[t] + da_next                 the whole message reaching a⟨t⟩
 *              dz⟨t⟩ = da⟨t⟩ ⊙ (1 − a⟨t⟩²)             through tanh, from the saved output
 * NumPy needs five or six passes and calls for these, and its float64 tanh and exp are scalar
 * on CPUs without AVX-512; here each is one loop the compiler vectorises (tanh_add,
 * tanh_backward).  For small steps, where a BLAS call costs more than its arithmetic, the
 * product with W_aa (r above; da_next = dz⟨t+1⟩ W_aa) joins the same call (tanh_gemv,
 * tanh_gemv_backward).
 *
 * Optional: when this module is missing bptt computes the same equations in NumPy
 * (bptt.rnn), and the tests hold the two to agree within a few ulp.
 *
 * tanh(x) = m / (m + 2) with m = e^{2x} − 1, which keeps full relative precision near 0.
 * m comes from 2x = n ln2 + r, |r| ≤ ln2/2:  e^{2x} − 1 = 2^n (e^r − 1) + (2^n − 1), with
 * e^r − 1 by its Taylor series in Horner form (the first omitted term is below 2^−55 of the
 * sum in double, 2^−30 in float).  It runs on |x| and takes x's sign at the end (so −0 stays
 * −0); |x| is clamped at 20 in double, 10 in float, past where tanh rounds to 1 (19.06, 9.01),
 * by a comparison that lets NaN through.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <tgmath.h> /* fabs and copysign of the argument's type */
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) && __GNUC__ >= 11 && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
/* one AVX2+FMA build and one baseline build of each loop, picked by the CPU at load time */
#define VECTOR_LOOP __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define VECTOR_LOOP
#endif

/* tanh in type T (see the top of the file).  UINT is T's bits, MANT its mantissa width and BIAS
 * its exponent bias; CLAMP bounds 2|x|; ln2 = LN2_HI + LN2_LO with LN2_HI's low bits zero, so
 * n·LN2_HI is exact; the rest are e^r − 1's Taylor coefficients 1/k!, highest k first, to 1/2. */
#define TANH1(T, SUFFIX, UINT, MANT, BIAS, CLAMP, LN2_HI, LN2_LO, ...)                                 \
    static inline T tanh1_##SUFFIX(T x)                                                                \
    {                                                                                                  \
        static const T c[] = {__VA_ARGS__};                                                            \
        const T shifter = (T)0x1.8p##MANT; /* adding it rounds to an integer, kept in the low bits */  \
        T y = (T)2 * fabs(x);                                                                          \
        y = y > (T)CLAMP ? (T)CLAMP : y;                                                               \
        T k = y * (T)1.4426950408889634 + shifter; /* log2(e) */                                      \
        T n = k - shifter;                                                                             \
        T r = (y - n * (T)LN2_HI) - n * (T)LN2_LO;                                                     \
        T p = c[0];                                                                                    \
        for (size_t i = 1; i < sizeof c / sizeof c[0]; i++)                                            \
            p = p * r + c[i];                                                                          \
        p = p * (r * r) + r; /* e^r − 1 */                                                             \
        UINT bits;                                                                                     \
        memcpy(&bits, &k, sizeof bits);                                                                \
        bits = (bits + BIAS) << MANT; /* 2^n: the low bits of k hold n */                              \
        T scale;                                                                                       \
        memcpy(&scale, &bits, sizeof scale);                                                           \
        T m = scale * p + (scale - (T)1);                                                              \
        return copysign(m / (m + (T)2), x); /* tanh(−x) = −tanh(x), −0 included */                     \
    }

TANH1(double, d, uint64_t, 52, 1023, 40.0, 0x1.62e42fefa0000p-1, 0x1.cf79abc9e3b3ap-40, 1.0 / 87178291200.0,
      1.0 / 6227020800.0, 1.0 / 479001600.0, 1.0 / 39916800.0, 1.0 / 3628800.0, 1.0 / 362880.0, 1.0 / 40320.0,
      1.0 / 5040.0, 1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5)
TANH1(float, f, uint32_t, 23, 127, 20.0f, 0x1.62e4p-1f, 0x1.7f7d1cp-20f, 1.0f / 362880.0f, 1.0f / 40320.0f,
      1.0f / 5040.0f, 1.0f / 720.0f, 1.0f / 120.0f, 1.0f / 24.0f, 1.0f / 6.0f, 0.5f)

#define STEP_LOOPS(T, SUFFIX, TANH)                                                                    \
    VECTOR_LOOP static void tanh_add_##SUFFIX(const T *z, const T *r, T *out, Py_ssize_t n)             \
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
    VECTOR_LOOP static void tanh_mv_##SUFFIX(const T *x, const T *W, const T *r, T *out, Py_ssize_t n_in, \
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
typedef struct {
    Py_buffer views[6];
    int held;
    char kind;            /* 'd' or 'f' */
    Py_ssize_t rows, cols; /* the shared shape */
    char *data[6];        /* NULL for an optional argument given as None */
    Py_ssize_t stride[6]; /* bytes from one row to the next */
    Py_ssize_t rows_of[6], cols_of[6];
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
    for (Py_ssize_t i = 0; i < nargs; i++) {
        b->data[i] = NULL;
        b->stride[i] = 0;
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

static PyMethodDef methods[] = {
    {"tanh_add", (PyCFunction)(void (*)(void))py_tanh_add, METH_FASTCALL, tanh_add_doc},
    {"tanh_backward", (PyCFunction)(void (*)(void))py_tanh_backward, METH_FASTCALL, tanh_backward_doc},
    {"tanh_gemv", (PyCFunction)(void (*)(void))py_tanh_gemv, METH_FASTCALL, tanh_gemv_doc},
    {"tanh_gemv_backward", (PyCFunction)(void (*)(void))py_tanh_gemv_backward, METH_FASTCALL,
     tanh_gemv_backward_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_kernels", "A tanh RNN step's elementwise work in one pass (see _kernels.c).", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__kernels(void) { return PyModule_Create(&module); }
