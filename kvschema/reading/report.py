"""A checked file as a report: whether it is ok, what its documents were taken for, every error
with its rule id, and the line ``kvschema validate`` prints for each.

``kvschema validate`` and the web app's ``POST /api/validate`` build their answers here, so both
say the same thing about the same text.

>>> from kvschema.reading.loaders import load_text
>>> entry = check_documents(load_text("kind: full_attention\\npage_size: 0\\n", "yaml"))
>>> entry["ok"], [e["type"] for e in entry["errors"]][:2]
(False, ['greater_than_equal', 'missing'])
>>> error_line("deploy.yaml", entry["errors"][0])
'deploy.yaml:2:1: $.page_size: Input should be greater than or equal to 1, got 0 [greater_than_equal]'
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from kvschema.reading.checking import Issue, check_document
from kvschema.reading.document import Document, LoadError
from kvschema.reading.text import MESSAGE_LIMIT, NAME_LIMIT, printable

__all__ = ["check_documents", "error_line", "issue_dict", "load_error_dict"]

#: Marks up a piece of a line (``text``, an ANSI ``code``); the plain one leaves it as it is.
Style = Callable[[str, str], str]


def _plain(text: str, code: str) -> str:
    return text


def issue_dict(issue: Issue, documents: int) -> dict[str, Any]:
    """One error as the JSON report holds it (``document`` only in a file of several).

    >>> from kvschema.reading.checking import Issue
    >>> issue_dict(Issue(0, "$.page_size", "too small", "greater_than_equal", 2, 12), 1)["line"]
    2
    """
    return {
        "document": issue.document if documents > 1 else None,
        "path": issue.path,
        "message": issue.message,
        "type": issue.error_type,
        "line": issue.line,
        "column": issue.column,
    }


def load_error_dict(err: LoadError) -> dict[str, Any]:
    """A file that cannot be read or parsed, as one error of the report: the line and column as
    fields, not repeated in the message.

    >>> load_error_dict(LoadError("line 1, column 2: JSON syntax error", line=1, column=2))
    {'document': None, 'path': None, 'message': 'JSON syntax error', 'type': 'load', 'line': 1, 'column': 2}
    """
    line, column = err.fields.get("line"), err.fields.get("column")
    message: str = err.message
    where = f"line {line}, column {column}: " if column is not None else f"line {line}: "
    if line is not None and message.startswith(where):
        message = message[len(where) :]
    return {
        "document": None,
        "path": None,
        "message": message,
        "type": err.error_type,
        "line": line,
        "column": column,
    }


def check_documents(
    documents: Sequence[Document], kind: str | None = None, pointer: str | None = None
) -> dict[str, Any]:
    """Check a file's documents: ``ok``, the number of ``documents``, the ``kinds`` they were
    taken for and every error (see :func:`issue_dict`); an empty file is an error."""
    entry: dict[str, Any] = {"ok": True, "documents": len(documents), "errors": []}
    if not documents:
        entry["ok"] = False
        entry["errors"].append(
            {
                "document": None,
                "path": "$",
                "message": "empty file: no document to check",
                "type": "empty_document",
                "line": None,
                "column": None,
            }
        )
    kinds = []
    for document in documents:
        found, issues = check_document(document, kind, pointer)
        kinds.append(found)
        for issue in issues:
            entry["ok"] = False
            entry["errors"].append(issue_dict(issue, len(documents)))
    entry["kinds"] = kinds
    return entry


def error_line(name: str, error: dict[str, Any], style: Style = _plain) -> str:
    r"""``FILE:LINE:COL: [document N:] $.path: message [type]``, as ``kvschema validate`` prints
    it: input escaped and cut (see :func:`~kvschema.reading.text.printable`).

    >>> error_line("a.json", {"type": "load", "message": "not UTF-8 text"})
    'a.json: not UTF-8 text [load]'
    >>> error_line("a\nb.yaml", {"line": 2, "column": 1, "path": "$.x", "type": "t",
    ...                          "message": "bad \x1b[2J" + "x" * 2000})[:40]
    'a\\nb.yaml:2:1: $.x: bad \\x1b[2Jxxxxxxxxx'
    """
    where = printable(name, NAME_LIMIT)
    if error.get("line") is not None:
        where += f":{error['line']}"
        if error.get("column") is not None:
            where += f":{error['column']}"
    parts = [style(where + ":", "1")]
    if error.get("document") is not None:
        parts.append(f"document {error['document']}:")
    if error.get("path") is not None and error["type"] != "load":
        parts.append(f"{printable(error['path'], NAME_LIMIT)}:")
    kind = printable(error["type"], NAME_LIMIT)
    parts.append(f"{printable(error['message'], MESSAGE_LIMIT)} {style('[' + kind + ']', '31')}")
    return " ".join(parts)
