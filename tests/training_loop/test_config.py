"""TrainConfig's one source of truth: fields -> flags, sections, up-front checks, config.json round trip."""

import dataclasses
import json
import pathlib

import pytest
from absl import flags

from keras_sagan.data import DATASETS
from keras_sagan.errors import UsageError
from keras_sagan.layers.self_attention import VARIANTS
from keras_sagan.models.presets import PRESETS
from keras_sagan.run_directory import RunDirectory
from keras_sagan.training import config as config_lib
from keras_sagan.training import flags as train_flags
from keras_sagan.training.config import TrainConfig
from keras_sagan.training.losses import LOSSES
from keras_sagan.training.sagan import TTUR

FIELDS = {field.name: field for field in dataclasses.fields(TrainConfig)}


def _parse(*args):
    return train_flags.parse(["train", *args])


# -- fields -> flags --------------------------------------------------------------------------


def test_every_field_has_a_flag_with_its_default_help_and_section():
    fv = train_flags.new_flag_values()
    assert set(fv) == set(FIELDS) | {train_flags.CONFIG_FLAG}
    by_module = {
        module: {flag.name for flag in module_flags} for module, module_flags in fv.flags_by_module_dict().items()
    }
    defaults = _parse()
    for name, field in FIELDS.items():
        flag = fv[name]
        assert field.metadata["help"] in flag.help, name
        assert name in by_module[f"{train_flags.GROUP} ({field.metadata['section']})"], name
        # The flag's default, read back as the config reads it, is the field's default.
        assert getattr(defaults, name) == field.default, name
    assert fv["steps"].default == 800 and fv["batch_size"].default == 20 and fv["preset"].default == "celeba64"


@pytest.mark.parametrize(
    "name, choices",
    [
        ("dataset", DATASETS),
        ("preset", tuple(PRESETS)),
        ("attention_variant", VARIANTS),
        ("loss", tuple(LOSSES)),
        ("mixed_precision", config_lib.MIXED_PRECISION_POLICIES),
        ("strategy", config_lib.STRATEGIES),
        ("jit_compile", ("auto", True, False)),
        ("image_size", (32, 64, 128)),
    ],
)
def test_a_field_with_choices_gets_an_enum_flag_of_the_package_constant(name, choices):
    flag = train_flags.new_flag_values()[name]
    assert isinstance(flag.parser, flags.EnumParser)
    assert flag.parser.enum_values == [str(c).lower() if isinstance(c, bool) else str(c) for c in choices]
    # Each spelling parses back to the constant's own value (bool / int / str).
    for choice, text in zip(choices, flag.parser.enum_values):
        extra = ["--image_folder=/imgs"] if (name, text) == ("dataset", "folder") else []
        config = _parse(f"--{name}={text}", *extra)
        assert getattr(config, name) == choice and type(getattr(config, name)) is type(choice)


def test_fields_without_choices_get_typed_flags():
    fv = train_flags.new_flag_values()
    expected = {
        bool: flags.BooleanParser,
        int: flags.IntegerParser,
        float: flags.FloatParser,
        str: flags.ArgumentParser,
    }
    for info in config_lib.fields_info():
        if info.choices is None:
            assert type(fv[info.name].parser) is expected[info.types[0]], info.name
    assert _parse("--collective_timeout=2.5").collective_timeout == 2.5
    assert _parse("--noprogress_bar", "--deterministic").deterministic is True


def test_optimiser_defaults_are_ttur():
    config = TrainConfig()
    assert (config.g_lr, config.d_lr, config.beta1, config.beta2) == (1e-4, 4e-4, 0.0, 0.9)
    assert {k: getattr(config, k) for k in TTUR} == dict(TTUR)


# -- sections and the dict round trip --------------------------------------------------------


def test_sections_hold_every_field_once_in_order():
    config = TrainConfig(steps=7, loss="wgan-gp", eval_every=3)
    sections = config.sections()
    assert (
        tuple(sections) == config_lib.SECTIONS == ("data", "model", "optimisation", "runtime", "output", "evaluation")
    )
    flat = [name for values in sections.values() for name in values]
    assert sorted(flat) == sorted(FIELDS) and len(flat) == len(FIELDS)
    assert sections["optimisation"]["steps"] == 7 and sections["optimisation"]["loss"] == "wgan-gp"
    assert sections["evaluation"]["eval_every"] == 3 and "strategy" in sections["runtime"]


