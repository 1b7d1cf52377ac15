"""Build the scratch generator and discriminator from a preset in ``scratch.architectures``.

Each ``LayerSpec`` becomes the scratch layer of the same class name, with
the same name and the same (Keras) constructor arguments, so the models
match those of ``keras_impl.models`` layer for layer and weight for weight.
Only initialisers given as Keras dictionaries are translated, to the
scratch initialiser of the same distribution.
"""

from __future__ import annotations

from scratch import initializers
from scratch.architectures import DEFAULT_NOISE_DIM, LayerSpec, OptimizerSpec, Preset, get_preset
from scratch.layers.activations import LeakyReLU, ReLU
from scratch.layers.base import Layer, standardize_dtype
from scratch.layers.conv2d import Conv2D
from scratch.layers.conv2d_transpose import Conv2DTranspose
from scratch.layers.dense import Dense
from scratch.layers.dropout import Dropout
from scratch.layers.normalization import BatchNormalization
from scratch.layers.reshaping import Flatten, Reshape
from scratch.optimizers import Adam
from scratch.sequential import Sequential

LAYER_CLASSES: dict[str, type[Layer]] = {
    "Dense": Dense,
    "Conv2D": Conv2D,
    "Conv2DTranspose": Conv2DTranspose,
    "BatchNormalization": BatchNormalization,
    "ReLU": ReLU,
    "LeakyReLU": LeakyReLU,
    "Dropout": Dropout,
    "Reshape": Reshape,
    "Flatten": Flatten,
}

# Keras initialiser classes that may appear as {"class_name": ..., "config": ...}.
_INITIALIZER_FACTORIES = {"RandomNormal": initializers.random_normal}


def _translate_initializer(identifier: object, layer_name: str) -> object:
    """Turn a Keras initialiser dictionary into the scratch initialiser; pass names through."""
    if not isinstance(identifier, dict):
        return identifier
    class_name = identifier.get("class_name")
    if class_name not in _INITIALIZER_FACTORIES:
        raise ValueError(
            f"Layer '{layer_name}': initializer class {class_name!r} has no scratch twin; "
            f"expected one of {sorted(_INITIALIZER_FACTORIES)} or an initializer name."
        )
    return _INITIALIZER_FACTORIES[class_name](**identifier.get("config", {}))


def build_layer(spec: LayerSpec, dtype: str) -> Layer:
    """Return the scratch layer for ``spec``, with the layer's dtype set to ``dtype``."""
    args = {
        key: _translate_initializer(value, spec.name) if key.endswith("_initializer") else value
        for key, value in spec.args.items()
    }
    return LAYER_CLASSES[spec.kind](name=spec.name, dtype=dtype, **args)


def _build_sequential(
    specs: tuple[LayerSpec, ...],
    input_shape: tuple[int | None, ...],
    name: str,
    dtype: str,
    seed: int | None,
) -> Sequential:
    standardize_dtype(dtype, name)
    model = Sequential([build_layer(spec, dtype) for spec in specs], name=name, seed=seed)
    model.build(input_shape)
    return model


def build_generator(
    preset: str | Preset = "dcgan",
    noise_dim: int = DEFAULT_NOISE_DIM,
    dtype: str = "float32",
    seed: int | None = None,
) -> Sequential:
    """Build the scratch generator: ``(batch, noise_dim)`` noise to ``(batch, 28, 28, 1)`` images.

    ``seed`` seeds every layer's initialisers (see ``Sequential``); the
    weights differ from Keras's for the same seed, so tests copy them.
    """
    preset = get_preset(preset)
    if noise_dim < 1:
        raise ValueError(f"noise_dim must be a positive integer, received {noise_dim}.")
    return _build_sequential(preset.generator, (None, noise_dim), "generator", dtype, seed)


def build_discriminator(
    preset: str | Preset = "dcgan",
    dtype: str = "float32",
    seed: int | None = None,
) -> Sequential:
    """Build the scratch discriminator: ``(batch, 28, 28, 1)`` images to ``(batch, 1)`` logits."""
    preset = get_preset(preset)
    return _build_sequential(
        preset.discriminator, (None, *preset.image_shape), "discriminator", dtype, seed
    )


def build_optimizer(spec: OptimizerSpec, name: str = "adam") -> Adam:
    """Return the scratch ``Adam`` with the settings in ``spec``."""
    return Adam(
        learning_rate=spec.learning_rate,
        beta_1=spec.beta_1,
        beta_2=spec.beta_2,
        epsilon=spec.epsilon,
        name=name,
    )


def build_optimizers(preset: str | Preset = "dcgan") -> tuple[Adam, Adam]:
    """Return the preset's ``(d_optimizer, g_optimizer)``."""
    preset = get_preset(preset)
    return (
        build_optimizer(preset.d_optimizer, name="d_optimizer"),
        build_optimizer(preset.g_optimizer, name="g_optimizer"),
    )
