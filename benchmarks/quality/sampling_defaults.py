"""Which generator and which BatchNorm statistics to sample with, measured at a run's checkpoints.

    python benchmarks/quality/sampling_defaults.py --run runs/fm32_main --steps 1500 2500 3500

For each checkpoint step, the live and the EMA generator are scored under each BatchNorm sampling
mode (`keras_sagan.metrics.certificate.SAMPLING`: moving statistics, batch statistics, standing
statistics) with the certificate's protocol (the domain network, the 10,000 Fashion-MNIST test
images, `--num_fakes` fakes of seed 0). Writes `sampling_defaults.json` and prints a Markdown table;
BUILD.md "Sampling defaults" holds the table that chose the default.
"""

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True)
    parser.add_argument("--steps", type=int, nargs="+", required=True)
    parser.add_argument("--num_fakes", type=int, default=5000)
    parser.add_argument("--data_dir", default=None)
    parser.add_argument("--out", default=os.path.join(HERE, "sampling_defaults.json"))
    args = parser.parse_args(argv)

    from keras_sagan.checkpoint.reading import list_checkpoints, locate_run, open_checkpoint
    from keras_sagan.export import loading
    from keras_sagan.metrics import certificate
    from keras_sagan.metrics.domain import DomainClassifierExtractor
    from keras_sagan.models import Generator

    run = locate_run(args.run)
    config = run.read_config()
    batch_size = int(config["train"]["batch_size"])
    extractor = DomainClassifierExtractor()
    image_size = config["generator"]["image_size"]
    real = certificate.real_features(extractor, image_size, 10000, args.data_dir)
    z = certificate.noise(args.num_fakes, config["generator"]["z_dim"], 0)
    records = []
    for step in args.steps:
        checkpoint = open_checkpoint(list_checkpoints(run.checkpoints_dir)[step])
        for which, key in (("live", "generator"), ("ema", "ema_generator")):
            generator = loading.build_network(Generator, config["generator"], run.config_path)
            loading.restore_network(checkpoint, key, generator, f"checkpoint {checkpoint.path}")
            for sampling in certificate.SAMPLING:
                sample = certificate.sampler(generator, sampling, batch_size, 0)
                fake, logits = certificate.fake_features(sample, extractor, z)
                record = {"step": step, "generator": which, "sampling": sampling}
                record.update(certificate.score(real, fake, logits, 0))
                records.append(record)
                print(
                    json.dumps({k: record[k] for k in ("step", "generator", "sampling", "fid", "recall")}), flush=True
                )
    with open(args.out, "w") as f:
        json.dump(
            {
                "run": os.path.abspath(args.run),
                "num_fakes": args.num_fakes,
                "batch_size": batch_size,
                "records": records,
            },
            f,
            indent=1,
        )
    print("| step | generator | BatchNorm statistics | FID | KID | precision | recall | rarest class |")
    print("|---|---|---|---|---|---|---|---|")
    for r in records:
        print(
            f"| {r['step']} | {r['generator']} | {r['sampling']} | {r['fid']:.3f} | {r['kid']:.4f} | "
            f"{r['precision']:.3f} | {r['recall']:.3f} | {r['min_class_fraction']:.3f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
