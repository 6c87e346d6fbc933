"""JSON texts the duplicate-key tests share: a value written with one key twice."""

import json
from typing import Any


def with_a_key_twice(value: Any, target: int) -> tuple[str, int]:
    """``value`` as JSON text, the first member of its ``target``-th object written twice;
    and how many objects it has."""
    seen = 0

    def dump(node: Any) -> str:
        nonlocal seen
        if isinstance(node, dict):
            members = [f"{json.dumps(k)}: {dump(v)}" for k, v in node.items()]
            if seen == target and members:
                members.append(members[0])
            seen += 1
            return "{" + ", ".join(members) + "}"
        if isinstance(node, list):
            return "[" + ", ".join(dump(item) for item in node) + "]"
        return json.dumps(node)

    return dump(value), seen
