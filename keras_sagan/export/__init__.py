"""Everything that leaves or enters keras_sagan as a file a model server, a runtime or a user opens.

- `loading.py`: `load_generator(path)` for a SavedModel (version or TF Serving base path), a run directory, a
  `.keras` file or a preset, behind one `LoadedGenerator` interface; `restore_network` and `load_run_generator`
  (a run's newest readable checkpoint into a network).
- `saved_model.py`: the TF Serving graph (`serving_module`: `serving_default`, `sample`, `attention`), the seeded
  noise of its `sample` signature (`sample_z`, `sample_inputs`), the base-path layout (`list_versions`, the marker)
  and `export_generator`.
- `portable.py`: `inference_model` (spectral norm folded) and the ONNX and LiteRT files Keras' exporters write.
- `preset.py`: `export_preset`, a keras-hub-style preset folder from a run, a `.keras` file or a model.
- `formats.py`: `FORMATS`, `ExportError` and `export_model`, which picks one of the writers above.

Nothing is imported here: `import keras_sagan.export.formats` loads no TensorFlow. The public names are reached
from `keras_sagan` itself (`keras_sagan.export_generator`, `export_onnx`, `export_litert`, `load_generator`).
"""
