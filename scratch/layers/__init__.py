"""Every layer the DCGAN needs, written from scratch in NumPy.

Each class mirrors the Keras layer of the same name (``Tanh`` and
``Sigmoid`` mirror ``keras.layers.Activation("tanh")`` and
``Activation("sigmoid")``).
"""

from scratch.layers.activations import LeakyReLU, Linear, ReLU, Sigmoid, Tanh
from scratch.layers.base import Layer
from scratch.layers.conv2d import Conv2D
from scratch.layers.conv2d_transpose import Conv2DTranspose
from scratch.layers.dense import Dense
from scratch.layers.dropout import Dropout
from scratch.layers.normalization import BatchNormalization
from scratch.layers.reshaping import Flatten, Reshape

__all__ = [
    "BatchNormalization",
    "Conv2D",
    "Conv2DTranspose",
    "Dense",
    "Dropout",
    "Flatten",
    "Layer",
    "LeakyReLU",
    "Linear",
    "ReLU",
    "Reshape",
    "Sigmoid",
    "Tanh",
]
