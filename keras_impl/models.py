"""Build the Keras generator and discriminator from a preset in ``scratch.architectures``.

Each ``LayerSpec`` becomes ``keras.layers.<kind>(name=spec.name, dtype=dtype,
**spec.args)``, so the Keras models have the same layer names, classes,
arguments and weight order as the scratch models built by
``scratch.models`` from the same preset.
"""

from __future__ import annotations

import keras

from scratch.architectures import DEFAULT_NOISE_DIM, LayerSpec, OptimizerSpec, Preset, get_preset

# Layer kinds whose kernel is drawn at random, with Keras's default initialiser.
_KERNEL_KINDS = ("Dense", "Conv2D", "Conv2DTranspose")


def _seeded_initializer(identifier: object, seed: int) -> keras.initializers.Initializer:
    """Return the initialiser ``identifier`` with ``seed`` set (if it takes a seed)."""
    initializer = keras.initializers.get(identifier)
    config = initializer.get_config()
    if "seed" not in config:
        return initializer
    return type(initializer).from_config({**config, "seed": seed})


def build_layer(spec: LayerSpec, dtype: str, seed: int | None = None) -> keras.layers.Layer:
    """Return the Keras layer for ``spec``.

    With a ``seed``, every random initialiser and Dropout layer gets that
    seed, so two builds with the same seed give the same weights. Without
    one, Keras's global seed (``keras.utils.set_random_seed``) applies.
    """
    args = dict(spec.args)
    if seed is not None:
        if spec.kind in _KERNEL_KINDS:
            args.setdefault("kernel_initializer", "glorot_uniform")
        for key, value in list(args.items()):
            if key.endswith("_initializer"):
                args[key] = _seeded_initializer(value, seed)
        if spec.kind == "Dropout":
            args.setdefault("seed", seed)
    layer_class = getattr(keras.layers, spec.kind)
    return layer_class(name=spec.name, dtype=dtype, **args)


def _build_sequential(
    specs: tuple[LayerSpec, ...],
    input_shape: tuple[int, ...],
    name: str,
    dtype: str,
    seed: int | None,
) -> keras.Sequential:
    layers = [
        build_layer(spec, dtype, None if seed is None else seed + index)
        for index, spec in enumerate(specs)
    ]
    return keras.Sequential([keras.Input(shape=input_shape, dtype=dtype), *layers], name=name)


def build_generator(
    preset: str | Preset = "dcgan",
    noise_dim: int = DEFAULT_NOISE_DIM,
    dtype: str = "float32",
    seed: int | None = None,
) -> keras.Sequential:
    """Build the Keras generator: ``(batch, noise_dim)`` noise to ``(batch, 28, 28, 1)`` images."""
    preset = get_preset(preset)
    if noise_dim < 1:
        raise ValueError(f"noise_dim must be a positive integer, received {noise_dim}.")
    return _build_sequential(preset.generator, (noise_dim,), "generator", dtype, seed)


def build_discriminator(
    preset: str | Preset = "dcgan",
    dtype: str = "float32",
    seed: int | None = None,
) -> keras.Sequential:
    """Build the Keras discriminator: ``(batch, 28, 28, 1)`` images to ``(batch, 1)`` logits."""
    preset = get_preset(preset)
    return _build_sequential(
        preset.discriminator, preset.image_shape, "discriminator", dtype, seed
    )


def build_optimizer(spec: OptimizerSpec, name: str | None = None) -> keras.optimizers.Adam:
    """Return ``keras.optimizers.Adam`` with the settings in ``spec``."""
    return keras.optimizers.Adam(
        learning_rate=spec.learning_rate,
        beta_1=spec.beta_1,
        beta_2=spec.beta_2,
        epsilon=spec.epsilon,
        name=name,
    )


def build_optimizers(
    preset: str | Preset = "dcgan",
) -> tuple[keras.optimizers.Adam, keras.optimizers.Adam]:
    """Return the preset's ``(d_optimizer, g_optimizer)``."""
    preset = get_preset(preset)
    return (
        build_optimizer(preset.d_optimizer, name="d_optimizer"),
        build_optimizer(preset.g_optimizer, name="g_optimizer"),
    )
