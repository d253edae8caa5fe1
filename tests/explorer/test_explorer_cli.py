"""`keras-sagan attention`, `sample --interpolate` and `explore`'s flags, in-process."""

import numpy as np
import pytest
from cli_checks import cli_error
from PIL import Image

from keras_sagan import cli
from keras_sagan.export.loading import load_generator


def test_attention_writes_one_figure_and_prints_each_layer(unconditional, tmp_path, capsys):
    out = tmp_path / "map.png"
    argv = ["attention", "--model", unconditional[1], "--seed", "3", "--query", "10,21", "--out", str(out)]
    assert cli.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "attention_8: 8x8, query cell 2,5, gamma 0.5",
        "attention_16: 16x16, query cell 5,10, gamma 1.5",
        str(out),
    ]
    figure = Image.open(out)
    assert figure.size == (4 * 128 + 3 * 4, 128 + 14)  # sample, attention off, two layers


def test_attention_of_a_conditional_model_takes_a_label(conditional, tmp_path, capsys):
    out = tmp_path / "c.png"
    argv = ["attention", "--model", conditional[1], "--query", "31,0", "--label", "2", "--out", str(out)]
    assert cli.main(argv) == 0
    assert capsys.readouterr().out.splitlines()[0] == "attention_16: 16x16, query cell 15,0, gamma 0.5"
    cli_error(capsys, argv[:-4] + ["--label", "3", "--out", str(out)])


def test_attention_picks_the_live_generator_of_a_run(ema_run, tmp_path, capsys):
    out = tmp_path / "live.png"
    argv = ["attention", "--model", ema_run, "--query", "0,0", "--out", str(out)]
    assert cli.main(argv) == 0 and cli.main(argv[:-2] + ["--weights", "live", "--out", str(tmp_path / "l.png")]) == 0
    capsys.readouterr()
    assert not np.array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(tmp_path / "l.png")))


def test_attention_bad_input_is_one_line(unconditional, saved_model, tmp_path, capsys):
    from keras_sagan.models.generator import Generator

    plain = Generator(image_size=32, z_dim=8, conv_dim=8, attention_resolutions=())
    plain.build()
    plain.save(tmp_path / "plain.keras")
    out = str(tmp_path / "x.png")
    model = unconditional[1]
    assert "query" in cli_error(capsys, ["attention", "--model", model, "--query", "32,0", "--out", out])
    assert "query" in cli_error(capsys, ["attention", "--model", model, "--query", "1;2", "--out", out])
    err = cli_error(capsys, ["attention", "--model", str(tmp_path / "plain.keras"), "--query", "0,0", "--out", out])
    assert "no attention layer" in err
    assert "SavedModel" in cli_error(capsys, ["attention", "--model", saved_model, "--query", "0,0", "--out", out])
    assert "--weights" in cli_error(capsys, ["attention", "--model", model, "--query", "0,0", "--weights", "live",
                                             "--out", out])  # fmt: skip
    assert "--out" in cli_error(capsys, ["attention", "--model", model, "--query", "0,0", "--out", str(tmp_path)])


def _gif(path):
    gif = Image.open(path)
    frames = []
    for index in range(gif.n_frames):
        gif.seek(index)
        frames.append(np.asarray(gif.convert("RGB")).astype(int))
    return frames


def test_sample_interpolate_writes_a_gif_from_seed_a_to_seed_b(unconditional, saved_model, tmp_path, capsys):
    walk = tmp_path / "walk.gif"
    argv = ["sample", "--model", unconditional[1], "--interpolate", "2", "7", "--frames", "6", "--out", str(walk)]
    assert cli.main(argv) == 0
    frames = _gif(walk)
    assert len(frames) == 6
    loaded = load_generator(unconditional[1])
    ends = [np.asarray(loaded.sample(1, seed=seed)["images_uint8"])[0].astype(int) for seed in (2, 7)]
    # GIF palettes quantise colour (256 per frame for 1024 pixels): each end is close to its own seed's image.
    for frame, own, other in ((frames[0], ends[0], ends[1]), (frames[-1], ends[1], ends[0])):
        assert np.abs(frame - own).mean() < min(10, np.abs(frame - other).mean() / 3)
    # --mode lerp takes another path through z; a SavedModel walks the same way.
    assert cli.main(argv[:-2] + ["--mode", "lerp", "--out", str(tmp_path / "lerp.gif")]) == 0
    assert np.abs(_gif(tmp_path / "lerp.gif")[3] - frames[3]).mean() > 0.5
    argv_saved = ["sample", "--model", saved_model, "--interpolate", "2", "7", "--frames", "6"]
    assert cli.main(argv_saved + ["--out", str(tmp_path / "saved.gif")]) == 0
    assert all(np.abs(a - b).mean() < 1 for a, b in zip(_gif(tmp_path / "saved.gif"), frames))
    capsys.readouterr()


def test_sample_interpolate_between_classes(conditional, tmp_path, capsys):
    base = ["sample", "--model", conditional[1], "--interpolate", "4", "4", "--frames", "3"]
    assert cli.main(base + ["--labels", "0", "2", "--out", str(tmp_path / "c.gif")]) == 0
    frames = _gif(tmp_path / "c.gif")
    assert len(frames) == 3 and np.abs(frames[0] - frames[-1]).mean() > 1
    assert cli.main(base + ["--labels", "1", "--out", str(tmp_path / "one.gif")]) == 0
    assert len(_gif(tmp_path / "one.gif")) == 1  # same seed, same class: identical frames, merged by the GIF encoder
    capsys.readouterr()
    assert "--labels" in cli_error(capsys, base + ["--labels", "0", "1", "2", "--out", str(tmp_path / "x.gif")])


@pytest.mark.parametrize(
    "extra, message",
    [(["--frames", "1"], "frames"), (["--frames", "121"], "frames"), (["--out", "walk.png"], "--out")],
)
def test_sample_interpolate_bad_input(unconditional, tmp_path, capsys, extra, message):
    argv = ["sample", "--model", unconditional[1], "--interpolate", "0", "1", "--out", str(tmp_path / "w.gif")]
    assert message in cli_error(capsys, argv + extra)


def test_explore_binds_loopback_unless_told(unconditional, monkeypatch, capsys):
    from keras_sagan.explorer import server

    calls = []

    class Stub:
        server_address = ("127.0.0.1", 8123)

        def serve_forever(self):
            pass

        def server_close(self):
            pass

    monkeypatch.setattr(server, "make_server", lambda explorer, host, port: calls.append((host, port)) or Stub())
    assert cli.main(["explore", "--model", unconditional[1]]) == 0
    assert cli.main(["explore", "--model", unconditional[1], "--host", "0.0.0.0", "--port", "0"]) == 0
    assert calls == [("127.0.0.1", 8000), ("0.0.0.0", 0)]
    captured = capsys.readouterr()
    assert "http://127.0.0.1:8123/" in captured.out
    assert captured.err.count("warning: listening on 0.0.0.0") == 1  # only for the explicit --host
    assert "--port" in cli_error(capsys, ["explore", "--model", unconditional[1], "--port", "70000"])
    assert "no such model path" in cli_error(capsys, ["explore", "--model", "/nonexistent/model"])
