""".config handling, Kconfig expressions, and explain() on a synthetic tree that mimics the real traps."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from hmmbench.kernel import kconfig
from hmmbench.kernel.kconfig import ExprEvaluator, Fragment, apply_request, explain, index_kconfig, parse_config, verify

# ------------------------------------------------------------------ .config files and fragments

BASE = """\
#
# Automatically generated file; DO NOT EDIT.
# Linux/x86 6.12.117 Kernel Configuration
#
CONFIG_CC_VERSION_TEXT="gcc (Debian 12.2.0-14) 12.2.0"
CONFIG_MMU=y
CONFIG_NR_CPUS=64
CONFIG_TRANSPARENT_HUGEPAGE=y
# CONFIG_DEVICE_PRIVATE is not set
CONFIG_TEST_LKM=m
# CONFIG_RUNTIME_TESTING_MENU is not set
"""


def test_parse_config() -> None:
    v = parse_config(BASE)
    assert v["CONFIG_MMU"] == "y"
    assert v["CONFIG_NR_CPUS"] == "64"
    assert v["CONFIG_TEST_LKM"] == "m"
    assert v["CONFIG_DEVICE_PRIVATE"] == "n"
    assert v["CONFIG_CC_VERSION_TEXT"] == '"gcc (Debian 12.2.0-14) 12.2.0"'
    assert "CONFIG_TEST_HMM" not in v
    # Comment lines that are not "is not set" are ignored.
    assert not any(k.startswith("#") for k in v)
    assert len(v) == 7


def test_render_option() -> None:
    assert kconfig.render_option("CONFIG_TEST_HMM", "m") == "CONFIG_TEST_HMM=m"
    assert kconfig.render_option("CONFIG_DEVICE_PRIVATE", "n") == "# CONFIG_DEVICE_PRIVATE is not set"
    assert kconfig.render_option("CONFIG_CMDLINE", '"console=ttyS0"') == 'CONFIG_CMDLINE="console=ttyS0"'


def test_apply_request_replaces_in_place_and_appends() -> None:
    out = apply_request(BASE, {"CONFIG_DEVICE_PRIVATE": "y", "CONFIG_MMU": "n", "CONFIG_TEST_HMM": "m"})
    lines = out.splitlines()
    # Replaced where they were, not duplicated.
    assert lines.index("CONFIG_DEVICE_PRIVATE=y") == BASE.splitlines().index("# CONFIG_DEVICE_PRIVATE is not set")
    assert lines.index("# CONFIG_MMU is not set") == BASE.splitlines().index("CONFIG_MMU=y")
    assert "CONFIG_MMU=y" not in lines
    assert lines[-1] == "CONFIG_TEST_HMM=m"
    assert out.endswith("\n")
    v = parse_config(out)
    assert v["CONFIG_DEVICE_PRIVATE"] == "y" and v["CONFIG_MMU"] == "n" and v["CONFIG_TEST_HMM"] == "m"
    assert v["CONFIG_NR_CPUS"] == "64"


def test_merged_request_later_fragment_wins(tmp_path: Path) -> None:
    a = tmp_path / "a.config"
    b = tmp_path / "b.config"
    a.write_text("CONFIG_TEST_HMM=y\nCONFIG_DEVICE_PRIVATE=y\n")
    b.write_text("CONFIG_TEST_HMM=m\n")
    frags = kconfig.load_fragments([a, b])
    assert kconfig.merged_request(frags) == {"CONFIG_TEST_HMM": "m", "CONFIG_DEVICE_PRIVATE": "y"}


def test_verify_names_dropped_options_and_their_fragment() -> None:
    frags = [
        Fragment(Path("/frags/hmm.config"), "CONFIG_TEST_HMM=m\nCONFIG_TRANSPARENT_HUGEPAGE=y\n"),
        Fragment(Path("/frags/debug.config"), "CONFIG_DEVICE_PRIVATE=y\n# CONFIG_TEST_LKM is not set\n"),
    ]
    bad = {m.option: m for m in verify(BASE, frags)}
    assert set(bad) == {"CONFIG_TEST_HMM", "CONFIG_DEVICE_PRIVATE", "CONFIG_TEST_LKM"}
    assert bad["CONFIG_TEST_HMM"].got == "<absent>"
    assert bad["CONFIG_TEST_HMM"].wanted == "m"
    assert bad["CONFIG_TEST_HMM"].fragment == "hmm.config"
    assert bad["CONFIG_DEVICE_PRIVATE"].got == "n"
    assert bad["CONFIG_DEVICE_PRIVATE"].fragment == "debug.config"
    assert bad["CONFIG_TEST_LKM"].got == "m" and bad["CONFIG_TEST_LKM"].wanted == "n"


def test_verify_absent_counts_as_n() -> None:
    frags = [Fragment(Path("x.config"), "# CONFIG_TEST_HMM is not set\n")]
    assert verify(BASE, frags) == []


# ------------------------------------------------------------------ expressions

VALUES = {
    "CONFIG_Y": "y", "CONFIG_M": "m", "CONFIG_N": "n", "CONFIG_NR_CPUS": "64", "CONFIG_PHYS_SHIFT": "0x2c",
    "CONFIG_SRC": '""', "CONFIG_NAME": '"hmm"',
}


@pytest.mark.parametrize(("expr", "value"), [
    ("Y", 2), ("M", 1), ("N", 0), ("UNDEFINED", 0),
    ("y", 2), ("m", 1), ("n", 0),
    ("Y && M", 1), ("M && N", 0), ("Y && Y", 2),
    ("M || N", 1), ("N || Y", 2), ("N || UNDEFINED", 0),
    ("!Y", 0), ("!M", 1), ("!N", 2), ("!!M", 1),
    ("!(Y && N)", 2), ("(M || Y) && !N", 2), ("N || M && Y", 1), ("(N || M) && N", 0),
    ("Y = y", 2), ("M = m", 2), ("M = y", 0), ("M != y", 2), ("UNDEFINED = n", 2), ("UNDEFINED != n", 0),
    ("Y = M", 0), ("Y != M", 2),
    ("NR_CPUS > 8", 2), ("NR_CPUS < 8", 0), ("NR_CPUS >= 64", 2), ("NR_CPUS <= 63", 0), ("NR_CPUS = 64", 2),
    ("NR_CPUS > 100", 0),  # numeric, not string, comparison ("64" > "100" as strings)
    ("PHYS_SHIFT = 44", 2), ("PHYS_SHIFT > 0x10", 2),
    ('SRC != ""', 0), ('SRC = ""', 2), ('NAME = "hmm"', 2), ('NAME != "hmm"', 0),
    ("X86_64 || (M && !(NR_CPUS < 2))", 1),
])
def test_expr_evaluator(expr: str, value: int) -> None:
    assert ExprEvaluator(VALUES).evaluate(expr) == value


def test_expr_evaluator_rejects_trailing_tokens() -> None:
    with pytest.raises(ValueError):
        ExprEvaluator(VALUES).evaluate("Y Y")


def test_expr_symbols() -> None:
    assert kconfig.expr_symbols('A && !(B = y) || C != "x" || 64 > D || m') == ["A", "B", "C", "D"]


# ------------------------------------------------------------------ a synthetic Kconfig tree

TOP = """\
# SPDX-License-Identifier: GPL-2.0
mainmenu "Linux/$(ARCH) $(KERNELVERSION) Kernel Configuration"

