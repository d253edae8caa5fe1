"""A run's checkpoints: one file format on every backend, written by the chief, read with a fallback.

The modules, lowest first (each imports only those above it):

- `names`: the names of the pieces of a `SAGAN`'s training state, as they are stored, and their variables;
- `state_file`: the format, one `ckpt-<step>.state.npz` per checkpoint: every variable as a NumPy array
  plus a JSON record of the run's configuration (what the resume rules check);
- `legacy`: reading the `tf.train.Checkpoint` files (`ckpt-<step>.index` + `.data-*`) that runs wrote
  before this format; nothing writes them any more;
- `reading`: listing a run's checkpoints of both formats, opening one (every byte read, so damage is found
  before anything is assigned), restoring it, and the fallback to the newest readable one;
- `manager`: `CheckpointManager`, which saves (the chief writes, atomically), rotates, and clears what
  killed saves left behind.

Why this format (BUILD.md, "Checkpoints"): it needs no Orbax nor TensorFlow to read, one process (the
chief) writes it, which fits TensorFlow's multi-worker runs on a shared disk and multi-host JAX where
variables are replicated, and the same file resumes on TensorFlow, JAX and torch.
"""
