"""Property-based fuzzing of what parses hostile input in-process: a model's JSON, an `.npz` upload, an array of
labels, a job's body. Each either answers or raises the one error its caller turns into a 4xx, never another."""

from __future__ import annotations

import io
import json
import zipfile

import pydantic
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from clr.config import RangeTestSpec, TrainingSpec, code_carrying_objects, safe_keras_config
from clr.datasets import Dataset, from_npz
from clr.tasks import Labels

FUZZ = settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
JSON = st.recursive(SCALARS, lambda children: st.lists(children, max_size=5)
                    | st.dictionaries(st.text(max_size=10), children, max_size=5), max_leaves=30)
KERAS_LIKE = st.fixed_dictionaries({"module": JSON, "class_name": JSON}, optional={"config": JSON})


@FUZZ
@given(JSON | KERAS_LIKE | st.lists(KERAS_LIKE, max_size=3))
def test_keras_config_checks_only_answer_or_raise_value_error(config):
    try:
        code_carrying_objects(config)
        text = json.dumps(config, allow_nan=True).encode()
        safe_keras_config(text, "`keras_json`")
    except ValueError:
        pass


@FUZZ
@given(st.binary(max_size=500) | st.text(alphabet='[]{}":,\\0123456789.eE-nultrfasNIiy ', max_size=500).map(str.encode))
@example(b"[" * 65)
@example(b'{"class_name": ' + b"9" * 5000 + b"}")
def test_safe_keras_config_of_arbitrary_text_only_answers_or_raises_value_error(text):
    try:
        safe_keras_config(text, "`keras_json`")
    except ValueError:
        pass


@FUZZ
@given(st.binary(max_size=2000))
@example(b"")
@example(b"PK\x05\x06" + bytes(18))
def test_from_npz_of_arbitrary_bytes_only_answers_or_raises_value_error(data):
    try:
        assert isinstance(from_npz(data), Dataset)
    except ValueError:
        pass


def _npy(header: bytes, payload: bytes, version: int = 1) -> bytes:
    """An `.npy` file of a raw header (padded as numpy pads it) and payload."""
    length = 10 if version == 1 else 12
    header += b" " * (-(len(header) + 1 + length) % 64) + b"\n"
    size = len(header).to_bytes(2 if version == 1 else 4, "little")
    return b"\x93NUMPY" + bytes([version, 0]) + size + header + payload


def _npz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


DTYPES = st.sampled_from(["<f4", "<f8", "|u1", "<i8", "|b1", ">f4", "<c8", "<U3", "|O", "|V0", "|V8", "<M8[s]",
                          "[('a', '<f4')]", "", "f", "<f16"]) | st.text(max_size=8)
SHAPES = st.lists(st.integers(0, 2**40) | st.sampled_from([0, 1, 2, 3, 2**31, 2**63, 2**64, -1]), max_size=4)
HEADERS = st.builds(lambda descr, order, shape: repr({"descr": descr, "fortran_order": order,
                                                       "shape": tuple(shape)}).encode(),
                    DTYPES, st.booleans() | st.integers(-1, 2), SHAPES) | st.binary(max_size=100)


@FUZZ
@example({"x_train.npy": (b"(", b"", 1)})
@example({"x_train.npy": (repr({"descr": "<f4", "fortran_order": False, "shape": (0, 2**63)}).encode(), b"", 1)})
@example({"x_train.npy": (repr({"descr": "<f4", "fortran_order": False, "shape": (0, 2**64)}).encode(), b"", 1)})
@example({"x_train.npy": (repr({"descr": "<f4", "fortran_order": False, "shape": (-1, 4)}).encode(), bytes(64), 1)})
@given(st.dictionaries(st.sampled_from(["x_train.npy", "y_train.npy", "x_test.npy", "y_test.npy", "x_train"]),
                       st.tuples(HEADERS, st.binary(max_size=200), st.sampled_from([1, 2])), min_size=1))
def test_from_npz_of_arbitrary_npy_headers_only_answers_or_raises_value_error(members):
    data = _npz({name: _npy(header, payload, version) for name, (header, payload, version) in members.items()})
    try:
        assert isinstance(from_npz(data), Dataset)
    except ValueError:
        pass


ARRAYS = hnp.arrays(hnp.scalar_dtypes() | hnp.array_dtypes(), hnp.array_shapes(min_dims=0, max_dims=3,
                                                                                            min_side=0, max_side=4))


@FUZZ
@given(ARRAYS)
def test_labels_of_arbitrary_arrays_only_answer_or_raise_value_error(y):
    try:
        Labels.of(y)
    except ValueError:
        pass


STRINGY = st.recursive(SCALARS, lambda children: st.lists(children, max_size=3)
                       | st.dictionaries(st.text(max_size=10), children, max_size=3), max_leaves=10)
BODY = st.fixed_dictionaries(
    {"model": st.fixed_dictionaries({}, optional={"architecture": STRINGY, "keras_json": STRINGY, "id": STRINGY}),
     "dataset": st.fixed_dictionaries({}, optional={"name": STRINGY, "id": STRINGY}),
     "optimizer": st.fixed_dictionaries({"name": STRINGY}),
     "batch_size": st.integers(0, 100) | STRINGY},
    optional={"loss": STRINGY, "range_test_id": STRINGY, "clr": STRINGY, "schedule": STRINGY,
              "range_test": STRINGY, "sweep": STRINGY, "epochs": STRINGY})


@settings(FUZZ, max_examples=50)  # each example validates a whole spec: the slowest of these
@given(BODY, st.sampled_from([RangeTestSpec, TrainingSpec]))
def test_request_models_only_raise_validation_errors(body, model):
    try:
        model.model_validate(body)
    except pydantic.ValidationError:
        pass
