"""The reference's side of the quality benchmark: our PyTorch model of heykeetae/Self-Attention-GAN, trained
with the reference's own iteration, as it is.

Run by `run.py` in its own process, without TensorFlow (torch beside TensorFlow can crash):

    python benchmarks/quality/reference_side.py --work DIR --seed 0 --steps 1000 --eval_every 250 ...

What it keeps from the reference's trainer (heykeetae `trainer.py`, hinge loss), on purpose:
- spectral norm runs a power iteration on every forward (`reference_model.SpectralNorm`);
- the D step does not detach the fakes, so D's backward also runs through G (G's gradients are
  then zeroed before the G step, as `reset_grad` does);
- Adam(1e-4 / 4e-4, betas (0, 0.9)), hinge, one D and one G step per iteration, no EMA;
- samples come from G in training mode (the reference never calls `G.eval()`): BatchNorm uses
  each sampling batch's statistics and spectral norm keeps iterating.
At each evaluation it writes the fakes of the protocol's noise (`DIR/z.npy`) as uint8
`DIR/reference_seed<seed>_step<step>.npy`; `run.py` scores them with the domain network.
"""

import argparse
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from reference_model import Discriminator, Generator  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--eval_every", type=int, default=250)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--conv_dim", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    train = np.load(os.path.join(args.work, "train_64.npy"))  # (N, 64, 64, 1) uint8
    z_eval = torch.from_numpy(np.load(os.path.join(args.work, "z.npy"))).to(device)
    g = Generator(128, args.conv_dim, channels=1).to(device)
    d = Discriminator(args.conv_dim, channels=1).to(device)
    g_opt = torch.optim.Adam(filter(lambda p: p.requires_grad, g.parameters()), 1e-4, betas=(0.0, 0.9))
    d_opt = torch.optim.Adam(filter(lambda p: p.requires_grad, d.parameters()), 4e-4, betas=(0.0, 0.9))
    rng = np.random.default_rng(args.seed)
    order, position = rng.permutation(len(train)), 0
    start, eval_seconds = time.time(), 0.0
    for step in range(1, args.steps + 1):
        if position + args.batch_size > len(order):
            order, position = rng.permutation(len(train)), 0
        batch = train[order[position : position + args.batch_size]]
        position += args.batch_size
        real = torch.from_numpy(batch).to(device).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        # D step, as the reference: fakes not detached.
        d_real = d(real)[0]
        fake = g(torch.randn(args.batch_size, 128, device=device))[0]
        d_fake = d(fake)[0]
        d_loss = torch.relu(1.0 - d_real).mean() + torch.relu(1.0 + d_fake).mean()
        d_opt.zero_grad()
        g_opt.zero_grad()
        d_loss.backward()
        d_opt.step()
        # G step.
        g_loss = -d(g(torch.randn(args.batch_size, 128, device=device))[0])[0].mean()
        d_opt.zero_grad()
        g_opt.zero_grad()
        g_loss.backward()
        g_opt.step()
        if step % args.eval_every == 0 or step == args.steps:
            begin = time.time()
            with torch.no_grad():  # still training mode: the reference samples that way
                images = torch.cat([g(z_eval[i : i + 100])[0] for i in range(0, len(z_eval), 100)])
            images = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
            np.save(os.path.join(args.work, f"reference_seed{args.seed}_step{step}.npy"), images)
            eval_seconds += time.time() - begin
            train_seconds = time.time() - start - eval_seconds
            print(
                f"reference seed {args.seed} step {step} d_loss {float(d_loss):.4f} g_loss {float(g_loss):.4f} "
                f"train_seconds {train_seconds:.1f}",
                flush=True,
            )
            with open(os.path.join(args.work, f"reference_seed{args.seed}_step{step}.json"), "w") as f:
                f.write(f'{{"train_seconds": {train_seconds:.1f}}}')
    return 0


if __name__ == "__main__":
    sys.exit(main())
