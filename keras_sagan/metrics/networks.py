"""The feature networks a user can pick (`--inception fid|keras|fashion_mnist`) and the names files record."""

FID = "fid"
"""The 2015 TF graph of every published FID and Inception Score, with pytorch-fid's weights (the default)."""
KERAS = "keras"
"""`keras.applications.InceptionV3` with Keras' ImageNet weights: 1000 classes, numbers not comparable with papers."""
DOMAIN = "fashion_mnist"
"""The Fashion-MNIST classifier (`domain.py`), as TTUR advises for MNIST-like data; not Inception-comparable."""
CHOICES = (FID, KERAS, DOMAIN)

FID_NETWORK = "inception-2015-12-05/pool3"
KERAS_NETWORK = "keras.applications.InceptionV3/avg_pool"
DOMAIN_NETWORK = "fashion_mnist_classifier/features"
RECORDED = {FID: FID_NETWORK, KERAS: KERAS_NETWORK, DOMAIN: DOMAIN_NETWORK}
"""`--inception` value -> the `network` recorded in statistics files."""
