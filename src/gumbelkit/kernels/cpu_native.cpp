// gumbelkit's CPU kernels in C++: Gumbel-max and Gumbel-Softmax with the values of the Python
// CPU path (gumbelkit/kernels/cpu.py) bit for bit, in one call, over the same chunks.
//
// At small sizes a call of the Python path is a dozen tensor operations of about a microsecond
// each (the seed, re-seeding a generator, the uniforms, clamp, two logarithms, the row maximum,
// the shift, the division, the softmax) and the autograd nodes of each; at large sizes each is
// a pass over a chunk, and ATen draws the uniforms one call of the generator at a time behind
// its iterator. Here the operations that are exact in floating point (the seed, the uniforms,
// the clamp, the negation, the maximum, the shift, the division, the argmax, the one-hot, the
// transposition of short rows) are loops over the data, fused where they follow each other
// (ATen's vectorized maximum and argmax for long rows), and the ones that round (the two
// logarithms, the softmax and its backward) are ATen's own calls (in the forward its CPU
// kernels, without the dispatcher), so the values stay the Python path's. The gradient is one
// autograd node (a C++ autograd Function) whose backward is made of ATen's differentiable
// operations (double backward works).
//
// Noise: the seed of a call is torch.randint(2**62, (1,), generator=generator)'s draw; the
// uniforms are those of torch.rand(shape, generator=g) for g a CPU generator seeded with it
// (gumbelkit.kernels.reference.seeded), clamped below at the dtype's smallest normal number:
// G = -log(-log u), finite.

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Dispatch.h>
#include <ATen/core/DistributionsHelper.h>
#include <ATen/core/MT19937RNGEngine.h>
#include <ATen/ops/_softmax_cpu_dispatch.h>
#include <ATen/ops/log_cpu_dispatch.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include <array>
#include <cmath>
#include <limits>
#include <mutex>
#include <optional>
#include <type_traits>

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// torch.randint(2**62, (1,), dtype=torch.int64, generator=generator)'s value
uint64_t draw_seed(const std::optional<at::Generator>& generator) {
  auto* source = at::get_generator_or_default<at::CPUGeneratorImpl>(
      generator, at::detail::getDefaultCPUGenerator());
  std::lock_guard<std::mutex> lock(source->mutex_);
  return static_cast<uint64_t>(
      at::uniform_int_from_to_distribution<int64_t>(uint64_t{1} << 62, 0)(source));
}

// the generator of a call's noise: one per thread, seeded with the call's seed
at::CPUGeneratorImpl* seeded_engine(uint64_t seed) {
  thread_local at::Generator seeded = at::make_generator<at::CPUGeneratorImpl>();
  auto* engine = at::check_generator<at::CPUGeneratorImpl>(seeded);
  engine->set_current_seed(seed);
  return engine;
}

// The first draws of at::mt19937 seeded with `seed` (as CPUGeneratorImpl gives them: random(),
// and random64() from two of them, the first the high half), without initialising and
// twisting its whole state, which is most of a small call's time: output i < 227 of the first
// twist is word i + 397 of the initial state XOR the twist of words i and i + 1.
class FirstDraws {
 public:
  static constexpr int64_t MAX = at::MERSENNE_STATE_N - at::MERSENNE_STATE_M;  // 227 words

  FirstDraws(uint64_t seed, int64_t words) {
    state_[0] = seed & 0xffffffff;
    for (int64_t j = 1; j < words + at::MERSENNE_STATE_M; ++j) {
      state_[j] = 1812433253 * (state_[j - 1] ^ (state_[j - 1] >> 30)) + j;
    }
  }

  uint32_t random() {
    const uint32_t u = state_[next_], v = state_[next_ + 1];
    uint32_t y = state_[next_ + at::MERSENNE_STATE_M] ^
                 ((((u & at::UMASK) | (v & at::LMASK)) >> 1) ^ (v & 1 ? at::MATRIX_A : 0));
    ++next_;
    y ^= (y >> 11);
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= (y >> 18);
    return y;
  }

