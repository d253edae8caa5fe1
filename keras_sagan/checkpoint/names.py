"""The pieces of a `SAGAN`'s training state, by the names a checkpoint stores them under.

Changing a name breaks every old run's resume.
"""

from __future__ import annotations

from typing import Any

import numpy as np

CHECKPOINT_STEP = "step"
CHECKPOINT_GENERATOR = "generator"
CHECKPOINT_DISCRIMINATOR = "discriminator"
CHECKPOINT_EMA_GENERATOR = "ema_generator"
CHECKPOINT_G_OPTIMIZER = "g_optimizer"
CHECKPOINT_D_OPTIMIZER = "d_optimizer"
CHECKPOINT_SEED_STATE = "seed_state"
NETWORKS = (CHECKPOINT_GENERATOR, CHECKPOINT_DISCRIMINATOR, CHECKPOINT_EMA_GENERATOR)


def checkpoint_objects(gan) -> dict[str, Any]:
    """`{name: object}` of every piece of a `SAGAN`'s training state, keyed as on disk.

    `step` is `g_optimizer.iterations` itself (saved once, reachable by two names). The
    `SeedGenerator` is not trackable, so its state variable is saved instead.
    """
    objects = {
        CHECKPOINT_STEP: gan.g_optimizer.iterations,
        CHECKPOINT_GENERATOR: gan.generator,
        CHECKPOINT_DISCRIMINATOR: gan.discriminator,
        CHECKPOINT_G_OPTIMIZER: gan.g_optimizer,
        CHECKPOINT_D_OPTIMIZER: gan.d_optimizer,
        CHECKPOINT_SEED_STATE: gan.seed_generator.state,
    }
    if gan.ema_generator is not None:
        objects[CHECKPOINT_EMA_GENERATOR] = gan.ema_generator
    return objects


def object_variables(name: str, obj) -> list:
    """The variables stored for the object `name`, in their stored order.

    Networks give `weights` (their order is fixed by construction, the same on every backend),
    optimizers `variables`; `step` and `seed_state` are one variable each.
    """
    if name in (CHECKPOINT_STEP, CHECKPOINT_SEED_STATE):
        return [obj]
    if name in (CHECKPOINT_G_OPTIMIZER, CHECKPOINT_D_OPTIMIZER):
        return list(obj.variables)
    return list(obj.weights)


def state_variables(gan) -> dict[str, list]:
    """`{name: [variables]}` of every piece of a `SAGAN`'s state, keyed as `checkpoint_objects`."""
    return {name: object_variables(name, obj) for name, obj in checkpoint_objects(gan).items()}


def nonfinite_variables(variables) -> list[str]:
    """The paths (names) of the floating-point variables holding a NaN or an infinity: never saved, never loaded."""
    bad = []
    for variable in variables:
        if "float" not in str(getattr(variable, "dtype", "")):
            continue
        if not np.all(np.isfinite(np.asarray(variable.numpy(), dtype=np.float64))):
            bad.append(getattr(variable, "path", None) or getattr(variable, "name", "?"))
    return bad
