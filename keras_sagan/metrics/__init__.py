"""Evaluation metrics for GANs: FID, Inception Score and KID on InceptionV3 features.

Example:

```python
from keras_sagan.metrics import (
    InceptionFeatureExtractor, compute_dataset_statistics, evaluate_generator)

extractor = InceptionFeatureExtractor(weights="imagenet")
real = compute_dataset_statistics(real_ds, extractor, num_samples=10_000)
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
from keras_sagan.metrics.frechet import frechet_distance
from keras_sagan.metrics.inception import (
    InceptionFeatureExtractor,
    inception_weights_path,
)
from keras_sagan.metrics.inception_score import inception_score
from keras_sagan.metrics.kid import kernel_inception_distance
from keras_sagan.metrics.statistics import StreamingStatistics

__all__ = [
    "EvaluationCallback",
    "InceptionFeatureExtractor",
    "StreamingStatistics",
    "compute_dataset_statistics",
    "evaluate_generator",
    "extract_features",
    "frechet_distance",
    "inception_score",
    "inception_weights_path",
    "kernel_inception_distance",
    "resolve_real_statistics",
]
