// Runs kernels.cu on the CPU, for tests/gpu.rs: each CUDA thread of a block
// becomes a host thread, `__shared__` memory a static, `__syncthreads` a
// barrier. Only what kernels.cu uses is defined.
#include <condition_variable>
#include <math.h>
#include <mutex>
#include <string.h>

struct Dim3 {
    unsigned x, y, z;
};
thread_local Dim3 threadIdx, blockIdx;
Dim3 blockDim;

// A reusable barrier for the threads of the one block running.
struct Barrier {
    std::mutex m;
    std::condition_variable cv;
    unsigned n = 0, waiting = 0, generation = 0;
    void wait() {
        std::unique_lock<std::mutex> lock(m);
        unsigned gen = generation;
        if (++waiting == n) {
            waiting = 0;
            ++generation;
            cv.notify_all();
        } else {
            cv.wait(lock, [&] { return gen != generation; });
        }
    }
};
Barrier g_barrier;

#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static
inline void __syncthreads() { g_barrier.wait(); }
inline float __int_as_float(int x) {
    float f;
    memcpy(&f, &x, sizeof f);
    return f;
}
