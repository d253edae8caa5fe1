"""`TrainConfig`: every setting of a training run, in sections, each field validated up front.

The dataclass is the one source of truth for the settings. Each field carries its section, its
help text and, where it has them, its choices (taken from the package's own constants), as
`dataclasses.field` metadata. From those, `keras_sagan.training.flags` generates the command-line
flags, `fields_info()` describes the fields, `sections()` groups the values, and the class
docstring lists them. `to_dict()` and `from_dict()` write and read the `"train"` section of a
run's `config.json`.

It is one flat dataclass rather than nested section dataclasses: `TrainConfig(steps=100)`,
`config.steps`, `dataclasses.replace` and `dataclasses.asdict` all keep working unchanged, and
the section is a property of the field, not of where its value lives.

Importing this module imports `keras_sagan.data` for `DATASETS`, and so tensorflow_datasets,
because `keras_sagan/data/__init__.py` imports the CelebA loader.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import textwrap
import typing
from types import NoneType, UnionType
from typing import Any, NamedTuple

from keras_sagan.data import DATASETS
from keras_sagan.data.spec import check_channels, check_data_arguments
from keras_sagan.errors import UsageError, bad_value
from keras_sagan.layers.self_attention import VARIANTS
from keras_sagan.models.architectures import CHANNELS, IMAGE_SIZES
from keras_sagan.models.presets import PRESETS, preset_config
from keras_sagan.run_directory import RunDirectory
from keras_sagan.training.guard import ROLLBACK_LR_FACTOR
from keras_sagan.training.losses import LOSSES
from keras_sagan.training.sagan import EMA_STATISTICS, TTUR

MIXED_PRECISION_POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")
STRATEGIES = ("default", "mirrored", "multiworker", "tpu", "multihost")
MULTIHOST_FIELDS = ("coordinator_address", "num_processes", "process_id")
"""The settings of `strategy="multihost"` (each may come from Keras' `KERAS_DISTRIBUTION_*` variables instead)."""
JIT_COMPILE_CHOICES = ("auto", True, False)
DEMO_IMAGE_SIZE = 32
"""Image size used for `dataset="demo"` when `image_size` is not given: the demo faces are 25x25."""
SECTIONS = ("data", "model", "optimisation", "runtime", "output", "evaluation")


def _field(section: str, default: Any, help: str, *, choices=None, check=None) -> Any:
    """A field with its metadata: `check` is `(predicate, expected)` for a rule beyond the type."""
    metadata = {"section": section, "help": help}
    if choices is not None:
        metadata["choices"] = tuple(choices)
    if check is not None:
        metadata["check"] = check
    return dataclasses.field(default=default, metadata=metadata)


# One field maker per section: `_data(default, help, ...)` is `_field("data", default, help, ...)`.
_data, _model, _optimisation, _runtime, _output, _evaluation = (functools.partial(_field, s) for s in SECTIONS)
_AT_LEAST_0 = (lambda v: v >= 0, "an int >= 0")
_AT_LEAST_1 = (lambda v: v >= 1, "an int >= 1")
_SECONDS = (lambda v: v > 0, "a number of seconds > 0")
_POSITIVE = (lambda v: v > 0, "a number > 0")
_UNIT_INTERVAL = (lambda v: 0.0 <= v < 1.0, "a number in [0, 1)")
_FILE_PATH = (lambda v: v != "", "a file path")


@dataclasses.dataclass
class TrainConfig:
    """Every setting of a training run; `keras_sagan.training.train(config)` runs it.

    The settings come in sections (`SECTIONS`; `sections()` groups the values). Every field is
    checked when the config is built: a bad value raises a one-line `UsageError` (a
    `ValueError`). The fields, their defaults and their help are also the flags of
    `keras-sagan train` and `examples/train_celeba.py` (`--helpfull` lists them).

    Example:

    >>> config = TrainConfig(dataset="demo", steps=100, conv_dim=16, model_dir="runs/try")
    >>> config.sections()["optimisation"]["g_lr"]
    0.0001
    """

    # -- data
    dataset: str = _data(
        "demo",
        "Training images: 'demo' (100 LFW faces bundled with scikit-image, offline), 'celeba' (TFDS celeb_a, "
        "see data_dir and download) or 'folder' (image_folder).",
        choices=DATASETS,
    )
    data_dir: str | None = _data(
        None, "TFDS data directory holding celeb_a (dataset='celeba'); unset: TFDS's ~/tensorflow_datasets."
    )
    image_folder: str | None = _data(
        None, "Folder of .jpg/.jpeg/.png images for dataset='folder' (searched recursively)."
    )
    download: bool = _data(
        False, "Let TFDS download CelebA (~1.4 GB) when data_dir lacks it; off: missing data is an error."
    )
    # -- model
    preset: str = _model("celeba64", "Model preset (see keras_sagan.list_presets()).", choices=PRESETS)
    image_size: int | None = _model(
        None, "Image side; unset: the preset's, or 32 for dataset='demo'.", choices=IMAGE_SIZES
    )
    conv_dim: int | None = _model(None, "Base channel count; unset: the preset's (64 for celeba64).", check=_AT_LEAST_1)
    z_dim: int | None = _model(None, "Noise dimension; unset: the preset's (128).", check=_AT_LEAST_1)
    attention_variant: str | None = _model(None, "Self-attention block; unset: the preset's.", choices=VARIANTS)
    channels: int | None = _model(
        None,
        "Image channels, 1 (grey) or 3 (RGB); unset: the dataset's (1 for fashion_mnist and mnist, else 3).",
        choices=CHANNELS,
    )
    # -- optimisation
    batch_size: int = _optimisation(
        20, "Global batch size, summed over replicas (must divide across them).", check=_AT_LEAST_1
    )
    steps: int = _optimisation(
        800,
        "Total train steps (generator updates), counting steps restored from a checkpoint. Under mixed_float16 "
        "the updates that loss scaling skips are not counted.",
        check=_AT_LEAST_1,
    )
    g_lr: float = _optimisation(TTUR["g_lr"], "Generator Adam learning rate (the paper's TTUR).", check=_POSITIVE)
    d_lr: float = _optimisation(TTUR["d_lr"], "Discriminator Adam learning rate (the paper's TTUR).", check=_POSITIVE)
    beta1: float = _optimisation(TTUR["beta1"], "Adam beta_1 of both optimizers.", check=_UNIT_INTERVAL)
    beta2: float = _optimisation(
        TTUR["beta2"],
        "Adam beta_2 of both optimizers (the paper's 0.9; Google's code used 0.999).",
        check=_UNIT_INTERVAL,
    )
    d_steps: int = _optimisation(1, "Discriminator updates per generator update.", check=_AT_LEAST_1)
    loss: str = _optimisation("hinge", "Adversarial loss.", choices=LOSSES)
    ema_decay: float | None = _optimisation(
        None,
        "Decay of an EMA of the generator's weights, sampled and exported; unset or 0: off.",
        check=_UNIT_INTERVAL,
    )
    ema_statistics: str = _optimisation(
        "standing",
        "BatchNorm statistics the EMA generator samples with: re-estimated on its own weights (standing) or the live "
        "generator's, copied each step (moving). BUILD.md 'Sampling defaults'.",
        choices=EMA_STATISTICS,
    )
    divergence_rollbacks: int = _optimisation(
        0,
        "When a loss turns NaN or infinite: 0 stops the run (exit status 3); N > 0 rolls back to the last good "
        f"checkpoint with both learning rates x{ROLLBACK_LR_FACTOR:g}, at most N times, then stops.",
        check=_AT_LEAST_0,
    )
    # -- runtime and distribution
    seed: int = _runtime(0, "Seeds weights, noise, data order and the fixed sample noise.", check=_AT_LEAST_0)
    deterministic: bool = _runtime(False, "Enable TF op determinism: same seed, same weights (slower).")
    mixed_precision: str = _runtime(
        "float32",
        "Keras dtype policy during the run. mixed_float16 adds loss scaling; bfloat16 is faster on recent CPUs.",
        choices=MIXED_PRECISION_POLICIES,
    )
    jit_compile: bool | str = _runtime(
        "auto", "XLA-compile the train step; auto: on with a GPU.", choices=JIT_COMPILE_CHOICES
    )
    strategy: str = _runtime(
        "default",
        "tf.distribute strategy. mirrored: all GPUs, else all logical CPUs; multiworker: "
        "MultiWorkerMirroredStrategy over the cluster in the TF_CONFIG environment variable (run the same "
        "command on every worker; model_dir on a filesystem all of them share); tpu: TPUStrategy on the TPU "
        "of a Cloud TPU VM; multihost (JAX): keras.distribution.DataParallel over the devices of every process of "
        "a multi-process JAX run (see coordinator_address). See BUILD.md, 'Distributed training'.",
        choices=STRATEGIES,
    )
    cpu_replicas: int | None = _runtime(
        None,
        "Split the CPU into this many logical devices before TF starts (for strategy='mirrored' without GPUs, "
        "and for tests). Not above 1 with multiworker or tpu.",
        check=_AT_LEAST_1,
    )
    collective_timeout: float | None = _runtime(
        None,
        "strategy='multiworker' only: seconds a collective op may wait for the other workers before the run "
        "fails (catches a hung worker); unset: no limit (a dead or stopped worker is still caught within "
        "seconds by TF's heartbeats). Set it above the chief's longest pause (samples, evaluation).",
        check=_SECONDS,
    )
    coordinator_address: str | None = _runtime(
        None,
        "strategy='multihost' only: host:port of process 0, the coordinator (the same on every process); unset: the "
        "first address of KERAS_DISTRIBUTION_JOB_ADDRESSES.",
    )
    num_processes: int | None = _runtime(
        None,
        "strategy='multihost' only: the number of processes of the run; unset: KERAS_DISTRIBUTION_NUM_PROCESSES.",
        check=_AT_LEAST_1,
    )
    process_id: int | None = _runtime(
        None,
        "strategy='multihost' only: this process's index, 0 to num_processes - 1 (0 is the chief, which writes the "
        "run's files); unset: KERAS_DISTRIBUTION_PROCESS_ID.",
        check=_AT_LEAST_0,
    )
    coordinator_timeout: float = _runtime(
        60.0,
        "strategy='multihost' only: seconds a process waits for all the others to join before it fails with one "
        "line (a missing or unreachable coordinator).",
        check=_SECONDS,
    )
    # -- output
    model_dir: str | None = _output(
        None,
        "Run directory (config.json, checkpoints/, logs/, samples/, export/); unset: runs/<preset>_<dataset>. "
        "Rerunning with the same one resumes from its latest checkpoint.",
    )
    log_every: int = _output(50, "Steps between progress lines and TensorBoard scalars.", check=_AT_LEAST_1)
    sample_every: int = _output(
        200, "Steps between sample grids (samples/step_XXXXXX.png and TensorBoard images).", check=_AT_LEAST_1
    )
    checkpoint_every: int = _output(
        200, "Steps between checkpoints (one is also saved at the end and on Ctrl-C).", check=_AT_LEAST_1
    )
    keep_checkpoints: int = _output(3, "Number of recent checkpoints kept.", check=_AT_LEAST_1)
    export_dir: str | None = _output(
        None, "TF Serving base path of the exported generator; unset: <model_dir>/export; '': no export."
    )
    num_samples: int = _output(64, "Images per sample grid.", check=_AT_LEAST_1)
    progress_bar: bool = _output(False, "Show Keras' progress bar instead of a line every log_every steps.")
    # -- evaluation
    eval_every: int = _evaluation(
        0,
        "Steps between FID/KID/IS evaluations of the sampling generator, logged as eval/* to "
        "<model_dir>/logs/eval; 0: off. Needs the Inception weights (see inception, inception_weights).",
        check=(lambda v: v >= 0, "an int >= 0 (0 = no evaluation)"),
    )
    eval_num_samples: int = _evaluation(
        5000,
        "Images generated per evaluation, and real images for the real statistics (~0.1 s per image on 2 CPU cores).",
        check=(lambda v: v >= 2, "an int >= 2"),
    )
    eval_stats: str | None = _evaluation(
        None,
        "A .npz of real statistics (keras-sagan evaluate --stats_out); unset: computed from the training data at "
        "the start and cached in <model_dir>/real_stats.npz.",
        check=_FILE_PATH,
    )
    # The choices are keras_sagan.metrics.networks.CHOICES, spelled here so that flags load without TensorFlow.
    inception: str = _evaluation(
        "fid",
        "Network of the evaluation features: 'fid', the 2015 Inception graph of published FIDs (pytorch-fid's "
        "weights); 'fashion_mnist', the shipped Fashion-MNIST classifier (for grey 28x28 data; not comparable with "
        "Inception numbers).",
        choices=("fid", "fashion_mnist"),
    )
    inception_weights: str | None = _evaluation(
        None,
        "Weights of --inception: a .pth file (fid) or a .weights.h5 file (fashion_mnist); unset: for fid the Keras "
        "cache (~/.keras/models; pytorch-fid's file is downloaded when missing), for fashion_mnist the shipped file. "
        "'random': a random network, for smoke tests only.",
        check=_FILE_PATH,
    )

    def __post_init__(self) -> None:
        for info in fields_info():
            setattr(self, info.name, _checked(info, getattr(self, info.name)))
        self._check_data()
        self._check_optimisation()
        self._check_runtime()

    # -- the checks across fields, by section -------------------------------------------------

    def _check_data(self) -> None:
        check_data_arguments(self.dataset, self.data_dir, self.image_folder, self.download, names={"name": "dataset"})
        check_channels(self.dataset, self.channels)

    def _check_optimisation(self) -> None:
        if self.ema_decay == 0:
            self.ema_decay = None  # 0 is "off", as on the command line.

    def _check_runtime(self) -> None:
        if self.cpu_replicas is not None and self.cpu_replicas > 1 and self.strategy in ("multiworker", "tpu"):
            expected = (
                f"None or 1 with strategy={self.strategy!r} (one CPU device per worker: start more workers instead)"
            )
            raise UsageError(bad_value("cpu_replicas", self.cpu_replicas, expected))
        if self.strategy != "multihost":
            for name in MULTIHOST_FIELDS:
                if getattr(self, name) is not None:
                    raise UsageError(bad_value(name, getattr(self, name), "unset unless strategy='multihost'"))
        elif None not in (self.num_processes, self.process_id) and self.process_id >= self.num_processes:
            expected = f"an int from 0 to num_processes - 1 = {self.num_processes - 1}"
            raise UsageError(bad_value("process_id", self.process_id, expected))

    # -- views and serialisation -----------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The fields as a flat JSON-able dict (the `"train"` section of a run's `config.json`)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """The config of `to_dict()`'s output; fields it lacks keep their defaults.

        Raises:
            UsageError: one line naming an unknown key, or the first bad value.
        """
        if not isinstance(values, dict):
            raise UsageError(bad_value("values", type(values).__name__, "a dict of TrainConfig fields"))
        names = {info.name for info in fields_info()}
        for key, value in values.items():
            if key not in names:
                raise UsageError(f"`{key}` is not a TrainConfig field; received: {key}={value!r}")
        return cls(**values)

    def sections(self) -> dict[str, dict[str, Any]]:
        """`{section: {field: value}}` in `SECTIONS` order."""
        grouped = {section: {} for section in SECTIONS}
        for info in fields_info():
            grouped[info.section][info.name] = getattr(self, info.name)
        return grouped

    # -- what the run derives from the fields ----------------------------------------------------

    @property
    def resolved_model_dir(self) -> str:
        return self.model_dir or os.path.join("runs", f"{self.preset}_{self.dataset}")

    @property
    def run_directory(self) -> RunDirectory:
        """The run directory `resolved_model_dir` (its layout: `keras_sagan.run_directory`)."""
        return RunDirectory(self.resolved_model_dir)

    @property
    def resolved_export_dir(self) -> str | None:
        if self.export_dir == "":
            return None
        return self.export_dir or self.run_directory.export_dir

    def model_overrides(self) -> dict[str, Any]:
        """The constructor arguments that replace the preset's."""
        overrides = {
            info.name: getattr(self, info.name)
            for info in fields_info()
            if info.section == "model" and info.name != "preset" and getattr(self, info.name) is not None
        }
        if self.image_size is None and self.dataset == "demo":
            overrides["image_size"] = DEMO_IMAGE_SIZE
        overrides["channels"] = self.resolved_channels
        return overrides

    @property
    def resolved_channels(self) -> int:
        return check_channels(self.dataset, self.channels)

    @property
    def resolved_image_size(self) -> int:
        return self.model_overrides().get("image_size", preset_config(self.preset, "generator")["image_size"])


class FieldInfo(NamedTuple):
    """What the flags and the checks need to know about one `TrainConfig` field.

    `types` are the field's types without `None` (`(bool, str)` for `jit_compile`), `optional`
    whether `None` is allowed, `choices` the allowed values or `None`.
    """

    name: str
    section: str
    default: Any
    help: str
    types: tuple[type, ...]
    optional: bool
    choices: tuple[Any, ...] | None
    check: tuple[Any, str] | None


@functools.cache
def fields_info() -> tuple[FieldInfo, ...]:
    """One `FieldInfo` per `TrainConfig` field, in declaration order (sections in order)."""
    hints = typing.get_type_hints(TrainConfig)  # The annotations are strings (`from __future__`).
    infos = []
    for field in dataclasses.fields(TrainConfig):
        hint = hints[field.name]
        args = typing.get_args(hint) if isinstance(hint, UnionType) else (hint,)
        infos.append(
            FieldInfo(
                name=field.name,
                section=field.metadata["section"],
                default=field.default,
                help=field.metadata["help"],
                types=tuple(arg for arg in args if arg is not NoneType),
                optional=NoneType in args,
                choices=field.metadata.get("choices"),
                check=field.metadata.get("check"),
            )
        )
    return tuple(infos)


_TYPE_TEXT = {bool: "True or False", int: "an int", float: "a number", str: "a string"}


def _expected(info: FieldInfo) -> str:
    if info.choices is not None:
        text = f"one of {info.choices}"
    elif info.check is not None:
        text = info.check[1]
    else:
        text = " or ".join(_TYPE_TEXT[t] for t in info.types)
    return f"None or {text}" if info.optional else text


def _checked(info: FieldInfo, value: Any) -> Any:
    """`value` normalised (paths to `str`, ints to `float` for float fields); a `UsageError` when it is bad."""
    if value is None and info.optional:
        return value
    kind = next((t for t in info.types if _is_a(value, t)), None)
    normalised = value
    if kind is str:
        normalised = os.fspath(value)
    elif kind is float:
        normalised = float(value)
    ok = kind is not None
    if ok and info.choices is not None:
        ok = any(type(normalised) is type(choice) and normalised == choice for choice in info.choices)
    if ok and info.check is not None:
        ok = info.check[0](normalised)
    if not ok:
        raise UsageError(bad_value(info.name, value, _expected(info)))  # The value as given.
    return normalised


def _is_a(value: Any, kind: type) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, (str, os.PathLike))


def _document_fields(cls: type) -> None:
    """Appends the fields, by section, to the class docstring: `help(TrainConfig)` shows them all."""
    lines = [cls.__doc__.rstrip(), "", "    Args:"]
    for section in SECTIONS:
        lines.append(f"        ({section})")
        for info in fields_info():
            if info.section == section:
                text = f"{info.name}: {info.help} Defaults to `{info.default!r}`."
                lines.extend(textwrap.wrap(text, 96, initial_indent=" " * 8, subsequent_indent=" " * 12))
    cls.__doc__ = "\n".join(lines) + "\n"


_document_fields(TrainConfig)
