"""What a verdict rule may know about the target besides the case's own observations.

Rules decide by what the target *has* (its configuration, THP mode, CPUs), never by guessing from a
version number where the feature itself can be seen; the release is there for the few facts that only a
version gives (the swap-type table, which uapi a kernel has). Built from the agent's ``info`` record
(results.json's ``target_info`` and ``target_config``), so ``hmmbench judge`` gives rules the same facts.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class KernelConfig:
    """The target kernel's configuration (from /proc/config.gz), or unknown.

    Rules consult it when the guest *tried* something and the kernel said no (THP not formed, hugetlb
    mmap refused, uffd-wp refused, swapon failed): with the option set that is a FAIL, without it the
    case legitimately could not run (SKIP), and with no configuration at all the rule cannot tell and
    must say so (ERROR) rather than guess.
    """

    options: dict[str, str] | None

    @property
    def known(self) -> bool:
        return self.options is not None

    def enabled(self, *names: str) -> bool | None:
        """True if every option is =y (or =m), False if one is not set, None if the configuration is unknown."""
        if self.options is None:
            return None
        return all(self.options.get(n) in ("y", "m") for n in names)

    def describe(self, *names: str) -> str:
        if self.options is None:
            return "kernel configuration unknown (no /proc/config.gz on the target)"
        return ", ".join(f"{n}={self.options[n]}" if n in self.options else f"{n} is not set" for n in names)


@dataclass(frozen=True)
class TargetFacts:
    """The target as the rules see it."""

    release: str = ""
    config: KernelConfig = field(default_factory=lambda: KernelConfig(None))
    thp_enabled: str | None = None
    nproc: int | None = None
    numa_nodes: int | None = None
    devices: tuple[str, ...] = ()

    @classmethod
    def from_info(cls, info: dict, config: dict[str, str] | None = None) -> TargetFacts:
        """From the agent's info record; ``config`` where it is kept apart from it (results.json)."""
        options = config if config is not None else info.get("config")
        return cls(release=info.get("release") or "", config=KernelConfig(options),
                   thp_enabled=info.get("thp_enabled"), nproc=info.get("nproc"), numa_nodes=info.get("numa_nodes"),
                   devices=tuple(info.get("devices") or ()))
