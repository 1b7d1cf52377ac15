"""Adam and SGD: scratch against Keras's optimisers, step by step, plus state and input checks."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from helpers import assert_close, assert_same_dtype

from scratch.optimizers import SGD, Adam, cast_like_keras

pytestmark = pytest.mark.equivalence

# Relative tolerances for a whole run of steps (looser than one layer pass,
# because rounding errors accumulate over the steps).
STEP_FACTOR = {"float64": 1e-12, "float32": 1e-6}

PARAM_SHAPES = {"kernel": (3, 3, 2, 4), "bias": (4,), "gamma": (5,)}

# The bias gradients are tiny, so Adam's sqrt(v) is comparable to epsilon.
GRADIENT_SCALES = {"kernel": 1.0, "bias": 1e-8, "gamma": 30.0}

STEPS = 6


def make_params(dtype: str, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: rng.normal(size=shape).astype(dtype) for name, shape in PARAM_SHAPES.items()}


def make_gradients(dtype: str, steps: int, seed: int = 1) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [
        {
            name: (GRADIENT_SCALES[name] * rng.normal(size=shape)).astype(dtype)
            for name, shape in PARAM_SHAPES.items()
        }
        for _ in range(steps)
    ]


def keras_slot(optimizer: keras.optimizers.Optimizer, param_name: str, slot: str) -> np.ndarray:
    """Return Keras's slot variable ``f"{param_name}_{slot}"`` as an array."""
    expected_name = f"{param_name}_{slot}"
    for variable in optimizer.variables:
        if variable.name == expected_name:
            return np.asarray(variable.numpy())
    names = [variable.name for variable in optimizer.variables]
    raise AssertionError(f"Keras optimizer has no variable {expected_name!r}; it has {names}")


def run_both(
    scratch_optimizer: Adam | SGD,
    keras_optimizer: keras.optimizers.Optimizer,
    dtype: str,
) -> None:
    """Apply the same gradients with both optimisers and compare everything after each step."""
    params = make_params(dtype)
    variables = {
        name: keras.Variable(value.copy(), dtype=dtype, name=name) for name, value in params.items()
    }
    factor = STEP_FACTOR[dtype]

    for step, grads in enumerate(make_gradients(dtype, STEPS), start=1):
        scratch_optimizer.apply_gradients(params, grads)
        keras_optimizer.apply_gradients([(grads[name], variables[name]) for name in params])

        assert scratch_optimizer.iterations == step
        assert int(keras_optimizer.iterations.numpy()) == step
        for name, value in params.items():
            assert_close(f"step {step} {name}", value, variables[name].numpy(), factor)
            assert_same_dtype(f"step {step} {name}", value, dtype)
            for slot in scratch_optimizer.slot_names:
                scratch_slot = scratch_optimizer.get_slot(name, slot)
                assert_close(
                    f"step {step} {name} {slot}",
                    scratch_slot,
                    keras_slot(keras_optimizer, name, slot),
                    factor,
                )
                assert_same_dtype(f"step {step} {name} {slot}", scratch_slot, dtype)


# ---------------------------------------------------------------------- #
# Against Keras
# ---------------------------------------------------------------------- #
ADAM_SETTINGS = [
    {},
    {"learning_rate": 2e-4, "beta_1": 0.5},
    {"learning_rate": 0.01, "beta_2": 0.99, "epsilon": 1e-4},
    {"learning_rate": 0.003, "amsgrad": True},
]


@pytest.mark.parametrize(
    "settings", ADAM_SETTINGS, ids=lambda settings: str(settings) or "defaults"
)
def test_adam_matches_keras(dtype: str, settings: dict) -> None:
    run_both(Adam(**settings), keras.optimizers.Adam(**settings), dtype)


SGD_SETTINGS = [
    {},
    {"learning_rate": 0.05, "momentum": 0.9},
    {"learning_rate": 0.05, "momentum": 0.9, "nesterov": True},
]


@pytest.mark.parametrize("settings", SGD_SETTINGS, ids=lambda settings: str(settings) or "defaults")
def test_sgd_matches_keras(dtype: str, settings: dict) -> None:
    run_both(SGD(**settings), keras.optimizers.SGD(**settings), dtype)


