"""The bandit's exact returns and the batched critics' independence across seeds."""

import torch

from gumbelkit.workloads.bandit import Bandit, BatchedCritics


def test_bandit_value_is_the_expected_reward_of_a_product_policy():
    bandit = Bandit(seeds=2, states=3, components=2, choices=3, device=torch.device("cpu"))
    probs = torch.softmax(torch.randn(2, 3, 2, 3, generator=torch.Generator().manual_seed(0)), -1)
    joint = torch.cartesian_prod(torch.arange(3), torch.arange(3))  # (9, 2)
    actions = torch.nn.functional.one_hot(joint, 3).float()  # (9, 2, 3)
    rewards = bandit.value(actions[:, None, None].expand(9, 2, 3, 2, 3))  # (9, seeds, states)
    weights = probs[:, :, 0, joint[:, 0]] * probs[:, :, 1, joint[:, 1]]  # (seeds, states, 9)
    expected = (weights * rewards.permute(1, 2, 0)).sum(-1)
    torch.testing.assert_close(bandit.value(probs), expected)
    assert torch.allclose(rewards.amax(0), torch.ones(2, 3))  # the optimum of each state is 1
    assert torch.allclose(rewards.amin(0), torch.zeros(2, 3))


def test_critics_of_different_seeds_are_independent():
    states, components, choices = 4, 3, 4
    critics = BatchedCritics(seeds=2, states=states, action_size=components * choices, hidden=8,
                             device=torch.device("cpu"))
    x = torch.rand(5, 2, states, components, choices)
    out = critics(x)
    assert out.shape == (5, 2, states)
    out[:, 0].sum().backward()
    assert all(w.grad[1].abs().sum() == 0 for w in critics.weights)
