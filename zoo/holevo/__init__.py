"""Holevo capacity by Riemannian optimisation (Zhu, Peng, Gao, Wang, arXiv 2501.11576).

Plain API: :func:`holevo_capacity`, the channels in :mod:`zoo.holevo.channels`, :func:`blahut_arimoto` for cq
channels. Lightning: :class:`HolevoModule` (import from ``zoo.holevo.module``; registered presets ``holevo_*``).
"""

from zoo.holevo.channels import (amplitude_damping, apply_channel, cq_channel, dephasing, depolarizing, erasure, from_choi,
                                 kraus_operators, pauli_channel, random_channel, rank_deficient_cq_states)
from zoo.holevo.entropy import von_neumann_entropy
from zoo.holevo.model import (BlahutArimotoResult, HolevoResult, blahut_arimoto, channel_outputs, holevo_capacity,
                              holevo_cost, holevo_quantity)

__all__ = [
    "BlahutArimotoResult", "HolevoResult", "amplitude_damping", "apply_channel", "blahut_arimoto", "channel_outputs",
    "cq_channel", "dephasing", "depolarizing", "erasure", "from_choi", "holevo_capacity", "holevo_cost", "holevo_quantity",
    "kraus_operators", "pauli_channel", "random_channel", "rank_deficient_cq_states", "von_neumann_entropy",
]
