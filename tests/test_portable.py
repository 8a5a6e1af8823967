"""Portable Gumbel noise: a function of (seed, position, category) alone, with the Gumbel law."""

import math

import pytest
import torch
from scipy import stats

import gumbelkit as gk
from gumbelkit.portable import portable_gumbel, portable_gumbel_max, verify_gumbel_max


def test_the_noise_does_not_depend_on_the_batch_layout_or_the_chunking():
    whole = portable_gumbel((4, 3, 50), 7)
    assert torch.equal(whole, portable_gumbel((12, 50), 7).reshape(4, 3, 50))
    chunks = [portable_gumbel((12, 10), 7, categories=(start, start + 10))
              for start in range(0, 50, 10)]
    assert torch.equal(torch.cat(chunks, 1), whole.reshape(12, 50))
    alone = portable_gumbel((2, 50), 7, positions=torch.tensor([5, 11]))
    assert torch.equal(alone, whole.reshape(12, 50)[[5, 11]])
    assert not torch.equal(portable_gumbel((12, 50), 8), whole.reshape(12, 50))


def test_known_values_stay_the_same_across_releases_and_devices():
    """The definition is integer arithmetic and one float64 log-log: its values are pinned (from
    this implementation when it was written; a change here changes every portable sample), for
    small keys and for keys that use the high words of the seed and the position."""
    noise = portable_gumbel((1, 4), 0, dtype=torch.float64)
    assert noise[0].tolist() == pytest.approx(
        [0.20753252188872226, 0.30089280731204304, 0.8631871203072864, 2.215416426321519],
        rel=1e-14)
    high = portable_gumbel((2, 2), 2**40 + 3, positions=torch.tensor([2**33, 7]),
                           dtype=torch.float64)
    assert high.flatten().tolist() == pytest.approx(
        [1.0119032618908554, -0.7263328072981424, 1.56124085593334, 0.3319239820444655],
        rel=1e-14)


def test_the_noise_is_gumbel_distributed_and_uncorrelated():
    """200,000 draws: Kolmogorov-Smirnov against Gumbel(0, 1) at level 1e-3 (a correct generator
    fails with probability 1e-3 for this fixed seed, i.e. never once it has passed); the
    correlation of neighbours (along a row and down a column) has standard error 1/sqrt(n), and
    the tolerance is 5 of them."""
    noise = portable_gumbel((400, 500), 3, dtype=torch.float64)
    flat = noise.flatten().numpy()
    assert stats.kstest(flat, stats.gumbel_r.cdf).pvalue > 1e-3
    for a, b in ((noise[:, :-1], noise[:, 1:]), (noise[:-1], noise[1:])):
        r = torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1]
        assert abs(float(r)) < 5 / math.sqrt(a.numel())
    assert torch.isfinite(noise).all()


def test_gumbel_max_samples_the_softmax_law_and_can_be_verified():
    """60,000 rows of the same logits: chi-square against softmax(logits) at level 1e-3."""
    logits = torch.tensor([1.0, 0.0, -0.5, 0.3, -2.0])
    index = portable_gumbel_max(logits.expand(60_000, 5), 11)
    counts = torch.bincount(index, minlength=5).double()
    expected = 60_000 * torch.softmax(logits.double(), 0)
    assert stats.chisquare(counts.numpy(), expected.numpy()).pvalue > 1e-3
    batch = torch.randn(6, 9, generator=torch.Generator().manual_seed(0))
    tokens = portable_gumbel_max(batch, 5)
    assert verify_gumbel_max(batch, 5, tokens).all()
    assert not verify_gumbel_max(batch, 5, (tokens + 1) % 9).any()
    assert not verify_gumbel_max(batch, 6, tokens).all()  # another seed, other samples
    # one position verified alone, without the rest of the batch
    assert verify_gumbel_max(batch[3:4], 5, tokens[3:4], positions=torch.tensor([3])).item()


def test_masked_categories_are_never_sampled_and_bad_input_is_refused():
    logits = torch.tensor([[0.0, -math.inf, 0.0]]).expand(1000, 3)
    assert (portable_gumbel_max(logits, 1) != 1).all()
    with pytest.raises(ValueError, match="seed"):
        portable_gumbel((2, 3), -1)
    with pytest.raises(ValueError, match="positions"):
        portable_gumbel((2, 3), 0, positions=torch.tensor([0]))
    with pytest.raises(ValueError, match="positions"):
        portable_gumbel((2, 3), 0, positions=torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="categories"):
        portable_gumbel((2, 3), 0, categories=(0, 4))
    with pytest.raises(ValueError, match="tokens"):
        verify_gumbel_max(torch.zeros(2, 3), 0, torch.zeros(3, dtype=torch.int64))
    assert gk.portable.portable_gumbel_max is portable_gumbel_max


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_a_gpu_the_uniforms_and_the_samples_are_the_cpu_s():
    """The key's hash is integer arithmetic: its uniforms are the CPU's bit for bit on a GPU.
    The two logarithms come from each device's math library, correctly rounded to within an ulp
    or two in float64, so G may differ there in its last bits (allowed: 4 ulp of |G| <= 37.4);
    the Gumbel-max indices, compared in float64, are the CPU's, and verify on either device."""
    from gumbelkit.portable import _uniform

    positions = torch.tensor([0, 5, 2**33 + 1, 2**40])
    categories = torch.arange(50257).unsqueeze(0)
    for seed in (0, 11, 2**40 + 3):
        on_cpu = _uniform(seed, positions.unsqueeze(1), categories)
        on_gpu = _uniform(seed, positions.cuda().unsqueeze(1), categories.cuda())
        assert torch.equal(on_gpu.cpu(), on_cpu)
        noise = portable_gumbel((4, 50257), seed, positions=positions, dtype=torch.float64)
        gpu_noise = portable_gumbel((4, 50257), seed, positions=positions.cuda(),
                                    dtype=torch.float64, device="cuda").cpu()
        assert (gpu_noise - noise).abs().max() <= 4 * torch.finfo(torch.float64).eps * 37.4
    logits = 3 * torch.randn(256, 50257, generator=torch.Generator().manual_seed(5))
    tokens = portable_gumbel_max(logits, 11)
    assert torch.equal(portable_gumbel_max(logits.cuda(), 11).cpu(), tokens)
    assert bool(verify_gumbel_max(logits.cuda(), 11, tokens.cuda()).all())
    assert not bool(verify_gumbel_max(logits.cuda(), 11, (tokens.cuda() + 1) % 50257).any())
