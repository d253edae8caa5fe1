"""The reference itself beside the quality benchmark: heykeetae/Self-Attention-GAN's own `main.py`, unmodified.

    python benchmarks/quality/run.py --mode gpu --reference-dir /path/to/Self-Attention-GAN

`run.py` calls `run_reference_main` once per seed after the other sides. It:
1. writes the benchmark's training images as the image folder the reference reads (its `celeb` dataset:
   `<image_path>/CelebA/<class>/*.png`, then `CenterCrop(160)` and `Resize(64)`): each 64x64 image is
   scaled to 160x160 (nearest), so the centre crop keeps all of it and the reference's resize brings it
   back to 64x64; grey is stored as RGB, since `ImageFolder` opens every image as RGB;
2. runs `python main.py` in the clone, unmodified, with flags only: hinge, 64x64, the benchmark's batch,
   steps and conv_dim, the reference's own learning rates and betas (its defaults are the TTUR ones), and
   a model save every `eval_every` steps (`--model_save_step` is in epochs). `--log_step` is set past the
   last step: the reference's log line indexes 0-d tensors (`.data[0]`), an error on every PyTorch since
   0.5. Its trainer calls `.cuda()` unconditionally, so this needs a CUDA GPU; without one it is skipped
   with one line. Its runs cannot be seeded without editing it: the seed only names the run;
3. loads each saved `<step>_G.pth` into our key-compatible model of the reference
   (`benchmarks/reference_model.py`, `channels=3`), samples the protocol's noise in training mode (the
   reference never calls `G.eval()`) and writes the channel mean as uint8
   `refmain_seed<seed>_step<step>.npy`, which `run.py` scores like the other sides.
"""

import json
import os
import subprocess
import sys
import time

import numpy as np

# heykeetae's `celeb` pipeline: CenterCrop(160) then Resize((imsize, imsize)).
CROP = 160
IMAGE_SIZE = 64
CLASS_FOLDER = "fashion"


def write_image_folder(train: np.ndarray, image_path: str) -> str:
    """Writes `train` (uint8 `(N, 64, 64, 1)`) as `image_path/CelebA/fashion/<i>.png`, 160x160 RGB; returns the folder.

    Kept when complete (a file `done` records the count), so reruns and other seeds reuse it.
    """
    from PIL import Image

    folder = os.path.join(image_path, "CelebA", CLASS_FOLDER)
    done = os.path.join(image_path, "done")
    if os.path.exists(done) and json.load(open(done)).get("count") == len(train):
        return folder
    os.makedirs(folder, exist_ok=True)
    for index, image in enumerate(train):
        grey = Image.fromarray(image[..., 0]).resize((CROP, CROP), Image.NEAREST)
        grey.convert("RGB").save(os.path.join(folder, f"{index:05d}.png"))
    with open(done, "w") as f:
        json.dump({"count": len(train)}, f)
    return folder


def main_command(reference_dir, image_path, out, seed, steps, eval_every, batch_size, conv_dim, num_images):
    """The reference's `main.py` command line (run with `cwd=reference_dir`)."""
    steps_per_epoch = num_images // batch_size  # its DataLoader drops the last partial batch
    # `model_save_step` epochs become int(model_save_step * steps_per_epoch) steps in its trainer.
    save_epochs = eval_every / steps_per_epoch + 1e-9
    return [
        sys.executable,
        os.path.join(reference_dir, "main.py"),
        "--dataset=celeb",
        f"--image_path={image_path}",
        f"--imsize={IMAGE_SIZE}",
        "--adv_loss=hinge",
        f"--batch_size={batch_size}",
        f"--total_step={steps}",
        f"--g_conv_dim={conv_dim}",
        f"--d_conv_dim={conv_dim}",
        f"--version=seed{seed}",
        f"--model_save_path={out}/models",
        f"--sample_path={out}/samples",
        f"--log_path={out}/logs",
        f"--attn_path={out}/attn",
        f"--log_step={steps + 1}",
        f"--sample_step={eval_every}",
        f"--model_save_step={save_epochs!r}",
    ]


def sample_checkpoints(models_dir, work, seed, conv_dim, device, seconds_per_step):
    """Samples every `<step>_G.pth` of `models_dir` on the protocol's noise; returns the steps written."""
    import torch

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from reference_model import Generator

    z = torch.from_numpy(np.load(os.path.join(work, "z.npy"))).to(device)
    steps = sorted(int(name.split("_")[0]) for name in os.listdir(models_dir) if name.endswith("_G.pth"))
    for step in steps:
        generator = Generator(z.shape[1], conv_dim, channels=3).to(device)
        state = torch.load(os.path.join(models_dir, f"{step}_G.pth"), map_location=device)
        generator.load_state_dict(state)
        generator.train()  # the reference samples in training mode
        with torch.no_grad():
            images = torch.cat([generator(z[i : i + 100])[0] for i in range(0, len(z), 100)])
        grey = images.clamp(-1, 1).mean(dim=1, keepdim=True)
        uint8 = ((grey + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        name = f"refmain_seed{seed}_step{step}"
        np.save(os.path.join(work, f"{name}.npy"), uint8)
        with open(os.path.join(work, f"{name}.json"), "w") as f:
            json.dump({"train_seconds": round(seconds_per_step * step, 1)}, f)
    return steps


def run_reference_main(reference_dir, work, seed, steps, eval_every, batch_size, conv_dim, require_cuda=True):
    """Trains the reference's own `main.py` on the benchmark's images and samples its checkpoints.

    Returns the steps sampled, or None when skipped (no CUDA; one line printed).
    """
    import torch

    main_py = os.path.join(reference_dir, "main.py")
    if not os.path.isfile(main_py):
        raise SystemExit(f"error: --reference-dir {reference_dir!r} has no main.py; expected a clone of "
                         "heykeetae/Self-Attention-GAN")  # fmt: skip
    if require_cuda and not torch.cuda.is_available():
        print(
            "skipped --reference-dir: the reference's trainer calls .cuda() unconditionally "
            "(trainer.build_model), and no CUDA GPU is available here",
            flush=True,
        )
        return None
    train = np.load(os.path.join(work, f"train_{IMAGE_SIZE}.npy"), mmap_mode="r")
    image_path = os.path.join(work, "reference_images")
    write_image_folder(train, image_path)
    out = os.path.join(work, "refmain")
    command = main_command(reference_dir, image_path, out, seed, steps, eval_every, batch_size, conv_dim, len(train))
    print("$ (cd", reference_dir, "&&", " ".join(command), ")", flush=True)
    start = time.time()
    subprocess.run(command, check=True, cwd=reference_dir)
    seconds = time.time() - start
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    models_dir = os.path.join(out, "models", f"seed{seed}")
    return sample_checkpoints(models_dir, work, seed, conv_dim, device, seconds / steps)
