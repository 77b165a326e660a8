"""Out-of-tree kernel builds, configured from a base config plus fragments, cached by content.

The artifact key is (tree identity, base config, fragment texts, compiler and linker versions): the
same inputs never build twice. The build *directory* is keyed by tree path and config request only,
so successive commits of one tree (a series walk, a bisection) rebuild incrementally in one place.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from hmmbench import cache, data, progress
from hmmbench.errors import ConfigDropped, HarnessError
from hmmbench.kernel import config_inputs, kconfig, uapi_header
from hmmbench.kernel.sources import KernelTree

DEFAULT_FRAGMENT_DIR = data.KERNEL_CONFIG
ARCH = "x86_64"
RECIPE_VERSION = 2  # bump when the build procedure changes in a way that changes the artifacts


class BuildFailed(HarnessError):
    """``make`` failed: a result for a series walk or bisection, an infrastructure error for ``run``."""

    def __init__(self, reason: str, log: Path, errors: list[str]) -> None:
        super().__init__(reason, f"full log: {log}")
        self.log = log
        self.errors = errors


@dataclass(frozen=True)
class BuiltKernel:
    """A built kernel as the rest of hmmbench uses it."""

    key: str
    bzimage: Path
    config_path: Path
    release: str
    banner: str
    tree_identity: str
    config_hash: str
    build_seconds: float
    cached: bool
    warnings: tuple[str, ...] = ()
    uapi: uapi_header.UapiSpec | None = None  # the tree's lib/test_hmm_uapi.h (None: tree without one)

    @property
    def config(self) -> dict[str, str]:
        return kconfig.parse_config(self.config_path.read_text())


BUILD_DIR_PREFIX = ".hmmbench-build-"


def build_dir_for(tree_path: Path, config_request_hash: str) -> Path:
    """Where a tree is built for one config request.

    For trees hmmbench owns (fetched Debian sources, its own git worktrees, all under the cache) the
    build directory is a direct child of the tree: kbuild then uses ``srctree := ..``, every compile
    command is relative, and the same source in another owned tree (the Debian tree and a git import
    of it) hits ccache instead of compiling again. A user's tree is never written to: its build
    directory lives in the cache and kbuild uses absolute paths.
    """
    root = cache.cache_root()
    if tree_path.resolve().is_relative_to(root):
        return tree_path / f"{BUILD_DIR_PREFIX}{config_request_hash[:12]}"
    return root / "kbuild" / cache.stable_hash(str(tree_path), config_request_hash)


def shipped_object_counts() -> dict[str, int]:
    """Make steps of a full build per config request hash, as measured and shipped in the package."""
    try:
        return {k: int(v) for k, v in json.loads(data.KBUILD_OBJECTS.read_text()).get("counts", {}).items()}
    except (OSError, ValueError, AttributeError):
        return {}


def default_fragments() -> list[Path]:
    return sorted(DEFAULT_FRAGMENT_DIR.glob("*.config"))


def toolchain_version() -> str:
    """First line of ``gcc --version`` and ``ld --version``: part of the build key."""
    parts = []
    for tool in ("gcc", "ld"):
        try:
            out = subprocess.run([tool, "--version"], capture_output=True, text=True).stdout
        except FileNotFoundError as exc:
            raise HarnessError(f"{tool} not found", "install build-essential (ci/setup does)") from exc
        parts.append(out.splitlines()[0] if out else tool)
    return " | ".join(parts)


def config_request_hash(fragments: list[kconfig.Fragment], base: str = "tinyconfig") -> str:
    """What a configuration asks for (base, fragment names and texts, arch), whatever the tree."""
    return cache.stable_hash(_base_identity(base), [(f.path.name, f.text) for f in fragments], ARCH)


def _base_identity(base: str) -> str:
    if base in ("tinyconfig", "defconfig", "allnoconfig"):
        return base
    path = Path(base)
    if not path.is_file():
        raise HarnessError(f"--base {base}: not tinyconfig, defconfig, or an existing config file")
    return f"file:{cache.file_sha256(path)[:16]}"


class KernelBuilder:
    """Configure and build one tree with one config request."""

    def __init__(self, tree: KernelTree, fragments: list[Path] | None = None, base: str = "tinyconfig",
                 jobs: int | None = None) -> None:
        self.tree = tree
        self.fragments = kconfig.load_fragments(fragments if fragments is not None else default_fragments())
        self.base = base
        self.jobs = jobs or (os.cpu_count() or 1) + 1
        self.toolchain = toolchain_version()
        self.warnings: list[str] = []
        self.config_request_hash = config_request_hash(self.fragments, base)
        self.key = cache.stable_hash(tree.identity, self.config_request_hash, self.toolchain, RECIPE_VERSION)
        root = cache.cache_root()
        self.artifact_dir = root / "kernels" / self.key
        self.work_dir = build_dir_for(tree.path, self.config_request_hash)
        # Of the last ``make bzImage`` this builder ran: make steps (CC, AS, AR, LD; the progress line's
        # count) and the compiled ones among them (CC, AS; AR steps of directories kbuild always enters,
        # 115 under drivers/media alone, archive nothing).
        self.objects = 0
        self.compiled = 0

    # -------------------------------------------------------------- public

    def cached(self) -> BuiltKernel | None:
        manifest = cache.read_json(self.artifact_dir / "manifest.json")
        if manifest and (self.artifact_dir / "bzImage").is_file():
            return self._from_manifest(manifest, cached=True)
        return None

    def locked(self):
        """The build directory's lock: one configure or build of a tree and config request at a time."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        return cache.locked(self.work_dir.with_suffix(".lock"))

    def build(self, force: bool = False) -> BuiltKernel:
        """Return the cached kernel, or configure, verify and build it."""
        if not force and (hit := self.cached()):
            progress.say(f"kernel {hit.release} from cache ({self.artifact_dir})")
            return hit
        with self.locked():
            if not force and (hit := self.cached()):
                return hit
            start = time.monotonic()
            self.configure()
            self._make(["bzImage"])
            return self._publish(time.monotonic() - start)

    def configure(self) -> Path:
        """Base config + fragments + olddefconfig, then verify; raises ConfigDropped before compiling.

        A build directory configured from the same inputs (config_inputs: the tree's Kconfig files,
        the request, the tools) keeps its ``.config``: the next commit of a series or a bisection
        saves the 12 s of configuring and kbuild's ``syncconfig`` after it."""
        config = self.work_dir / ".config"
        make_cmd = [a for a in self._make_cmd([]) if not a.startswith("-j")]  # -j changes no option
        inputs = config_inputs.fingerprint(self.tree.path, self.config_request_hash, make_cmd)
        if config_inputs.still_valid(self.work_dir, inputs) and not kconfig.verify(config.read_text(),
                                                                                   self.fragments):
            progress.say(f"configuration of {self.tree.label}: unchanged inputs, kept ({config})")
            return config
        config_inputs.forget(self.work_dir)
        with progress.step(f"configuring {self.tree.label} ({self.base} + {len(self.fragments)} fragments)"):
            if self.base in ("tinyconfig", "defconfig", "allnoconfig"):
                self._make([self.base], quiet=True)
            else:
                shutil.copyfile(self.base, config)
            request = kconfig.merged_request(self.fragments)
            config.write_text(kconfig.apply_request(config.read_text(), request))
            self._make(["olddefconfig"], quiet=True)
            final = config.read_text()
            mismatches = kconfig.verify(final, self.fragments)
            if mismatches:
                raise self._dropped(mismatches, final)
            config_inputs.record(self.work_dir, inputs)
        return config

    # -------------------------------------------------------------- internals

    def _dropped(self, mismatches: list[kconfig.Mismatch], final: str) -> ConfigDropped:
        index = kconfig.index_kconfig(self.tree.path)
        values = kconfig.parse_config(final)
        explained = [(m, kconfig.explain(m.option, m.wanted, values, index)) for m in mismatches]
        # Causes first: an option only 'select' sets fell with whatever selected it, so the option that
        # was blocked by a dependency of its own is the one the (one-line) error names.
        explained.sort(key=lambda pair: pair[1].startswith(f"{pair[0].option.removeprefix('CONFIG_')} has no prompt"))
        lines = [f"  {m.option}={m.wanted} (from {m.fragment}) ended as {m.got}: {why}" for m, why in explained]
        detail = "\n".join(lines)
        names = ", ".join(m.option for m in mismatches)
        err = ConfigDropped(
            f"olddefconfig dropped {len(mismatches)} requested option(s): {names}",
            "fix the fragment (add the blocking dependency) and run again; nothing was compiled",
        )
        err.detail = detail  # type: ignore[attr-defined]
        return err

    def _make_cmd(self, targets: list[str]) -> list[str]:
        cmd = ["make", "-C", str(self.tree.path), f"O={self.work_dir}", f"ARCH={ARCH}", f"-j{self.jobs}"]
        if shutil.which("ccache"):
            cmd.append("CC=ccache gcc")
        return cmd + targets

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["KBUILD_BUILD_USER"] = "hmmbench"
        env["KBUILD_BUILD_HOST"] = f"k{self.key[:12]}"
        env.setdefault("CCACHE_DIR", str(cache.cache_root() / "ccache"))
        env.setdefault("CCACHE_BASEDIR", "/")
        env["LC_ALL"] = "C"
        return env

    def _make(self, targets: list[str], quiet: bool = False) -> None:
        log_path = self.work_dir / "build.log"
        cmd = self._make_cmd(targets)
        expected = self._expected_objects() if targets == ["bzImage"] else None
        ticker = progress.Ticker(f"make {' '.join(targets)}", every=15.0, expected=expected)
        errors: list[str] = []
        warnings: list[str] = []
        compiled = 0
        with open(log_path, "a") as log:
            log.write(f"\n$ {' '.join(cmd)}\n")
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                    env=self._env(), errors="replace")
            assert proc.stdout is not None
            try:
                for line in proc.stdout:
                    log.write(line)
                    if m := re.match(r"\s+(CC|AS|LD|AR)\s", line):
                        ticker.tick(line.split()[-1])
                        compiled += m.group(1) in ("CC", "AS")
                    if re.search(r"\berror\b|Error \d", line):
                        errors.append(line.rstrip())
                    elif re.search(r":\d+:\d+: warning:", line):
                        warnings.append(line.rstrip())
                rc = proc.wait()
            except BaseException:
                proc.kill()
                proc.wait()
                raise
        if rc != 0:
            head = errors[0] if errors else f"exit status {rc}"
            raise BuildFailed(f"make {' '.join(targets)} failed for {self.tree.label}: {head}", log_path, errors)
        self.warnings.extend(warnings)
        if targets == ["bzImage"]:
            self.objects, self.compiled = ticker.count, compiled
        if not quiet and ticker.count:
            progress.say(f"make {' '.join(targets)}: {ticker.count} objects in {time.monotonic() - ticker.start:.0f}s")

    def _counts_file(self) -> Path:
        return cache.cache_root() / "kbuild-objects.json"

    def _expected_objects(self) -> int | None:
        """How many objects a full build of this configuration made last time (any tree), for the
        progress line's total and time left; on a machine that has not built it yet, the count shipped
        with hmmbench for the default configuration (data.KBUILD_OBJECTS). An incremental build ends
        early: fine, it is faster."""
        known = cache.read_json(self._counts_file()) or {}
        if self.config_request_hash in known:
            return known[self.config_request_hash]
        return shipped_object_counts().get(self.config_request_hash)

    def _remember_objects(self) -> None:
        """Remember a full build's object count (a build that compiled at least as many as remembered)."""
        known = cache.read_json(self._counts_file()) or {}
        if self.objects and self.objects >= known.get(self.config_request_hash, 0):
            known[self.config_request_hash] = self.objects
            try:
                cache.write_json(self._counts_file(), known)
            except OSError:
                pass

    def _publish(self, seconds: float) -> BuiltKernel:
        release = (self.work_dir / "include" / "config" / "kernel.release").read_text().strip()
        banner = read_banner(self.work_dir / "vmlinux")
        config_text = (self.work_dir / ".config").read_text()
        with cache.publishing(self.artifact_dir) as tmp:
            shutil.copyfile(self.work_dir / "arch" / "x86" / "boot" / "bzImage", tmp / "bzImage")
            (tmp / "config").write_text(config_text)
            manifest = {
                "key": self.key,
                "release": release,
                "banner": banner,
                "tree_identity": self.tree.identity,
                "tree_path": str(self.tree.path),
                "tree_label": self.tree.label,
                "config_hash": cache.stable_hash(config_text),
                "config_request_hash": self.config_request_hash,
                "fragments": [f.path.name for f in self.fragments],
                "base": self.base,
                "toolchain": self.toolchain,
                "build_seconds": round(seconds, 1),
                "objects": self.objects,
                "compiled_objects": self.compiled,
                "work_dir": str(self.work_dir),
                "warnings": self.warnings,
            }
            cache.write_json(tmp / "manifest.json", manifest)
        self._remember_objects()
        progress.say(f"built {release} in {seconds:.0f}s -> {self.artifact_dir}")
        return self._from_manifest(manifest, cached=False)

    def _uapi(self, release: str) -> uapi_header.UapiSpec | None:
        """The tree's test_hmm uapi, stored beside the kernel. An entry built before hmmbench stored it
        gets it now from the tree: the entry's key holds the tree identity, so the tree is the same."""
        stored = cache.read_json(self.artifact_dir / "uapi.json")
        if stored is not None:
            return uapi_header.UapiSpec.from_dict(stored) if stored.get("requests") else None
        try:
            spec = uapi_header.from_tree(self.tree.path, release, self.tree.label)
        except uapi_header.HeaderError as exc:
            raise HarnessError(f"{self.tree.path / uapi_header.HEADER}: {exc}",
                               "a tree whose test_hmm uapi hmmbench cannot read; check the header") from exc
        try:
            cache.write_json(self.artifact_dir / "uapi.json", spec.to_dict() if spec else {})
        except OSError:
            pass
        return spec

    def _from_manifest(self, m: dict, cached: bool) -> BuiltKernel:
        return BuiltKernel(
            key=m["key"], bzimage=self.artifact_dir / "bzImage", config_path=self.artifact_dir / "config",
            release=m["release"], banner=m["banner"], tree_identity=m["tree_identity"],
            config_hash=m["config_hash"], build_seconds=m["build_seconds"], cached=cached,
            warnings=tuple(m.get("warnings", [])), uapi=self._uapi(m["release"]),
        )


