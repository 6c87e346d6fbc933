"""Errors: one root, ValueError subclasses, stable ids, and pickling with fields intact."""

import pickle

import pytest
from pydantic import ValidationError

import kvschema
from kvschema import (
    DTypeError,
    FullAttentionSpec,
    InvalidArgumentError,
    KVSchemaError,
    MaskDetailsError,
    SpecMergeError,
)

ERRORS = [KVSchemaError, InvalidArgumentError, DTypeError, SpecMergeError, MaskDetailsError]


@pytest.mark.parametrize("cls", ERRORS)
def test_every_error_is_a_value_error_and_pickles(cls: type[KVSchemaError]) -> None:
    err = cls("layer.3 is wrong", layers=[3], window=512)
    assert isinstance(err, ValueError)
    assert isinstance(err, KVSchemaError)
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is cls
    assert str(back) == "layer.3 is wrong"
    assert back.fields == {"layers": [3], "window": 512}
    assert back.error_type == cls.error_type


def test_error_type_ids_are_distinct() -> None:
    ids = [cls.error_type for cls in ERRORS]
    assert len(set(ids)) == len(ids)


def test_public_errors_are_exported() -> None:
    for cls in ERRORS:
        assert getattr(kvschema, cls.__name__) is cls


def test_validation_errors_pickle_too() -> None:
    with pytest.raises(ValidationError) as info:
        FullAttentionSpec(page_size=0, num_kv_heads=1, head_size=1, dtype="int4")
    back = pickle.loads(pickle.dumps(info.value))
    assert back.errors() == info.value.errors()
