// gumbelkit's CPU kernels for tensors of one chunk, in C++: Gumbel-max and Gumbel-Softmax with
// the values of the Python CPU path (gumbelkit/kernels/cpu.py) bit for bit, in one call.
//
// At small sizes a call of the Python path is a dozen tensor operations of about a microsecond
// each (the seed, re-seeding a generator, the uniforms, clamp, two logarithms, the row maximum,
// the shift, the division, the softmax) and the autograd nodes of each. Here the operations that
// are exact in floating point (the seed, the uniforms, the clamp, the negation, the maximum, the
// shift, the division, the argmax, the one-hot) are loops over the data, and the ones that round
// (the two logarithms, the softmax and its backward) are ATen's own calls (in the forward its CPU
// kernels, without the dispatcher), so the values stay the Python path's; the gradient is one autograd node (a C++ autograd Function) whose backward is
// made of ATen's differentiable operations (double backward works).
//
// Noise: the seed of a call is torch.randint(2**62, (1,), generator=generator)'s draw; the
// uniforms are those of torch.rand(shape, generator=g) for g a CPU generator seeded with it
// (gumbelkit.kernels.reference.seeded), clamped below at the dtype's smallest normal number:
// G = -log(-log u), finite.

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Dispatch.h>
#include <ATen/core/DistributionsHelper.h>
#include <ATen/ops/_softmax_cpu_dispatch.h>
#include <ATen/ops/log_cpu_dispatch.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include <cmath>
#include <limits>
#include <mutex>
#include <optional>

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

// log(-log u) for the uniforms of the call (see the header), in a new tensor shaped like x: the
// Gumbel draw -log(-log u) with its sign left to the shift that uses it
at::Tensor log_log_uniforms(const at::Tensor& x, const std::optional<at::Generator>& generator) {
  thread_local at::Generator seeded = at::make_generator<at::CPUGeneratorImpl>();
  auto* engine = at::check_generator<at::CPUGeneratorImpl>(seeded);
  engine->set_current_seed(draw_seed(generator));
  at::Tensor u = at::empty(x.sizes(), x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "gumbelkit_uniforms", [&] {
    at::uniform_real_distribution<scalar_t> uniform(0, 1);
    const scalar_t tiny = std::numeric_limits<scalar_t>::min();
    scalar_t* out = u.data_ptr<scalar_t>();
    for (int64_t i = 0, n = u.numel(); i < n; ++i) out[i] = std::max(uniform(engine), tiny);
  });
  at::cpu::log_(u);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "gumbelkit_negate", [&] {
    scalar_t* out = u.data_ptr<scalar_t>();
    for (int64_t i = 0, n = u.numel(); i < n; ++i) out[i] = -out[i];
  });
  return at::cpu::log_(u);
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

// x - max(x, dim) - log(-log u), written over `noise` (log(-log u), shaped like x, contiguous)
template <typename T>
void perturb(const at::Tensor& x, at::Tensor& noise, int64_t K) {
  const T* logits = x.data_ptr<T>();
  T* out = noise.data_ptr<T>();
  for (int64_t start = 0, n = x.numel(); start < n; start += K) {
    const T top = row_max(logits + start, K);
    for (int64_t k = start; k < start + K; ++k) out[k] = (logits[k] - top) - out[k];
  }
}

// x contiguous, its categories along `dim` with only size-1 dims after it: (numel / K, K) rows
at::Tensor perturbed(const at::Tensor& x, int64_t dim,
                     const std::optional<at::Generator>& generator) {
  at::Tensor noise = log_log_uniforms(x, generator);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "gumbelkit_perturb",
                             [&] { perturb<scalar_t>(x, noise, x.size(dim)); });
  return noise;
}

at::Tensor gumbel_max(const at::Tensor& logits, int64_t dim,
                      const std::optional<at::Generator>& generator) {
  at::Tensor v = perturbed(logits, dim, generator);
  auto sizes = logits.sizes().vec();
  sizes.erase(sizes.begin() + dim);
  at::Tensor index = at::empty(sizes, logits.options().dtype(at::kLong));
  int64_t* out = index.data_ptr<int64_t>();
  const int64_t K = logits.size(dim);
  AT_DISPATCH_FLOATING_TYPES(v.scalar_type(), "gumbelkit_argmax", [&] {
    const scalar_t* values = v.data_ptr<scalar_t>();
    for (int64_t row = 0, rows = v.numel() / K; row < rows; ++row) {
      out[row] = row_argmax(values + row * K, K);
    }
  });
  return index;
}

