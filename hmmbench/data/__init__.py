"""hmmbench's data, shipped inside the package so that ``pip install .`` (not only ``-e``) has it.

* ``kernel-config/``: the Kconfig fragments merged onto the config base of every kernel hmmbench builds;
* ``vm-images/``: the guest image recipes (mmdebstrap), one directory each;
* ``bench_c/``: the C twin of the agent's hot loop, compiled by ``hmmbench bench``;
* ``kbuild-objects.json``: how many make steps a full build of the default configuration takes, measured
  (config request hash -> count), so that a fresh machine's first build has a total and a time left.

The repository's top-level ``kernel-config`` and ``vm-images`` are symbolic links to these directories,
where a user of a checkout looks for them.
"""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).resolve().parent
KERNEL_CONFIG = DATA / "kernel-config"
VM_IMAGES = DATA / "vm-images"
BENCH_C = DATA / "bench_c"
KBUILD_OBJECTS = DATA / "kbuild-objects.json"
