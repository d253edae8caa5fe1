"""The PyTorch side of the FID parity tests, run as a subprocess (TF and clean-fid in one process can segfault).

    python torch_reference.py IN.npz OUT.npz [WEIGHTS.pth]

IN holds `images` (float32, (B, H, W, 3) in [-1, 1]) and `pixels` (uint8 (B, H, W, 3)); OUT gets:

- `pool3`, `logits`: pytorch-fid's `InceptionV3([3])` (its bilinear resize to 299 included) and
  `fid_inception_v3()`'s fc on those features, with random weights whose BatchNorm running statistics
  are calibrated on other images (an uncalibrated random network gives the same features for every
  input); the state dict is `torch.save`d to WEIGHTS (only when given);
- `interpolated`: `F.interpolate(images, (299, 299), mode="bilinear", align_corners=False)`;
- `clean`: clean-fid's resizer (`build_resizer("clean")`) on each uint8 image.
"""

import sys

import numpy as np
import torch
import torch.nn.functional as F


def random_fid_network(seed):
    """pytorch-fid's InceptionV3([3]) and its inner fid_inception_v3(), random weights, calibrated BN."""
    import pytorch_fid.inception as fid

    torch.manual_seed(seed)
    original_load = torch.nn.Module.load_state_dict
    fid.load_state_dict_from_url = lambda *args, **kwargs: None  # No download.
    torch.nn.Module.load_state_dict = lambda self, *args, **kwargs: None  # Keep the random weights.
    try:
        inner = fid.fid_inception_v3()
    finally:
        torch.nn.Module.load_state_dict = original_load
    with torch.no_grad():  # Random BN affine parameters, so that their mapping is tested too.
        for module in inner.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0.0, 0.2)
                module.reset_running_stats()
                module.momentum = None  # Cumulative average over the calibration passes.
    fid.fid_inception_v3 = lambda: inner
    network = fid.InceptionV3([3])
    rng = np.random.default_rng(seed)
    network.train()
    with torch.no_grad():
        for _ in range(2):
            low = rng.uniform(0, 1, (8, 3, 12, 12)).astype(np.float32)  # Smooth images, in [0, 1].
            network(F.interpolate(torch.from_numpy(low), size=(64, 64), mode="bilinear"))
    network.eval()
    inner.eval()
    return network, inner


def main(in_path, out_path, weights_path=None):
    torch.set_num_threads(2)
    data = np.load(in_path)
    images = torch.from_numpy(data["images"]).permute(0, 3, 1, 2).contiguous()
    out = {}
    network, inner = random_fid_network(seed=0)
    if weights_path:
        torch.save(inner.state_dict(), weights_path)
    with torch.no_grad():
        pool3 = network((images + 1.0) / 2.0)[0].flatten(1)  # pytorch-fid takes [0, 1].
        out["pool3"] = pool3.numpy()
        out["logits"] = inner.fc(pool3).numpy()
        resized = F.interpolate(images, size=(299, 299), mode="bilinear", align_corners=False)
        out["interpolated"] = resized.permute(0, 2, 3, 1).numpy()

    from cleanfid.resize import build_resizer

    resizer = build_resizer("clean")
    out["clean"] = np.stack([resizer(pixels) for pixels in data["pixels"]])
    np.savez(out_path, **out)


if __name__ == "__main__":
    main(*sys.argv[1:])
