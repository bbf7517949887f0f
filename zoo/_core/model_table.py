"""The static table of registered model presets: name -> module that registers it.

``zoo.list_models()`` and ``zoo --help`` read this table without importing method code. A test imports
every module listed here and checks that the table and the ``@register_model`` decorators agree, so a preset
added in code but not here (or the reverse) fails CI.
"""

from __future__ import annotations

# preset name -> importable module whose import runs its @register_model decorators.
# Filled in as methods land.
MODEL_TABLE: dict[str, str] = {
    "exfm_deepfm_tiny": "zoo.exfm.config",
    "exfm_ml100k": "zoo.exfm.config",
    "exfm_ml100k_tiny": "zoo.exfm.config",
    "exfm_synthetic": "zoo.exfm.config",
    "exfm_synthetic_tiny": "zoo.exfm.config",
    "spinwave_cemgal11o19": "zoo.spinwave.module",
    "spinwave_cemgal11o19_tiny": "zoo.spinwave.module",
    "kagome_two_orbital": "zoo.kagome.module",
    "kagome_two_orbital_tiny": "zoo.kagome.module",
    "ixs_cscr3sb5": "zoo.ixs.module",
    "ixs_cscr3sb5_tiny": "zoo.ixs.module",
    "bilevel_rl_cartpole_rlhf": "zoo.bilevel_rl",
    "bilevel_rl_cartpole_rlhf_tiny": "zoo.bilevel_rl",
    "bilevel_rl_shaping": "zoo.bilevel_rl",
    "bilevel_rl_shaping_tiny": "zoo.bilevel_rl",
    "bilevel_rl_synthetic": "zoo.bilevel_rl",
    "bilevel_rl_synthetic_tiny": "zoo.bilevel_rl",
    "adaskip_byte_llama": "zoo.adaskip.module",
    "adaskip_byte_llama_tiny": "zoo.adaskip.module",
    "adaskip_plan_tiny": "zoo.adaskip.module",
    "adaskip_smollm2": "zoo.adaskip.module",
    "byte_llama_small": "zoo.adaskip.byte_llama",
    "byte_llama_tiny": "zoo.adaskip.byte_llama",
    "holevo_depolarizing_tiny": "zoo.holevo.module",
    "holevo_depolarizing_qutrit": "zoo.holevo.module",
    "holevo_amplitude_damping": "zoo.holevo.module",
    "symplectic_min_trace_tiny": "zoo.symplectic.module",
    "symplectic_min_trace_n100": "zoo.symplectic.module",
    "tensor_completion_tucker_tiny": "zoo.tensor_completion.module",
    "tensor_completion_tucker": "zoo.tensor_completion.module",
    "tensor_completion_tt_tiny": "zoo.tensor_completion.module",
    "tensor_completion_tt": "zoo.tensor_completion.module",
    "tensor_completion_image_tucker": "zoo.tensor_completion.module",
    "tensor_completion_image_tt": "zoo.tensor_completion.module",
    "space_decoupling_spherical": "zoo.space_decoupling.module",
    "space_decoupling_spherical_tiny": "zoo.space_decoupling.module",
    "space_decoupling_spherical_r10": "zoo.space_decoupling.module",
    "space_decoupling_graph_similarity": "zoo.space_decoupling.module",
    "space_decoupling_graph_similarity_tiny": "zoo.space_decoupling.module",
    "space_decoupling_maxcut": "zoo.space_decoupling.module",
    "space_decoupling_maxcut_tiny": "zoo.space_decoupling.module",
    "space_decoupling_digits": "zoo.space_decoupling.module",
    "space_decoupling_digits_tiny": "zoo.space_decoupling.module",
}
