"""Low-rank tensor completion on desingularised Tucker and tensor-train manifolds (Gao, Peng, Yuan, arXiv 2411.14093).

Plain API: :func:`complete` (RGD / RCG / trust region on :class:`~zoo.manifolds.TuckerDesingularization` or
:class:`~zoo.manifolds.TTDesingularization`), sparse evaluation :func:`tucker_entries` / :func:`tt_entries`, planted
tensors and masks (:func:`planted_tucker`, :func:`planted_tt`, :func:`sample_entries`, :func:`sample_floor`), a real
image tensor (:func:`sample_image`) and the fixed-rank references of the benchmark (:mod:`.fixed_rank`).
Lightning: ``zoo.tensor_completion.module.TuckerCompletion`` / ``TTCompletion`` (presets ``tensor_completion_*``).
"""

from zoo.tensor_completion.data import planted_tt, planted_tucker, sample_entries, sample_floor, sample_image
from zoo.tensor_completion.model import (CompletionProblem, CompletionResult, check_observations, complete,
                                         core_singular_values, entries, tt_entries, tucker_entries)

__all__ = ["CompletionProblem", "CompletionResult", "check_observations", "complete", "core_singular_values", "entries",
           "planted_tt", "planted_tucker", "sample_entries", "sample_floor", "sample_image", "tt_entries", "tucker_entries"]