def test_to_dict_from_dict_round_trip_through_json():
    config = TrainConfig(dataset="celeba", data_dir="/tfds", steps=9, jit_compile=False, ema_decay=0.5, image_size=64)
    values = json.loads(json.dumps(config.to_dict()))
    assert values == dataclasses.asdict(config) and len(values) == len(FIELDS)
    assert TrainConfig.from_dict(values) == config
    assert TrainConfig.from_dict({"steps": 3}) == TrainConfig(steps=3)


def test_from_dict_names_an_unknown_key_in_one_line():
    with pytest.raises(UsageError) as info:
        TrainConfig.from_dict({"steps": 3, "learning_rate": 0.1})
    assert str(info.value) == "`learning_rate` is not a TrainConfig field; received: learning_rate=0.1"


def test_constructor_normalises_values():
    config = TrainConfig(model_dir=pathlib.Path("runs/x"), g_lr=1, ema_decay=0)
    assert config.model_dir == "runs/x" and type(config.model_dir) is str
    assert config.g_lr == 1.0 and type(config.g_lr) is float
    assert config.ema_decay is None  # 0 is off.


def test_docstring_documents_every_field():
    for name, field in FIELDS.items():
        assert f"{name}: {field.metadata['help'].split()[0]}" in TrainConfig.__doc__, name


# -- up-front checks, one line each ----------------------------------------------------------

BAD = [
    ("dataset", "cifar10", "one of ('celeba', 'folder', 'demo', 'fashion_mnist', 'mnist')"),
    ("data_dir", 3, "None or a string"),
    ("image_folder", 3, "None or a string"),
    ("download", "yes", "True or False"),
    ("preset", "nope", "one of ('celeba64', 'cifar10_32', 'imagenet128', 'fashion_mnist32')"),
    ("image_size", 48, "None or one of (32, 64, 128)"),
    ("conv_dim", 0, "None or an int >= 1"),
    ("z_dim", 2.0, "None or an int >= 1"),
    ("attention_variant", "full", "None or one of ('sagan', 'reference')"),
    ("channels", 2, "None or one of (1, 3)"),
    ("batch_size", 0, "an int >= 1"),
    ("steps", 0, "an int >= 1"),
    ("g_lr", 0.0, "a number > 0"),
    ("d_lr", -1e-4, "a number > 0"),
    ("beta1", 1.0, "a number in [0, 1)"),
    ("beta2", -0.1, "a number in [0, 1)"),
    ("d_steps", True, "an int >= 1"),
    ("loss", "least-squares", "one of ('hinge', 'non-saturating', 'wgan-gp')"),
    ("ema_decay", 1.0, "None or a number in [0, 1)"),
    ("ema_statistics", "batch", "one of ('standing', 'moving')"),
    ("divergence_rollbacks", -1, "an int >= 0"),
    ("seed", -1, "an int >= 0"),
    ("deterministic", 1, "True or False"),
    ("mixed_precision", "float16", "one of ('float32', 'mixed_bfloat16', 'mixed_float16')"),
    ("jit_compile", 1, "one of ('auto', True, False)"),
    ("strategy", "parameter_server", "one of ('default', 'mirrored', 'multiworker', 'tpu', 'multihost')"),
    ("cpu_replicas", 0, "None or an int >= 1"),
    ("collective_timeout", 0, "None or a number of seconds > 0"),
    ("coordinator_address", 3, "None or a string"),
    ("num_processes", 0, "None or an int >= 1"),
    ("process_id", -1, "None or an int >= 0"),
    ("coordinator_timeout", 0, "a number of seconds > 0"),
    ("model_dir", 3, "None or a string"),
    ("log_every", 0, "an int >= 1"),
    ("sample_every", 0, "an int >= 1"),
    ("checkpoint_every", 0, "an int >= 1"),
    ("keep_checkpoints", 0, "an int >= 1"),
    ("export_dir", 3, "None or a string"),
    ("num_samples", 0, "an int >= 1"),
    ("progress_bar", None, "True or False"),
    ("eval_every", -1, "an int >= 0 (0 = no evaluation)"),
    ("eval_num_samples", 1, "an int >= 2"),
    ("eval_stats", "", "None or a file path"),
    ("inception", "keras", "one of ('fid', 'fashion_mnist')"),
    ("inception_weights", 3, "None or a file path"),
]


