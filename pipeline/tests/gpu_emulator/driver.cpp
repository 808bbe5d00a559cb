// Emulates the model kernels over the cases tests/gpu.rs wrote to argv[1]
// (index.txt, then NAME.table, .params, .tokens as little-endian arrays) and
// writes each case's output to NAME.gpu. Launches as GpuModel does: the rows
// kernel in blocks of 128 threads, the pooling kernel as one block of the
// output width rounded up to a warp.
#include "shim.h"
#include "kernels.cu"

#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

template <class T>
static std::vector<T> load(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    std::vector<T> v(bytes.size() / sizeof(T));
    memcpy(v.data(), bytes.data(), v.size() * sizeof(T));
    return v;
}

int main(int argc, char** argv) {
    if (argc != 2) {
        return 2;
    }
    const std::string dir = argv[1];
    std::ifstream index(dir + "/index.txt");
    std::string line;
    int cases = 0;
    while (std::getline(index, line)) {
        std::istringstream s(line);
        std::string name;
        ModelShape shape{};
        int pool_max, top_k, rows;
        s >> name >> shape.buckets >> shape.attention >> shape.window >> pool_max >> top_k >> rows >>
            shape.n_layers;
        for (int i = 0; i <= shape.n_layers; ++i) {
            s >> shape.widths[i];
        }
        const auto table = load<float>(dir + "/" + name + ".table");
        const auto params = load<float>(dir + "/" + name + ".params");
        const auto tokens = load<unsigned>(dir + "/" + name + ".tokens");
        const int width = shape.widths[shape.n_layers];
        std::vector<float> rows_out((size_t)rows * width), out(width);

        const unsigned block = 128;
        blockDim = {block, 1, 1};
        for (unsigned b = 0; b < (rows + block - 1) / block; ++b) {
            for (unsigned t = 0; t < block; ++t) {
                blockIdx = {b, 0, 0};
                threadIdx = {t, 0, 0};
                embed_rows(tokens.data(), rows, table.data(), params.data(), shape, rows_out.data());
            }
        }
        const unsigned threads = (width + 31) / 32 * 32;
        blockDim = {threads, 1, 1};
        g_barrier.n = threads;
        std::vector<std::thread> pool;
        for (unsigned t = 0; t < threads; ++t) {
            pool.emplace_back([&, t] {
                blockIdx = {0, 0, 0};
                threadIdx = {t, 0, 0};
                pool_finish(rows_out.data(), rows, width, pool_max, top_k, out.data());
            });
        }
        for (auto& t : pool) {
            t.join();
        }
        std::ofstream(dir + "/" + name + ".gpu", std::ios::binary)
            .write(reinterpret_cast<const char*>(out.data()), out.size() * sizeof(float));
        ++cases;
    }
    return cases > 0 ? 0 : 1;
}