// softmax(x, dim) as gumbelkit._ops.softmax computes it: torch's along the rows, or over the
// transposed layout (made contiguous again) where the rows are short (across_rows)
at::Tensor softmax(const at::Tensor& x, int64_t dim, bool across_rows) {
  if (!across_rows) return at::cpu::_softmax(x, dim, false);
  return at::cpu::_softmax(x.movedim(dim, 0), 0, false).movedim(0, dim).contiguous();
}

// the sample and, with hard, the soft sample (without hard: the soft sample alone)
variable_list samples(const at::Tensor& logits, const at::Tensor& tau, bool hard, int64_t dim,
                      bool across_rows, const std::optional<at::Generator>& generator) {
  at::Tensor v = perturbed(logits, dim, generator);
  const int64_t K = logits.size(dim);
  at::Tensor index;
  if (hard) {
    index = at::empty({v.numel() / K}, logits.options().dtype(at::kLong));
    AT_DISPATCH_FLOATING_TYPES(v.scalar_type(), "gumbelkit_argmax", [&] {
      const scalar_t* values = v.data_ptr<scalar_t>();
      int64_t* out = index.data_ptr<int64_t>();
      for (int64_t row = 0; row < index.numel(); ++row) out[row] = row_argmax(values + row * K, K);
    });
  }
  AT_DISPATCH_FLOATING_TYPES(v.scalar_type(), "gumbelkit_divide", [&] {
    const scalar_t t = *tau.data_ptr<scalar_t>();  // one number of the logits' dtype
    scalar_t* values = v.data_ptr<scalar_t>();
    for (int64_t i = 0, n = v.numel(); i < n; ++i) values[i] = values[i] / t;
  });
  at::Tensor soft = softmax(v, dim, across_rows);
  if (!hard) return {soft};
  // one_hot + (soft - soft): exactly 0 and 1 where soft is finite, NaN where it is NaN, as
  // gumbelkit._ops.replace_gradient gives
  at::Tensor sample = at::empty_like(soft);
  AT_DISPATCH_FLOATING_TYPES(v.scalar_type(), "gumbelkit_one_hot", [&] {
    const scalar_t* s = soft.data_ptr<scalar_t>();
    const int64_t* winner = index.data_ptr<int64_t>();
    scalar_t* out = sample.data_ptr<scalar_t>();
    for (int64_t row = 0; row < index.numel(); ++row) {
      for (int64_t k = 0; k < K; ++k) {
        const int64_t at = row * K + k;
        out[at] = static_cast<scalar_t>(k == winner[row]) + (s[at] - s[at]);
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
                               const std::optional<at::Generator>& generator) {
    variable_list outputs = samples(logits, tau, hard, dim, across_rows, generator);
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
    variable_list none(6);
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

at::Tensor gumbel_softmax(const at::Tensor& logits, const at::Tensor& tau, bool hard, int64_t dim,
                          bool across_rows, const std::optional<at::Generator>& generator) {
  if (at::GradMode::is_enabled() && logits.requires_grad()) {
    return GumbelSoftmax::apply(logits, tau, hard, dim, across_rows, generator)[0];
  }
  return samples(logits, tau, hard, dim, across_rows, generator)[0];
}

}  // namespace

TORCH_LIBRARY(gumbelkit_cpu, m) {
  m.def("gumbel_max(Tensor logits, int dim, Generator? generator) -> Tensor");
  m.def("gumbel_softmax(Tensor logits, Tensor tau, bool hard, int dim, bool across_rows, "
        "Generator? generator) -> Tensor");
}

TORCH_LIBRARY_IMPL(gumbelkit_cpu, CompositeImplicitAutograd, m) {
  m.impl("gumbel_max", &gumbel_max);
  m.impl("gumbel_softmax", &gumbel_softmax);
}
