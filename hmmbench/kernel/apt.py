"""Download Debian packages through a private apt configuration.

hmmbench never edits the machine's apt sources: it writes its own deb822 file, lists directory and
package cache under the hmmbench cache and points apt-get at them with ``-o Dir::...`` options. The
archive URIs are taken from the machine's own apt configuration (so a local mirror is honoured), with
$HMMBENCH_DEBIAN_MIRROR / $HMMBENCH_DEBIAN_SECURITY_MIRROR as overrides.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from hmmbench import progress
from hmmbench.errors import HarnessError

DEFAULT_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


@dataclass(frozen=True)
class Stanza:
    """One deb822 source: where a suite comes from."""

    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...] = ("main",)
    signed_by: str = DEFAULT_KEYRING

    def render(self) -> str:
        return (
            f"Types: deb\nURIs: {self.uri}\nSuites: {' '.join(self.suites)}\n"
            f"Components: {' '.join(self.components)}\nSigned-By: {self.signed_by}\n"
        )


def parse_machine_sources(texts: list[str]) -> list[Stanza]:
    """Parse deb822 and one-line ``deb`` sources into stanzas (only ``deb`` types are kept)."""
    stanzas: list[Stanza] = []
    for text in texts:
        for block in re.split(r"\n\s*\n", text):
            fields: dict[str, str] = {}
            for line in block.splitlines():
                if line.startswith("#") or ":" not in line:
                    continue
                key, _, value = line.partition(":")
                fields[key.strip().lower()] = value.strip()
            enabled = fields.get("enabled", "yes").lower() not in ("no", "false", "0")  # sources.list(5)
            if enabled and fields.get("uris") and "deb" in fields.get("types", "deb").split():
                stanzas.append(
                    Stanza(
                        uri=fields["uris"].split()[0],
                        suites=tuple(fields.get("suites", "").split()),
                        components=tuple(fields.get("components", "main").split()),
                        signed_by=fields.get("signed-by", DEFAULT_KEYRING),
                    )
                )
        for line in text.splitlines():
            m = re.match(r"^deb\s+(?:\[(?P<opts>[^\]]*)\]\s+)?(?P<uri>\S+)\s+(?P<suite>\S+)\s+(?P<comps>.*)$", line)
            if m:
                signed = re.search(r"signed-by=(\S+)", m.group("opts") or "")
                stanzas.append(
                    Stanza(
                        uri=m.group("uri"),
                        suites=(m.group("suite"),),
                        components=tuple(m.group("comps").split()),
                        signed_by=signed.group(1) if signed else DEFAULT_KEYRING,
                    )
                )
    return stanzas


def read_machine_sources(etc: Path = Path("/etc/apt")) -> list[Stanza]:
    """The machine's own apt sources (read only)."""
    texts = []
    main = etc / "sources.list"
    if main.exists():
        texts.append(main.read_text(errors="replace"))
    parts = etc / "sources.list.d"
    if parts.is_dir():
        for p in sorted(parts.iterdir()):
            if p.suffix in (".list", ".sources"):
                texts.append(p.read_text(errors="replace"))
    return parse_machine_sources(texts)


def debian_archive_uri(stanzas: list[Stanza], security: bool = False) -> tuple[str, str]:
    """(URI, keyring) of the machine's Debian archive, or its security archive."""
    env = os.environ.get("HMMBENCH_DEBIAN_SECURITY_MIRROR" if security else "HMMBENCH_DEBIAN_MIRROR")
    if env:
        return env, DEFAULT_KEYRING
    for s in stanzas:
        is_security = any(suite.endswith("-security") or "/updates" in suite for suite in s.suites)
        if is_security == security and "debian" in s.uri and "main" in s.components:
            return s.uri, s.signed_by
    what = "security archive" if security else "archive"
    raise HarnessError(
        f"no Debian {what} found in the machine's apt sources",
        "set HMMBENCH_DEBIAN_MIRROR (and HMMBENCH_DEBIAN_SECURITY_MIRROR) to a Debian mirror URI",
    )


class PrivateApt:
    """apt-get with its own sources, lists and cache under ``root``; the machine's apt state is untouched."""

    def __init__(self, root: Path, stanzas: list[Stanza]) -> None:
        self.root = root
        self.stanzas = stanzas

    def _options(self) -> list[str]:
        r = self.root
        return [
            "-o", "Dir::Etc::SourceList=/dev/null",
            "-o", f"Dir::Etc::SourceParts={r / 'sources'}",
            "-o", f"Dir::State::Lists={r / 'lists'}",
            "-o", f"Dir::Cache={r / 'cache'}",
            "-o", "APT::Get::List-Cleanup=0",
        ]

    def _prepare(self) -> None:
        (self.root / "sources").mkdir(parents=True, exist_ok=True)
        (self.root / "lists" / "partial").mkdir(parents=True, exist_ok=True)
        (self.root / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
        text = "\n".join(s.render() for s in self.stanzas)
        (self.root / "sources" / "hmmbench.kernel.sources").write_text(text)

    def _run(self, args: list[str], cwd: Path | None = None) -> str:
        cmd = ["apt-get", *self._options(), *args]
        try:
            proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
        except FileNotFoundError as exc:
            raise HarnessError("apt-get not found", "hmmbench fetches kernels from Debian's packages") from exc
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["(no output)"]
            raise HarnessError(f"apt-get {' '.join(args)} failed: {tail[0]}")
        return proc.stdout

    def update(self) -> None:
        self._prepare()
        self._run(["update"])

    def candidate_version(self, package: str) -> str | None:
        """The version apt would download, from the private lists (None if the package is unknown)."""
        proc = subprocess.run(
            ["apt-cache", *self._options(), "policy", package], capture_output=True, text=True
        )
        m = re.search(r"Candidate:\s*(\S+)", proc.stdout)
        if not m or m.group(1) == "(none)":
            return None
        return m.group(1)

    def download(self, package: str, dest: Path) -> Path:
        """Download ``package``'s .deb into ``dest`` and return its path."""
        dest.mkdir(parents=True, exist_ok=True)
        before = set(dest.glob("*.deb"))
        progress.say(f"downloading {package} (private apt configuration in {self.root})")
        self._run(["download", package], cwd=dest)
        debs = sorted(set(dest.glob(f"{package}_*.deb")) - before) or sorted(dest.glob(f"{package}_*.deb"))
        if not debs:
            raise HarnessError(f"apt-get download {package} produced no .deb in {dest}")
        return debs[-1]
