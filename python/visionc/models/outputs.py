"""Model outputs shaped like transformers' ModelOutput: attributes, keys and tuple indexing,
holding NumPy arrays where transformers holds torch tensors. Fields left as None are skipped
by keys(), indexing and to_tuple(), as in transformers."""
from __future__ import annotations


class ModelOutput:
    _fields: tuple = ()

    def __init__(self, **values):
        unknown = set(values) - set(self._fields)
        if unknown:
            raise TypeError(f"{type(self).__name__} has no fields {sorted(unknown)}")
        for f in self._fields:
            setattr(self, f, values.get(f))

    def keys(self):
        return [f for f in self._fields if getattr(self, f) is not None]

    def values(self):
        return [getattr(self, k) for k in self.keys()]

    def items(self):
        return [(k, getattr(self, k)) for k in self.keys()]

    def to_tuple(self):
        return tuple(self.values())

    def __getitem__(self, key):
        if isinstance(key, str):
            if getattr(self, key, None) is None:
                raise KeyError(key)
            return getattr(self, key)
        return self.to_tuple()[key]

    def __contains__(self, key):
        return key in self.keys()

    def __iter__(self):
        return iter(self.keys())

    def __len__(self):
        return len(self.keys())

    def __repr__(self):
        parts = []
        for k, v in self.items():
            shape = getattr(v, "shape", None)
            parts.append(f"{k}={'array' + str(tuple(shape)) if shape is not None else type(v).__name__}")
        return f"{type(self).__name__}({', '.join(parts)})"


class BaseModelOutputWithPooling(ModelOutput):
    _fields = ("last_hidden_state", "pooler_output", "hidden_states", "attentions")


class ImageClassifierOutput(ModelOutput):
    _fields = ("loss", "logits", "hidden_states", "attentions")


class BaseModelOutputWithPoolingAndNoAttention(ModelOutput):
    """The convolutional families' (ConvNeXt, MobileViT) outputs: no attention maps."""
    _fields = ("last_hidden_state", "pooler_output", "hidden_states")


class ImageClassifierOutputWithNoAttention(ModelOutput):
    _fields = ("loss", "logits", "hidden_states")


class BackboneOutput(ModelOutput):
    _fields = ("feature_maps", "hidden_states", "attentions")
