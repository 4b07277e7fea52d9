"""Secrets out of everything the project writes: manifests, configs, logs, results and reports.

A key counts as secret when, in snake case, it is `api_key`, `key`, `token`, ends in `_key` or
`_token` (`max_tokens` does not: it ends in `_tokens`), or holds `secret`, `password`,
`passwd`, `credential` or `authorization`. Its value is written as REDACTED. Credentials inside
a URL (`https://user:pass@host`) are redacted in any string value.
"""

from __future__ import annotations

import re
from typing import Any

REDACTED = "<redacted>"

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SECRET_NAME = re.compile(r"(^|_)(key|token)$|secret|password|passwd|credential|authorization")
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s:]+:[^/@\s]+@")


def is_secret(name: str) -> bool:
    """Whether a key or argument named `name` holds a secret (see the module docstring)."""
    snake = _CAMEL.sub("_", str(name)).lower().replace("-", "_").strip("_")
    return bool(_SECRET_NAME.search(snake))


def redact(obj: Any) -> Any:
    """A copy of `obj` (dicts, lists, tuples, strings) with every secret value replaced by REDACTED."""
    if isinstance(obj, dict):
        return {k: (REDACTED if is_secret(k) and v not in (None, "") else redact(v)) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(redact(v) for v in obj)
    if isinstance(obj, str):
        return _URL_CREDENTIALS.sub(lambda m: f"{m['scheme']}{REDACTED}@", obj)
    return obj


def redact_text(text: str, secrets: list[str]) -> str:
    """`text` with each of the given secret values (longer than 3 characters) replaced by REDACTED."""
    for s in sorted({s for s in secrets if isinstance(s, str) and len(s) > 3}, key=len, reverse=True):
        text = text.replace(s, REDACTED)
    return text


def secret_values(obj: Any) -> list[str]:
    """Every string value stored under a secret key anywhere in `obj`."""
    out: list[str] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if is_secret(k) and isinstance(v, str):
                out.append(v)
            else:
                out += secret_values(v)
    elif isinstance(obj, list | tuple):
        for v in obj:
            out += secret_values(v)
    return out
