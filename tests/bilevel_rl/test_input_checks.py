"""Bad inputs give one-line errors that name the argument and the bad value, never a silent wrong gradient or NaN.

Each case here passed silently (or failed deep inside torch) before the checks existed: an action of -1 wrapped to the
last action, a transposed policy hit ``index_add_``, a NaN reward gave a NaN hypergradient, ``step_size=nan`` passed
``step_size <= 0``.
"""

from __future__ import annotations

import pytest
import torch

from zoo.bilevel_rl import (
    BilevelRLConfig,
    PreferenceRLConfig,
    TabularMDP,
    exact_hypergradient,
    finite_difference_hypergradient,
    fragment_loss,
    m_sobirl,
    model_based_hypergradient,
    model_free_hypergradient,
    policy_return,
    sample_fragments,
    sobirl,
    soft_value_iteration,
    unrolled_hypergradient,
    upper_level_objective,
)
from zoo.bilevel_rl.model_free import sampled_soft_q_learning, score_cotangent
from zoo.bilevel_rl.problems import random_problem

NAN = float("nan")


def _one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message, message
    return message


@pytest.fixture
def fragments():
    """6 states, 3 actions; a policy, 4 fragments of 3 steps sampled from it, and the model-free ingredients."""
    mdp, reward_fn, upper_fn, x = random_problem(num_states=6, num_actions=3, dimension=4, gamma=0.5, seed=0)
    policy = exact_hypergradient(mdp, reward_fn, upper_fn, x).policy
    states, actions = sample_fragments(mdp, policy, 4, 3, generator=torch.Generator().manual_seed(0))
    utility = torch.randn(6, 3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    loss_fn = fragment_loss(lambda x: torch.tanh(utility @ x))
    return mdp, reward_fn, loss_fn, x, policy, states, actions


# -- defect 1: state and action indices ----------------------------------------------------------------------
@pytest.mark.parametrize("name, index, value, message", [
    ("actions", (0, 2), -1, r"actions must lie in \[0, 3\), got -1 at index \(0, 2\)"),
    ("actions", (1, 0), 3, r"actions must lie in \[0, 3\), got 3 at index \(1, 0\)"),
    ("states", (2, 1), -1, r"states must lie in \[0, 6\), got -1 at index \(2, 1\)"),
    ("states", (3, 2), 6, r"states must lie in \[0, 6\), got 6 at index \(3, 2\)"),
])
def test_out_of_range_indices_are_refused_not_wrapped(fragments, name, index, value, message):
    """Before: an action of -1 wrapped to action A-1 in the loss but to (s-1, A-1) in the cotangent: a wrong gradient."""
    mdp, reward_fn, loss_fn, x, policy, states, actions = fragments
    bad = {"states": states.clone(), "actions": actions.clone()}
    bad[name][index] = value
    if name == "actions":
        bad["states"][index] = 2  # a state > 0: there an action of -1 used to wrap silently, with no torch error
    with pytest.raises(ValueError, match=message) as error:
        model_free_hypergradient(mdp, reward_fn, loss_fn, x, policy, bad["states"], bad["actions"])
    _one_line(error)
    weights = torch.ones(states.shape[0], dtype=torch.float64)
    with pytest.raises(ValueError, match=message):
        score_cotangent(mdp, policy, bad["states"], bad["actions"], weights)
    with pytest.raises(ValueError, match=message):
        loss_fn(x, bad["states"], bad["actions"])


def test_indices_must_be_integers(fragments):
    mdp, reward_fn, loss_fn, x, policy, states, actions = fragments
    with pytest.raises(ValueError, match="actions must be an integer tensor, got dtype torch.float64") as error:
        model_free_hypergradient(mdp, reward_fn, loss_fn, x, policy, states, actions.double())
    _one_line(error)
    with pytest.raises(ValueError, match="states must be an integer tensor, got dtype torch.bool"):
        model_free_hypergradient(mdp, reward_fn, loss_fn, x, policy, states.bool(), actions)


# -- defect 2: the policy's shape and normalisation ------------------------------------------------------------
def _policy_cases(policy):
    doubled = policy.clone()
    doubled[2] *= 2.0
    negative = policy.clone()
    negative[4] = torch.tensor([1.5, -0.5, 0.0], dtype=torch.float64)
    nan = policy.clone()
    nan[1, 2] = NAN
    return [
        (policy.T.contiguous(), r"policy must have shape \[S, A\] = \[6, 3\], got \(3, 6\)"),
        (doubled, r"policy rows must sum to 1; row 2 sums to 2"),
        (negative, r"policy must be non-negative, got -0.5 at index \(4, 1\)"),
        (nan, r"policy must be finite, got nan at index \(1, 2\)"),
    ]


@pytest.mark.parametrize("case", range(4), ids=["transposed", "row-sums-2", "negative", "nan"])
def test_bad_policies_are_refused_everywhere_they_enter(fragments, case):
    mdp, reward_fn, loss_fn, x, policy, states, actions = fragments
    bad, message = _policy_cases(policy)[case]
    with pytest.raises(ValueError, match=message) as error:
        model_free_hypergradient(mdp, reward_fn, loss_fn, x, bad, states, actions)
    _one_line(error)
    with pytest.raises(ValueError, match=message):
        sample_fragments(mdp, bad, 4, 3)
    with pytest.raises(ValueError, match=message):
        score_cotangent(mdp, bad, states, actions, torch.ones(4, dtype=torch.float64))
    with pytest.raises(ValueError, match=message):
        policy_return(mdp, torch.zeros(6, 3, dtype=torch.float64), bad, 0.9)


def test_the_worst_row_is_named(fragments):
    policy = fragments[4].clone()
    policy[1] *= 1.5
    policy[3] *= 3.0
    with pytest.raises(ValueError, match="row 3 sums to 3"):
        sample_fragments(fragments[0], policy, 4, 3)


# -- defect 3: NaN and other float inputs ----------------------------------------------------------------------
def test_nan_reward_is_an_error_not_a_nan_hypergradient():
    mdp, reward_fn, upper_fn, x = random_problem(num_states=6, num_actions=3, dimension=4, seed=0)

    def nan_reward(x):
        reward = reward_fn(x).clone()
        reward[2, 1] = NAN
        return reward

    message = r"reward_fn\(x\) must be finite, got nan at index \(2, 1\)"
    for call in (lambda: exact_hypergradient(mdp, nan_reward, upper_fn, x),
                 lambda: exact_hypergradient(mdp, nan_reward, upper_fn, x, form="direct"),
                 lambda: model_based_hypergradient(mdp, nan_reward, upper_fn, x),
                 lambda: unrolled_hypergradient(mdp, nan_reward, upper_fn, x, 5),
                 lambda: upper_level_objective(mdp, nan_reward, upper_fn, x),
                 lambda: m_sobirl(mdp, nan_reward, upper_fn, x, iterations=2)):
        with pytest.raises(ValueError, match=message) as error:
            call()
        _one_line(error)
    with pytest.raises(ValueError, match=r"reward must be finite, got nan at index \(2, 1\)"):
        soft_value_iteration(mdp, nan_reward(x))
    with pytest.raises(ValueError, match=r"value must be finite, got inf at index 3"):
        soft_value_iteration(mdp, reward_fn(x), torch.tensor([0, 0, 0, float("inf"), 0, 0], dtype=torch.float64))


def test_nan_reward_in_the_model_free_estimator(fragments):
    mdp, reward_fn, loss_fn, x, policy, states, actions = fragments
    with pytest.raises(ValueError, match=r"reward_fn\(x\) must be finite, got nan at index \(0, 0\)"):
        model_free_hypergradient(mdp, lambda x: reward_fn(x) * NAN, loss_fn, x, policy, states, actions)
    with pytest.raises(ValueError, match=r"loss_fn\(x, states, actions\) must be finite, got nan at index 0"):
        model_free_hypergradient(mdp, reward_fn, lambda x, s, a: loss_fn(x, s, a) * NAN, x, policy, states, actions)


def test_nan_upper_objective_is_an_error():
    mdp, reward_fn, upper_fn, x = random_problem(num_states=6, num_actions=3, dimension=4, seed=0)
    with pytest.raises(ValueError, match=r"upper_fn\(x, policy\) must be finite, got nan"):
        exact_hypergradient(mdp, reward_fn, lambda x, pi: upper_fn(x, pi) * NAN, x)


@pytest.mark.parametrize("call, message", [
    (lambda p: m_sobirl(*p, step_size=NAN), "step_size must be > 0 and finite, got nan"),
    (lambda p: m_sobirl(*p, step_size=float("inf")), "step_size must be > 0 and finite, got inf"),
    (lambda p: m_sobirl(*p, step_size=-1.0), "step_size must be > 0 and finite, got -1.0"),
    (lambda p: m_sobirl(*p, adjoint_step_size=NAN), "adjoint_step_size must be > 0 and finite, got nan"),
    (lambda p: model_based_hypergradient(*p, adjoint_step_size=NAN), "adjoint_step_size must be > 0 and finite, got nan"),
    (lambda p: m_sobirl(*p, iterations=-1), "iterations must be >= 0, got -1"),
    (lambda p: finite_difference_hypergradient(*p, step=0.0), "step must be > 0 and finite, got 0.0"),
    (lambda p: finite_difference_hypergradient(*p, step=NAN), "step must be > 0 and finite, got nan"),
    (lambda p: exact_hypergradient(*p, tolerance=NAN), "tolerance must be >= 0 and finite, got nan"),
])
def test_step_sizes_must_be_positive_and_finite(call, message):
    """Before: step_size=nan passed ``<= 0`` and m_sobirl returned objective nan; step=0 was a bare ZeroDivisionError."""
    problem = random_problem(num_states=6, num_actions=3, dimension=4, seed=0)
    with pytest.raises(ValueError, match=message) as error:
        call(problem)
    _one_line(error)


def test_model_free_step_sizes_must_be_positive_and_finite(fragments):
    mdp, reward_fn, loss_fn, x, policy, states, actions = fragments
    for kwargs, message in [({"step_size": NAN}, "step_size must be > 0 and finite, got nan"),
                            ({"q_step_size": NAN, "lower_level": "samples"}, "q_step_size must be > 0 and finite, got nan")]:
        with pytest.raises(ValueError, match=message):
            sobirl(mdp, reward_fn, loss_fn, x, iterations=1, **kwargs)
    with pytest.raises(ValueError, match="step_size must be > 0 and finite, got nan"):
        sampled_soft_q_learning(mdp, reward_fn(x), torch.zeros(6, 3, dtype=torch.float64), steps=1, step_size=NAN, samples=1)


def test_x_must_be_a_finite_float_tensor(fragments):
    """Before: an integer x gave torch's 'only Tensors of floating point dtype can require gradients'."""
    mdp, reward_fn, upper_fn, x = random_problem(num_states=6, num_actions=3, dimension=4, seed=0)
    integer = torch.zeros(4, dtype=torch.long)
    for call in (lambda v: exact_hypergradient(mdp, reward_fn, upper_fn, v),
                 lambda v: unrolled_hypergradient(mdp, reward_fn, upper_fn, v, 3),
                 lambda v: finite_difference_hypergradient(mdp, reward_fn, upper_fn, v),
                 lambda v: model_based_hypergradient(mdp, reward_fn, upper_fn, v),
                 lambda v: upper_level_objective(mdp, reward_fn, upper_fn, v)):
        with pytest.raises(ValueError, match="x must be a floating-point tensor, got dtype torch.int64") as error:
            call(integer)
        _one_line(error)
        with pytest.raises(ValueError, match="x must be finite, got nan at index 2"):
            call(torch.tensor([0.0, 0.0, NAN, 0.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="x0 must be a floating-point tensor, got dtype torch.int64"):
        m_sobirl(mdp, reward_fn, upper_fn, integer, iterations=1)
    mdp, reward_fn, loss_fn, x, policy, states, actions = fragments
    with pytest.raises(ValueError, match="x must be a floating-point tensor, got dtype torch.int64"):
        model_free_hypergradient(mdp, reward_fn, loss_fn, integer, policy, states, actions)
    with pytest.raises(ValueError, match="x0 must be a floating-point tensor, got dtype torch.int64"):
        sobirl(mdp, reward_fn, loss_fn, integer, iterations=1)


def test_initial_distribution_message_names_the_sum_not_a_row():
    """Before: a 1-D start distribution summing to 2 was reported as 'row () sums to 2'."""
    P = torch.full((3, 2, 3), 1 / 3, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"^initial_distribution must sum to 1, got 2$") as error:
        TabularMDP(P, gamma=0.5, initial_distribution=torch.tensor([1.0, 0.5, 0.5]))
    assert "row" not in _one_line(error)
    with pytest.raises(ValueError, match=r"initial_distribution must be finite, got nan at index 1"):
        TabularMDP(P, gamma=0.5, initial_distribution=torch.tensor([1.0, NAN, 0.0]))
    with pytest.raises(ValueError, match=r"reward must be finite, got nan at index \(0, 1\)"):
        TabularMDP(P, gamma=0.5, reward=torch.tensor([[0.0, NAN], [0.0, 0.0], [0.0, 0.0]]))
    with pytest.raises(ValueError, match=r"transitions must be finite, got nan at index \(2, 1, 0\)"):
        bad = P.clone()
        bad[2, 1, 0] = NAN
        TabularMDP(bad, gamma=0.5)


@pytest.mark.parametrize("field", ["learning_rate", "adjoint_step_size", "shaping_penalty", "sweep_tolerance"])
def test_config_refuses_nan(field):
    """Before: nan passed every ``value <= 0`` / ``value < 0`` check of the config."""
    with pytest.raises(ValueError, match=f"{field} must be .*, got nan"):
        BilevelRLConfig(**{field: NAN})


@pytest.mark.parametrize("field", ["policy_learning_rate", "reward_learning_rate", "hypergradient_weight"])
def test_rlhf_config_refuses_nan(field):
    with pytest.raises(ValueError, match=f"{field} must be .*, got nan"):
        PreferenceRLConfig(**{field: NAN})


def test_a_float32_softmax_policy_over_many_actions_is_accepted():
    """Row sums of a float32 softmax over 65536 actions are off by 1.4e-6 from rounding alone (a fixed 1e-6 rejected
    it); a valid policy is accepted (the tolerance grows with A * eps of the dtype), a doubled row still is not."""
    from zoo.bilevel_rl.checks import check_policy

    policy = torch.softmax(3 * torch.randn(4, 65536, generator=torch.Generator().manual_seed(0)), -1)  # float32
    assert (policy.sum(-1) - 1).abs().max() > 1e-6
    check_policy(policy, 4, 65536)
    with pytest.raises(ValueError, match="row 2 sums to 2"):
        check_policy(torch.cat([policy[:2], 2 * policy[2:3], policy[3:]]), 4, 65536)