  uint64_t random64() {
    const uint64_t high = random();
    return (high << 32) | random();
  }

 private:
  std::array<uint32_t, at::MERSENNE_STATE_N> state_;
  int64_t next_ = 0;
};

// log(-log u) over the contiguous `u`, for its next u.numel() uniforms of `engine` (see the
// header): the Gumbel draw -log(-log u) with its sign left to the shift that uses it
template <typename T, typename Engine>
void log_log_(at::Tensor& u, Engine* engine) {
  at::uniform_real_distribution<T> uniform(0, 1);
  const T tiny = std::numeric_limits<T>::min();
  T* out = u.data_ptr<T>();
  const int64_t n = u.numel();
  for (int64_t i = 0; i < n; ++i) out[i] = std::max(uniform(engine), tiny);
  at::cpu::log_(u);
  for (int64_t i = 0; i < n; ++i) out[i] = -out[i];
  at::cpu::log_(u);
}

// the mt19937 words a tensor's uniforms take: one per float, two per double
template <typename T>
int64_t words_of(int64_t entries) {
  return std::is_same_v<T, double> ? 2 * entries : entries;
}

// log_log_ of a chunk `u` of a call: from the first draws alone when it is the call's only
// chunk and they suffice, else from the call's engine (made by its first chunk)
template <typename T>
void chunk_log_log_(at::Tensor& u, bool only, uint64_t seed, at::CPUGeneratorImpl** engine) {
  if (only && words_of<T>(u.numel()) <= FirstDraws::MAX) {
    FirstDraws draws(seed, words_of<T>(u.numel()));
    log_log_<T>(u, &draws);
    return;
  }
  if (*engine == nullptr) *engine = seeded_engine(seed);
  log_log_<T>(u, *engine);
}

// torch.amax's value on a row: NaN if the row has one
template <typename T>
T row_max(const T* row, int64_t K) {
  T top = row[0];
  for (int64_t k = 0; k < K; ++k) {
    if (std::isnan(row[k])) return row[k];
    if (row[k] > top) top = row[k];
  }
  return top;
}

// torch.argmax's value on a row: the first maximum, a NaN counting as the maximum
template <typename T>
int64_t row_argmax(const T* row, int64_t K) {
  int64_t best = 0;
  for (int64_t k = 1; k < K && !std::isnan(row[best]); ++k) {
    if (std::isnan(row[k]) || row[k] > row[best]) best = k;
  }
  return best;
}

// Rows from which a row's maximum and argmax are ATen's vectorized reductions: below, the loops
// here, which for short rows are faster than ATen's per-row kernels (both exact)
constexpr int64_t LONG_ROW = 64;

template <typename T>
at::TensorOptions dtype_of() {
  return at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value);
}

// n rows of K categories at x, `v` holding their log(-log u): v = (x - max(x)) - log(-log u)
// in place, each row's argmax of v into `index` (unless null), then, with a temperature, v /
// tau: in place, or into `transposed` laid out (K, n) (unless null)
template <typename T>
void perturb_rows(const T* x, T* v, int64_t n, int64_t K, int64_t* index, const T* tau,
                  T* transposed) {
  at::Tensor tops;
  const T* top_of = nullptr;
  if (K >= LONG_ROW) {
    tops = at::amax(at::from_blob(const_cast<T*>(x), {n, K}, dtype_of<T>()), 1);
    top_of = tops.data_ptr<T>();
  }
  const bool divide_now = tau != nullptr && index == nullptr && transposed == nullptr;
  const T t = tau != nullptr ? *tau : T(1);
  for (int64_t r = 0; r < n; ++r) {
    const T* row = x + r * K;
    T* out = v + r * K;
    const T top = top_of != nullptr ? top_of[r] : row_max(row, K);
    if (divide_now) {
      for (int64_t k = 0; k < K; ++k) out[k] = ((row[k] - top) - out[k]) / t;
    } else {
      for (int64_t k = 0; k < K; ++k) out[k] = (row[k] - top) - out[k];
    }
  }
  if (index != nullptr) {
    if (K >= LONG_ROW) {
      at::Tensor indices = at::from_blob(index, {n}, at::TensorOptions().dtype(at::kLong));
      at::argmax_out(indices, at::from_blob(v, {n, K}, dtype_of<T>()), 1);
    } else {
      for (int64_t r = 0; r < n; ++r) index[r] = row_argmax(v + r * K, K);
    }
  }
  if (tau == nullptr || divide_now) return;
  for (int64_t r = 0; r < n; ++r) {
    T* out = v + r * K;
    if (transposed != nullptr) {
      for (int64_t k = 0; k < K; ++k) transposed[k * n + r] = out[k] / t;
    } else {
      for (int64_t k = 0; k < K; ++k) out[k] = out[k] / t;
    }
  }
}

