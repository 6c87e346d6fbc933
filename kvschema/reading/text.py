"""Text that input cannot forge: what every printed line does with a piece of input.

Every piece of input a text line shows (file names, layer names, keys, ``model_type``, an
error message quoting a value) goes through :func:`printable`: characters that move the
cursor, colour the terminal, or reorder or hide text (C0 and C1 controls, DEL, the
bidirectional and zero-width format characters, line and paragraph separators, spaces other
than the ASCII one) are written as Python escapes (``\\n``, ``\\x1b``, ``\\u202e``), so a layer
name cannot end a line early, forge an ``ok`` line or hide an error; so are the characters that
make two names look alike (a fullwidth digit, a decomposed accent).  Long input is cut, with a
marker saying how much was left out, so every error line has a bounded length.  JSON output
(``-o json``) escapes by JSON's own rules and is not cut.

>>> printable("layer.0\\nfile.yaml: ok \\x1b[32m\\u202e")
'layer.0\\\\nfile.yaml: ok \\\\x1b[32m\\\\u202e'
>>> printable("x" * 50, 20)
'xxxxxxxxxxxxxxxxxxxx... [30 more characters]'
"""

from __future__ import annotations

import unicodedata

__all__ = ["MESSAGE_LIMIT", "NAME_LIMIT", "printable"]

#: The most characters of a message an error line shows.
MESSAGE_LIMIT = 1000
#: The most characters of a file name or a path an error line shows.
NAME_LIMIT = 300

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(char: str) -> str:
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _confusable(char: str, composed: bool) -> bool:
    """Whether a printable non-ASCII character would pass for another in a name."""
    if not composed and (unicodedata.category(char)[0] == "M" or "\u1100" <= char <= "\u11ff"):
        return True  # a combining mark or Hangul jamo of a text that is not NFC
    return unicodedata.normalize("NFKC", char) != char  # fullwidth, ligatures, superscripts


def printable(text: str, limit: int | None = None) -> str:
    r"""``text`` with every character that could forge or disguise output escaped, cut to ``limit``.

    Escaped are the characters Python's ``str.isprintable`` calls unprintable: the controls
    (``Cc``), format characters (``Cf``: bidirectional overrides and isolates, zero-width
    spaces and joiners, the byte-order mark), line and paragraph separators, spaces other than
    U+0020, surrogates, private-use and unassigned code points.  So are the characters that
    would make two different names look alike: compatibility forms (those NFKC changes, such as
    the fullwidth digit U+FF11), and, in a text that is not in Unicode NFC, its combining marks
    (``e`` followed by U+0301 shows as ``e\u0301``, never as ``é``).

    >>> printable("caf\u00e9 \u200blayer\u00a0x.\uff11 cafe\u0301")
    'café \\u200blayer\\xa0x.\\uff11 cafe\\u0301'
    """
    if (limit is None or len(text) <= limit) and text.isascii() and text.isprintable():
        return text
    composed = text.isascii() or unicodedata.is_normalized("NFC", text)
    end = len(text) if limit is None else limit
    pieces: list[str] = []
    size = used = 0
    for char in text[:end]:
        if not char.isprintable() or (not char.isascii() and _confusable(char, composed)):
            piece = _escape(char)
        else:
            piece = char
        if limit is not None and size + len(piece) > limit:
            break
        pieces.append(piece)
        size += len(piece)
        used += 1
    rest = len(text) - used
    return "".join(pieces) + (f"... [{rest} more characters]" if rest else "")
