"""`benchmarks/quality/run.py --reference-dir`: the reference's own `main.py`, run unmodified, sampled and scored.

A stand-in clone's `main.py` checks what the real one needs (the `celeb` image-folder layout at 160x160, the
flags, a log step past the last step) and saves generator state dicts at the steps the real trainer would
(`int(model_save_step * steps_per_epoch)`), with a last layer that makes every image a known constant.
Everything runs in subprocesses: torch beside TensorFlow can crash.
"""

import json
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytest.importorskip("torch")

ROOT = pathlib.Path(__file__).resolve().parents[2]
QUALITY = ROOT / "benchmarks" / "quality"
BIASES = {4: (0.2, -0.4, 0.8), 8: (-0.6, 0.1, 0.3)}  # per saved step: G's last bias (R, G, B)

FAKE_MAIN = textwrap.dedent(
    """
    import argparse, os, sys
    sys.path.insert(0, {benchmarks!r})
    import torch
    from PIL import Image
    from reference_model import Generator

    p = argparse.ArgumentParser()
    for name in ("dataset", "image_path", "adv_loss", "version", "model_save_path", "sample_path", "log_path",
                 "attn_path"):
        p.add_argument("--" + name)
    for name in ("imsize", "batch_size", "total_step", "g_conv_dim", "d_conv_dim", "log_step", "sample_step"):
        p.add_argument("--" + name, type=int)
    p.add_argument("--model_save_step", type=float)
    a = p.parse_args()
    assert (a.dataset, a.imsize, a.adv_loss, a.g_conv_dim) == ("celeb", 64, "hinge", 8), a
    assert a.log_step > a.total_step  # its log line would fail on today's PyTorch
    (folder,) = os.listdir(os.path.join(a.image_path, "CelebA"))
    files = sorted(os.listdir(os.path.join(a.image_path, "CelebA", folder)))
    image = Image.open(os.path.join(a.image_path, "CelebA", folder, files[0]))
    assert image.size == (160, 160) and image.mode == "RGB", (image.size, image.mode)
    save_every = int(a.model_save_step * (len(files) // a.batch_size))  # as its trainer computes it
    out = os.path.join(a.model_save_path, a.version)
    os.makedirs(out, exist_ok=True)
    for step in range(a.total_step):
        if (step + 1) % save_every == 0:
            g = Generator(128, a.g_conv_dim, channels=3)
            with torch.no_grad():
                g.last[0].weight.zero_()
                g.last[0].bias.copy_(torch.tensor({biases!r}[step + 1]))
            torch.save(g.state_dict(), os.path.join(out, f"{{step + 1}}_G.pth"))
    """
)


def _write_work(work, num_images=40, num_fakes=6):
    rng = np.random.default_rng(0)
    np.save(work / "train_64.npy", rng.integers(0, 256, (num_images, 64, 64, 1), dtype=np.uint8))
    np.save(work / "z.npy", rng.standard_normal((num_fakes, 128)).astype(np.float32))


def _harness(work, reference, require_cuda):
    code = (
        f"import sys; sys.path.insert(0, {str(QUALITY)!r}); import json; "
        "from reference_main import run_reference_main; "
        f"print(json.dumps(run_reference_main({str(reference)!r}, {str(work)!r}, 3, 8, 4, 4, 8, "
        f"require_cuda={require_cuda})))"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def test_the_reference_main_runs_on_the_image_folder_and_its_checkpoints_are_sampled(tmp_path):
    work, reference = tmp_path / "work", tmp_path / "clone"
    work.mkdir()
    reference.mkdir()
    _write_work(work)
    (reference / "main.py").write_text(
        FAKE_MAIN.format(benchmarks=str(ROOT / "benchmarks"), biases={k: list(v) for k, v in BIASES.items()})
    )
    done = _harness(work, reference, require_cuda=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [4, 8]
    for step, bias in BIASES.items():  # weight 0: every pixel is tanh(bias); grey is the channel mean
        images = np.load(work / f"refmain_seed3_step{step}.npy")
        expected = np.round((np.mean(np.tanh(np.float32(bias))) + 1) * 127.5)
        assert images.shape == (6, 64, 64, 1) and images.dtype == np.uint8
        np.testing.assert_array_equal(images, np.full_like(images, expected))
        assert json.load(open(work / f"refmain_seed3_step{step}.json"))["train_seconds"] >= 0
    # The image folder: each training image scaled 64 -> 160 (nearest), grey as RGB.
    from PIL import Image

    train = np.load(work / "train_64.npy")
    png = np.asarray(Image.open(work / "reference_images" / "CelebA" / "fashion" / "00007.png"))
    assert png.shape == (160, 160, 3) and (png[..., 0] == png[..., 2]).all()
    centres = ((np.arange(64) + 0.5) * 160 / 64).astype(int)  # the middle of each source pixel's 2.5-pixel block
    np.testing.assert_array_equal(png[centres][:, centres, 0], train[7, ..., 0])


def test_without_cuda_the_reference_main_is_skipped_in_one_line(tmp_path):
    work, reference = tmp_path / "work", tmp_path / "clone"
    work.mkdir()
    reference.mkdir()
    (reference / "main.py").write_text("raise SystemExit('must not run')\n")
    _write_work(work)
    import_check = subprocess.run(
        [sys.executable, "-c", "import torch; print(torch.cuda.is_available())"], capture_output=True, text=True
    )
    if import_check.stdout.strip() == "True":
        pytest.skip("a CUDA GPU is present: the skip path does not apply")
    done = _harness(work, reference, require_cuda=True)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith("skipped --reference-dir: the reference's trainer calls .cuda() unconditionally")
    assert lines[-1] == "null" and not (work / "refmain").exists()


def test_a_folder_without_main_py_is_one_line(tmp_path):
    (tmp_path / "work").mkdir()
    done = _harness(tmp_path / "work", tmp_path, require_cuda=False)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: --reference-dir {str(tmp_path)!r} has no main.py; expected a clone of heykeetae/Self-Attention-GAN"
    )
