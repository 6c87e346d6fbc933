"""kvschema's own errors: one root, :class:`KVSchemaError`, a ``ValueError``.

Every error carries a stable ``error_type`` id (``"spec_merge"``, …) that the CLI prints
next to the message, and keyword ``fields`` that say which values were at fault.  Errors
pickle with their message and fields, so they cross process boundaries intact; a field that
does not pickle itself (a lambda, an open file) crosses as its ``repr``.

>>> err = SpecMergeError("windows 512 and 4096 differ", windows=[512, 4096])
>>> isinstance(err, ValueError), err.error_type, err.fields["windows"]
(True, 'spec_merge', [512, 4096])
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "DTypeError",
    "InvalidArgumentError",
    "KVSchemaError",
    "KVSchemaWarning",
    "MaskDetailsError",
    "SpecMergeError",
]


def _rebuild(cls: type[KVSchemaError], message: str, fields: bytes) -> KVSchemaError:
    import pickle  # here, not at import: pickling errors is rare, start-up is not

    return cls(message, **pickle.loads(fields))


#: The ids of the errors being pickled now, so an error among its own fields ends the recursion.
_REDUCING: set[int] = set()


def _portable(value: Any) -> Any:
    """``value`` when it survives a pickle round trip, else its ``repr`` (cut to 1,000 chars).

    A field may hold anything a caller passed (a lambda, an open file, a lock): the error still
    crosses a process boundary, with such a value shown as text.
    """
    import pickle

    try:
        pickle.loads(pickle.dumps(value))
    except Exception:  # whatever pickling a foreign value raises, the error must still pickle
        try:
            text = repr(value)
        except Exception:
            text = f"<{type(value).__name__}>"
        return text if len(text) <= 1000 else text[:1000] + "..."
    return value


class KVSchemaError(ValueError):
    """Root of kvschema's errors; the message names the rule and the offending values.

    >>> str(KVSchemaError("page_size must be >= 1, got 0"))
    'page_size must be >= 1, got 0'
    """

    error_type: ClassVar[str] = "kvschema_error"

    def __init__(self, message: str, /, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields

    def __reduce__(self) -> tuple[Any, ...]:
        import pickle

        if id(self) in _REDUCING:  # the error is in its own fields: stand in for it as text
            return (str, (f"<{type(self).__name__}: {self.message[:200]}>",))
        # The fields are pickled here, while this error is marked: one that holds the error
        # itself (or a list that does) then pickles it as text instead of recursing forever.
        _REDUCING.add(id(self))
        try:
            fields = pickle.dumps({name: _portable(value) for name, value in self.fields.items()})
        finally:
            _REDUCING.discard(id(self))
        return (_rebuild, (type(self), str(self.message), fields))


class KVSchemaWarning(UserWarning):
    """Something kvschema assumed because the input did not say (a dtype, a family)."""


class InvalidArgumentError(KVSchemaError):
    """A function argument is out of its domain (a non-positive length, an unknown strategy).

    >>> InvalidArgumentError("max_model_len must be an int >= 1, got 0").error_type
    'invalid_argument'
    """

    error_type: ClassVar[str] = "invalid_argument"


class DTypeError(InvalidArgumentError):
    """A dtype name or object kvschema does not know, or one without a whole byte size.

    >>> DTypeError("unknown dtype 'f12'").error_type
    'dtype'
    """

    error_type: ClassVar[str] = "dtype"


class SpecMergeError(KVSchemaError):
    """Specs that cannot share one page table (different ``type_id`` or geometry, clashing windows).

    >>> SpecMergeError("cannot merge zero specs").error_type
    'spec_merge'
    """

    error_type: ClassVar[str] = "spec_merge"


class MaskDetailsError(KVSchemaError):
    """Per-layer mask details that do not describe a whole, consistent model.

    >>> MaskDetailsError("layer indices have gaps: missing 3", layers=[3]).fields
    {'layers': [3]}
    """

    error_type: ClassVar[str] = "mask_details"