def test_adam_slot_names_match_keras() -> None:
    for amsgrad in (False, True):
        params = make_params("float64")
        variable = keras.Variable(params["bias"].copy(), name="bias")
        keras_optimizer = keras.optimizers.Adam(amsgrad=amsgrad)
        keras_optimizer.build([variable])
        keras_slots = [v.name.removeprefix("bias_") for v in keras_optimizer.variables[2:]]

        assert list(Adam(amsgrad=amsgrad).slot_names) == keras_slots


@pytest.mark.parametrize(
    ("name", "settings"),
    [
        ("Adam", {"learning_rate": 2e-4, "beta_1": 0.5, "amsgrad": True}),
        ("SGD", {"momentum": 0.9, "nesterov": True}),
    ],
)
def test_config_matches_keras(name: str, settings: dict) -> None:
    scratch_class = {"Adam": Adam, "SGD": SGD}[name]
    keras_config = getattr(keras.optimizers, name)(**settings).get_config()
    scratch_config = scratch_class(**settings).get_config()

    # Keras adds a counter to default names ("adam_1", ...) and the scratch
    # optimisers do not, because they use the name only in messages.
    assert keras_config["name"].startswith(scratch_config.pop("name"))
    for key, value in scratch_config.items():
        assert key in keras_config, f"Keras's config has no {key!r}"
        if key == "learning_rate":
            # Keras reports the float32 value of its learning-rate variable.
            assert keras_config[key] == float(np.float32(value))
        else:
            assert keras_config[key] == value, key


def test_adam_first_step_formula() -> None:
    """After one step, m = (1 - beta_1) g, v = (1 - beta_2) g**2 and w moves by about lr."""
    param = np.array([1.0, -2.0, 0.5])
    grad = np.array([0.3, -4.0, 1e-3])
    optimizer = Adam(learning_rate=0.01)

    optimizer.apply_gradients({"w": param}, {"w": grad.copy()})

    lr = float(cast_like_keras(0.01, np.float64))
    beta_1 = float(cast_like_keras(0.9, np.float64))
    beta_2 = float(cast_like_keras(0.999, np.float64))
    m = (1 - 0.9) * grad
    v = (1 - 0.999) * grad**2
    alpha = lr * np.sqrt(1 - beta_2) / (1 - beta_1)
    expected = np.array([1.0, -2.0, 0.5]) - m * alpha / (np.sqrt(v) + 1e-7)
    assert_close("momentum", optimizer.get_slot("w", "momentum"), m)
    assert_close("velocity", optimizer.get_slot("w", "velocity"), v)
    assert_close("param", param, expected)


def test_keras_rounds_constants_through_float32() -> None:
    """Keras casts lr, beta_1 and momentum via float32 even for float64 variables."""
    assert float(cast_like_keras(0.9, np.float64)) == float(np.float32(0.9))
    assert float(cast_like_keras(0.9, np.float64)) != 0.9

    variable = keras.Variable(np.zeros(2), dtype="float64", name="w")
    keras.optimizers.SGD(learning_rate=0.01).apply_gradients([(np.ones(2), variable)])

    assert variable.numpy()[0] == -float(np.float32(0.01))


# ---------------------------------------------------------------------- #
# In-place updates, dtypes and state
# ---------------------------------------------------------------------- #
@pytest.mark.parametrize("optimizer_class", [Adam, SGD])
def test_updates_arrays_in_place(dtype: str, optimizer_class: type) -> None:
    params = make_params(dtype)
    kernel = params["kernel"]
    first_row = kernel[0]  # a view, as a layer might hold
    before = kernel.copy()

    optimizer_class().apply_gradients(params, make_gradients(dtype, 1)[0])

    assert params["kernel"] is kernel
    assert not np.array_equal(kernel, before), "the kernel did not change"
    assert np.array_equal(first_row, kernel[0]), "a view of the kernel did not see the update"
    assert_same_dtype("kernel", kernel, dtype)


