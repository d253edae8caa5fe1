"""Times a PyTorch model of the reference (heykeetae/Self-Attention-GAN) on this machine, now.

The issue's reference figures were measured on "this kind of machine" at
another time; cloud CPUs of one kind differ by tens of percent from day to
day. This script re-measures the reference's workloads beside ours so that a
speed-up is a ratio of two numbers taken on one machine in one hour:

    python -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch==2.13.0 numpy
    /tmp/torchvenv/bin/python benchmarks/reference_torch.py            # prints JSON
    python benchmarks/run.py --reference-python /tmp/torchvenv/bin/python

It is written here from the reference's published architecture (the seed
document), `reference_model.py`: the 64x64 DCGAN-style SN generator/discriminator
with attention on the 16x16/32x32 generator features and 8x8/4x4 discriminator
features, z_dim 128, conv_dim 64, hinge loss, one D and one G step per iteration,
and, as the reference does, fakes that are *not* detached in the D step (its D
backward also runs through G). Spectral norm is the reference's wrapper: one
power iteration on every forward. PyTorch runs on 2 threads.

Each workload runs in its own subprocess so its peak RSS is its own.
"""

import argparse
import json
import subprocess
import sys

from timing import peak_rss_mb, time_calls


def make_train_step(torch, batch, device="cpu", z_dim=128, conv_dim=64, detach_fakes=False):
    """One reference iteration at `batch` on `device`, as a closure: a D step, then a G step.

    As the reference does, fakes are *not* detached in the D step (its D backward also runs
    through G) and the G step's backward also computes D's weight gradients. `detach_fakes=True`
    is the useful work only, as keras_sagan's step does it: fakes generated without a graph, and
    D's weights frozen during the G step. The GPU benchmark counts its FLOPs as a cross-check.
    """
    from reference_model import Discriminator, Generator  # torch is imported only in the timing Python

    g, d = Generator(z_dim, conv_dim).to(device), Discriminator(conv_dim).to(device)
    g_opt = torch.optim.Adam(g.parameters(), 1e-4, betas=(0.0, 0.9))
    d_opt = torch.optim.Adam(d.parameters(), 4e-4, betas=(0.0, 0.9))
    real = torch.rand(batch, 3, 64, 64, device=device) * 2 - 1

    def noise():
        return torch.randn(batch, z_dim, device=device)

    def step():
        d_real = d(real)[0]
        if detach_fakes:
            with torch.no_grad():
                fake = g(noise())[0]
        else:
            fake = g(noise())[0]  # not detached, as in the reference
        d_fake = d(fake)[0]
        d_loss = torch.relu(1.0 - d_real).mean() + torch.relu(1.0 + d_fake).mean()
        d_opt.zero_grad()
        g_opt.zero_grad()
        d_loss.backward()
        d_opt.step()
        d.requires_grad_(not detach_fakes)
        g_loss = -d(g(noise())[0])[0].mean()
        d_opt.zero_grad()
        g_opt.zero_grad()
        g_loss.backward()
        g_opt.step()
        d.requires_grad_(True)

    return step


def _run(name, iterations):
    import torch

    torch.set_num_threads(2)
    torch.manual_seed(0)
    from reference_model import Generator, SelfAttention

    if name.startswith("train"):
        batch = int(name.split("_b")[1])
        step = make_train_step(torch, batch)
        per_call = batch
    elif name == "generate_b64":
        g = Generator().eval()
        z = torch.randn(64, 128)

        def step():
            with torch.no_grad():
                g(z)

        per_call = 64
    else:  # attention_<size>
        size = int(name.split("_")[1])
        channels, batch = {32: (64, 64), 64: (32, 16)}[size]
        layer = SelfAttention(channels)
        with torch.no_grad():
            layer.gamma.fill_(1.0)
        x = torch.randn(batch, channels, size, size, requires_grad=True)

        def step():
            layer(x)[0].sum().backward()

        per_call = batch
    rss_before = peak_rss_mb()
    median, _ = time_calls(step, 2, iterations)
    peak = peak_rss_mb()
    return {
        "workload": name,
        "seconds_per_call": round(median, 4),
        "images_per_second": round(per_call / median, 1),
        "peak_rss_mb": round(peak, 1),
        "rss_increase_mb": round(peak - rss_before, 1),
        "torch": torch.__version__,
    }


WORKLOADS = ["train_b64", "train_b16", "generate_b64", "attention_32", "attention_64"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", choices=WORKLOADS)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.iterations < 1:
        parser.error(f"--iterations must be >= 1; received {args.iterations}")
    if args.child:
        print(json.dumps(_run(args.child, args.iterations)))
        return
    results = {}
    for name in args.only or WORKLOADS:
        print(f"reference {name} ...", file=sys.stderr, flush=True)
        proc = subprocess.run(
            [sys.executable, __file__, "--child", name, "--iterations", str(args.iterations)],
            capture_output=True,
            text=True,
            check=True,
        )
        results[name] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(
            f"  {name}: {results[name]['seconds_per_call']} s/call, peak RSS {results[name]['peak_rss_mb']} MB",
            file=sys.stderr,
            flush=True,
        )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