source "scripts/Kconfig.include"

source "mm/Kconfig"

source "lib/Kconfig.debug"

source "arch/$(SRCARCH)/Kconfig"

source "$(UNKNOWN_VARIABLE)/Kconfig"
"""

MM = """\
config MMU
	def_bool y

config TRANSPARENT_HUGEPAGE
	bool "Transparent Hugepage Support"
	depends on MMU

config ZONE_DEVICE
	bool "Device memory (pmem, HMM, etc...) hotplug support"
	depends on MMU

config DEVICE_PRIVATE
	bool "Unaddressable device memory (GPU memory, ...)"
	depends on ZONE_DEVICE
	select DEV_PAGEMAP_OPS

config HMM_MIRROR
	bool

config ARCH_SUPPORTS_MEMORY_FAILURE
	bool

config MEMORY_FAILURE
	depends on MMU
	depends on ARCH_SUPPORTS_MEMORY_FAILURE
	bool "Enable recovery from hardware memory errors"
	select MEMORY_ISOLATION
	help
	  Enables code to recover from some memory failures on systems
	  with MCA recovery.

menu "Data Access Monitoring"
	depends on MMU && DEBUG_KERNEL

config DAMON
	bool "DAMON: Data Access Monitoring Framework"
	help
	  This builds a framework that allows kernel subsystems to monitor
	  access frequency of each memory region.

