"""Evaluation metrics for GANs: FID, Inception Score, KID and precision/recall/density/coverage on Inception features.

The evaluation service, used by `keras-sagan evaluate` and by training alike:

- `fid_inception(weights, resize)`: the 2015 FID Inception network of published numbers (the default);
- `make_extractor(weights, network)`: the one extractor factory (`"fid"` or `"keras"`; Keras cache, a file, or
  `"random"`);
- `StatisticsFile`: the one schema of real-statistics files, with provenance (`save`/`load`);
- `real_statistics(data_spec, extractor, cache=...)`: one pass over a `DataSpec`'s images;
- `evaluate_generator`: FID, IS and KID of a generator;
- `EvaluationCallback` and `make_evaluation_callback`: the same during training.

Example:

```python
from keras_sagan.data import DataSpec
from keras_sagan.metrics import evaluate_generator, make_extractor, real_statistics

extractor = make_extractor()  # The FID network; make_extractor("random") for a smoke test.
real = real_statistics(DataSpec("demo"), extractor, image_size=32, num_samples=100, cache="real.npz")
print(evaluate_generator(generator, 10_000, 100, extractor, real_statistics=real))
```
"""

from keras_sagan.metrics.callback import EvaluationCallback
from keras_sagan.metrics.evaluate import (
    compute_dataset_statistics,
    evaluate_generator,
    extract_features,
    resolve_real_statistics,
)
from keras_sagan.metrics.extractor import RANDOM_WEIGHTS, extractor_provenance, make_extractor
from keras_sagan.metrics.fid_extractor import FIDInceptionExtractor, fid_inception
from keras_sagan.metrics.frechet import frechet_distance
from keras_sagan.metrics.inception import (
    InceptionFeatureExtractor,
    inception_weights_path,
)
from keras_sagan.metrics.inception_score import inception_score
from keras_sagan.metrics.kid import kernel_inception_distance
from keras_sagan.metrics.prdc import precision_recall_density_coverage
from keras_sagan.metrics.service import (
    EVAL_BATCH_SIZE,
    MAX_KID_FEATURES,
    make_evaluation_callback,
    real_statistics,
)
from keras_sagan.metrics.statistics import StreamingStatistics
from keras_sagan.metrics.statistics_file import StatisticsFile

__all__ = [
    "EVAL_BATCH_SIZE",
    "MAX_KID_FEATURES",
    "RANDOM_WEIGHTS",
    "EvaluationCallback",
    "FIDInceptionExtractor",
    "InceptionFeatureExtractor",
    "StatisticsFile",
    "StreamingStatistics",
    "compute_dataset_statistics",
    "evaluate_generator",
    "extract_features",
    "extractor_provenance",
    "fid_inception",
    "frechet_distance",
    "inception_score",
    "inception_weights_path",
    "kernel_inception_distance",
    "make_evaluation_callback",
    "make_extractor",
    "precision_recall_density_coverage",
    "real_statistics",
    "resolve_real_statistics",
]
