// The reference models' forward pass in CUDA C, compiled at run time with
// NVRTC (see kernels.rs). It reproduces src/pipeline/math.rs operation for
// operation, in the same order, so that with `--fmad=false` (no fused
// multiply-add contraction) the results match the CPU models to a few ulps:
// only expf may round differently.
//
// Two kernels per model call, both on the model's own stream:
//   embed_rows:   one thread per token row: hash lookup, attention (reading
//                 the other rows straight from the table), dense layers.
//   pool_finish:  one block, one thread per output column: mean or max
//                 pooling, top-k, L2 normalisation.

#define MAX_LAYERS 4
#define MAX_WIDTH 256

// -inf and the largest finite float, without math.h (NVRTC compiles without
// the system headers).
#define NEG_INF __int_as_float(0xff800000)
#define FLT_LARGEST 3.402823466e+38f

#define ATTN_NONE 0
#define ATTN_WINDOW 1
#define ATTN_FULL 2

// Mirrors `KernelShape` in kernels.rs (#[repr(C)]).
struct ModelShape {
    int buckets;
    int n_layers;
    int attention;
    int window;
    int widths[MAX_LAYERS + 1];
};

// math::bucket: a multiplicative hash of the token id.
__device__ __forceinline__ unsigned long long bucket_of(unsigned int token, int buckets) {
    unsigned long long h = ((unsigned long long)token * 0x9E3779B97F4A7C15ull) >> 32;
    return h % (unsigned long long)(buckets > 1 ? buckets : 1);
}

// q . k over `dim` values, summed in index order, times `scale`.
__device__ __forceinline__ float score(const float* q, const float* k, int dim, float scale) {
    float s = 0.0f;
    for (int d = 0; d < dim; ++d) {
        s += q[d] * k[d];
    }
    return s * scale;
}

extern "C" __global__ void embed_rows(
    const unsigned int* tokens,
    int rows,
    const float* table,
    const float* params,
    struct ModelShape shape,
    float* rows_out)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= rows) {
        return;
    }
    const int dim = shape.widths[0];
    const float* q = table + bucket_of(tokens[i], shape.buckets) * (unsigned long long)dim;

    float a[MAX_WIDTH];
    float b[MAX_WIDTH];
    for (int d = 0; d < dim; ++d) {
        a[d] = q[d];
    }

    // math::attention, for row i: x[i] + sum_j softmax_j(x[i].x[j] / sqrt(dim)) x[j].
    // Three passes over the keys (max, total, weighted sum) recompute each score
    // rather than storing it, so any window fits; the values are identical.
    if (shape.attention != ATTN_NONE) {
        int lo = 0;
        int hi = rows;
        if (shape.attention == ATTN_WINDOW) {
            lo = i > shape.window ? i - shape.window : 0;
            hi = i + shape.window + 1 < rows ? i + shape.window + 1 : rows;
        }
        const float scale = 1.0f / sqrtf((float)(dim > 1 ? dim : 1));
        float mx = NEG_INF;
        for (int j = lo; j < hi; ++j) {
            const float* k = table + bucket_of(tokens[j], shape.buckets) * (unsigned long long)dim;
            mx = fmaxf(mx, score(q, k, dim, scale));
        }
        float total = 0.0f;
        for (int j = lo; j < hi; ++j) {
            const float* k = table + bucket_of(tokens[j], shape.buckets) * (unsigned long long)dim;
            total += expf(score(q, k, dim, scale) - mx);
        }
        for (int j = lo; j < hi; ++j) {
            const float* k = table + bucket_of(tokens[j], shape.buckets) * (unsigned long long)dim;
            const float p = expf(score(q, k, dim, scale) - mx) / total;
            for (int d = 0; d < dim; ++d) {
                a[d] += p * k[d];
            }
        }
    }

    // math::dense (bias first, then inputs in order), ReLU between layers.
    const float* w = params;
    float* x = a;
    float* y = b;
    for (int l = 0; l < shape.n_layers; ++l) {
        const int in = shape.widths[l];
        const int out = shape.widths[l + 1];
        const float* bias = w + in * out;
        for (int o = 0; o < out; ++o) {
            float acc = bias[o];
            for (int k = 0; k < in; ++k) {
                acc += x[k] * w[k * out + o];
            }
            if (l + 1 < shape.n_layers) {
                acc = fmaxf(acc, 0.0f);
            }
            y[o] = acc;
        }
        w = bias + out;
        float* t = x;
        x = y;
        y = t;
    }

    const int width = shape.widths[shape.n_layers];
    float* dst = rows_out + (unsigned long long)i * width;
    for (int o = 0; o < width; ++o) {
        dst[o] = x[o];
    }
}

// One block of at least `width` threads (width <= MAX_WIDTH).
extern "C" __global__ void pool_finish(
    const float* rows_out,
    int rows,
    int width,
    int pool_max,
    int top_k,
    float* out)
{
    __shared__ float pooled[MAX_WIDTH];
    __shared__ float norm;
    const int c = threadIdx.x;

    // math::mean_pool / math::max_pool, rows in order.
    if (c < width) {
        float acc;
        if (pool_max) {
            acc = NEG_INF;
            for (int r = 0; r < rows; ++r) {
                acc = fmaxf(acc, rows_out[(unsigned long long)r * width + c]);
            }
            if (rows == 0) {
                acc = 0.0f;
            }
        } else {
            acc = 0.0f;
            for (int r = 0; r < rows; ++r) {
                acc += rows_out[(unsigned long long)r * width + c];
            }
            acc /= (float)(rows > 1 ? rows : 1);
        }
        pooled[c] = acc;
    }
    __syncthreads();

    // math::top_k: keep the k entries of largest magnitude (ties: lower index).
    float v = 0.0f;
    if (c < width) {
        v = pooled[c];
        if (top_k >= 0 && top_k < width) {
            const float m = fabsf(v);
            int rank = 0;
            for (int j = 0; j < width; ++j) {
                const float mj = fabsf(pooled[j]);
                if (mj > m || (mj == m && j < c)) {
                    ++rank;
                }
            }
            if (rank >= top_k) {
                v = 0.0f;
            }
        }
    }
    __syncthreads();
    if (c < width) {
        pooled[c] = v;
    }
    __syncthreads();

    // math::l2_normalize: the sum of squares in index order, by one thread.
    if (c == 0) {
        float s = 0.0f;
        for (int j = 0; j < width; ++j) {
            s += pooled[j] * pooled[j];
        }
        norm = sqrtf(s);
    }
    __syncthreads();
    if (c < width) {
        const float n = norm;
        out[c] = (n > 0.0f && n <= FLT_LARGEST) ? pooled[c] / n : pooled[c];
    }
}

// Does nothing: what launching and timing a kernel costs, measured alone
// (benches/gpu.rs).
extern "C" __global__ void empty_kernel() {}
