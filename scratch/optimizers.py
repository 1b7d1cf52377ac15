"""Adam and SGD, updating NumPy parameter arrays in place exactly as Keras does.

Keras twins: ``keras.optimizers.Adam`` and ``keras.optimizers.SGD`` (Keras
3.15, ``keras/src/optimizers/adam.py``, ``sgd.py`` and ``base_optimizer.py``).
The update formulas, their order of operations, the slot names and the
iteration counter are Keras's, so float64 runs agree with Keras to rounding
error.

Parameters and slots are keyed by name. ``apply_gradients(params, grads)``
takes two dictionaries with the same keys, for example
``{"d_conv1/kernel": array, ...}``, and subtracts each update from its
parameter array in place. A layer that keeps a reference to the array reads
the new values. Each optimiser keeps one slot array per parameter and slot
name (``momentum``, ``velocity``), created as zeros on the first call, and
counts its steps in ``iterations``.

Dtypes: every update is computed in the parameter's dtype, so float32
parameters and slots stay float32, as Keras casts everything to the
variable's dtype. Some constants pass through float32 first in Keras, even
for float64 variables, and this module rounds them the same way
(``cast_like_keras``): the learning rate, which Keras stores in a variable
of dtype ``keras.backend.floatx()`` (float32), and every Python float that
goes through ``keras.ops.cast`` (Adam's ``beta_1`` and ``beta_2`` in the
bias correction, SGD's ``momentum``), because ``ops.cast`` first converts a
Python float to a floatx tensor. So 0.9 becomes 0.8999999761581421. A Python
float used directly in arithmetic with a tensor (``1 - beta_1``,
``epsilon``) keeps the variable's dtype and is not rounded.

NOTE: Keras's weight decay, gradient clipping (``clipnorm``, ``clipvalue``,
``global_clipnorm``), EMA, loss scaling, gradient accumulation and
learning-rate schedules are not implemented.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import numpy as np

from scratch.layers.base import FLOAT_DTYPES

logger = logging.getLogger(__name__)

# keras.backend.floatx(), the dtype Keras gives the learning rate and Python floats.
FLOATX = np.float32

ITERATIONS_KEY = "iterations"


class Optimizer:
    """The bookkeeping shared by Adam and SGD: checks, slots, step counter, state.

    A subclass sets ``slot_names`` and writes ``update_step``, which updates
    one parameter and its slots in place.

    Args:
        learning_rate: the step size, a number >= 0.
        name: the optimiser's name, used in error messages.
    """

    slot_names: tuple[str, ...] = ()

    def __init__(self, learning_rate: float, name: str) -> None:
        _check_hyperparameter(
            name, "learning_rate", learning_rate, lambda lr: lr >= 0, "a number >= 0"
        )
        self.name = name
        self.learning_rate = float(learning_rate)
        self.iterations = 0
        self.built = False
        self.param_names: tuple[str, ...] | None = None
        self.slots: dict[str, dict[str, np.ndarray]] = {slot: {} for slot in self.slot_names}

    # ------------------------------------------------------------------ #
    # Slots
    # ------------------------------------------------------------------ #
    def build(self, params: dict[str, np.ndarray]) -> None:
        """Create a zero slot array of each parameter's shape and dtype, per slot name."""
        for param_name, param in params.items():
            self._check_param(param_name, param)
        for slot in self.slot_names:
            self.slots[slot] = {
                param_name: np.zeros_like(param) for param_name, param in params.items()
            }
        self.param_names = tuple(params)
        self.built = True

    def get_slot(self, param_name: str, slot: str) -> np.ndarray:
        """Return the slot array (not a copy) of ``slot`` for ``param_name``.

        Keras names the same variable ``f"{variable.path}_{slot}"`` with ``/``
        replaced by ``_``, for example ``dense_kernel_momentum``.
        """
        if slot not in self.slot_names:
            raise KeyError(
                f"{type(self).__name__} '{self.name}': no slot named {slot!r}; "
                f"its slots are {list(self.slot_names)}."
            )
        if param_name not in self.slots[slot]:
            raise KeyError(
                f"{type(self).__name__} '{self.name}': no {slot} slot for parameter "
                f"{param_name!r}; the optimiser holds slots for {sorted(self.slots[slot])}."
            )
        return self.slots[slot][param_name]

    # ------------------------------------------------------------------ #
    # One step
    # ------------------------------------------------------------------ #
    def apply_gradients(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        """Update every parameter array in place from its gradient, and count one step.

        The first call builds the slots for the parameters it receives. Every
        later call must pass the same parameter names.

        Raises:
            KeyError: if a gradient is missing or has no parameter, or a
                parameter name differs from the ones the optimiser was built with.
            ValueError: if a gradient's shape differs from its parameter's.
            TypeError: if a parameter is not float32 or float64, or a
                gradient's dtype differs from its parameter's.
        """
        missing = [name for name in params if name not in grads]
        if missing:
            raise KeyError(
                f"{type(self).__name__} '{self.name}': no gradient for parameters {missing}; "
                "pass one gradient per parameter."
            )
        extra = [name for name in grads if name not in params]
        if extra:
            raise KeyError(
                f"{type(self).__name__} '{self.name}': gradients for unknown parameters "
                f"{extra}; the parameters are {list(params)}."
            )
        if not self.built:
            self.build(params)
        self._check_names(params)
        grads = {param_name: np.asarray(grad) for param_name, grad in grads.items()}
        for param_name, param in params.items():
            self._check_param(param_name, param)
            self._check_grad(param_name, param, grads[param_name])

        for param_name, param in params.items():
            self.update_step(param_name, param, grads[param_name])
        self.iterations += 1

    def update_step(self, param_name: str, param: np.ndarray, grad: np.ndarray) -> None:
        """Update one parameter and its slots in place."""
        raise NotImplementedError

    def _learning_rate(self, dtype: np.dtype) -> np.ndarray:
        return cast_like_keras(self.learning_rate, dtype)

    def get_config(self) -> dict:
        """Constructor arguments, with Keras's names."""
        return {"name": self.name, "learning_rate": self.learning_rate}

    # ------------------------------------------------------------------ #
    # Checkpoints
    # ------------------------------------------------------------------ #
    def get_state(self) -> dict[str, np.ndarray]:
        """Return copies of the step counter and every slot array, as one flat dict.

        Keys: ``"iterations"`` (an int64 scalar array) and ``f"{slot}/{param_name}"``,
        so the dict can go straight to ``numpy.savez``.
        """
        state = {ITERATIONS_KEY: np.asarray(self.iterations, dtype=np.int64)}
        for slot in self.slot_names:
            for param_name, value in self.slots[slot].items():
                state[f"{slot}/{param_name}"] = value.copy()
        return state

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore a dict from ``get_state``, copying every array.

        The slots and their parameter names are taken from the state, and
        the optimiser counts as built afterwards. Slot shapes are checked
        against the parameters at the next ``apply_gradients``.

        Raises:
            KeyError: if ``"iterations"`` is missing, a key is not one this
                optimiser uses, or the slots cover different parameters.
            TypeError: if a slot array is not float32 or float64.
        """
        kind = f"{type(self).__name__} '{self.name}'"
        if ITERATIONS_KEY not in state:
            raise KeyError(f"{kind}: the state has no {ITERATIONS_KEY!r} entry.")

        new_slots: dict[str, dict[str, np.ndarray]] = {slot: {} for slot in self.slot_names}
        for key, value in state.items():
            if key == ITERATIONS_KEY:
                continue
            slot, _, param_name = key.partition("/")
            if slot not in self.slot_names or not param_name:
                raise KeyError(
                    f"{kind}: unexpected state entry {key!r}; expected {ITERATIONS_KEY!r} "
                    f"and keys 'slot/parameter' with a slot in {list(self.slot_names)}."
                )
            value = np.array(value, copy=True)
            if value.dtype not in FLOAT_DTYPES:
                raise TypeError(
                    f"{kind}: state entry {key!r} has dtype {value.dtype}; expected "
                    "float32 or float64."
                )
            new_slots[slot][param_name] = value

        param_names: tuple[str, ...] = ()
        if self.slot_names:
            param_names = tuple(new_slots[self.slot_names[0]])
        for slot in self.slot_names:
            if set(new_slots[slot]) != set(param_names):
                raise KeyError(
                    f"{kind}: the {slot} slots cover parameters {sorted(new_slots[slot])} "
                    f"but the {self.slot_names[0]} slots cover {sorted(param_names)}."
                )

        self.slots = new_slots
        self.iterations = int(state[ITERATIONS_KEY])
        # A state without slot arrays (SGD without momentum, or an optimiser saved
        # before its first step) leaves the parameter names to the next step.
        self.param_names = param_names if param_names else None
        self.built = self.param_names is not None
        logger.debug("%s: restored state at iteration %d", kind, self.iterations)

    # ------------------------------------------------------------------ #
    # Checks
    # ------------------------------------------------------------------ #
    def _check_names(self, params: dict[str, np.ndarray]) -> None:
        built_names = self.param_names
        if built_names is None or set(params) == set(built_names):
            return
        missing = sorted(set(built_names) - set(params))
        unknown = sorted(set(params) - set(built_names))
        raise KeyError(
            f"{type(self).__name__} '{self.name}': the parameters differ from the ones the "
            f"optimiser was built with (missing {missing}, unknown {unknown}); use one "
            "optimiser per set of parameters."
        )

    def _check_param(self, param_name: str, param: np.ndarray) -> None:
        kind = f"{type(self).__name__} '{self.name}'"
        if not isinstance(param, np.ndarray):
            raise TypeError(
                f"{kind}: parameter {param_name!r} is a {type(param).__name__}; expected a "
                "NumPy array, which is updated in place."
            )
        if param.dtype not in FLOAT_DTYPES:
            raise TypeError(
                f"{kind}: parameter {param_name!r} has dtype {param.dtype}; expected "
                "float32 or float64."
            )
        if not param.flags.writeable:
            raise ValueError(
                f"{kind}: parameter {param_name!r} is read-only; it must be writable "
                "to be updated in place."
            )
        for slot in self.slot_names:
            slot_value = self.slots[slot].get(param_name)
            if slot_value is not None and slot_value.shape != param.shape:
                raise ValueError(
                    f"{kind}: parameter {param_name!r} has shape {param.shape} but its "
                    f"{slot} slot has shape {slot_value.shape}."
                )
            if slot_value is not None and slot_value.dtype != param.dtype:
                raise TypeError(
                    f"{kind}: parameter {param_name!r} has dtype {param.dtype} but its "
                    f"{slot} slot has dtype {slot_value.dtype}."
                )

    def _check_grad(self, param_name: str, param: np.ndarray, grad: np.ndarray) -> None:
        kind = f"{type(self).__name__} '{self.name}'"
        if grad.shape != param.shape:
            raise ValueError(
                f"{kind}: gradient of {param_name!r} has shape {grad.shape}, but the "
                f"parameter has shape {param.shape}."
            )
        if grad.dtype != param.dtype:
            raise TypeError(
                f"{kind}: gradient of {param_name!r} has dtype {grad.dtype}, but the "
                f"parameter has dtype {param.dtype}; cast one of them."
            )


def cast_like_keras(value: float, dtype: np.dtype) -> np.ndarray:
    """Return what ``keras.ops.cast(value, dtype)`` gives for a Python float.

    Keras first makes a floatx (float32) tensor of ``value``, then casts it,
    so in float64 the result is ``value`` rounded to float32.
    """
    return np.asarray(FLOATX(value), dtype=dtype)


def _check_hyperparameter(
    name: str, argument: str, value: object, is_valid: Callable[[float], bool], expected: str
) -> None:
    """Raise a ValueError unless ``value`` is a real number that passes ``is_valid``."""
    is_number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, bool
    )
    if not (is_number and math.isfinite(value) and is_valid(value)):
        raise ValueError(f"Optimizer '{name}': {argument} must be {expected}, received {value!r}.")


class Adam(Optimizer):
    """Adam, with Keras's update order and bias correction.

    With gradient ``g``, step ``t = iterations + 1`` and learning rate ``lr``::

        alpha = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)
        m    += (g - m) * (1 - beta_1)            # momentum
        v    += (g**2 - v) * (1 - beta_2)         # velocity
        w    -= m * alpha / (sqrt(v) + epsilon)

    This is the algorithm of Kingma and Ba (2015) with both bias corrections folded into
    ``alpha``, so ``epsilon`` is added to ``sqrt(v)`` before the correction
    of ``v`` (the "epsilon hat" of Kingma and Ba), not after it. With
    ``amsgrad=True`` the last line uses ``v_hat = max(v_hat, v)``, the
    running maximum (slot ``velocity_hat``), in place of ``v``.

    Args:
        learning_rate: default 0.001 (DCGAN uses 2e-4).
        beta_1: decay of the first moment, default 0.9 (DCGAN uses 0.5).
        beta_2: decay of the second moment, default 0.999.
        epsilon: added to ``sqrt(v)``, default 1e-7.
        amsgrad: use the AMSGrad variant, default False.
        name: default ``"adam"``.
    """

    def __init__(
        self,
        learning_rate: float = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        amsgrad: bool = False,
        name: str = "adam",
    ) -> None:
        self.slot_names = ("momentum", "velocity")
        if amsgrad:
            self.slot_names += ("velocity_hat",)
        super().__init__(learning_rate, name)
        # beta = 1 would make the bias correction 1 / (1 - beta**t) divide by zero.
        _check_hyperparameter(name, "beta_1", beta_1, lambda b: 0 <= b < 1, "in [0, 1)")
        _check_hyperparameter(name, "beta_2", beta_2, lambda b: 0 <= b < 1, "in [0, 1)")
        _check_hyperparameter(name, "epsilon", epsilon, lambda e: e >= 0, "a number >= 0")
        self.beta_1 = float(beta_1)
        self.beta_2 = float(beta_2)
        self.epsilon = float(epsilon)
        self.amsgrad = bool(amsgrad)

    def update_step(self, param_name: str, param: np.ndarray, grad: np.ndarray) -> None:
        dtype = param.dtype
        m = self.slots["momentum"][param_name]
        v = self.slots["velocity"][param_name]

        # Bias correction for step t, folded into the step size.
        lr = self._learning_rate(dtype)
        t = np.asarray(self.iterations + 1, dtype=dtype)
        beta_1_power = np.power(cast_like_keras(self.beta_1, dtype), t)
        beta_2_power = np.power(cast_like_keras(self.beta_2, dtype), t)
        alpha = lr * np.sqrt(1 - beta_2_power) / (1 - beta_1_power)

        # EXERCISE adam_update: update the m and v slots in place, then param; AMSGrad uses v_hat.
        # BEGIN SOLUTION
        # Moving averages of g and g**2, updated in place.
        m += (grad - m) * dtype.type(1 - self.beta_1)
        v += (np.square(grad) - v) * dtype.type(1 - self.beta_2)

        if self.amsgrad:
            v_hat = self.slots["velocity_hat"][param_name]
            np.maximum(v_hat, v, out=v_hat)
            v = v_hat

        param -= (m * alpha) / (np.sqrt(v) + dtype.type(self.epsilon))
        # END SOLUTION

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
            "epsilon": self.epsilon,
            "amsgrad": self.amsgrad,
        }


class SGD(Optimizer):
    """Stochastic gradient descent, with Keras's optional momentum and Nesterov step.

    Without momentum: ``w -= g * lr``. With momentum (slot ``momentum``)::

        m  = m * momentum - g * lr
        w += m                          (nesterov=False)
        w += m * momentum - g * lr      (nesterov=True)

    Args:
        learning_rate: default 0.01.
        momentum: in ``[0, 1]``, default 0.0 (no slot is kept then).
        nesterov: default False.
        name: default ``"sgd"``, as Keras names it.
    """

    def __init__(
        self,
        learning_rate: float = 0.01,
        momentum: float = 0.0,
        nesterov: bool = False,
        name: str = "sgd",
    ) -> None:
        _check_hyperparameter(name, "momentum", momentum, lambda m: 0 <= m <= 1, "in [0, 1]")
        self.slot_names = ("momentum",) if momentum != 0 else ()
        super().__init__(learning_rate, name)
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)

    def update_step(self, param_name: str, param: np.ndarray, grad: np.ndarray) -> None:
        dtype = param.dtype
        lr = self._learning_rate(dtype)

        if not self.slot_names:
            param -= grad * lr
            return

        m = self.slots["momentum"][param_name]
        momentum = cast_like_keras(self.momentum, dtype)
        m[...] = m * momentum - grad * lr
        if self.nesterov:
            param += m * momentum - grad * lr
        else:
            param += m

    def get_config(self) -> dict:
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}