// The chunks of a call, as the Python CPU path takes them: the whole tensor when it has at
// most `chunk` entries, else blocks of max(1, chunk / K) rows; the uniforms continue from one
// chunk to the next
struct Chunks {
  int64_t rows, K, per_chunk;
  bool whole;
  Chunks(const at::Tensor& x, int64_t dim, int64_t chunk)
      : rows(x.numel() / x.size(dim)), K(x.size(dim)),
        per_chunk(x.numel() <= chunk ? rows : std::max<int64_t>(1, chunk / x.size(dim))),
        whole(x.numel() <= chunk) {}

  // the first n rows of a flat buffer of per_chunk rows (the buffer itself when they are all:
  // a view costs a dispatched call, which at small sizes counts)
  at::Tensor part(const at::Tensor& buffer, int64_t n) const {
    return n == per_chunk ? buffer : buffer.narrow(0, 0, n * K);
  }
};

at::Tensor gumbel_max_chunks(const at::Tensor& logits, int64_t dim, int64_t chunk,
                             const std::optional<at::Generator>& generator) {
  auto sizes = logits.sizes().vec();
  sizes.erase(sizes.begin() + dim);
  at::Tensor index = at::empty(sizes, logits.options().dtype(at::kLong));
  const Chunks chunks(logits, dim, chunk);
  const uint64_t seed = draw_seed(generator);
  at::CPUGeneratorImpl* engine = nullptr;
  at::Tensor scratch = at::empty({chunks.per_chunk * chunks.K}, logits.options());
  AT_DISPATCH_FLOATING_TYPES(logits.scalar_type(), "gumbelkit_gumbel_max", [&] {
    const scalar_t* x = logits.data_ptr<scalar_t>();
    for (int64_t start = 0; start < chunks.rows; start += chunks.per_chunk) {
      const int64_t n = std::min(chunks.per_chunk, chunks.rows - start);
      at::Tensor u = chunks.part(scratch, n);
      chunk_log_log_<scalar_t>(u, chunks.whole, seed, &engine);
      perturb_rows<scalar_t>(x + start * chunks.K, u.data_ptr<scalar_t>(), n, chunks.K,
                             index.data_ptr<int64_t>() + start, nullptr, nullptr);
    }
  });
  return index;
}

