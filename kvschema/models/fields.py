"""A ``config.json``'s fields, read strictly: typed, bounded, with the family's defaults.

Every reader in :mod:`kvschema.models` takes its numbers through :class:`Fields`, so a value of
the wrong type — ``"256"`` for a head size, ``"false"`` for a flag, ``0`` KV heads, ``10**12``
layers — is an :class:`HFConfigError` that quotes it, never a ``TypeError`` or a silent default.
A field the file leaves out takes the default of its transformers config class; an explicit
``null`` is a value, not a missing field.

>>> fields = Fields({"num_hidden_layers": 4, "head_dim": "256"}, "llama")
>>> fields.layers()
4
>>> fields.optional_int("head_dim")
Traceback (most recent call last):
...
kvschema.models.fields.HFConfigError: llama: head_dim must be a positive integer, got '256'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from kvschema.errors import KVSchemaError
from kvschema.layout.group import MAX_LAYERS
from kvschema.spec.base import MAX_INT

__all__ = ["MAX_LAYERS", "Fields", "HFConfigError"]

T = TypeVar("T")
_Int = int  # the builtin: ``Fields.int`` shadows it inside the class
_MISSING: Any = object()


class HFConfigError(KVSchemaError):
    """A ``config.json`` kvschema cannot turn into layer specs (unknown family, missing field).

    >>> HFConfigError("llama: num_hidden_layers missing").error_type
    'hf_config'
    """

    error_type = "hf_config"


def _shown(value: Any) -> str:
    """``repr(value)``, cut short: a config may hold anything, of any size."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class Fields:
    """One (text) config's fields, and the defaults of its transformers config class.

    >>> Fields({"use_sliding_window": "false"}, "qwen2").flag("use_sliding_window", False)
    Traceback (most recent call last):
    ...
    kvschema.models.fields.HFConfigError: qwen2: use_sliding_window must be true or false, got 'false'
    """

    def __init__(
        self,
        config: Mapping[str, Any],
        model_type: str,
        defaults: Mapping[str, Any] | None = None,
        *,
        aliases: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config
        self.model_type = model_type
        self.defaults = defaults or {}
        self.aliases = aliases or {}

    def _name(self, name: str) -> str:
        """The name the file uses for ``name`` (a config class's ``attribute_map``)."""
        alias = self.aliases.get(name)
        return alias if alias is not None and name not in self.config else name

    def __contains__(self, name: str) -> bool:
        return self._name(name) in self.config

    def get(self, name: str, default: Any = None) -> Any:
        """The field as written (an explicit null included), else the class default, else
        ``default``.

        >>> Fields({"sliding_window": None}, "mistral", {"sliding_window": 4096}).get("sliding_window")
        >>> Fields({"n_layer": 2}, "gpt2", aliases={"num_hidden_layers": "n_layer"}).get(
        ...     "num_hidden_layers")
        2
        """
        name = self._name(name)
        if name in self.config:
            return self.config[name]
        return self.defaults.get(name, default)

    def error(self, message: str, **fields: Any) -> HFConfigError:
        """An :class:`HFConfigError` naming the model type.

        >>> Fields({}, "gemma3n_text").error("no producer").message
        'gemma3n_text: no producer'
        """
        return HFConfigError(f"{self.model_type}: {message}", model_type=self.model_type, **fields)

    def _checked_int(self, name: str, value: Any, minimum: _Int, maximum: _Int) -> _Int:
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
            if minimum == 1:
                what = "a positive integer"
            elif minimum == 0:
                what = "an integer >= 0"
            else:
                what = f"an integer >= {minimum}"
            if maximum < MAX_INT:
                what += f" up to {maximum:,}"
            raise self.error(f"{name} must be {what}, got {_shown(value)}", field=name)
        return value

    def int(
        self, name: str, *, default: Any = _MISSING, minimum: _Int = 1, maximum: _Int = MAX_INT
    ) -> _Int:
        """A required integer field (``default`` when neither the file nor the class sets it).

        >>> Fields({"num_key_value_heads": 0}, "llama").int("num_key_value_heads")
        Traceback (most recent call last):
        ...
        kvschema.models.fields.HFConfigError: llama: num_key_value_heads must be a positive integer, got 0
        """
        value = self.get(name, default)
        if value is _MISSING:
            raise self.error(
                f"{self._name(name)} missing: kvschema needs it to size the cache", field=name
            )
        return self._checked_int(self._name(name), value, minimum, maximum)

    def optional_int(self, name: str, *, minimum: _Int = 1, maximum: _Int = MAX_INT) -> _Int | None:
        """An integer field that may be absent or null (None then); any other value is checked.

        >>> Fields({"head_dim": None}, "llama").optional_int("head_dim") is None
        True
        """
        value = self.get(name)
        return (
            None if value is None else self._checked_int(self._name(name), value, minimum, maximum)
        )

    def layers(self, name: str = "num_hidden_layers") -> _Int:
        """A layer count, bounded (a config cannot make kvschema build a list of 10**12 layers).

        >>> Fields({"num_hidden_layers": 10**12}, "llama").layers()
        Traceback (most recent call last):
        ...
        kvschema.models.fields.HFConfigError: llama: num_hidden_layers must be a positive integer up to 100,000, got 1000000000000
        """
        return self.int(name, maximum=MAX_LAYERS)

    def flag(self, name: str, default: bool) -> bool:
        """A true / false field (null: ``default``, as the config classes' truthiness reads it).

        >>> Fields({}, "qwen3").flag("use_sliding_window", False)
        False
        """
        value = self.get(name, default)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.error(
                f"{self._name(name)} must be true or false, got {_shown(value)}", field=name
            )
        return value

    def text(self, name: str, default: str | None = None) -> str | None:
        """A string field (None when absent or null).

        >>> Fields({"mamba_d_head": "auto"}, "falcon_h1").text("mamba_d_head")
        'auto'
        """
        value = self.get(name, default)
        if value is not None and not isinstance(value, str):
            raise self.error(f"{name} must be a string, got {_shown(value)}", field=name)
        return value

    def mapping(self, name: str) -> Mapping[str, Any]:
        """A nested object field (Kimi-Linear's ``linear_attn_config``, …).

        >>> Fields({"linear_attn_config": []}, "kimi_linear").mapping("linear_attn_config")
        Traceback (most recent call last):
        ...
        kvschema.models.fields.HFConfigError: kimi_linear: linear_attn_config must be an object, got []
        """
        value = self.get(name)
        if not isinstance(value, Mapping):
            raise self.error(f"{name} must be an object, got {_shown(value)}", field=name)
        return value

    def sub(self, name: str, model_type: str | None = None) -> Fields:
        """The fields of a nested object, read with the same strictness (no defaults).

        >>> Fields({"attn": {"n": 2}}, "dbrx").sub("attn").int("n")
        2
        """
        return Fields(self.mapping(name), model_type or f"{self.model_type}.{name}")

    def sequence(self, name: str, length: _Int | None = None) -> list[Any]:
        """A list field, of ``length`` entries when given.

        >>> Fields({"layer_types": "full_attention"}, "llama").sequence("layer_types", 2)
        Traceback (most recent call last):
        ...
        kvschema.models.fields.HFConfigError: llama: layer_types must be a list of 2 entries, got 'full_attention'
        """
        value = self.get(name)
        if not isinstance(value, list) or (length is not None and len(value) != length):
            count = "" if length is None else f" of {length} entries"
            got = f"{len(value)} entries" if isinstance(value, list) else _shown(value)
            raise self.error(f"{name} must be a list{count}, got {got}", field=name)
        return value

    def names(self, name: str, length: _Int, known: Mapping[str, T]) -> list[T]:
        """A list of ``length`` names, each a key of ``known``, mapped through it.

        >>> Fields({"layer_types": ["full_attention", "mamba"]}, "llama").names(
        ...     "layer_types", 2, {"full_attention": "full"})
        Traceback (most recent call last):
        ...
        kvschema.models.fields.HFConfigError: llama: layer_types must list 2 entries from full_attention; got unknown 'mamba'
        """
        value = self.sequence(name, length)
        unknown = sorted({_shown(v) for v in value if not isinstance(v, str) or v not in known})
        if unknown:
            raise self.error(
                f"{name} must list {length} entries from {', '.join(known)}; got unknown "
                f"{', '.join(unknown)}",
                field=name,
            )
        return [known[v] for v in value]

    def ints(self, name: str, *, minimum: _Int = 0, maximum: _Int = MAX_INT) -> list[_Int]:
        """A list of integers (layer indices, flags, counts), each checked.

        >>> Fields({"full_attn_idxs": [0, "3"]}, "lfm2").ints("full_attn_idxs")
        Traceback (most recent call last):
        ...
        kvschema.models.fields.HFConfigError: lfm2: full_attn_idxs[1] must be an integer >= 0, got '3'
        """
        value = self.sequence(name)
        if len(value) > MAX_LAYERS:
            raise self.error(f"{name} lists {len(value):,} entries, over {MAX_LAYERS:,}")
        return [
            self._checked_int(f"{name}[{i}]", item, minimum, maximum)
            for i, item in enumerate(value)
        ]
