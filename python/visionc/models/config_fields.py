"""Numbers read from config files, checked before anything is sized by them.

Every family declares its numeric fields as a table of rules (key -> Int / Float / Ints / Bool);
`check_fields` applies it to a config dict (config.json, a sub-config, from_pretrained's keyword
overrides) and raises ValueError naming the file, the key and the value: a config with
image_size 2**31 fails in microseconds instead of driving an allocation. The bounds are far above
every released checkpoint and far below what would exhaust memory; sizes that the weights also
determine are further checked against the weights (`check_matches`).

transformers' reading of labels lives here too: a config without id2label / num_labels has two
labels, LABEL_0 and LABEL_1, and such a default is not written back on save.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

MAX_WIDTH = 1 << 16      # hidden sizes, channels, heads
MAX_LAYERS = 1024        # layers per stage / stack
MAX_IMAGE = 1 << 14      # pixels per side
MAX_LABELS = 1 << 20
MAX_VOCAB = 1 << 24
MAX_POSITIONS = 1 << 20


@dataclass(frozen=True)
class Int:
    lo: int
    hi: int
    nullable: bool = False  # null means "not set" (e.g. pooler_output_size, n_inner)


@dataclass(frozen=True)
class Float:
    lo: float
    hi: float
    lo_open: bool = False   # (lo, hi] instead of [lo, hi]: an eps must be positive
    nullable: bool = False


@dataclass(frozen=True)
class Ints:
    """A list of integers, each in [lo, hi], of length in [min_len, max_len]."""
    lo: int
    hi: int
    min_len: int = 1
    max_len: int = 64


@dataclass(frozen=True)
class Bool:
    nullable: bool = False


SIZE = Int(1, MAX_WIDTH)
LAYERS = Int(1, MAX_LAYERS)
IMAGE = Int(1, MAX_IMAGE)
EPS = Float(0.0, 1.0, lo_open=True)
PROB = Float(0.0, 1.0)
STD = Float(0.0, 1e3)
TOKEN = Int(0, MAX_VOCAB, nullable=True)


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _describe(rule) -> str:
    if isinstance(rule, Int):
        return f"an integer in [{rule.lo}, {rule.hi}]" + (" or null" if rule.nullable else "")
    if isinstance(rule, Float):
        return (f"a number in {'(' if rule.lo_open else '['}{rule.lo:g}, {rule.hi:g}]"
                + (" or null" if rule.nullable else ""))
    if isinstance(rule, Ints):
        return f"a list of {rule.min_len} to {rule.max_len} integers in [{rule.lo}, {rule.hi}]"
    return "true or false" + (" or null" if rule.nullable else "")


def _valid(rule, v) -> bool:
    if v is None:
        return getattr(rule, "nullable", False)
    if isinstance(rule, Int):
        return _is_int(v) and rule.lo <= v <= rule.hi
    if isinstance(rule, Float):
        if not isinstance(v, numbers.Real) or isinstance(v, bool) or not math.isfinite(v):
            return False
        return (v > rule.lo if rule.lo_open else v >= rule.lo) and v <= rule.hi
    if isinstance(rule, Ints):
        return (isinstance(v, (list, tuple)) and rule.min_len <= len(v) <= rule.max_len
                and all(_is_int(x) and rule.lo <= x <= rule.hi for x in v))
    return isinstance(v, bool)


def check_fields(values: dict, rules: dict, source: str) -> None:
    """ValueError for the first key of `rules` present in `values` whose value breaks its rule."""
    for key, rule in rules.items():
        if key in values and not _valid(rule, values[key]):
            raise ValueError(f"{source}: {key} must be {_describe(rule)}, got {values[key]!r}")


def check_matches(source: str, key: str, value, weights_value, tensor: str) -> None:
    """A config size that the weights also fix must agree with them."""
    if value != weights_value:
        raise ValueError(f"{source}: {key} is {value!r}, but the weights have {weights_value!r} "
                         f"(from tensor {tensor})")


LABEL_RULES = {"num_labels": Int(0, MAX_LABELS)}


def parse_id2label(config: dict, source: str = "config.json") -> dict[int, str]:
    """id2label as transformers reads it: the config's map (ids 0..n-1), else num_labels
    LABEL_i names, else the default two labels LABEL_0 and LABEL_1."""
    check_fields(config, LABEL_RULES, source)
    raw = config.get("id2label")
    if raw is not None and not isinstance(raw, dict):
        raise ValueError(f"{source}: id2label must map integer ids to names, got {type(raw).__name__}")
    if raw:
        if len(raw) > MAX_LABELS:
            raise ValueError(f"{source}: id2label has {len(raw)} labels, more than {MAX_LABELS}")
        try:
            labels = {int(k): str(v) for k, v in raw.items()}
        except (TypeError, ValueError) as e:
            raise ValueError(f"{source}: id2label must map integer ids to names: {e}") from e
        if sorted(labels) != list(range(len(labels))):
            raise ValueError(f"{source}: id2label ids must be 0..{len(labels) - 1}, got {sorted(labels)[:8]}...")
        return labels
    n = config.get("num_labels")
    n = 2 if n is None else n
    return {i: f"LABEL_{i}" for i in range(n)}


def write_labels(config: dict, id2label: dict) -> dict:
    """Puts the label entries transformers writes into a config dict being saved (none for its
    default two labels), replacing any carried over from the loaded file; returns the dict."""
    for k in ("num_labels", "id2label", "label2id"):
        config.pop(k, None)
    if id2label != {0: "LABEL_0", 1: "LABEL_1"}:
        config["id2label"] = {str(k): v for k, v in id2label.items()}
        config["label2id"] = {v: k for k, v in id2label.items()}
    return config
