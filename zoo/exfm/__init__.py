"""ExFM: external distillation from a foundation model into vertical CTR models on streaming data.

Paper: Mingfu Liang, Xi Liu, et al., "External Large Foundation Model: How to Efficiently Serve Trillions of
Parameters for Online Ads Recommendation", arXiv 2502.17494 (Companion Proceedings of WWW '25).

What is from where:

- [paper] (abstract, introduction, Fig. 1): the FM is trained separately from the vertical models (external
  distillation) and serves N of them; the Data Augmentation System logs FM predictions into the VM training data;
  the Auxiliary Head separates the distillation target from the serving head; the Student Adapter maps stale FM
  predictions towards the fresh distribution; single-pass streaming training; NE as the metric.
- [reimpl] (doogkong/ad_ranking ExFM/exfm.py, unverified against the PDF): alpha label scaling min(alpha p, 1),
  loss weight w, gradient scaling beta, SA trained first on true labels then stop-gradiented (Algorithm 1), one
  FM call per unique example across VMs.
- [ours]: everything else - the synthetic stream and its ground truth, the feature spec and hashing, DCNv2 /
  DeepFM sizes, the plain-distillation baseline l(y_S, y) + w l(y_S, p_F), a second gradient-scaled head for the
  SA target, the SA's identity initialisation, the per-window evaluate-then-train order, NE's denominator (the
  evaluated rows' own positive rate), checkpoints.

Entry points: ``make_synthetic_stream``, ``load_movielens_100k``, ``ExFMSystem`` (presets ``exfm_synthetic``,
``exfm_ml100k`` and ``_tiny`` twins, ``exfm_deepfm_tiny``), ``StreamingTrainer``, ``student_loss``,
``DataAugmentationService``, the metrics ``normalized_entropy`` / ``auc`` / ``transfer_ratio``, the YAML feature
spec ``load_feature_spec`` (``zoo.exfm.spec``), held-out validation / test windows with ``EarlyStoppingSpec`` /
``StreamEarlyStopping`` (``zoo.exfm.validation``).
"""

from zoo.exfm.config import ExFMConfig, NetworkConfig, StudentSpec, VerticalSpec, ablation_students
from zoo.exfm.data import (
    ArrowStream,
    RunningStatistics,
    SyntheticStream,
    find_movielens_100k,
    load_movielens_100k,
    make_synthetic_stream,
    movielens_feature_spec,
    synthetic_feature_spec,
    write_arrow_stream,
)
from zoo.exfm.distillation import DataAugmentationService, adapter_step, student_loss
from zoo.exfm.features import CategoricalFeature, FeatureSpec, NumericFeature, build_vocabulary
from zoo.exfm.metrics import auc, log_loss, normalized_entropy, transfer_ratio
from zoo.exfm.model import CTRNetwork, FusedEmbedding, StudentAdapter, gradient_scale
from zoo.exfm.module import ExFMStreamData, ExFMSystem, StreamEarlyStopping, stream_evaluation
from zoo.exfm.spec import load_feature_spec, save_feature_spec
from zoo.exfm.stream import StreamingTrainer
from zoo.exfm.validation import EarlyStoppingSpec

__all__ = [
    "ArrowStream", "CTRNetwork", "CategoricalFeature", "DataAugmentationService", "EarlyStoppingSpec", "ExFMConfig", "ExFMStreamData",
    "ExFMSystem", "FeatureSpec", "FusedEmbedding", "NetworkConfig", "NumericFeature", "RunningStatistics",
    "StreamEarlyStopping", "StreamingTrainer", "StudentAdapter", "StudentSpec", "SyntheticStream", "VerticalSpec", "ablation_students",
    "adapter_step", "auc", "build_vocabulary", "find_movielens_100k", "gradient_scale", "load_feature_spec", "load_movielens_100k",
    "log_loss", "make_synthetic_stream", "movielens_feature_spec", "normalized_entropy", "save_feature_spec", "student_loss",
    "stream_evaluation", "synthetic_feature_spec", "transfer_ratio", "write_arrow_stream",
]
