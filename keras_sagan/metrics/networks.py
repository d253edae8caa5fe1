"""The two Inception networks a user can pick (`--inception fid|keras`) and the names statistics files record."""

FID = "fid"
"""The 2015 TF graph of every published FID and Inception Score, with pytorch-fid's weights (the default)."""
KERAS = "keras"
"""`keras.applications.InceptionV3` with Keras' ImageNet weights: 1000 classes, numbers not comparable with papers."""
CHOICES = (FID, KERAS)

FID_NETWORK = "inception-2015-12-05/pool3"
KERAS_NETWORK = "keras.applications.InceptionV3/avg_pool"
RECORDED = {FID: FID_NETWORK, KERAS: KERAS_NETWORK}
"""`--inception` value -> the `network` recorded in statistics files."""