def load_built(artifact_dir: Path, cached: bool = True) -> BuiltKernel:
    """A kernel in the cache by its artifact directory (what another process of the run built or found):
    no tree to resolve, no worktree to check out."""
    m = cache.read_json(artifact_dir / "manifest.json")
    if not m or not (artifact_dir / "bzImage").is_file():
        raise HarnessError(f"no built kernel in {artifact_dir}", "build it with: hmmbench kernel build")
    stored = cache.read_json(artifact_dir / "uapi.json")
    spec = uapi_header.UapiSpec.from_dict(stored) if stored and stored.get("requests") else None
    return BuiltKernel(key=m["key"], bzimage=artifact_dir / "bzImage", config_path=artifact_dir / "config",
                       release=m["release"], banner=m["banner"], tree_identity=m["tree_identity"],
                       config_hash=m["config_hash"], build_seconds=m["build_seconds"], cached=cached,
                       warnings=tuple(m.get("warnings", [])), uapi=spec)


def read_banner(vmlinux: Path) -> str:
    """The kernel's ``linux_banner`` (what /proc/version prints), found in the uncompressed vmlinux.

    vmlinux holds more than one candidate: since 6.1 a weak ``linux_banner`` in init/version.c whose
    UTS_VERSION lacks the build number, and the real one (init/version-timestamp.c) with ``#<n>`` and
    the build date; the candidate with a build number wins.
    """
    lines = [m.group(0).decode(errors="replace").strip()
             for m in re.finditer(rb"Linux version [^\n%\x00]+", vmlinux.read_bytes())]
    full = [line for line in lines if re.search(r"#\d+", line)]
    if not full:
        raise HarnessError(f"no linux_banner with a build number in {vmlinux} ({len(lines)} candidates)")
    return max(full, key=len)
