"""Trains a SAGAN on CelebA, an image folder, or (by default, offline) 100 LFW demo faces.

    python examples/train_celeba.py                      # demo: ~3 minutes on 2 CPU cores
    python examples/train_celeba.py --dataset=celeba --data_dir=/data/tfds \\
        --image_size=64 --batch_size=64 --steps=100000 --ema_decay=0.999
    python examples/train_celeba.py --dataset=folder --image_folder=img_align_celeba
    python examples/train_celeba.py --eval_every=1000 --eval_num_samples=5000   # FID/KID/IS in TensorBoard
    python examples/train_celeba.py --config=runs/celeba64_demo/config.json --steps=2000   # replay a run
    python examples/train_celeba.py --helpfull           # every flag, by section, with its default

The script is `keras-sagan train` under another name: it defines no flag of its own. The flags
are generated from `TrainConfig`'s fields (`keras_sagan.training.flags`), and
`keras_sagan.cli.train.main` parses them, runs the training and maps the outcome to the exit
status (2 for a bad input, 130/143 after Ctrl-C/SIGTERM saved a checkpoint, 1 when a
multi-worker peer failed, 3 when a loss turned NaN or infinite). Rerunning a command resumes from
the newest readable checkpoint in --model_dir.

The same run from Python, with the library's own objects:

    from keras_sagan.training import TrainConfig, train

    result = train(TrainConfig(dataset="demo", steps=100, conv_dim=16, model_dir="runs/try"))
    print(result.step, result.export_path)

And with these flags in a script of your own:

    from absl import flags
    from keras_sagan.training import flags as train_flags

    train_flags.define_flags(flags.FLAGS)     # then, after absl parsed argv:
    config = train_flags.config_from_flags(flags.FLAGS)
"""

import os
import sys

from keras_sagan.cli import train  # Sets TensorFlow's log level before TensorFlow loads.

if __name__ == "__main__":
    sys.exit(train.main(sys.argv[1:], prog=os.path.basename(__file__)))