// The sample and, with hard, the soft sample (without hard: the soft sample alone), as the
// Python CPU path computes them: the one-chunk path of differentiable_gumbel_softmax, the
// chunked one of gumbel_softmax (gumbelkit/kernels/cpu.py). The softmax runs over the
// transposed layout where gumbelkit._ops.short_rows says so: `across_rows` for the whole
// tensor, and for a chunk of n rows K < short_row and n K >= short_entries (its rule on a
// (n, K) matrix); the divided values are then written transposed in the same pass.
variable_list samples(const at::Tensor& logits, const at::Tensor& tau, bool hard, int64_t dim,
                      bool across_rows, int64_t short_row, int64_t short_entries, int64_t chunk,
                      const std::optional<at::Generator>& generator) {
  const Chunks chunks(logits, dim, chunk);
  const int64_t K = chunks.K;
  at::Tensor soft;  // the whole tensor's softmax makes it; chunks write into it
  at::Tensor index = hard ? at::empty({chunks.rows}, logits.options().dtype(at::kLong))
                          : at::Tensor();
  const uint64_t seed = draw_seed(generator);
  at::CPUGeneratorImpl* engine = nullptr;
  at::Tensor scratch = chunks.whole ? at::empty(logits.sizes(), logits.options())
                                    : at::empty({chunks.per_chunk * K}, logits.options());
  at::Tensor transposed;
  AT_DISPATCH_FLOATING_TYPES(logits.scalar_type(), "gumbelkit_gumbel_softmax", [&] {
    const scalar_t* x = logits.data_ptr<scalar_t>();
    const scalar_t* t = tau.data_ptr<scalar_t>();  // one number of the logits' dtype
    for (int64_t start = 0; start < chunks.rows; start += chunks.per_chunk) {
      const int64_t n = std::min(chunks.per_chunk, chunks.rows - start);
      at::Tensor u = chunks.part(scratch, n);
      chunk_log_log_<scalar_t>(u, chunks.whole, seed, &engine);
      int64_t* winner = hard ? index.data_ptr<int64_t>() + start : nullptr;
      const bool across = chunks.whole ? across_rows : K < short_row && n * K >= short_entries;
      if (!across) {
        perturb_rows<scalar_t>(x + start * K, u.data_ptr<scalar_t>(), n, K, winner, t, nullptr);
        if (chunks.whole) {
          soft = at::cpu::_softmax(u, dim, false);
          continue;
        }
        if (!soft.defined()) soft = at::empty(logits.sizes(), logits.options());
        at::Tensor rows = soft.view({chunks.rows, K}).narrow(0, start, n);
        at::cpu::_softmax_out(rows, u.view({n, K}), 1, false);
        continue;
      }
      if (!soft.defined()) soft = at::empty(logits.sizes(), logits.options());
      if (!transposed.defined()) transposed = at::empty({K, chunks.per_chunk}, logits.options());
      // the divided values laid out (K, n): the softmax's input across the rows
      at::Tensor by_category_in = n == chunks.per_chunk
                                      ? transposed
                                      : transposed.view(-1).narrow(0, 0, n * K).view({K, n});
      perturb_rows<scalar_t>(x + start * K, u.data_ptr<scalar_t>(), n, K, winner, t,
                             by_category_in.data_ptr<scalar_t>());
      at::Tensor result = at::cpu::_softmax(by_category_in, 0, false);
      const scalar_t* by_category = result.data_ptr<scalar_t>();
      scalar_t* out = soft.data_ptr<scalar_t>() + start * K;
      for (int64_t r = 0; r < n; ++r) {
        for (int64_t k = 0; k < K; ++k) out[r * K + k] = by_category[k * n + r];
      }
    }
  });
  if (!hard) return {soft};
  // the one-chunk path's one_hot + (soft - soft) (gumbelkit._ops.replace_gradient: NaN where
  // the soft sample is NaN), the chunked path's plain one-hot
  at::Tensor sample = at::empty_like(soft);
  AT_DISPATCH_FLOATING_TYPES(soft.scalar_type(), "gumbelkit_one_hot", [&] {
    const scalar_t* s = soft.data_ptr<scalar_t>();
    const int64_t* winner = index.data_ptr<int64_t>();
    scalar_t* out = sample.data_ptr<scalar_t>();
    for (int64_t row = 0; row < chunks.rows; ++row) {
      for (int64_t k = 0; k < K; ++k) {
        const int64_t at = row * K + k;
        const scalar_t hot = static_cast<scalar_t>(k == winner[row]);
        out[at] = chunks.whole ? hot + (s[at] - s[at]) : hot;
      }
    }
  });
  return {sample, soft};
}

