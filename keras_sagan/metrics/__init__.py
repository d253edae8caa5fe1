"""Evaluation metrics for GANs: FID, Inception Score, KID and precision/recall/density/coverage.

Shaped like stylegan2-ada's `metrics/`:

- `networks.py`: the feature networks (`--inception fid|fashion_mnist`), their weights and
  `make_extractor(weights, network, resize)`; `fid_network.py` is the 2015 FID Inception network of
  published numbers (the default), `domain.py` the Fashion-MNIST classifier;
- `feature_stats.py`: the one owner of feature statistics: `StreamingStatistics` (accumulate),
  `StatisticsFile` (save/load with provenance) and `real_statistics(data_spec, extractor, cache=...)`;
- one short file per metric: `frechet.py`, `kid.py`, `inception_score.py`, `prdc.py`, and
  `certificate.py` (the Fashion-MNIST quality protocol);
- `generator_metrics.py`: `evaluate_generator`; `callback.py`: `EvaluationCallback` and
  `make_evaluation_callback`, the same during training.

Importing this package loads no TensorFlow on JAX or torch.

Example:

```python
from keras_sagan.data import DataSpec
from keras_sagan.metrics import evaluate_generator, make_extractor, real_statistics

extractor = make_extractor()  # The FID network; make_extractor("random") for a smoke test.
real = real_statistics(DataSpec("demo"), extractor, image_size=32, num_samples=100, cache="real.npz")
print(evaluate_generator(generator, 10_000, 100, extractor, real_statistics=real))
```
"""

from keras_sagan.metrics.callback import EVAL_BATCH_SIZE, EvaluationCallback, make_evaluation_callback
from keras_sagan.metrics.feature_stats import (
    MAX_KID_FEATURES,
    StatisticsFile,
    StreamingStatistics,
    compute_dataset_statistics,
    real_statistics,
    resolve_real_statistics,
)
from keras_sagan.metrics.fid_network import FIDInceptionExtractor, fid_inception
from keras_sagan.metrics.frechet import frechet_distance
from keras_sagan.metrics.generator_metrics import evaluate_generator
from keras_sagan.metrics.inception_score import inception_score
from keras_sagan.metrics.kid import kernel_inception_distance
from keras_sagan.metrics.networks import RANDOM_WEIGHTS, extract_features, extractor_provenance, make_extractor
from keras_sagan.metrics.prdc import precision_recall_density_coverage

__all__ = [
    "EVAL_BATCH_SIZE",
    "MAX_KID_FEATURES",
    "RANDOM_WEIGHTS",
    "EvaluationCallback",
    "FIDInceptionExtractor",
    "StatisticsFile",
    "StreamingStatistics",
    "compute_dataset_statistics",
    "evaluate_generator",
    "extract_features",
    "extractor_provenance",
    "fid_inception",
    "frechet_distance",
    "inception_score",
    "kernel_inception_distance",
    "make_evaluation_callback",
    "make_extractor",
    "precision_recall_density_coverage",
    "real_statistics",
    "resolve_real_statistics",
]
