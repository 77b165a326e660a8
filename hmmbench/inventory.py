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

from hmmbench.errors import HarnessError
from hmmbench.remote import RemoteOptions, SshUrl, parse_url

KEYS = {"url", "identity", "known_hosts", "accept_new_host_key"}


@dataclass(frozen=True)
class InventoryTarget:
    url: SshUrl
    options: RemoteOptions


def parse(text: str, where: str = "inventory") -> list[InventoryTarget]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise HarnessError(f"{where}: not valid TOML: {exc}") from exc
    tables = data.get("target")
    if not isinstance(tables, list) or not tables:
        raise HarnessError(f"{where}: no [[target]] tables", 'add one per machine: [[target]] url = "ssh://root@host"')
    out: list[InventoryTarget] = []
    for n, t in enumerate(tables, 1):
        unknown = set(t) - KEYS
        if unknown:
            raise HarnessError(f"{where}: target {n}: unknown key(s) {', '.join(sorted(unknown))}",
                               f"known keys: {', '.join(sorted(KEYS))}")
        if "url" not in t:
            raise HarnessError(f"{where}: target {n} has no url", 'url = "ssh://[user@]host[:port]"')
        opts = RemoteOptions(
            identity=Path(t["identity"]).expanduser() if t.get("identity") else None,
            known_hosts=Path(t["known_hosts"]).expanduser() if t.get("known_hosts") else None,
            accept_new_host_key=bool(t.get("accept_new_host_key", False)),
        )
        out.append(InventoryTarget(parse_url(t["url"]), opts))
    urls = [str(t.url) for t in out]
    dupes = sorted({u for u in urls if urls.count(u) > 1})
    if dupes:
        raise HarnessError(f"{where}: {', '.join(dupes)} listed twice", "one worker per machine")
    return out


def load(path: Path) -> list[InventoryTarget]:
    if not path.is_file():
        raise HarnessError(f"inventory {path} not found")
    return parse(path.read_text(), str(path))
