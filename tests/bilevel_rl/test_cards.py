"""Every bilevel RL recipe's card reads true for the preset that made it: its task, its seed, its config fields.

The cards are rendered by the real save path (``save_pretrained`` -> ``render_card``) from the preset each recipe
names, without training: what the card says about the task does not depend on the trained weights.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
import yaml

import zoo
from zoo._core.config import config_to_dict
from zoo._core.registry import preset_config

RECIPES = sorted((Path(__file__).resolve().parents[2] / "recipes" / "bilevel_rl").glob("*.yaml"))
# What a card of each task must say, and what would mean it describes another task.
MUST = {"synthetic": ["M-SoBiRL", "random-MDP", "x in R^"],
        "shaping": ["M-SoBiRL", "reward shaping", "FrozenLake-v1"],
        "rlhf": ["SoBiRL", "preferences", "CartPole-v1"]}
MUST_NOT = {"synthetic": ["FrozenLake", "shaping", "CartPole", "RLHF"],
            "shaping": ["synthetic", "N(0, I)", "random-MDP", "CartPole", "RLHF", "official NumPy"],
            "rlhf": ["M-SoBiRL", "model-based", "synthetic instance", "FrozenLake", "transitions, reward buffers"]}


def _section(card: str, title: str) -> str:
    return card.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def _prose(card: str) -> str:
    """The card's own statements: the description (before the first section), intended use and limits."""
    body = card.split("\n---\n", 1)[1]
    return body.split("\n## ", 1)[0] + _section(card, "Intended use") + _section(card, "Limits")


def _shown_config(card: str) -> dict:
    block = _section(card, "Config")
    return json.loads(block.split("```json\n", 1)[1].split("\n```", 1)[0])


def _render(recipe: Path, tmp_path: Path) -> tuple[dict, dict, str]:
    block = yaml.safe_load(recipe.read_text())
    preset = block["zoo"]["preset"]
    overrides = ((block.get("model") or {}).get("init_args") or {}).get("config") or {}
    config = {**config_to_dict(preset_config(preset)), **overrides}
    if config["task"] in ("shaping", "rlhf"):
        pytest.importorskip("gymnasium")
    module = zoo.create(preset, **overrides)
    training = {"recipe": f"recipes/bilevel_rl/{recipe.name}", "seed": block.get("seed_everything")}
    module.save_pretrained(tmp_path, training=training, repo_id=block["zoo"]["repo_id"])
    return block, config, (tmp_path / "README.md").read_text()


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_card_describes_the_task_seed_and_fields_of_its_own_recipe(recipe, tmp_path):
    block, config, card = _render(recipe, tmp_path)
    task, prose = config["task"], _prose(card)
    assert [word for word in MUST[task] if word not in prose] == [], prose
    assert [word for word in MUST_NOT[task] if word in card] == [], card
    # seed: every seed the prose names is the config's, the one that drew the instance or the run's randomness;
    # the shaping run draws nothing (gymnasium's exact table, x0 = 0), so its card names no seed
    seeds = [int(s) for s in re.findall(r"\bseed\s+(\d+)", prose)]
    if task == "shaping":
        assert seeds == [] and "deterministic" in prose, prose
    else:
        assert seeds and set(seeds) == {config["seed"]}, (seeds, config["seed"])
        assert config["seed"] == block["seed_everything"]  # the recipe's seed is the one the card reports
    # fields: the config block shows the recipe's values, and only fields that apply to this task
    shown = _shown_config(card)
    assert shown["task"] == task and all(shown[k] == config[k] for k in shown), shown
    hidden = set(config) - set(shown)
    expected_hidden = {"synthetic": {"env_id", "true_gamma", "shaping_penalty"},
                       "shaping": {"num_states", "num_actions", "reward_dimension", "seed"},
                       "rlhf": set()}[task]
    if config.get("adjoint_solver") == "exact":
        expected_hidden |= {"adjoint_steps", "adjoint_step_size"}
    assert hidden == expected_hidden, (hidden, expected_hidden)
    if hidden:
        assert "config.json" in _section(card, "Config") or "config.json" in prose  # says where the rest is


def _perturbed(name, value):
    if name == "env_id":
        return "CliffWalking-v1"
    return value + 1 if isinstance(value, int) else value * 0.5


@pytest.mark.parametrize("preset", ["bilevel_rl_synthetic_tiny", "bilevel_rl_shaping_tiny"])
def test_fields_left_off_a_card_do_not_change_the_model(preset, tmp_path):
    """A field the card leaves out really does not apply: changing it changes neither the weights nor a step."""
    config = config_to_dict(preset_config(preset))
    if config["task"] == "shaping":
        pytest.importorskip("gymnasium")
    zoo.create(preset).save_pretrained(tmp_path)
    hidden = sorted(set(config) - set(_shown_config((tmp_path / "README.md").read_text())))
    assert hidden

    def one_step(**changes):
        agent = zoo.create(preset, **changes)
        agent.log = lambda *args, **kwargs: None
        agent.training_step(None, 0).backward()
        return agent.state_dict(), agent.reward.x.grad

    state, grad = one_step()
    for name in hidden:
        other_state, other_grad = one_step(**{name: _perturbed(name, config[name])})
        assert state.keys() == other_state.keys() and all(torch.equal(state[k], other_state[k]) for k in state), name
        assert torch.equal(grad, other_grad), name
