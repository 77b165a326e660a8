"""Guest disk images: a Debian userland from ``mmdebstrap``, keys baked in, as a cached ext4 image.

The image is keyed by the hash of its recipe directory (``vm-images/NAME``) plus this builder's
version, so editing the recipe rebuilds it and nothing else does. At build time two SSH keys are
made: a client key that hmmbench logs in with, and the guest's host key, whose public half the
harness pins; a guest answering with any other host key is refused.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from hmmbench import cache, data, progress
from hmmbench.errors import HarnessError
from hmmbench.kernel import apt

RECIPE_DIR = data.VM_IMAGES
DEFAULT_RECIPE = "debian-bookworm"
BUILDER_VERSION = 1


@dataclass(frozen=True)
class GuestImage:
    """A built image and the keys that go with it."""

    key: str
    rootfs: Path
    client_key: Path
    host_public_key: str  # "ssh-ed25519 AAAA..."
    recipe: str
    cached: bool


def recipe_hash(recipe_dir: Path) -> str:
    parts = []
    for p in sorted(recipe_dir.rglob("*")):
        if p.is_file():
            parts.append((str(p.relative_to(recipe_dir)), cache.file_sha256(p)))
    return cache.stable_hash(parts, BUILDER_VERSION)


def _run(cmd: list[str], what: str, **kw) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    except FileNotFoundError as exc:
        raise HarnessError(f"{cmd[0]} not found", "run ci/setup, which installs what hmmbench needs") from exc
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
        raise HarnessError(f"{what} failed (exit {proc.returncode}): {tail}")
    return proc


class ImageBuilder:
    """Build (or reuse) the image for one recipe."""

    def __init__(self, recipe: str = DEFAULT_RECIPE) -> None:
        self.recipe = recipe
        self.recipe_dir = RECIPE_DIR / recipe
        if not (self.recipe_dir / "recipe.toml").is_file():
            known = ", ".join(p.name for p in RECIPE_DIR.iterdir() if (p / "recipe.toml").is_file())
            raise HarnessError(f"no image recipe {recipe!r}", f"known recipes: {known}")
        self.spec = tomllib.loads((self.recipe_dir / "recipe.toml").read_text())
        self.key = recipe_hash(self.recipe_dir)
        self.dir = cache.cache_root() / "images" / f"{recipe}-{self.key}"

    def cached(self) -> GuestImage | None:
        if (self.dir / "manifest.json").is_file():
            return self._image(cached=True)
        return None

    def build(self, force: bool = False) -> GuestImage:
        if not force and (hit := self.cached()):
            progress.say(f"guest image {self.recipe} from cache ({self.dir})")
            return hit
        if os.geteuid() != 0:
            raise HarnessError("building the guest image needs root (mmdebstrap, mkfs.ext4 -d with owners)",
                               "run as root, as README's first command does")
        with cache.locked(self.dir.with_suffix(".lock")):
            if not force and (hit := self.cached()):
                return hit
            start = time.monotonic()
            with cache.publishing(self.dir) as tmp:
                self._build_into(tmp)
                cache.write_json(tmp / "manifest.json", {
                    "recipe": self.recipe, "key": self.key, "spec": self.spec,
                    "build_seconds": round(time.monotonic() - start, 1),
                })
            progress.say(f"guest image built in {time.monotonic() - start:.0f}s -> {self.dir}")
            return self._image(cached=False)

    def _image(self, cached: bool) -> GuestImage:
        return GuestImage(
            key=self.key, rootfs=self.dir / "rootfs.img", client_key=self.dir / "client_key",
            host_public_key=(self.dir / "host_key.pub").read_text().strip(), recipe=self.recipe,
            cached=cached,
        )

    def _build_into(self, out: Path) -> None:
        spec = self.spec
        staging = Path(tempfile.mkdtemp(prefix="hmmbench-rootfs-", dir=out.parent))
        try:
            mirror, _keyring = apt.debian_archive_uri(apt.read_machine_sources())
            cmd = [
                "mmdebstrap", f"--variant={spec.get('variant', 'minbase')}", "--mode=root", "--format=directory",
                f"--include={','.join(spec['packages'])}",
                "--dpkgopt=path-exclude=/usr/share/man/*", "--dpkgopt=path-exclude=/usr/share/doc/*",
                "--dpkgopt=path-exclude=/usr/share/locale/*",
                spec["suite"], str(staging), mirror,
            ]
            with progress.step(f"mmdebstrap {spec['suite']} {spec.get('variant')} (+{len(spec['packages'])} packages)"):
                _run(cmd, "mmdebstrap")
            self._customize(staging, out)
            size = int(spec.get("size_mib", 2048))
            with progress.step(f"mkfs.ext4 -d ({size} MiB sparse)"):
                img = out / "rootfs.img"
                with open(img, "wb") as fh:
                    fh.truncate(size * 1024 * 1024)
                _run(["mkfs.ext4", "-q", "-F", "-L", "hmmbench-root", "-d", str(staging), str(img)], "mkfs.ext4 -d")
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _customize(self, root: Path, out: Path) -> None:
        """Init, sshd config, keys, hostname: everything the harness relies on inside the guest."""
        shutil.copyfile(self.recipe_dir / "init", root / "sbin" / "hmmbench-init")
        os.chmod(root / "sbin" / "hmmbench-init", 0o755)
        conf_d = root / "etc" / "ssh" / "sshd_config.d"
        conf_d.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.recipe_dir / "sshd_config", conf_d / "hmmbench.conf")
        for old in (root / "etc" / "ssh").glob("ssh_host_*"):
            old.unlink()
        host_key = root / "etc" / "ssh" / "ssh_host_ed25519_key"
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "hmmbench-guest", "-f", str(host_key)],
             "ssh-keygen (host key)")
        shutil.copyfile(host_key.with_suffix(".pub"), out / "host_key.pub")
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "hmmbench-client", "-f", str(out / "client_key")],
             "ssh-keygen (client key)")
        ssh_dir = root / "root" / ".ssh"
        ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        shutil.copyfile(out / "client_key.pub", ssh_dir / "authorized_keys")
        os.chmod(ssh_dir / "authorized_keys", 0o600)
        (root / "etc" / "hostname").write_text(self.spec.get("hostname", "hmmbench") + "\n")
        (root / "etc" / "hosts").write_text("127.0.0.1 localhost\n127.0.1.1 hmmbench\n")
        (root / "etc" / "fstab").write_text("# root is mounted by the kernel (root=/dev/vda rw)\n")
        shutil.rmtree(root / "var" / "cache" / "apt", ignore_errors=True)
        shutil.rmtree(root / "var" / "lib" / "apt" / "lists", ignore_errors=True)
        (root / "var" / "lib" / "apt" / "lists" / "partial").mkdir(parents=True, exist_ok=True)
