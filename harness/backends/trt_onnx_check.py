"""Check an ONNX graph against TensorRT's ONNX parser support matrix, without TensorRT.

The data (``trt_onnx_support.json`` beside this file) is onnx-tensorrt's ``docs/operators.md``
for TensorRT 8.5 (JetPack 5.1) and 10.x, recorded with its source commit, plus the importer
rules the matrix leaves out (each with its source reference). :func:`check_graph` walks every
node, subgraphs included, and reports what TensorRT's parser would refuse: an op it lacks (or
from a custom domain), the default-domain opset outside the supported range, a data type the
op's row does not list, an attribute value outside the listed ones (DepthToSpace mode, Resize
modes, ...), an input that must be an initializer, and Q/DQ that is not symmetric signed INT8
(zero point type and value, per-channel scales on activations).

Only the ``onnx`` package is needed, imported on first use.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Set, Tuple, Union

DATA = Path(__file__).with_name("trt_onnx_support.json")
# ONNX TensorProto element types -> the matrix's names
_TYPE_NAMES = {"FLOAT": "FP32", "FLOAT16": "FP16", "BFLOAT16": "BF16", "DOUBLE": "DOUBLE", "INT8": "INT8",
               "UINT8": "UINT8", "INT32": "INT32", "INT64": "INT64", "BOOL": "BOOL", "FLOAT8E4M3FN": "FP8",
               "INT4": "INT4", "FLOAT4E2M1": "FP4", "INT16": "INT16", "UINT16": "UINT16", "UINT32": "UINT32",
               "UINT64": "UINT64", "STRING": "STRING"}


class Problem(NamedTuple):
    node: str      # node name (or its first output when unnamed); "<model>" for model-level problems
    op_type: str
    kind: str      # unsupported_op, custom_domain, opset, dtype, attribute, constant_input, input_rank,
                   # outputs, unsupported_input, zero_point_type, zero_point_value, zero_point_missing, scale,
                   # per_channel_activation
    message: str   # what is unsupported and why, citing the matrix row or the importer source

    def __str__(self) -> str:
        return f"{self.node} ({self.op_type}): {self.message}"


@functools.lru_cache(maxsize=1)
def _data() -> Dict[str, Any]:
    return json.loads(DATA.read_text())


def supported_versions() -> List[str]:
    """The TensorRT versions the recorded matrix covers: ``['8.5', '10.x']``."""
    return list(_data()["versions"])


def _section(trt: str) -> Dict[str, Any]:
    versions = _data()["versions"]
    key = str(trt).strip()
    if key not in versions:
        key = "8.5" if key.startswith("8.5") else "10.x" if key.split(".")[0] == "10" else key
    if key not in versions:
        raise ValueError(f"no ONNX support data for TensorRT {trt}; recorded: {', '.join(versions)}")
    return versions[key]


class _Graphs:
    """Types, ranks and constant values of every tensor name, across the model and its subgraphs."""

    def __init__(self, model):
        import onnx

        try:
            model = onnx.shape_inference.infer_shapes(model)
        except Exception:  # noqa: BLE001 - an uninferable graph is still checked, with fewer types known
            pass
        self.model = model
        self.types: Dict[str, str] = {}
        self.ranks: Dict[str, int] = {}
        self.constants: Dict[str, Any] = {}  # name -> TensorProto (initializer or Constant node value)
        self.values: Dict[str, Any] = {}     # the same plus Identity outputs of constants (a Q/DQ zero point)
        self.derived: Set[str] = set()       # computed from constants alone (e.g. Q of a weight), foldable
        self.consumers: Dict[str, List[Tuple[str, int]]] = {}  # name -> [(op_type, input index)]
        self._collect(model.graph)

    def _collect(self, graph) -> None:
        from onnx import TensorProto

        for vi in list(graph.input) + list(graph.output) + list(graph.value_info):
            tt = vi.type.tensor_type
            if tt.elem_type:
                self.types[vi.name] = TensorProto.DataType.Name(tt.elem_type)
            if tt.HasField("shape"):
                self.ranks[vi.name] = len(tt.shape.dim)
        for t in graph.initializer:
            self._constant(t.name, t)
        for node in graph.node:
            for i, name in enumerate(node.input):
                self.consumers.setdefault(name, []).append((node.op_type, i))
            if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
                for a in node.attribute:
                    if a.name == "value":
                        self._constant(node.output[0], a.t)
            elif node.op_type == "Identity" and node.input and node.input[0] in self.values:
                self.values[node.output[0]] = self.values[node.input[0]]
            if node.input and not _subgraphs(node) and all(i in self.derived for i in node.input if i):
                self.derived.update(node.output)
            for g in _subgraphs(node):
                self._collect(g)

    def _constant(self, name: str, tensor) -> None:
        from onnx import TensorProto

        self.constants[name] = self.values[name] = tensor
        self.derived.add(name)
        self.types[name] = TensorProto.DataType.Name(tensor.data_type)
        self.ranks[name] = len(tensor.dims)

    def array(self, name: str):
        from onnx import numpy_helper

        return numpy_helper.to_array(self.values[name]) if name in self.values else None


def _subgraphs(node) -> list:
    from onnx import AttributeProto

    out = []
    for a in node.attribute:
        if a.type == AttributeProto.GRAPH:
            out.append(a.g)
        elif a.type == AttributeProto.GRAPHS:
            out.extend(a.graphs)
    return out


def _nodes(graph):
    for node in graph.node:
        yield node
        for g in _subgraphs(node):
            yield from _nodes(g)


def _attr(node, name: str):
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            value = helper.get_attribute_value(a)
            return value.decode() if isinstance(value, bytes) else value
    return None


def _merged(row: Dict[str, Any]) -> Dict[str, Any]:
    rules: Dict[str, Any] = {}
    for key in ("checks", "importer_checks"):
        for name, value in row.get(key, {}).items():
            rules[name] = dict(rules.get(name, {}), **value) if isinstance(value, dict) else value
    return rules


def check_graph(model: Union[str, Path, Any], trt: str = "8.5") -> List[Problem]:
    """What TensorRT ``trt``'s ONNX parser would refuse in ``model`` (a path or an onnx.ModelProto), per its
    published operator support matrix (``trt_onnx_support.json``); [] when nothing."""
    import onnx

    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model), load_external_data=False)
    sec = _section(trt)
    label = f"TensorRT {sec['tensorrt_version'].split(' ')[0]}"
    problems: List[Problem] = []
    opset = sec["opset"]
    for imp in model.opset_import:
        if imp.domain in opset["domains"] and not opset["min"] <= imp.version <= opset["max"]:
            problems.append(Problem("<model>", "", "opset", f"default-domain opset {imp.version} is outside "
                                    f"{label}'s supported opset {opset['min']}-{opset['max']} ({opset['basis']})"))
    g = _Graphs(model)
    for node in _nodes(g.model.graph):
        problems.extend(_check_node(node, sec, g, label))
    return problems


def _check_node(node, sec: Dict[str, Any], g: _Graphs, label: str) -> List[Problem]:
    name = node.name or (node.output[0] if node.output else "?")
    out: List[Problem] = []

    def bad(kind: str, message: str) -> None:
        out.append(Problem(name, node.op_type, kind, message))

    if node.domain not in sec["opset"]["domains"]:
        bad("custom_domain", f"op of domain '{node.domain}': {label}'s parser imports only default-domain ONNX ops "
                             f"(anything else needs a TensorRT plugin)")
        return out
    row = sec["operators"].get(node.op_type)
    if row is None or not row["supported"]:
        why = "is not in" if row is None else "is marked unsupported ('N') in"
        bad("unsupported_op", f"{node.op_type} {why} the {label} ONNX operator support matrix")
        return out
    cite = f"{label} matrix row {node.op_type}" + (f": {row['restrictions']}" if row.get("restrictions") else "")
    ref = f"{label} importer, {row['importer_ref']}" if row.get("importer_ref") else cite
    rules = _merged(row)

    def source(attr: str) -> str:  # the matrix where its restriction text names the attribute, else the importer
        return cite if attr in row.get("restrictions", "") else ref

    # data types: the 'Supported Types' column (importer_types where the code takes more than the row lists)
    allowed = row.get("importer_types") or row.get("types", [])
    which = row.get("type_of", {"inputs": [0]})
    names = list(node.input) if which.get("inputs") == "all" else \
        [node.input[i] for i in which.get("inputs", []) if i < len(node.input)]
    names += [node.output[i] for i in which.get("outputs", []) if i < len(node.output)]
    exempt = rules.get("types_exempt_if_only_feeds")
    uses = g.consumers.get(node.output[0], []) if node.output else []
    if exempt and uses and all(i in exempt.get(op, []) for op, i in uses):
        names = []  # constant -> Identity -> Q/DQ zero point: read back as weights by the importer
    for tensor in names:
        t = _TYPE_NAMES.get(g.types.get(tensor, ""), g.types.get(tensor))
        if t is not None and sec["type_aliases"].get(t, t) not in allowed:  # None: type unknown, not decidable
            bad("dtype", f"'{tensor}' is {t}; {label} lists {', '.join(row.get('types', []))} for {node.op_type}"
                         + (f" (importer: {', '.join(allowed)})" if "importer_types" in row else ""))

    for attr, values in rules.get("attributes", {}).items():
        value = _attr(node, attr)
        if value is not None and value not in values:
            bad("attribute", f"{attr}={value!r} is not supported (allowed: {', '.join(map(str, values))}); "
                             f"{source(attr)}")
    for attr, value in rules.get("attributes_all", {}).items():
        got = _attr(node, attr)
        if got and any(v != value for v in got):
            bad("attribute", f"{attr}={got} must be all {value}; {source(attr)}")
    for attr in rules.get("unsupported_attributes", []):
        if _attr(node, attr) is not None:
            bad("attribute", f"attribute {attr} is unsupported; {cite}")
    kernel = _attr(node, "kernel_shape") if "kernel_rank" in rules else None
    if kernel is not None and len(kernel) not in rules["kernel_rank"]:
        bad("input_rank", f"{len(kernel)}-D kernel; {cite}")
    rank = g.ranks.get(node.input[0]) if "input_rank" in rules and node.input else None
    if rank is not None and rank not in rules["input_rank"]:
        bad("input_rank", f"input '{node.input[0]}' has rank {rank}, needs "
                          f"{' or '.join(map(str, rules['input_rank']))}; {ref}")
    if "max_outputs" in rules and len([o for o in node.output if o]) > rules["max_outputs"]:
        bad("outputs", f"{len(node.output)} outputs; {cite}")
    for i in rules.get("constant_inputs", []):
        if i < len(node.input) and node.input[i] and node.input[i] not in g.constants:
            bad("constant_input", f"input {i} '{node.input[i]}' is computed, not an initializer; {cite}")
    for i in rules.get("unsupported_inputs", []):
        if i < len(node.input) and node.input[i]:
            bad("unsupported_input", f"input {i} '{node.input[i]}' is not supported; {ref}")
    if "zero_point" in rules:
        out.extend(_check_qdq(node, name, rules, g, cite, ref, sec["type_aliases"]))
    return out


def _check_qdq(node, name: str, rules: Dict[str, Any], g: _Graphs, cite: str, ref: str,
               aliases: Dict[str, str]) -> List[Problem]:
    """QuantizeLinear/DequantizeLinear: symmetric (zero point 0) signed quantization, constant positive scales,
    per-channel scales only on constant (weight) inputs."""
    out: List[Problem] = []

    def bad(kind: str, message: str) -> None:
        out.append(Problem(name, node.op_type, kind, message))

    zp, scale = rules["zero_point"], rules.get("scale", {})
    zname = node.input[zp["input"]] if zp["input"] < len(node.input) else ""
    if not zname and zp.get("required"):
        bad("zero_point_missing", f"no zero-point input; {ref}")
    elif zname:
        t = _TYPE_NAMES.get(g.types.get(zname, ""), g.types.get(zname))
        if t is not None and "types" in zp and aliases.get(t, t) not in zp["types"]:
            bad("zero_point_type", f"zero point '{zname}' is {t}: TensorRT quantizes to signed "
                                   f"{'/'.join(zp['types'])} only; {ref}")
        values = g.array(zname)
        if values is None and zp.get("constant"):
            bad("zero_point_value", f"zero point '{zname}' is not a constant; {cite}")
        elif values is not None and (values.astype("float64") != zp["value"]).any():
            bad("zero_point_value", f"zero point '{zname}' is {values.ravel()[:4].tolist()}, must be {zp['value']} "
                                    f"(symmetric quantization); {cite}")
    sname = node.input[scale["input"]] if scale and scale["input"] < len(node.input) else ""
    s = g.array(sname) if sname else None
    if sname and s is None and scale.get("constant"):
        bad("scale", f"scale '{sname}' is not a constant; {ref}")
    elif s is not None and scale.get("positive") and not (s > 0).all():
        bad("scale", f"scale '{sname}' has non-positive values; {ref}")
    per_channel = s is not None and s.size > 1 and rules.get("per_channel_needs_constant_input")
    if per_channel and node.input[0] not in g.derived:
        bad("per_channel_activation", f"per-channel scales on activation '{node.input[0]}': TensorRT takes "
                                      f"per-tensor activations and per-channel weights only; {ref}")
    return out