def test_state_round_trip_through_savez(tmp_path: object) -> None:
    """A state saved after 3 steps and loaded into a new Adam continues exactly the same."""
    grads = make_gradients("float32", 5)
    params = make_params("float32")
    optimizer = Adam(learning_rate=2e-4, beta_1=0.5)
    for step_grads in grads[:3]:
        optimizer.apply_gradients(params, step_grads)

    path = tmp_path / "adam.npz"
    np.savez(path, **optimizer.get_state())
    with np.load(path) as stored:
        restored = Adam(learning_rate=2e-4, beta_1=0.5)
        restored.set_state(dict(stored))
    restored_params = {name: value.copy() for name, value in params.items()}
    for step_grads in grads[3:]:
        optimizer.apply_gradients(params, step_grads)
        restored.apply_gradients(restored_params, step_grads)

    assert restored.iterations == optimizer.iterations == 5
    for name in params:
        assert np.array_equal(restored_params[name], params[name]), name
        for slot in optimizer.slot_names:
            assert np.array_equal(restored.get_slot(name, slot), optimizer.get_slot(name, slot))


def test_get_state_returns_copies() -> None:
    params = make_params("float64")
    optimizer = Adam()
    optimizer.apply_gradients(params, make_gradients("float64", 1)[0])

    state = optimizer.get_state()
    state["momentum/kernel"][...] = 123.0

    assert set(state) == {"iterations"} | {
        f"{slot}/{name}" for slot in ("momentum", "velocity") for name in PARAM_SHAPES
    }
    assert not np.any(optimizer.get_slot("kernel", "momentum") == 123.0)


def test_sgd_without_momentum_has_no_slots() -> None:
    params = make_params("float64")
    optimizer = SGD()
    optimizer.apply_gradients(params, make_gradients("float64", 1)[0])

    assert optimizer.slot_names == ()
    assert set(optimizer.get_state()) == {"iterations"}


def test_state_before_first_step_restores() -> None:
    params = make_params("float64")
    grads = make_gradients("float64", 1)[0]
    restored = Adam()
    restored.set_state(Adam().get_state())

    restored.apply_gradients(params, grads)

    assert restored.iterations == 1
    assert restored.param_names == tuple(PARAM_SHAPES)


def test_param_names_with_slashes_survive_state() -> None:
    params = {"d_conv1/kernel": np.ones((2, 2)), "d_conv1/bias": np.ones(2)}
    grads = {name: np.full_like(value, 0.5) for name, value in params.items()}
    optimizer = SGD(momentum=0.5)
    optimizer.apply_gradients(params, grads)

    restored = SGD(momentum=0.5)
    restored.set_state(optimizer.get_state())

    assert restored.param_names == ("d_conv1/kernel", "d_conv1/bias")
    for name in params:
        assert np.array_equal(
            restored.get_slot(name, "momentum"), optimizer.get_slot(name, "momentum")
        ), name


# ---------------------------------------------------------------------- #
# Bad input
# ---------------------------------------------------------------------- #
def test_missing_gradient_names_the_parameter() -> None:
    params = make_params("float64")
    grads = make_gradients("float64", 1)[0]
    del grads["gamma"]

    with pytest.raises(KeyError, match=r"no gradient for parameters \['gamma'\]"):
        Adam().apply_gradients(params, grads)


def test_extra_gradient_names_the_parameter() -> None:
    params = make_params("float64")
    grads = make_gradients("float64", 1)[0]
    grads["beta"] = np.zeros(5)

    with pytest.raises(KeyError, match=r"gradients for unknown parameters \['beta'\]"):
        Adam().apply_gradients(params, grads)


def test_gradient_shape_mismatch_names_the_parameter() -> None:
    params = make_params("float64")
    grads = make_gradients("float64", 1)[0]
    grads["bias"] = np.zeros(5)

    with pytest.raises(ValueError, match=r"gradient of 'bias' has shape \(5,\), but the parameter"):
        SGD().apply_gradients(params, grads)


def test_gradient_dtype_mismatch_is_rejected() -> None:
    params = make_params("float32")
    grads = make_gradients("float64", 1)[0]

    with pytest.raises(
        TypeError, match="gradient of 'kernel' has dtype float64, but the parameter"
    ):
        Adam().apply_gradients(params, grads)


