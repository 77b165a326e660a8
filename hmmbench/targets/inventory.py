"""``--inventory FILE``: machines reached over SSH that run one suite together, one worker each.

A TOML file, one ``[[target]]`` table per machine::

    [[target]]
    url = "ssh://root@lab-a"              # required
    identity = "~/.ssh/lab"               # optional, as --identity
    known_hosts = "~/.ssh/known_hosts"    # optional, as --known-hosts
    accept_new_host_key = false           # optional, as --accept-new-host-key

Every machine must run the same kernel release (one run judges one kernel); the harness checks that
before the first case.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from hmmbench.errors import InputError
from hmmbench.targets.remote import RemoteOptions, SshUrl, parse_url

KEYS = {"url", "identity", "known_hosts", "accept_new_host_key"}


@dataclass(frozen=True)
class InventoryTarget:
    url: SshUrl
    options: RemoteOptions


_TYPES: dict[str, type] = {"url": str, "identity": str, "known_hosts": str, "accept_new_host_key": bool}
_TOML_NAMES = {int: "an integer", float: "a float", bool: "a boolean", str: "a string", list: "an array",
               dict: "a table"}
_EXAMPLE = '[[target]] url = "ssh://root@host"'


def _typed(t: dict, key: str, where: str) -> object:
    """``t[key]`` if it has the type the inventory documents (a TOML ``1`` is not a URL, ``"yes"`` not a bool)."""
    value = t.get(key)
    want = _TYPES[key]
    if value is not None and not isinstance(value, want):
        shown = "true or false" if want is bool else "a quoted string"
        got = _TOML_NAMES.get(type(value), f"a {type(value).__name__}")
        raise InputError(f"{where}: {key} = {value!r} is {got}", f"{key} takes {shown}")
    return value


def parse(text: str, where: str = "inventory") -> list[InventoryTarget]:
    """Syntax and types: every ``[[target]]`` has a string ``url`` that parses as ssh://, and only the
    documented keys with their documented types. (Whether the files named exist is the caller's check.)"""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{where}: not valid TOML: {exc}", f"one table per machine: {_EXAMPLE}") from exc
    extra = sorted(set(data) - {"target"})
    if extra:
        raise InputError(f"{where}: unknown top-level key(s) {', '.join(extra)}",
                         f"the file holds only [[target]] tables: {_EXAMPLE}")
    tables = data.get("target")
    if isinstance(tables, dict):
        raise InputError(f"{where}: [target] is one table; targets are an array of tables", "write [[target]]")
    if not isinstance(tables, list) or not tables:
        raise InputError(f"{where}: no [[target]] tables", f"add one per machine: {_EXAMPLE}")
    out: list[InventoryTarget] = []
    for n, t in enumerate(tables, 1):
        at = f"{where}: target {n}"
        unknown = set(t) - KEYS
        if unknown:
            raise InputError(f"{at}: unknown key(s) {', '.join(sorted(unknown))}",
                             f"known keys: {', '.join(sorted(KEYS))}")
        if "url" not in t:
            raise InputError(f"{at} has no url", 'url = "ssh://[user@]host[:port]"')
        url = parse_url(_typed(t, "url", at), f"{at}: url")
        identity, known_hosts = _typed(t, "identity", at), _typed(t, "known_hosts", at)
        opts = RemoteOptions(
            identity=Path(identity).expanduser() if identity else None,
            known_hosts=Path(known_hosts).expanduser() if known_hosts else None,
            accept_new_host_key=bool(_typed(t, "accept_new_host_key", at)),
        )
        out.append(InventoryTarget(url, opts))
    urls = [str(t.url) for t in out]
    dupes = sorted({u for u in urls if urls.count(u) > 1})
    if dupes:
        raise InputError(f"{where}: {', '.join(dupes)} listed twice", "one worker per machine")
    return out


def load(path: Path) -> list[InventoryTarget]:
    if path.is_dir():
        raise InputError(f"inventory {path} is a directory", "pass the TOML file itself")
    if not path.is_file():
        raise InputError(f"inventory {path} not found", f"write a TOML file with one {_EXAMPLE} per machine")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"inventory {path} cannot be read: {exc}", "pass a readable UTF-8 TOML file") from exc
    return parse(text, str(path))
