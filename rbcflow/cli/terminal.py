"""Text made safe for a terminal: names from the file system are shown, never obeyed.

A file name may hold any byte but ``/`` and NUL: a line break (a forged second result line), an
ANSI escape (``ESC [ 2 J`` clears the screen, ``ESC ] 52 ;`` writes the clipboard, ``ESC ] 8 ;``
forges a link), a bidirectional override that reverses the text after it. :func:`terminal_safe`
shows each such character as a Python-style escape (``\\n``, ``\\x1b``, ``\\u202e``), so the
line printed is one line, in the order written, with nothing for the terminal to interpret.
"""

from __future__ import annotations

import unicodedata

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(ch: str) -> str:
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def terminal_safe(text: object) -> str:
    """``text`` with control, format (bidi), surrogate and unassigned characters escaped.

    Examples
    --------
    >>> print(terminal_safe("a\\nb\\x1b[2Jc\\x1b]8;;http://x\\x07d\\u202e"))
    a\\nb\\x1b[2Jc\\x1b]8;;http://x\\x07d\\u202e
    >>> terminal_safe("BG1017_10s01 été")
    'BG1017_10s01 été'
    """
    s = str(text)
    if s.isprintable():  # the usual case: nothing to escape
        return s
    out = []
    for ch in s:
        if ch == " " or (ch.isprintable() and unicodedata.category(ch) not in ("Cf", "Cs")):
            out.append(ch)
        else:
            out.append(_escape(ch))
    return "".join(out)


__all__ = ["terminal_safe"]