struct GumbelSoftmax : public torch::autograd::Function<GumbelSoftmax> {
  // the outputs of samples: the soft sample is one, so that the backward's use of it is
  // differentiable again
  static variable_list forward(AutogradContext* ctx, const at::Tensor& logits,
                               const at::Tensor& tau, bool hard, int64_t dim, bool across_rows,
                               int64_t short_row, int64_t short_entries, int64_t chunk,
                               const std::optional<at::Generator>& generator) {
    variable_list outputs = samples(logits, tau, hard, dim, across_rows, short_row,
                                    short_entries, chunk, generator);
    ctx->saved_data["dim"] = dim;
    ctx->saved_data["across_rows"] = across_rows;
    ctx->save_for_backward({outputs.back(), tau});
    ctx->set_materialize_grads(false);
    return outputs;
  }

  // d logits = J(y) g / tau with J(y) g = softmax backward, g the gradient of the sample (plus
  // that of the soft sample where it has one)
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor& y = saved[0];
    const at::Tensor& tau = saved[1];
    at::Tensor grad = grads[0];
    if (grads.size() > 1 && grads[1].defined()) {
      grad = grad.defined() ? grad + grads[1] : grads[1];
    }
    variable_list none(9);
    if (!grad.defined()) return none;
    const int64_t dim = ctx->saved_data["dim"].toInt();
    at::Tensor d;
    if (ctx->saved_data["across_rows"].toBool()) {  // y g - y <g, y> (gumbelkit._ops)
      at::Tensor product = grad * y;
      d = at::addcmul(product, y, product.sum(dim, true), -1).contiguous();
    } else {
      d = at::_softmax_backward_data(grad, y, dim, y.scalar_type());
    }
    none[0] = d / tau;
    return none;
  }
};

at::Tensor gumbel_softmax_chunks(const at::Tensor& logits, const at::Tensor& tau, bool hard,
                                 int64_t dim, bool across_rows, int64_t short_row,
                                 int64_t short_entries, int64_t chunk,
                                 const std::optional<at::Generator>& generator) {
  if (at::GradMode::is_enabled() && logits.requires_grad()) {
    return GumbelSoftmax::apply(logits, tau, hard, dim, across_rows, short_row, short_entries,
                                chunk, generator)[0];
  }
  return samples(logits, tau, hard, dim, across_rows, short_row, short_entries, chunk,
                 generator)[0];
}

// the ops of a tensor of one chunk: fewer arguments, which at a few microseconds a call count
constexpr int64_t WHOLE = std::numeric_limits<int64_t>::max();

at::Tensor gumbel_max(const at::Tensor& logits, int64_t dim,
                      const std::optional<at::Generator>& generator) {
  return gumbel_max_chunks(logits, dim, WHOLE, generator);
}

at::Tensor gumbel_softmax(const at::Tensor& logits, const at::Tensor& tau, bool hard, int64_t dim,
                          bool across_rows, const std::optional<at::Generator>& generator) {
  return gumbel_softmax_chunks(logits, tau, hard, dim, across_rows, 0, 0, WHOLE, generator);
}

}  // namespace

TORCH_LIBRARY(gumbelkit_cpu, m) {
  m.def("gumbel_max(Tensor logits, int dim, Generator? generator) -> Tensor");
  m.def("gumbel_max_chunks(Tensor logits, int dim, int chunk, Generator? generator) -> Tensor");
  m.def("gumbel_softmax(Tensor logits, Tensor tau, bool hard, int dim, bool across_rows, "
        "Generator? generator) -> Tensor");
  m.def("gumbel_softmax_chunks(Tensor logits, Tensor tau, bool hard, int dim, bool across_rows, "
        "int short_row, int short_entries, int chunk, Generator? generator) -> Tensor");
}

TORCH_LIBRARY_IMPL(gumbelkit_cpu, CompositeImplicitAutograd, m) {
  m.impl("gumbel_max", &gumbel_max);
  m.impl("gumbel_max_chunks", &gumbel_max_chunks);
  m.impl("gumbel_softmax", &gumbel_softmax);
  m.impl("gumbel_softmax_chunks", &gumbel_softmax_chunks);
}