endmenu

choice
	prompt "Memory model"
	depends on SELECT_MEMORY_MODEL
	default SPARSEMEM_MANUAL

config FLATMEM_MANUAL
	bool "Flat Memory"

config SPARSEMEM_MANUAL
	bool "Sparse Memory"

endchoice

config AFTER_BLOCKS
	bool "After the menu and the choice"
"""  # noqa: E101 - Kconfig indents with a tab, help text with tab + 2 spaces

DEBUG = """\
config DEBUG_KERNEL
	bool "Kernel debugging"
	help
	  Say Y here if you are developing drivers or trying to debug and
	  identify kernel problems.

menuconfig RUNTIME_TESTING_MENU
	bool "Runtime Testing"
	default y

if RUNTIME_TESTING_MENU

config TEST_LKM
	tristate "Test module loading with 'hello world' module"
	depends on m

config TEST_HMM
	tristate "Test HMM (Heterogeneous Memory Management)"
	depends on TRANSPARENT_HUGEPAGE
	depends on DEVICE_PRIVATE
	select HMM_MIRROR
	select MMU_NOTIFIER
	help
	  This is a pseudo device driver solely for testing HMM.
	  A help text may quote Kconfig syntax, which must not be parsed:

	  config FOO
	  	bool "not a real symbol"
	  	depends on NOT_A_DEPENDENCY
	  if BAR
	  endif
	  source "not/a/Kconfig"

	  If unsure, say N.

config TEST_FREE_PAGES
	tristate "Test freeing pages"

endif # RUNTIME_TESTING_MENU

config AFTER_TESTS
	bool "Outside the runtime testing menu"
"""  # noqa: E101

X86 = """\
config X86_64
	def_bool y

config X86_MCE
	bool "Machine Check / overheating reporting"
	default y

config X86_SUPPORTS_MEMORY_FAILURE
	def_bool y
	# MCE code calls memory_failure():
	depends on X86_MCE
	depends on X86_64 || !SPARSEMEM
	select ARCH_SUPPORTS_MEMORY_FAILURE

config X86_SELECT_IF
	def_bool y
	select HMM_MIRROR if TRANSPARENT_HUGEPAGE
