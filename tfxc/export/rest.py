"""A TensorFlow Serving REST predict request answered here, without the model server.

    python -m tfxc.export.rest models/medical/1 \
        -d '{"inputs": {"feat_idx": [3], "feat_val": [1.0], "row_splits": [0, 1]}}'

The model server turns the JSON body of `POST /v1/models/NAME:predict` into the signature's input tensors
and the output tensors back into JSON in C++ (`tensorflow_serving/util/json_tensor.cc`), which no Python
package ships. This module follows the same documented rules, so a request can be checked against an
export before a server is at hand, and the tests can hold the requests in docs/serving.md to the
signatures they call:

  * the body is an object with "signature_name" (optional, a string; "serving_default" if absent) and
    exactly one of "instances" (the row form) or "inputs" (the columnar form);
  * row form: a non-empty list with one element a row, either an object with one value per input (every
    input, no other key) or, for a signature with one input, the value itself; every row's value of an
    input has the same shape, and the rows are stacked along a new first dimension;
  * columnar form: an object with a value per input (other keys are ignored) or, for one input, the
    value itself; each value is the whole tensor;
  * a value is a number, string, boolean or {"b64": "..."} (bytes, for string inputs), or a list of
    values nested as deep as the tensor's rank, every list of a level as long as the first;
  * numbers convert only without loss: an integer to an integer input within its range, any number to
    a float input within float32's range (an integer up to 2^24);
  * the answer is {"predictions": [...]} for the row form (one entry a row: an object of every output's
    row, or the row itself when there is one output; every output then needs the same first dimension)
    and {"outputs": ...} for the columnar form (an object of whole tensors, or the tensor itself); strings
    come back as text, an output named `*_bytes` as {"b64": ...}; floats as their shortest decimal.

A body the rules refuse is a `RestError` naming the element, input and rule, where the server would
answer HTTP 400 with {"error": ...}.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import sys

import numpy as np

from tfxc.errors import TfxcError
from tfxc.utils.display import json_text

DEFAULT_SIGNATURE = "serving_default"
_INT_RANGES = {np.int8: 2**7, np.uint8: 2**8, np.int16: 2**15, np.int32: 2**31, np.int64: 2**63,
               np.uint32: 2**32, np.uint64: 2**64}
_FLOAT32_EXACT_INT = 2**24 - 1  # the largest integer every smaller one of which float32 holds exactly


class RestError(TfxcError):
    """A REST predict body the model server would refuse (its HTTP 400)."""


def decode_request(body: str | bytes, inputs_of) -> tuple[str, dict[str, np.ndarray], bool]:
    """(signature name, {input name: array}, row form?) of a predict request's JSON `body`.

    `inputs_of(signature_name)` gives that signature's inputs as {name: NumPy dtype} (raising RestError
    for an unknown signature). Arrays are int64/int32/float32/bool/... as the signature declares; strings
    come as object arrays of bytes.
    """
    try:
        request = json.loads(body)
    except ValueError as error:
        raise RestError(f"the body is not JSON: {error}") from None
    if not isinstance(request, dict):
        raise RestError(f"the body is a JSON {_json_type(request)}, not an object")
    name = request.get("signature_name", DEFAULT_SIGNATURE)
    if not isinstance(name, str):
        raise RestError("'signature_name' must be a string")
    specs = inputs_of(name)
    if ("instances" in request) == ("inputs" in request):
        raise RestError("the body needs exactly one of 'instances' (rows) and 'inputs' (columns)")
    if "instances" in request:
        return name, _from_rows(request["instances"], specs), True
    return name, _from_columns(request["inputs"], specs), False


def encode_response(outputs: dict[str, np.ndarray], row_form: bool) -> dict:
    """The JSON object the server answers with for `outputs` ({name: array}) of a request in either form."""
    names = sorted(outputs)
    if not row_form:
        values = {name: _json_value(outputs[name], name) for name in names}
        return {"outputs": values[names[0]] if len(names) == 1 else values}
    rows = {int(np.shape(outputs[name])[0]) if np.ndim(outputs[name]) else -1 for name in names}
    if len(rows) != 1 or -1 in rows:
        raise RestError(f"the row form needs every output to have the same first dimension; the outputs have "
                        + ", ".join(f"{name} {list(np.shape(outputs[name]))}" for name in names))
    columns = {name: _json_value(outputs[name], name) for name in names}
    if len(names) == 1:
        return {"predictions": columns[names[0]]}
    return {"predictions": [{name: columns[name][row] for name in names} for row in range(rows.pop())]}


def answer(saved_model_dir: str, body: str | bytes) -> dict:
    """The server's answer to the predict `body` for the export in `saved_model_dir`, computed by its own
    signatures in this process."""
    from tfxc._tf import tf
    from tfxc.export.served import ServedModel

    served = ServedModel(saved_model_dir)

    def inputs_of(name: str) -> dict:
        try:
            signature = served.signature(name)
        except TfxcError as error:
            raise RestError(str(error)) from None
        return {key: spec.dtype.as_numpy_dtype for key, spec in signature.structured_input_signature[1].items()}

    name, inputs, row_form = decode_request(body, inputs_of)
    try:
        outputs = served.signature(name)(**{key: tf.constant(value) for key, value in inputs.items()})
    except tf.errors.InvalidArgumentError as error:  # the graph's own input checks
        from tfxc.images.preprocessing import reason_of

        raise RestError(f"signature {name}: {reason_of(error)}") from None
    except (TypeError, ValueError) as error:  # a tensor the signature's shapes do not take
        raise RestError(f"signature {name}: {str(error).strip().splitlines()[0]}") from None
    return encode_response({key: value.numpy() for key, value in outputs.items()}, row_form)


def _from_rows(instances, specs: dict) -> dict:
    if not isinstance(instances, list) or not instances:
        raise RestError("'instances' must be a non-empty list, one element a row")
    named = _is_object(instances[0])
    if not named and len(specs) > 1:
        raise RestError(f"'instances' holds plain values, but the signature takes {len(specs)} inputs "
                        f"({', '.join(sorted(specs))}): send one object a row")
    columns = {name: [] for name in specs}
    for i, instance in enumerate(instances):
        if _is_object(instance) != named:
            raise RestError(f"instances[{i}]: every row must be {'an object' if named else 'a plain value'}, as "
                            "the first one is")
        values = instance if named else {next(iter(specs)): instance}
        if set(values) != set(specs):
            raise RestError(f"instances[{i}]: has keys {sorted(values)}, expected exactly {sorted(specs)}")
        for name, value in values.items():
            array = _tensor(value, specs[name], f"instances[{i}].{name}")
            if columns[name] and array.shape != columns[name][0].shape:
                raise RestError(f"instances[{i}].{name}: shape {list(array.shape)}, but instances[0] has "
                                f"{list(columns[name][0].shape)}; rows of different lengths need the "
                                "columnar form ('inputs')")
            columns[name].append(array)
    return {name: np.stack(arrays) for name, arrays in columns.items()}


def _from_columns(inputs, specs: dict) -> dict:
    if not _is_object(inputs):
        if len(specs) > 1:
            raise RestError(f"'inputs' is a plain value, but the signature takes {len(specs)} inputs "
                            f"({', '.join(sorted(specs))}): send an object with one value each")
        name = next(iter(specs))
        return {name: _tensor(inputs, specs[name], f"inputs.{name}")}
    missing = sorted(set(specs) - set(inputs))
    if missing:
        raise RestError(f"'inputs' has no value for {', '.join(missing)}")
    return {name: _tensor(inputs[name], dtype, f"inputs.{name}") for name, dtype in specs.items()}


def _tensor(value, dtype, where: str) -> np.ndarray:
    """The dense array of a nested-list JSON value, each leaf converted to `dtype` without loss."""
    shape, level = [], value
    while isinstance(level, list):
        shape.append(len(level))
        if not level:
            break
        level = level[0]
    leaves = []
    _walk(value, shape, 0, where, lambda leaf, at: leaves.append(_leaf(leaf, dtype, at)))
    return np.array(leaves, dtype=dtype).reshape(shape)


def _walk(value, shape: list, level: int, where: str, visit) -> None:
    if not isinstance(value, list):
        if level != len(shape):
            raise RestError(f"{where}: a value at depth {level}, where the first element's nesting puts values "
                            f"at depth {len(shape)}")
        visit(value, where)
        return
    if level >= len(shape) or len(value) != shape[level]:
        raise RestError(f"{where}: a list of {len(value)} at depth {level}, expected "
                        + (f"{shape[level]} (the first list's length at that depth)" if level < len(shape)
                           else "a value"))
    for i, item in enumerate(value):
        _walk(item, shape, level + 1, f"{where}[{i}]", visit)


def _leaf(value, dtype, where: str):
    kind = np.dtype(dtype)
    if kind == np.dtype(object):  # a string input
        if isinstance(value, str):
            return value.encode("utf-8")
        if _is_base64(value):
            try:
                return base64.b64decode(value["b64"], validate=True)
            except (binascii.Error, ValueError):
                raise RestError(f"{where}: 'b64' is not base64") from None
        raise RestError(f"{where}: {_json_type(value)} {_short(value)}, expected a string or {{\"b64\": ...}}")
    if kind == np.dtype(bool):
        if isinstance(value, bool):
            return value
        raise RestError(f"{where}: {_json_type(value)} {_short(value)}, expected true or false")
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind.kind == "f":
        if not is_number:
            raise RestError(f"{where}: {_json_type(value)} {_short(value)}, expected a number")
        limit = _FLOAT32_EXACT_INT if kind == np.float32 else 2**53 - 1
        finite_max = float(np.finfo(kind).max)
        if (isinstance(value, int) and abs(value) > limit) or (isinstance(value, float) and np.isfinite(value)
                                                                and abs(value) > finite_max):
            raise RestError(f"{where}: {_short(value)} does not fit {kind.name} without loss")
        return value
    if not isinstance(value, int) or isinstance(value, bool):
        raise RestError(f"{where}: {_json_type(value)} {_short(value)}, expected an integer ({kind.name})")
    span = _INT_RANGES[kind.type]
    low, high = (0, span - 1) if kind.kind == "u" else (-span, span - 1)
    if not low <= value <= high:
        raise RestError(f"{where}: {value} is outside {kind.name}'s range")
    return value


def _json_value(array: np.ndarray, name: str):
    """An output array as JSON values: float32 by its shortest decimal (as the server writes it), strings as
    text (`*_bytes` outputs as base64 objects)."""
    array = np.asarray(array)
    if array.dtype == object or array.dtype.kind == "S":
        if name.endswith("_bytes"):
            convert = lambda b: {"b64": base64.b64encode(b).decode("ascii")}  # noqa: E731
        else:
            convert = lambda b: b.decode("utf-8") if isinstance(b, bytes) else str(b)  # noqa: E731
        return np.frompyfunc(convert, 1, 1)(array).tolist() if array.ndim else convert(array.item())
    if array.dtype.kind == "f" and array.dtype.itemsize < 8:
        # A float32's text is its shortest round-tripping decimal; widened to a double, JSON would print
        # noise digits (0.2 as 0.20000000298023224).
        return array.astype(str).astype(np.float64).tolist()
    return array.tolist()


def _is_base64(value) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def _is_object(value) -> bool:
    return isinstance(value, dict) and not _is_base64(value)


def _json_type(value) -> str:
    return {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number")


def _short(value) -> str:
    text = json_text(value)
    return text if len(text) <= 40 else text[:37] + "..."


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Answer a TensorFlow Serving REST predict body with an export, "
                                                 "as the model server would (no server needed)")
    parser.add_argument("saved_model", help="a tfxc SavedModel (e.g. a version directory of --tf-serving)")
    body = parser.add_mutually_exclusive_group(required=True)
    body.add_argument("-d", "--data", help="the JSON body, as curl's -d takes it")
    body.add_argument("--file", help="a file holding the JSON body")
    args = parser.parse_args(argv)
    text = args.data if args.data is not None else open(args.file, "rb").read()
    try:
        response = answer(args.saved_model, text)
    except TfxcError as error:
        print(json_text({"error": str(error)}))
        return 1
    print(json_text(response))
    return 0


if __name__ == "__main__":
    sys.exit(main())
