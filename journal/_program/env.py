"""The environment of a program: ``journal.env(...)``, the ``.env`` file loaded before the
program runs, and the dotenv text ``journal outputs --format env`` writes.

    token = journal.env("PRISMA_SERVICE_TOKEN_WORKSPACE_A", secret=True)   # a Secret
    region = journal.env("REGION", default="us-east-1")

``.env`` next to the program is read before it runs (``--env-file PATH`` names another), as
Alchemy does; a variable already set in the environment wins over the file. Values are never
printed: an error names the variable, the file and the line, not what it holds.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, overload

from .._errors import ProgramError, UsageError
from .._secret import Secret

__all__ = ["ENV_FILE", "env", "format_env", "load_env_file", "program_environment"]

#: the file read next to the program unless ``--env-file`` names another
ENV_FILE = ".env"


@overload
def env(name: str, default: str | None = None, *, secret: Literal[False] = False) -> str: ...


@overload
def env(name: str, default: str | None = None, *, secret: Literal[True]) -> Secret: ...


def env(name: str, default: str | None = None, *, secret: bool = False) -> str | Secret:
    """The environment variable ``name`` (set in the shell, or in ``.env`` next to the
    program); ``default`` when it is unset or empty. ``secret=True`` wraps it in a
    :class:`journal.Secret`, so it is encrypted in the journal and masked when shown.

    Raises ProgramError naming the variable when it is unset or empty and there is no
    default."""
    if not isinstance(name, str) or not name:
        raise ProgramError("journal.env() needs the name of an environment variable")
    value = os.environ.get(name)
    if not value:
        if default is None:
            raise ProgramError(
                f"the environment variable {name} is not set: set it in the environment or "
                f"in {ENV_FILE} next to the program (or choose the file with --env-file), "
                f'or give a default: journal.env("{name}", default=...)'
            )
        value = default
    return Secret(value) if secret else value


# --- reading .env ----------------------------------------------------------------------------


def load_env_file(path: Path) -> dict[str, str]:
    """The variables a dotenv file sets (``KEY=value``, ``export KEY=value``, quotes,
    comments), as python-dotenv reads them, without ``${VAR}`` interpolation.

    Raises UsageError naming the file and line of a line that is not an assignment (the
    line's text is not shown: it may hold a secret)."""
    from dotenv.parser import parse_stream

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"no environment file at {path}: check --env-file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the environment file {path}: {exc}") from exc
    values: dict[str, str] = {}
    for binding in parse_stream(io.StringIO(text)):
        if binding.error:
            raise UsageError(
                f"{path}:{binding.original.line}: not a KEY=value line; fix or remove it "
                "(nothing was run)"
            )
        if binding.key is not None and binding.value is not None:
            values[binding.key] = binding.value
    return values


@contextmanager
def program_environment(program: Path, env_file: Path | None = None) -> Iterator[list[str]]:
    """Within the block, the variables of ``env_file`` (default: ``.env`` next to
    ``program``, if there is one) are set, except those the environment already has; the
    block gets their names. They are removed again when it ends."""
    path = env_file if env_file is not None else program.parent / ENV_FILE
    if env_file is None and not path.is_file():
        yield []
        return
    values = load_env_file(path)
    added = [k for k in values if k not in os.environ]
    for key in added:
        os.environ[key] = values[key]
    try:
        yield added
    finally:
        for key in added:
            if os.environ.get(key) == values[key]:
                del os.environ[key]


# --- writing .env ----------------------------------------------------------------------------

_NAME = re.compile(r"[^A-Za-z0-9_]")


def env_name(key: str) -> str:
    """An export's name as an environment variable: ``connection_string`` ->
    ``CONNECTION_STRING``."""
    name = _NAME.sub("_", key).upper()
    return f"_{name}" if not name or name[0].isdigit() else name


def _quote(text: str) -> str:
    """One dotenv value: single quotes (literal for python-dotenv, Node's dotenv, Docker
    Compose and a POSIX shell) unless it holds a single quote, a backslash or a line break;
    then double quotes with ``\\\\``, ``\\"`` and ``\\n`` escaped."""
    if not any(c in text for c in "'\\\n\r"):
        return f"'{text}'"
    escaped = (
        text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    )
    return f'"{escaped}"'


def format_env(values: Mapping[str, Any]) -> str:
    """``KEY='value'`` lines for plain JSON values (strings as they are; numbers, booleans
    and null as JSON; lists and objects as JSON text). Raises UsageError when two names
    collide once upper-cased."""
    import json

    lines: list[str] = []
    seen: dict[str, str] = {}
    for key, value in values.items():
        name = env_name(key)
        if name in seen:
            raise UsageError(
                f"outputs {seen[name]!r} and {key!r} are both {name} as environment variables: "
                "rename one of them in app.export(...)"
            )
        seen[name] = key
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        lines.append(f"{name}={_quote(text)}")
    return "".join(line + "\n" for line in lines)