"""


def _line_of(text: str, needle: str) -> int:
    return text.splitlines().index(needle) + 1


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("linux")
    files = {"Kconfig": TOP, "mm/Kconfig": MM, "lib/Kconfig.debug": DEBUG, "arch/x86/Kconfig": X86,
             "scripts/Kconfig.include": "# macros only\n",
             "arch/arm64/Kconfig": "config ARM64\n\tdef_bool y\n"}
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


@pytest.fixture(scope="module")
def index(tree: Path) -> kconfig.KconfigIndex:
    return index_kconfig(tree)


IF_AT = f"lib/Kconfig.debug:{_line_of(DEBUG, 'if RUNTIME_TESTING_MENU')}"


def test_index_follows_sources_including_srcarch(index: kconfig.KconfigIndex) -> None:
    assert {"MMU", "DEBUG_KERNEL", "TEST_HMM", "X86_MCE"} <= set(index.definitions)
    assert "ARM64" not in index.definitions  # only arch/x86 is read


def test_help_text_is_not_parsed(index: kconfig.KconfigIndex) -> None:
    assert "FOO" not in index.definitions
    (hmm,) = index.definitions["TEST_HMM"]
    assert hmm.depends == ["TRANSPARENT_HUGEPAGE", "DEVICE_PRIVATE"]
    # The 'if BAR' / 'endif' inside the help did not push or pop anything.
    (after,) = index.definitions["TEST_FREE_PAGES"]
    assert after.enclosing == [("if", f"RUNTIME_TESTING_MENU@{IF_AT}")]
    (outside,) = index.definitions["AFTER_TESTS"]
    assert outside.enclosing == []


def test_definition_location_prompt_and_enclosing_if(index: kconfig.KconfigIndex) -> None:
    (hmm,) = index.definitions["TEST_HMM"]
    assert hmm.location == f"lib/Kconfig.debug:{_line_of(DEBUG, 'config TEST_HMM')}"
    assert hmm.has_prompt
    assert hmm.enclosing == [("if", f"RUNTIME_TESTING_MENU@{IF_AT}")]
    (menu,) = index.definitions["RUNTIME_TESTING_MENU"]
    assert menu.has_prompt and menu.enclosing == []


def test_prompts_and_selects(index: kconfig.KconfigIndex) -> None:
    assert not index.definitions["HMM_MIRROR"][0].has_prompt
    assert not index.definitions["ARCH_SUPPORTS_MEMORY_FAILURE"][0].has_prompt
    assert not index.definitions["X86_SUPPORTS_MEMORY_FAILURE"][0].has_prompt  # def_bool: no prompt
    assert index.definitions["MEMORY_FAILURE"][0].has_prompt
    assert index.selected_by["ARCH_SUPPORTS_MEMORY_FAILURE"] == [("X86_SUPPORTS_MEMORY_FAILURE", "y")]
    assert ("TEST_HMM", "y") in index.selected_by["HMM_MIRROR"]
    assert ("X86_SELECT_IF", "TRANSPARENT_HUGEPAGE") in index.selected_by["HMM_MIRROR"]


def test_menu_and_choice_conditions(index: kconfig.KconfigIndex) -> None:
    menu_line = _line_of(MM, 'menu "Data Access Monitoring"')
    menu_at = f"mm/Kconfig:{menu_line}"
    choice_at = f"mm/Kconfig:{_line_of(MM, 'choice')}"
    assert index.definitions["DAMON"][0].enclosing == [("menu", f"MMU && DEBUG_KERNEL@{menu_at}")]
    assert index.definitions["FLATMEM_MANUAL"][0].enclosing == [("choice", f"SELECT_MEMORY_MODEL@{choice_at}")]
    assert index.definitions["AFTER_BLOCKS"][0].enclosing == []


def test_explain_test_hmm_blocked_by_runtime_testing_menu(index: kconfig.KconfigIndex) -> None:
    values = {"CONFIG_MMU": "y", "CONFIG_TRANSPARENT_HUGEPAGE": "y", "CONFIG_ZONE_DEVICE": "y",
              "CONFIG_DEVICE_PRIVATE": "y", "CONFIG_RUNTIME_TESTING_MENU": "n"}
    why = explain("CONFIG_TEST_HMM", "m", values, index)
    assert "RUNTIME_TESTING_MENU" in why
    assert IF_AT in why
    assert "DEVICE_PRIVATE" not in why and "TRANSPARENT_HUGEPAGE" not in why


def test_explain_test_hmm_blocked_by_device_private(index: kconfig.KconfigIndex) -> None:
    values = {"CONFIG_MMU": "y", "CONFIG_TRANSPARENT_HUGEPAGE": "y", "CONFIG_RUNTIME_TESTING_MENU": "y"}
    why = explain("CONFIG_TEST_HMM", "m", values, index)
    assert "depends on DEVICE_PRIVATE" in why
    assert f"lib/Kconfig.debug:{_line_of(DEBUG, 'config TEST_HMM')}" in why
    assert "RUNTIME_TESTING_MENU" not in why and "TRANSPARENT_HUGEPAGE" not in why
    # One level down: DEVICE_PRIVATE itself needs ZONE_DEVICE.
    assert "ZONE_DEVICE" in why


def test_explain_satisfied(index: kconfig.KconfigIndex) -> None:
    values = {"CONFIG_MMU": "y", "CONFIG_TRANSPARENT_HUGEPAGE": "y", "CONFIG_ZONE_DEVICE": "y",
              "CONFIG_DEVICE_PRIVATE": "y", "CONFIG_RUNTIME_TESTING_MENU": "y"}
    assert "look satisfied" in explain("CONFIG_TEST_HMM", "m", values, index)


def test_explain_tristate_capped_at_m(index: kconfig.KconfigIndex) -> None:
    why = explain("CONFIG_TEST_LKM", "y", {"CONFIG_RUNTIME_TESTING_MENU": "y"}, index)
    assert "depends on m" in why and " is m" in why
    assert "look satisfied" in explain("CONFIG_TEST_LKM", "m", {"CONFIG_RUNTIME_TESTING_MENU": "y"}, index)


def test_explain_select_only_symbol_names_the_root_cause(index: kconfig.KconfigIndex) -> None:
    values = {"CONFIG_MMU": "y", "CONFIG_X86_64": "y", "CONFIG_X86_MCE": "n"}
    why = explain("CONFIG_MEMORY_FAILURE", "y", values, index)
    assert "ARCH_SUPPORTS_MEMORY_FAILURE" in why
    assert "only 'select' sets it" in why
    assert "X86_SUPPORTS_MEMORY_FAILURE" in why
    assert "X86_MCE" in why
    # 'depends on' reasons carry the location of the symbol's definition.
    def_line = _line_of(X86, "config X86_SUPPORTS_MEMORY_FAILURE")
    assert f"'depends on X86_MCE' (arch/x86/Kconfig:{def_line}) is n (X86_MCE=n)" in why


def test_explain_menu_dependency(index: kconfig.KconfigIndex) -> None:
    why = explain("CONFIG_DAMON", "y", {"CONFIG_MMU": "y"}, index)
    assert "enclosing 'menu MMU && DEBUG_KERNEL'" in why
    assert "DEBUG_KERNEL=n" in why


def test_explain_wanted_n_but_selected(index: kconfig.KconfigIndex) -> None:
    why = explain("CONFIG_HMM_MIRROR", "n", {"CONFIG_TEST_HMM": "m"}, index)
    assert "selected by TEST_HMM=m" in why


def test_explain_unknown_symbol(index: kconfig.KconfigIndex) -> None:
    why = explain("CONFIG_FOO", "y", {}, index)
    assert "not defined" in why
    assert "FOO" in why


# ------------------------------------------------------------------ the real Debian 6.12 tree

DEBIAN_RECORD = Path.home() / ".cache" / "hmmbench" / "sources" / "debian-6.12.json"


@pytest.mark.slow
def test_real_debian_612_tree() -> None:
    if not DEBIAN_RECORD.exists():
        pytest.skip(f"{DEBIAN_RECORD} does not exist (run 'hmmbench kernel fetch debian-6.12' first)")
    src = Path(json.loads(DEBIAN_RECORD.read_text())["path"])
    if not (src / "lib" / "Kconfig.debug").is_file():
        pytest.skip(f"{src} from {DEBIAN_RECORD} is not an unpacked kernel tree")
    index = index_kconfig(src)
    defs = index.definitions["TEST_HMM"]
    assert [d.location.split(":")[0] for d in defs] == ["lib/Kconfig.debug"]
    debug_lines = (src / "lib" / "Kconfig.debug").read_text().splitlines()
    if_line = next(n for n, line in enumerate(debug_lines, 1) if re.match(r"^if RUNTIME_TESTING_MENU\b", line))
    assert ("if", f"RUNTIME_TESTING_MENU@lib/Kconfig.debug:{if_line}") in defs[0].enclosing
    assert {"TRANSPARENT_HUGEPAGE", "DEVICE_PRIVATE"} <= {s for d in defs[0].depends for s in kconfig.expr_symbols(d)}
    why = explain("CONFIG_TEST_HMM", "m", {}, index)  # tinyconfig-like: everything n
    assert "RUNTIME_TESTING_MENU" in why
    assert f"lib/Kconfig.debug:{if_line}" in why
