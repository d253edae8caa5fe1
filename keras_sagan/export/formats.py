"""The export formats (`FORMATS`), their one-line error (`ExportError`) and `export_model`, which picks the writer.

`keras-sagan export --format` runs `export_model`. The writers live beside this module: `saved_model.py`,
`portable.py` (ONNX, LiteRT) and `preset.py`.
"""

from __future__ import annotations

import os

from keras_sagan.errors import UsageError

FORMATS = ("saved_model", "onnx", "litert", "preset")
"""The export formats (`keras-sagan export --format`)."""


class ExportError(UsageError):
    """An export that cannot go ahead (a clash with existing versions, a bad version, a missing exporter)."""


def export_model(
    generator_or_checkpoint,
    out: str | os.PathLike,
    format: str = "saved_model",
    version=None,
    batch_size=None,
    metadata=None,
) -> str:
    """Exports in one of `FORMATS`: `saved_model.export_generator` (`out` a base path), `portable.export_onnx`,
    `portable.export_litert` or `preset.export_preset` (`out` a folder).

    `version` applies to `saved_model` only, `batch_size` to `litert` only and `metadata` to `preset`
    only; any given with another format is refused.
    """
    if format not in FORMATS:
        raise ExportError(f"`format` must be one of {FORMATS}; received: format={format!r}")
    if metadata is not None and format != "preset":
        raise ExportError(f"`metadata` applies to format 'preset' only; received: metadata with {format}")
    if version is not None and format != "saved_model":
        raise ExportError(
            f"`version` applies to format 'saved_model' only; received: version={version!r} with {format}"
        )
    if batch_size is not None and format != "litert":
        raise ExportError(f"`batch` applies to format 'litert' only; received: batch={batch_size!r} with {format}")
    # The writers import this module (for `ExportError`): imported here, when one is needed.
    if format == "onnx":
        from keras_sagan.export.portable import export_onnx

        return export_onnx(generator_or_checkpoint, out)
    if format == "litert":
        from keras_sagan.export.portable import export_litert

        return export_litert(generator_or_checkpoint, out, batch_size=batch_size)
    if format == "preset":
        from keras_sagan.export.preset import export_preset

        return export_preset(generator_or_checkpoint, out, metadata=metadata)
    from keras_sagan.export.saved_model import export_generator

    return export_generator(generator_or_checkpoint, out, version=version)
