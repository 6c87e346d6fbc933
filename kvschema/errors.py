"""kvschema's own errors: one root, :class:`KVSchemaError`, a ``ValueError``.

Every error carries a stable ``error_type`` id (``"spec_merge"``, …) that the CLI prints
next to the message, and keyword ``fields`` that say which values were at fault.  Errors
pickle with their message and fields, so they cross process boundaries intact.

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


def _rebuild(cls: type[KVSchemaError], message: str, fields: dict[str, Any]) -> KVSchemaError:
    return cls(message, **fields)


class KVSchemaError(ValueError):
    """Root of kvschema's errors; the message names the rule and the offending values.

    >>> str(KVSchemaError("page_size must be >= 1, got 0"))
    'page_size must be >= 1, got 0'
    """

    error_type: ClassVar[str] = "kvschema_error"

    def __init__(self, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, self.fields))


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
