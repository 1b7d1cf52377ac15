"""The DCGAN architectures as plain data, read by both model builders.

One description is built twice: ``scratch.models`` turns each ``LayerSpec``
into a NumPy layer and ``keras_impl.models`` turns the same spec into the
Keras layer of the same class name, with the same name and constructor
arguments. Nothing here imports NumPy layers or Keras, so the two builders
cannot drift apart.

Two presets, both for 28x28x1 images scaled to [-1, 1]:

``"dcgan"`` (default) follows the rules of Radford, Metz and Chintala,
"Unsupervised Representation Learning with Deep Convolutional Generative
Adversarial Networks" (2015):

- strided convolutions instead of pooling (transposed in G, plain in D);
- batch normalization in both networks, except G's output layer and D's
  input layer;
- no fully connected hidden layers: G's only Dense layer projects z to a
  7x7 feature map and D's only Dense layer produces the logit;
- ReLU in G with tanh on the output, LeakyReLU with slope 0.2 in D;
- kernels drawn from N(0, 0.02), Adam with learning rate 2e-4 and
  beta_1 = 0.5.

Filter counts are small (G: 128 -> 64 -> 1, D: 64 -> 128) and kernels are
4x4: a kernel size divisible by the stride makes every output pixel of a
stride-2 transposed convolution receive the same number of kernel taps,
which avoids checkerboard artefacts, and 4x4 costs 36% fewer
multiply-adds than 5x5. Convolutions followed by batch normalization have
no bias, because the normalization's ``beta`` takes its place.

``"tf-tutorial"`` reproduces the MNIST models of the TensorFlow DCGAN
tutorial (tensorflow.org/tutorials/generative/dcgan): a wider generator
(256 -> 128 -> 64 -> 1, kernels 5x5) with LeakyReLU everywhere, a
discriminator with dropout and no batch normalization, Keras's default
initialisers and Adam with learning rate 1e-4 for both networks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

IMAGE_SHAPE = (28, 28, 1)
DEFAULT_NOISE_DIM = 100

# keras.initializers.RandomNormal(mean=0.0, stddev=0.02), in the dictionary
# form that keras.initializers.get() accepts.
DCGAN_NORMAL = {"class_name": "RandomNormal", "config": {"mean": 0.0, "stddev": 0.02}}

# The layer classes a spec may name; both builders support exactly these.
LAYER_KINDS = (
    "Dense",
    "Conv2D",
    "Conv2DTranspose",
    "BatchNormalization",
    "ReLU",
    "LeakyReLU",
    "Dropout",
    "Reshape",
    "Flatten",
)


@dataclass(frozen=True)
class LayerSpec:
    """One layer: its class name, its name and its Keras constructor arguments.

    ``args`` uses Keras's argument names. Initialisers are Keras names
    (``"glorot_uniform"``) or dictionaries ``{"class_name": ..., "config": ...}``.
    """

    kind: str
    name: str
    args: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in LAYER_KINDS:
            raise ValueError(
                f"LayerSpec '{self.name}': unknown layer kind {self.kind!r}; "
                f"expected one of {list(LAYER_KINDS)}."
            )


@dataclass(frozen=True)
class OptimizerSpec:
    """Arguments of ``keras.optimizers.Adam`` (the Keras defaults unless set)."""

    learning_rate: float
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-7


@dataclass(frozen=True)
class Preset:
    """A complete GAN description: both networks and both optimisers."""

    name: str
    description: str
    generator: tuple[LayerSpec, ...]
    discriminator: tuple[LayerSpec, ...]
    g_optimizer: OptimizerSpec
    d_optimizer: OptimizerSpec
    image_shape: tuple[int, int, int] = IMAGE_SHAPE

    def layers(self, network: str) -> tuple[LayerSpec, ...]:
        """Return the specs of ``network`` (``"generator"`` or ``"discriminator"``)."""
        if network == "generator":
            return self.generator
        if network == "discriminator":
            return self.discriminator
        raise ValueError(
            f"Preset '{self.name}': unknown network {network!r}; "
            "expected 'generator' or 'discriminator'."
        )


def _dcgan() -> Preset:
    generator = (
        LayerSpec(
            "Dense",
            "g_project",
            {"units": 7 * 7 * 128, "use_bias": False, "kernel_initializer": DCGAN_NORMAL},
        ),
        LayerSpec("BatchNormalization", "g_bn0"),
        LayerSpec("ReLU", "g_relu0"),
        LayerSpec("Reshape", "g_reshape", {"target_shape": (7, 7, 128)}),
        LayerSpec(
            "Conv2DTranspose",
            "g_up1",
            {
                "filters": 64,
                "kernel_size": 4,
                "strides": 2,
                "padding": "same",
                "use_bias": False,
                "kernel_initializer": DCGAN_NORMAL,
            },
        ),
        LayerSpec("BatchNormalization", "g_bn1"),
        LayerSpec("ReLU", "g_relu1"),
        LayerSpec(
            "Conv2DTranspose",
            "g_output",
            {
                "filters": 1,
                "kernel_size": 4,
                "strides": 2,
                "padding": "same",
                "activation": "tanh",
                "kernel_initializer": DCGAN_NORMAL,
            },
        ),
    )
    discriminator = (
        LayerSpec(
            "Conv2D",
            "d_conv1",
            {
                "filters": 64,
                "kernel_size": 4,
                "strides": 2,
                "padding": "same",
                "kernel_initializer": DCGAN_NORMAL,
            },
        ),
        LayerSpec("LeakyReLU", "d_lrelu1", {"negative_slope": 0.2}),
        LayerSpec(
            "Conv2D",
            "d_conv2",
            {
                "filters": 128,
                "kernel_size": 4,
                "strides": 2,
                "padding": "same",
                "use_bias": False,
                "kernel_initializer": DCGAN_NORMAL,
            },
        ),
        LayerSpec("BatchNormalization", "d_bn2"),
        LayerSpec("LeakyReLU", "d_lrelu2", {"negative_slope": 0.2}),
        LayerSpec("Flatten", "d_flatten"),
        LayerSpec("Dense", "d_logits", {"units": 1, "kernel_initializer": DCGAN_NORMAL}),
    )
    # NOTE: batch normalization keeps Keras's defaults (gamma = 1, beta = 0,
    # momentum 0.99, epsilon 1e-3); only kernels are drawn from N(0, 0.02).
    adam = OptimizerSpec(learning_rate=2e-4, beta_1=0.5)
    return Preset(
        name="dcgan",
        description=(
            "DCGAN rules (Radford et al. 2015) at MNIST size: G = Dense(7*7*128) -> BN -> ReLU "
            "-> ConvT(64, 4, stride 2) -> BN -> ReLU -> ConvT(1, 4, stride 2, tanh); "
            "D = Conv(64, 4, stride 2) -> LeakyReLU(0.2) -> Conv(128, 4, stride 2) -> BN -> "
            "LeakyReLU(0.2) -> Dense(1); kernels N(0, 0.02); Adam(2e-4, beta_1=0.5)."
        ),
        generator=generator,
        discriminator=discriminator,
        g_optimizer=adam,
        d_optimizer=adam,
    )


def _tf_tutorial() -> Preset:
    def up(name: str, filters: int, strides: int, **extra: object) -> LayerSpec:
        args = {
            "filters": filters,
            "kernel_size": 5,
            "strides": strides,
            "padding": "same",
            "use_bias": False,
            **extra,
        }
        return LayerSpec("Conv2DTranspose", name, args)

    def down(name: str, filters: int) -> LayerSpec:
        return LayerSpec(
            "Conv2D", name, {"filters": filters, "kernel_size": 5, "strides": 2, "padding": "same"}
        )

    # LeakyReLU() without arguments: Keras's layer default slope is 0.3.
    generator = (
        LayerSpec("Dense", "g_project", {"units": 7 * 7 * 256, "use_bias": False}),
        LayerSpec("BatchNormalization", "g_bn0"),
        LayerSpec("LeakyReLU", "g_lrelu0"),
        LayerSpec("Reshape", "g_reshape", {"target_shape": (7, 7, 256)}),
        up("g_up1", 128, 1),
        LayerSpec("BatchNormalization", "g_bn1"),
        LayerSpec("LeakyReLU", "g_lrelu1"),
        up("g_up2", 64, 2),
        LayerSpec("BatchNormalization", "g_bn2"),
        LayerSpec("LeakyReLU", "g_lrelu2"),
        up("g_output", 1, 2, activation="tanh"),
    )
    discriminator = (
        down("d_conv1", 64),
        LayerSpec("LeakyReLU", "d_lrelu1"),
        LayerSpec("Dropout", "d_dropout1", {"rate": 0.3}),
        down("d_conv2", 128),
        LayerSpec("LeakyReLU", "d_lrelu2"),
        LayerSpec("Dropout", "d_dropout2", {"rate": 0.3}),
        LayerSpec("Flatten", "d_flatten"),
        LayerSpec("Dense", "d_logits", {"units": 1}),
    )
    adam = OptimizerSpec(learning_rate=1e-4)
    return Preset(
        name="tf-tutorial",
        description=(
            "The TensorFlow DCGAN tutorial's MNIST models: G = Dense(7*7*256) -> BN -> LeakyReLU "
            "-> ConvT(128, 5, stride 1) -> BN -> LeakyReLU -> ConvT(64, 5, stride 2) -> BN -> "
            "LeakyReLU -> ConvT(1, 5, stride 2, tanh); D = Conv(64, 5, stride 2) -> LeakyReLU -> "
            "Dropout(0.3) -> Conv(128, 5, stride 2) -> LeakyReLU -> Dropout(0.3) -> Dense(1); "
            "Keras default initialisers and LeakyReLU slope 0.3; Adam(1e-4) for both."
        ),
        generator=generator,
        discriminator=discriminator,
        g_optimizer=adam,
        d_optimizer=adam,
    )


PRESETS: dict[str, Preset] = {preset.name: preset for preset in (_dcgan(), _tf_tutorial())}


def get_preset(preset: str | Preset) -> Preset:
    """Return the preset called ``preset`` (a Preset passes through unchanged).

    Raises:
        ValueError: if no preset has that name; the message lists the valid names.
    """
    if isinstance(preset, Preset):
        return preset
    if preset not in PRESETS:
        raise ValueError(f"Unknown preset {preset!r}; expected one of {sorted(PRESETS)}.")
    return PRESETS[preset]


def with_dropout_rate(preset: str | Preset, rate: float) -> Preset:
    """Return a copy of ``preset`` whose Dropout layers all have ``rate``.

    Tests use ``rate=0.0`` to compare whole training steps: a Keras Dropout
    layer draws its masks from TensorFlow's stateless generator, which NumPy
    cannot reproduce, and with rate 0 both Dropout layers are the identity.
    """
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"Dropout rate must be in [0, 1), received {rate}.")
    preset = get_preset(preset)

    def replace_rate(specs: tuple[LayerSpec, ...]) -> tuple[LayerSpec, ...]:
        return tuple(
            dataclasses.replace(spec, args={**spec.args, "rate": rate})
            if spec.kind == "Dropout"
            else spec
            for spec in specs
        )

    return dataclasses.replace(
        preset,
        name=f"{preset.name}(dropout={rate})",
        generator=replace_rate(preset.generator),
        discriminator=replace_rate(preset.discriminator),
    )