@pytest.mark.parametrize("name, value, expected", BAD, ids=[case[0] for case in BAD])
def test_each_bad_value_is_one_keras_style_line(name, value, expected):
    with pytest.raises(UsageError) as info:
        TrainConfig(**{name: value})
    assert isinstance(info.value, ValueError)
    assert str(info.value) == f"`{name}` must be {expected}; received: {name}={value!r}"


def test_every_field_has_a_bad_value_case():
    assert [case[0] for case in BAD] == list(FIELDS)


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"dataset": "folder"},
         "`image_folder` must be a folder of images when dataset='folder'; received: image_folder=None"),
        ({"data_dir": "/tfds"},
         "`data_dir` applies only to dataset='celeba' or dataset='fashion_mnist' or dataset='mnist'; "
         "received: dataset='demo', data_dir='/tfds'"),
        ({"strategy": "multiworker", "cpu_replicas": 2},
         "`cpu_replicas` must be None or 1 with strategy='multiworker' (one CPU device per worker: start more "
         "workers instead); received: cpu_replicas=2"),
    ],
    ids=["folder-without-folder", "data_dir-without-celeba", "cpu_replicas-with-multiworker"],
)  # fmt: skip
def test_fields_that_do_not_fit_together_are_one_line(settings, message):
    with pytest.raises(UsageError) as info:
        TrainConfig(**settings)
    assert str(info.value) == message
    TrainConfig(strategy="multiworker", cpu_replicas=1, collective_timeout=2.5)  # These fit.


# -- --config: replaying a run -----------------------------------------------------------------


def _write_run(tmp_path, config):
    run = RunDirectory(tmp_path / "run")
    run.write_config({"name": "generator"}, {"name": "discriminator"}, config.to_dict())
    return run


def test_config_flag_replays_a_run_and_explicit_flags_override_it(tmp_path):
    original = TrainConfig(
        steps=30, conv_dim=8, loss="non-saturating", jit_compile=False, ema_decay=0.9, model_dir=str(tmp_path / "run")
    )
    run = _write_run(tmp_path, original)
    assert _parse(f"--config={run.config_path}") == original
    assert _parse(f"--config={run.path}") == original  # The run directory works too.

    replayed = _parse(f"--config={run.config_path}", "--steps=60", "--jit_compile=auto")
    assert replayed == dataclasses.replace(original, steps=60, jit_compile="auto")
    # An explicit flag wins even when it spells the default.
    assert _parse("--loss=hinge", f"--config={run.config_path}").loss == "hinge"

    flagfile = tmp_path / "more.flags"
    flagfile.write_text("--d_steps=2\n")
    assert _parse(f"--config={run.config_path}", f"--flagfile={flagfile}").d_steps == 2


def test_config_flag_reads_a_json_of_fields(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"steps": 12, "strategy": "mirrored", "cpu_replicas": 2}))
    config = _parse(f"--config={path}", "--batch_size=4")
    assert (config.steps, config.strategy, config.cpu_replicas, config.batch_size) == (12, "mirrored", 2, 4)
    assert config.loss == "hinge"  # Neither in the file nor on the command line: the default.


@pytest.mark.parametrize(
    "content, message",
    [
        ({"steps": 3, "lr": 1}, "`lr` is not a TrainConfig field; received: lr=1"),
        ({"steps": 0}, "`steps` must be an int >= 1; received: steps=0"),
        ([1, 2], "`config` must be a JSON object of TrainConfig fields; received: config="),
    ],
    ids=["unknown-key", "bad-value", "not-an-object"],
)
def test_config_flag_errors_are_one_line(content, message, tmp_path):
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(content))
    with pytest.raises(UsageError) as info:
        _parse(f"--config={path}")
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_config_flag_with_a_missing_file_is_one_line(tmp_path):
    missing = tmp_path / "nope.json"
    with pytest.raises(UsageError) as info:
        _parse(f"--config={missing}")
    assert str(info.value).startswith("`config` must be a run's config.json or run directory, or a JSON file;")
    assert f"config={str(missing)!r}" in str(info.value)