def test_integer_and_read_only_params_are_rejected() -> None:
    with pytest.raises(TypeError, match="parameter 'w' has dtype int64"):
        Adam().apply_gradients({"w": np.zeros(3, dtype=np.int64)}, {"w": np.zeros(3)})

    read_only = np.zeros(3)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="parameter 'w' is read-only"):
        Adam().apply_gradients({"w": read_only}, {"w": np.zeros(3)})


def test_failed_step_changes_nothing() -> None:
    params = make_params("float64")
    before = {name: value.copy() for name, value in params.items()}
    grads = make_gradients("float64", 1)[0]
    grads["gamma"] = np.zeros(7)
    optimizer = Adam()

    with pytest.raises(ValueError, match="'gamma'"):
        optimizer.apply_gradients(params, grads)

    assert optimizer.iterations == 0
    for name, value in params.items():
        assert np.array_equal(value, before[name]), name


def test_other_parameters_after_build_are_rejected() -> None:
    params = make_params("float64")
    optimizer = Adam()
    optimizer.apply_gradients(params, make_gradients("float64", 1)[0])
    del params["gamma"]
    params["beta"] = np.zeros(5)
    grads = {name: np.zeros_like(value) for name, value in params.items()}

    with pytest.raises(KeyError, match=r"missing \['gamma'\], unknown \['beta'\]"):
        optimizer.apply_gradients(params, grads)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: Adam(learning_rate=-1e-3),
            r"learning_rate must be a number >= 0, received -0.001",
        ),
        (lambda: Adam(learning_rate=True), r"learning_rate must be a number >= 0, received True"),
        (lambda: Adam(beta_1=1.0), r"beta_1 must be in \[0, 1\), received 1.0"),
        (lambda: Adam(beta_2=float("nan")), r"beta_2 must be in \[0, 1\), received nan"),
        (lambda: Adam(epsilon=-1.0), r"epsilon must be a number >= 0"),
        (lambda: SGD(momentum=1.5), r"momentum must be in \[0, 1\], received 1.5"),
    ],
)
def test_bad_hyperparameters_are_rejected(make: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_bad_state_is_rejected() -> None:
    params = make_params("float64")
    optimizer = Adam()
    optimizer.apply_gradients(params, make_gradients("float64", 1)[0])
    state = optimizer.get_state()

    missing_iterations = {key: value for key, value in state.items() if key != "iterations"}
    with pytest.raises(KeyError, match="no 'iterations' entry"):
        Adam().set_state(missing_iterations)

    unknown_slot = {**state, "velocity_hat/kernel": state["velocity/kernel"]}
    with pytest.raises(KeyError, match="unexpected state entry 'velocity_hat/kernel'"):
        Adam().set_state(unknown_slot)

    uneven = {key: value for key, value in state.items() if key != "velocity/bias"}
    with pytest.raises(KeyError, match="the velocity slots cover parameters"):
        Adam().set_state(uneven)

    integer_slot = {**state, "momentum/bias": np.zeros(4, dtype=np.int64)}
    with pytest.raises(TypeError, match="'momentum/bias' has dtype int64"):
        Adam().set_state(integer_slot)


def test_restored_state_wrong_shape_rejected() -> None:
    params = make_params("float64")
    optimizer = Adam()
    optimizer.apply_gradients(params, make_gradients("float64", 1)[0])
    state = optimizer.get_state()
    state["momentum/bias"] = np.zeros(6)
    state["velocity/bias"] = np.zeros(6)
    restored = Adam()
    restored.set_state(state)

    with pytest.raises(
        ValueError, match=r"'bias' has shape \(4,\) but its momentum slot has shape"
    ):
        restored.apply_gradients(params, make_gradients("float64", 1)[0])


def test_get_slot_errors_list_the_choices() -> None:
    optimizer = SGD(momentum=0.9)
    optimizer.apply_gradients({"w": np.zeros(2)}, {"w": np.ones(2)})

    with pytest.raises(KeyError, match=r"no slot named 'velocity'; its slots are \['momentum'\]"):
        optimizer.get_slot("w", "velocity")
    with pytest.raises(KeyError, match=r"no momentum slot for parameter 'v'.*\['w'\]"):
        optimizer.get_slot("v", "momentum")
