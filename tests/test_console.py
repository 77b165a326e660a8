"""Kernel trouble in console text and kmsg records, titled the way syzkaller titles it.

Each excerpt follows the format strings of the kernel code that prints it (named beside it), in the
shapes Linux 5.10 to 7.x print them on x86_64; the expected titles follow syzkaller's pkg/report/linux.go.
"""

from __future__ import annotations

import pytest

from hmmbench.cases import kernel_reports
from hmmbench.guest.kmsg import parse_record


def reports_of(text: str) -> list[kernel_reports.CrashReport]:
    return kernel_reports.parse(text.splitlines())


def one(text: str) -> kernel_reports.CrashReport:
    reports = reports_of(text)
    assert len(reports) == 1, [r.title for r in reports]
    return reports[0]


# ------------------------------------------------------------------------------------ line prefixes

@pytest.mark.parametrize(("line", "text"), [
    ("[   12.345678] WARNING: x\r\n", "WARNING: x"),
    ("[12345.000001] foo", "foo"),
    ("[   12.3] foo", "foo"),
    ("[   12.345678][  T123] foo", "foo"),         # CONFIG_PRINTK_CALLER
    ("[   12.345678][    C1] foo", "foo"),
    ("[   12.345678] [  T123] foo", "foo"),        # as dmesg shows it
    ("[    T123] foo", "foo"),                     # caller id without time
    ("<4>[   12.345678] foo", "foo"),              # syslog level
    ("4,1234,40100000,-;foo", "foo"),              # a raw /dev/kmsg record
    ("4,1234,40100000,-,caller=T5;foo", "foo"),
    ("[   12.345678]  dmirror_exclusive+0x1/0x2", " dmirror_exclusive+0x1/0x2"),  # frames keep their indent
    ("no timestamp here", "no timestamp here"),
])
def test_strip_timestamp(line: str, text: str) -> None:
    assert kernel_reports.strip_timestamp(line) == text


# ------------------------------------------------------------------------------------------ WARNING

# kernel/panic.c __warn up to 6.18: "WARNING: CPU: %d PID: %d at %s:%d %pS", then show_regs, end marker.
WARNING = """\
[   12.345678] ------------[ cut here ]------------
[   12.345679] WARNING: CPU: 1 PID: 234 at mm/memory.c:4170 restore_exclusive_pte+0x1b2/0x1d0
[   12.345700] Modules linked in: test_hmm
[   12.345710] CPU: 1 UID: 0 PID: 234 Comm: python3 Not tainted 6.12.117 #1
[   12.345720] Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014
[   12.345730] RIP: 0010:restore_exclusive_pte+0x1b2/0x1d0
[   12.345740] Code: 0f 0b e9 5e ff ff ff 0f 0b e9 7a ff ff ff 66 0f 1f 44 00 00
[   12.345750] RSP: 0000:ffffb3c2c04dfd38 EFLAGS: 00010246
[   12.345760] Call Trace:
[   12.345761]  <TASK>
[   12.345762]  ? __warn+0x81/0x130
[   12.345763]  ? restore_exclusive_pte+0x1b2/0x1d0
[   12.345764]  do_swap_page+0x6a5/0xb80
[   12.345765]  __handle_mm_fault+0x7b1/0x1030
[   12.345766]  handle_mm_fault+0xd2/0x2a0
[   12.345767]  do_user_addr_fault+0x2c4/0x6a0
[   12.345768]  exc_page_fault+0x7e/0x180
[   12.345769]  asm_exc_page_fault+0x26/0x30
[   12.345770]  </TASK>
[   12.345771] ---[ end trace 0000000000000000 ]---
"""


def test_warning_6_12() -> None:
    r = one(WARNING)
    assert r.title == "WARNING in restore_exclusive_pte"
    assert (r.kind, r.culprit, r.fatal) == ("warning", "restore_exclusive_pte", False)
    assert r.location == "mm/memory.c:4170"
    assert r.frames[:3] == ["do_swap_page", "__handle_mm_fault", "handle_mm_fault"]
    # "?" frames and the fault-handling machinery are not part of the top frames.
    assert "__warn" not in r.frames and "exc_page_fault" not in r.frames and "asm_exc_page_fault" not in r.frames
    assert r.first_line.startswith("WARNING: CPU: 1 PID: 234")
    # The excerpt starts at "cut here" (a WARN's message sits between it and the headline).
    assert r.excerpt[0] == "------------[ cut here ]------------" and r.excerpt[1] == r.first_line
    assert r.excerpt[-1].startswith("---[ end trace")
    assert r.signature == r.title
    assert r.to_dict()["location"] == "mm/memory.c:4170" and r.to_dict()["fatal"] is False


# kernel/panic.c __warn from 6.19 on: "WARNING: %s:%d at %pS, CPU#%d: %s/%d", the message of WARN()
# printed before it by lib/bug.c (__warn_printf).
WARNING_7 = """\
[    9.871002] ------------[ cut here ]------------
[    9.871010] exclusive entry on a non-anonymous folio
[    9.871020] WARNING: mm/memory.c:4472 at do_swap_page+0x1a/0x960, CPU#0: python3/35
[    9.871030] Modules linked in:
[    9.871040] CPU: 0 UID: 0 PID: 35 Comm: python3 Not tainted 7.2.13 #1 PREEMPT(voluntary)
[    9.871050] RIP: 0010:do_swap_page+0x1a/0x960
[    9.871060] Call Trace:
[    9.871061]  <TASK>
[    9.871062]  __handle_mm_fault+0x7b1/0x1030
[    9.871063]  handle_mm_fault+0xd2/0x2a0
[    9.871064]  do_user_addr_fault+0x2c4/0x6a0
[    9.871065]  exc_page_fault+0x7e/0x180
[    9.871066]  </TASK>
[    9.871067] ---[ end trace 0000000000000000 ]---
"""


def test_warning_7_x() -> None:
    r = one(WARNING_7)
    assert r.title == "WARNING in do_swap_page"
    assert r.location == "mm/memory.c:4472"
    assert r.culprit == "do_swap_page" and r.frames[0] == "__handle_mm_fault"
    assert "exclusive entry on a non-anonymous folio" in r.excerpt


def test_warning_7_x_without_a_file() -> None:
    # "WARNING: at %pS, CPU#%d: %s/%d" (no file: an assembly caller or CONFIG_DEBUG_BUGVERBOSE=n).
    text = ("WARNING: at dmirror_exclusive+0x10/0x2a0 [test_hmm], CPU#1: python3/40\n"
            "RIP: 0010:dmirror_exclusive+0x10/0x2a0 [test_hmm]\n"
            "Call Trace:\n <TASK>\n dmirror_fops_unlocked_ioctl+0x2f4/0x8b0 [test_hmm]\n </TASK>\n")
    r = one(text)
    assert r.title == "WARNING in dmirror_exclusive"
    assert r.location is None and r.kind == "warning"


def test_warning_without_registers_takes_the_call_trace() -> None:
    # warn_slowpath_fmt (WARN on an arch without a trap, or old kernels): dump_stack, no RIP line.
    text = ("WARNING: CPU: 0 PID: 1 at lib/test_hmm.c:100 dmirror_fops_open+0x1/0x2\n"
            "Call Trace:\n dump_stack_lvl+0x1/0x2\n __warn+0x1/0x2\n warn_slowpath_fmt+0x1/0x2\n"
            " dmirror_fops_open+0x1/0x2\n chrdev_open+0x1/0x2\n")
    assert one(text).title == "WARNING in dmirror_fops_open"


# lib/refcount.c: REFCOUNT_WARN -> WARN_ONCE(1, "refcount_t: " str ".\n").
REFCOUNT_6_12 = """\
------------[ cut here ]------------
refcount_t: underflow; use-after-free.
WARNING: CPU: 0 PID: 250 at lib/refcount.c:28 refcount_warn_saturate+0xb2/0x110
Modules linked in:
RIP: 0010:refcount_warn_saturate+0xb2/0x110
Call Trace:
 <TASK>
 dmirror_fops_release+0x9e/0xc0
 __fput+0xfa/0x2b0
 task_work_run+0x59/0x90
 </TASK>
---[ end trace 0000000000000000 ]---
"""


def test_refcount_warning() -> None:
    r = one(REFCOUNT_6_12)
    assert r.title == "WARNING: refcount bug in dmirror_fops_release"
    assert (r.kind, r.culprit, r.fatal) == ("refcount", "dmirror_fops_release", False)
    assert "refcount_t: underflow; use-after-free." in r.excerpt


def test_refcount_warning_7_x_with_an_unresolved_address() -> None:
    # 6.19+ prints "at 0x0" when the bug address does not resolve; RIP still names the function.
    text = REFCOUNT_6_12.replace("WARNING: CPU: 0 PID: 250 at lib/refcount.c:28 refcount_warn_saturate+0xb2/0x110",
                                 "WARNING: lib/refcount.c:28 at 0x0, CPU#1: python3/250")
    r = one(text)
    assert r.title == "WARNING: refcount bug in dmirror_fops_release"
    assert r.location == "lib/refcount.c:28"


# lib/debugobjects.c debug_print_object: WARN(1, "ODEBUG: %s %s (active state %u) object: %p object type: %s
# hint: %pS\n").
ODEBUG = """\
------------[ cut here ]------------
ODEBUG: free active (active state 0) object: ffff888003a1b2c0 object type: timer_list hint: dmirror_timer+0x0/0x20
WARNING: CPU: 1 PID: 250 at lib/debugobjects.c:514 debug_print_object+0x8d/0xb0
RIP: 0010:debug_print_object+0x8d/0xb0
Call Trace:
 <TASK>
 debug_check_no_obj_freed+0x1a5/0x200
 kfree+0xd6/0x2e0
 dmirror_fops_release+0x4e/0xc0
 __fput+0xfa/0x2b0
 </TASK>
---[ end trace 0000000000000000 ]---
"""


def test_odebug_warning() -> None:
    r = one(ODEBUG)
    assert r.title == "WARNING: ODEBUG bug in dmirror_fops_release"  # debug_* and kfree are skipped
    assert r.kind == "odebug" and not r.fatal


def test_warning_then_panic_on_warn_is_one_fatal_report() -> None:
    # check_panic_on_warn runs inside __warn: the panic and its stack are part of the WARNING.
    text = WARNING.replace("[   12.345770]  </TASK>\n", "[   12.345770]  </TASK>\n"
                           "[   12.345772] Kernel panic - not syncing: kernel: panic_on_warn set ...\n"
                           "[   12.345773] Kernel Offset: disabled\n"
                           "[   12.345774] ---[ end Kernel panic - not syncing: kernel: panic_on_warn set ... ]---\n")
    r = one(text)
    assert r.title == "WARNING in restore_exclusive_pte"
    assert r.fatal is True


# --------------------------------------------------------------------------------- BUG, oopses, faults

# lib/bug.c report_bug: "kernel BUG at %s:%u!"; arch/x86/kernel/dumpstack.c: "Oops: %s: %04lx [#%d]".
KERNEL_BUG = """\
[   30.000001] ------------[ cut here ]------------
[   30.000002] kernel BUG at mm/page_table_check.c:87!
[   30.000003] Oops: invalid opcode: 0000 [#1] PREEMPT SMP NOPTI
[   30.000004] CPU: 0 UID: 0 PID: 301 Comm: python3 Not tainted 6.12.117 #1
[   30.000005] Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014
[   30.000006] RIP: 0010:page_table_check_clear.part.0+0x1e1/0x1f0
[   30.000007] Code: 0f 0b 0f 0b 0f 0b 66 90 90 90 90 90 90 90 90 90 90 90 90
[   30.000008] Call Trace:
[   30.000009]  <TASK>
[   30.000010]  ? die+0x36/0x90
[   30.000011]  ? do_trap+0xda/0x100
[   30.000012]  ? page_table_check_clear.part.0+0x1e1/0x1f0
[   30.000013]  __page_table_check_ptes_set+0x10d/0x140
[   30.000014]  set_ptes.constprop.0+0x2b/0xa0
[   30.000015]  restore_exclusive_pte+0x115/0x1d0
[   30.000016]  do_swap_page+0x6a5/0xb80
[   30.000017]  </TASK>
[   30.000018] ---[ end trace 0000000000000000 ]---
"""


def test_kernel_bug_with_oops_banner_is_one_report() -> None:
    r = one(KERNEL_BUG)
    assert r.title == "kernel BUG in page_table_check_clear"  # ".part.0" suffix dropped
    assert (r.kind, r.culprit, r.fatal) == ("bug", "page_table_check_clear", True)
    assert r.location == "mm/page_table_check.c:87"
    assert r.frames[0] == "__page_table_check_ptes_set"
    assert "set_ptes" in r.frames and "restore_exclusive_pte" in r.frames
    assert any(line.startswith("Oops: invalid opcode") for line in r.excerpt)


def test_kernel_bug_in_list_debug_is_a_corrupted_list() -> None:
    text = ("list_del corruption. prev->next should be ffff888003a1b2c0, but was 0000000000000000\n"
            "kernel BUG at lib/list_debug.c:62!\nOops: invalid opcode: 0000 [#1] PREEMPT SMP NOPTI\n"
            "RIP: 0010:__list_del_entry_valid_or_report+0x6e/0x100\nCall Trace:\n <TASK>\n"
            " __list_del_entry_valid_or_report+0x6e/0x100\n dmirror_devmem_free+0x44/0x90\n </TASK>\n")
    r = one(text)
    assert r.title == "BUG: corrupted list in dmirror_devmem_free"  # list_del* helpers are skipped
    assert r.location == "lib/list_debug.c:62"


# arch/x86/mm/fault.c page_fault_oops: "BUG: kernel NULL pointer dereference, address: %px", then die("Oops").
NULL_DEREF_PANIC = """\
[   40.100000] BUG: kernel NULL pointer dereference, address: 0000000000000008
[   40.100100] #PF: supervisor read access in kernel mode
[   40.100200] #PF: error_code(0x0000) - not-present page
[   40.100300] PGD 0 P4D 0
[   40.100400] Oops: Oops: 0000 [#1] PREEMPT SMP NOPTI
[   40.100500] CPU: 0 UID: 0 PID: 250 Comm: python3 Not tainted 6.12.117 #1
[   40.100550] Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014
[   40.100600] RIP: 0010:folio_walk_start+0x3a/0x2f0
[   40.100650] RSP: 0018:ffffb3c2c04dfc10 EFLAGS: 00010246
[   40.100700] Call Trace:
[   40.100800]  <TASK>
[   40.100850]  ? __die+0x23/0x70
[   40.100860]  ? page_fault_oops+0x173/0x5a0
[   40.100900]  make_device_exclusive+0x9c/0x1c0
[   40.100950]  dmirror_exclusive+0x129/0x2a0 [test_hmm]
[   40.100960]  dmirror_fops_unlocked_ioctl+0x2f4/0x8b0 [test_hmm]
[   40.101000]  </TASK>
[   40.101010] Modules linked in: test_hmm
[   40.101020] CR2: 0000000000000008
[   40.101030] ---[ end trace 0000000000000000 ]---
[   40.101040] RIP: 0010:folio_walk_start+0x3a/0x2f0
[   40.101100] Kernel panic - not syncing: Fatal exception
[   40.101200] Kernel Offset: 0x2a000000 from 0xffffffff81000000 (relocation range: 0xffffffff80000000-0x...)
[   40.101300] ---[ end Kernel panic - not syncing: Fatal exception ]---
"""


def test_null_deref_then_panic_is_one_report() -> None:
    r = one(NULL_DEREF_PANIC)
    assert r.title == "BUG: unable to handle kernel NULL pointer dereference in folio_walk_start"
    assert (r.kind, r.culprit, r.fatal) == ("oops", "folio_walk_start", True)
    assert r.frames[:2] == ["make_device_exclusive", "dmirror_exclusive"]
    # The panic was merged into the oops' excerpt, not reported separately.
    assert any(line.startswith("Kernel panic - not syncing: Fatal exception") for line in r.excerpt)


def test_paging_request() -> None:
    text = NULL_DEREF_PANIC.replace("BUG: kernel NULL pointer dereference, address: 0000000000000008",
                                    "BUG: unable to handle page fault for address: ffffc90000a3b000")
    assert one(text).title == "BUG: unable to handle kernel paging request in folio_walk_start"


# arch/x86/kernel/traps.c exc_general_protection -> die_addr(): 6.x prints the die banner as the headline.
GPF = """\
Oops: general protection fault, probably for non-canonical address 0xdead000000000122: 0000 [#1] PREEMPT SMP NOPTI
CPU: 1 UID: 0 PID: 250 Comm: python3 Not tainted 6.12.117 #1
RIP: 0010:dmirror_devmem_free+0x21/0x90
Call Trace:
 <TASK>
 free_zone_device_folio+0x3b/0x90
 migrate_vma_finalize+0x1d1/0x310
 </TASK>
---[ end trace 0000000000000000 ]---
"""


def test_general_protection_fault() -> None:
    r = one(GPF)
    assert r.title == "general protection fault in dmirror_devmem_free"
    assert (r.kind, r.fatal) == ("oops", True)


def test_general_protection_fault_before_6_x() -> None:
    # 5.10: no "Oops: " in front of the die banner.
    r = one(GPF.replace("Oops: general protection fault", "general protection fault"))
    assert r.title == "general protection fault in dmirror_devmem_free"


def test_separate_die_is_a_second_report() -> None:
    # A die banner that is a headline of its own (no BUG line before it) after a finished report:
    # do_error_trap("divide error") -> "Oops: divide error: 0000 [#1]".
    text = WARNING + "[   50.000000] Oops: divide error: 0000 [#1] PREEMPT SMP NOPTI\n" \
        "[   50.000001] RIP: 0010:dmirror_fops_unlocked_ioctl+0x10/0x8b0 [test_hmm]\n"
    reports = reports_of(text)
    assert [r.title for r in reports] == ["WARNING in restore_exclusive_pte",
                                          "divide error in dmirror_fops_unlocked_ioctl"]
    assert [r.kind for r in reports] == ["warning", "divide_error"]
    assert [r.fatal for r in reports] == [False, True]


def test_unknown_die_banner_is_an_oops() -> None:
    r = one("Oops: int3: 0000 [#1] PREEMPT SMP NOPTI\nRIP: 0010:dmirror_fault+0x1/0x2\n")
    assert (r.title, r.kind, r.fatal) == ("Oops in dmirror_fault", "oops", True)


def test_two_oopses_are_two_reports() -> None:
    reports = reports_of(KERNEL_BUG + NULL_DEREF_PANIC)
    assert [r.kind for r in reports] == ["bug", "oops"]
    assert reports[1].title == "BUG: unable to handle kernel NULL pointer dereference in folio_walk_start"


# arch/x86/kernel/traps.c exc_double_fault: pr_emerg("PANIC: double fault, error_code: 0x%lx") + die().
def test_double_fault() -> None:
    text = ("PANIC: double fault, error_code: 0x0\nOops: double fault: 0000 [#1] PREEMPT SMP NOPTI\n"
            "CPU: 0 UID: 0 PID: 250 Comm: python3 Not tainted 6.12.117 #1\nRIP: 0010:dmirror_fault+0x1a/0x80\n"
            "Kernel panic - not syncing: Fatal exception in interrupt\n")
    r = one(text)
    assert (r.title, r.kind, r.fatal) == ("PANIC: double fault in dmirror_fault", "double_fault", True)


# arch/x86/kernel/traps.c handle_stack_overflow: "BUG: %s stack guard page was hit at %p (stack is %p..%p)".
def test_stack_guard_page() -> None:
    frames = "".join(f" dmirror_recurse+0x2{n}/0x40\n" for n in range(6))
    text = ("BUG: TASK stack guard page was hit at ffffc90000427ff8 (stack is ffffc90000428000..ffffc9000042c000)\n"
            "Oops: stack guard page: 0000 [#1] PREEMPT SMP NOPTI\nRIP: 0010:dmirror_recurse+0x8/0x40\n"
            "Call Trace:\n <TASK>\n" + frames + " dmirror_fops_unlocked_ioctl+0x2f4/0x8b0\n"
            " __x64_sys_ioctl+0x94/0xd0\n do_syscall_64+0x82/0x190\n </TASK>\n")
    r = one(text)
    # A stack overflow is named after the frame above the dispatch point, not the recursion's top.
    assert r.title == "BUG: stack guard page was hit in dmirror_fops_unlocked_ioctl"
    assert (r.kind, r.fatal) == ("stack_overflow", True)


# --------------------------------------------------------------------------------- lockups, hangs, stalls

# kernel/watchdog.c: "BUG: soft lockup - CPU#%d stuck for %us! [%s:%d]".
SOFT_LOCKUP = """\
[   88.000001] watchdog: BUG: soft lockup - CPU#0 stuck for 26s! [hmm-tests:301]
[   88.000002] Modules linked in: test_hmm
[   88.000003] CPU: 0 UID: 0 PID: 301 Comm: hmm-tests Tainted: G        W    L     6.12.117 #1
[   88.000004] RIP: 0010:dmirror_exclusive+0x1b0/0x2a0 [test_hmm]
[   88.000005] Call Trace:
[   88.000006]  <IRQ>
[   88.000007]  ? watchdog_timer_fn+0x1e6/0x270
[   88.000008]  ? __hrtimer_run_queues+0x10f/0x2a0
[   88.000009]  </IRQ>
[   88.000010]  <TASK>
[   88.000011]  dmirror_fops_unlocked_ioctl+0x2f4/0x8b0 [test_hmm]
[   88.000012]  __x64_sys_ioctl+0x94/0xd0
[   88.000013]  do_syscall_64+0x82/0x190
[   88.000014]  entry_SYSCALL_64_after_hwframe+0x76/0x7e
[   88.000015]  </TASK>
"""


def test_soft_lockup() -> None:
    r = one(SOFT_LOCKUP)
    assert (r.kind, r.fatal) == ("soft_lockup", True)
    # syzkaller names a lockup after the frame above the syscall entry: stable wherever the loop was hit.
    assert r.title == "BUG: soft lockup in dmirror_fops_unlocked_ioctl"
    assert r.frames[:2] == ["dmirror_fops_unlocked_ioctl", "__x64_sys_ioctl"]
    assert not any(f.startswith(("do_syscall", "entry_SYSCALL")) for f in r.frames)


def test_soft_lockup_with_only_the_rip_line() -> None:
    r = one("watchdog: BUG: soft lockup - CPU#0 stuck for 26s! [python3:301]\n"
            "RIP: 0010:dmirror_exclusive+0x1b0/0x2a0 [test_hmm]\n")
    assert r.title == "BUG: soft lockup in dmirror_exclusive"


# kernel/watchdog.c watchdog_hardlockup_check: "Watchdog detected hard LOCKUP on cpu %d".
def test_hard_lockup() -> None:
    text = ("watchdog: Watchdog detected hard LOCKUP on cpu 1\nModules linked in: test_hmm\n"
            "CPU: 1 UID: 0 PID: 250 Comm: python3 Not tainted 6.12.117 #1\n"
            "RIP: 0010:native_queued_spin_lock_slowpath+0x6e/0x2c0\nCall Trace:\n <NMI>\n </NMI>\n <TASK>\n"
            " _raw_spin_lock+0x2f/0x40\n dmirror_exclusive+0x80/0x2a0 [test_hmm]\n"
            " dmirror_fops_unlocked_ioctl+0x2f4/0x8b0 [test_hmm]\n __x64_sys_ioctl+0x94/0xd0\n"
            " do_syscall_64+0x82/0x190\n </TASK>\n")
    r = one(text)
    assert r.title == "hard LOCKUP in dmirror_fops_unlocked_ioctl"
    assert (r.kind, r.fatal) == ("hard_lockup", True)


# kernel/hung_task.c check_hung_task: "INFO: task %s:%d blocked for more than %ld seconds." + sched_show_task.
HUNG_TASK = """\
[  123.456789] INFO: task python3:250 blocked for more than 30 seconds.
[  123.456800]       Not tainted 6.12.117 #1
[  123.456810] "echo 0 > /proc/sys/kernel/hung_task_timeout_secs" disables this message.
[  123.456820] task:python3         state:D stack:0     pid:250   tgid:250   ppid:1      flags:0x00004002
[  123.456830] Call Trace:
[  123.456840]  <TASK>
[  123.456850]  __schedule+0x3e8/0xb30
[  123.456860]  schedule+0x27/0xf0
[  123.456870]  dmirror_devmem_fault+0x88/0x190 [test_hmm]
[  123.456880]  </TASK>
"""


def test_hung_task() -> None:
    r = one(HUNG_TASK)
    assert (r.kind, r.fatal) == ("hung_task", True)
    assert r.title == "INFO: task hung in dmirror_devmem_fault"  # scheduler frames are not the culprit
    assert "dmirror_devmem_fault" in r.frames


def test_hung_task_in_io_wait_and_on_a_mutex() -> None:
    # Newer kernels: "blocked in I/O wait for more than", and the blocker named inside the report.
    text = HUNG_TASK.replace("blocked for more than 30 seconds", "blocked in I/O wait for more than 30 seconds")
    text += "[  123.456890] INFO: task python3:250 is blocked on a mutex likely owned by task python3:251.\n"
    text += "[  123.456891] INFO: task python3:252 blocked on a semaphore likely last held by task python3:251\n"
    r = one(text)
    assert r.title == "INFO: task hung in dmirror_devmem_fault"


def test_hung_task_waiting_for_rcu_is_grouped() -> None:
    text = ("INFO: task python3:250 blocked for more than 30 seconds.\nCall Trace:\n <TASK>\n __schedule+0x1/0x2\n"
            " schedule+0x1/0x2\n __wait_rcu_gp+0x1/0x2\n synchronize_rcu_normal+0x1/0x2\n"
            " dmirror_fops_release+0x1/0x2\n </TASK>\n")
    assert one(text).title == "INFO: task hung in synchronize_rcu"


HUNG_GUESSED = """\
INFO: task python3:75 blocked for more than 20 seconds.
      Not tainted 6.12.117+ #3
"echo 0 > /proc/sys/kernel/hung_task_timeout_secs" disables this message.
task:python3         state:D stack:0     pid:75    tgid:75    ppid:66     flags:0x00000000
Call Trace:
 <TASK>
 ? __schedule+0x3e6/0x410
 ? schedule+0x23/0x34
 ? dmirror_exclusive.constprop.0+0x90/0x2df
 ? check_new_pages+0x6/0xd2
 ? dmirror_fops_unlocked_ioctl+0x332/0x3ae
 ? vfs_ioctl+0x16/0x23
 </TASK>
"""


def test_hung_task_with_only_guessed_frames() -> None:
    # Seen on a tinyconfig 6.12 guest (no frame-pointer/ORC unwinder): every frame is marked "?".
    r = one(HUNG_GUESSED)
    assert r.title == "INFO: task hung in dmirror_exclusive"
    assert r.frames[:2] == ["dmirror_exclusive", "check_new_pages"]


# kernel/rcu/tree_stall.h print_cpu_stall: "rcu: INFO: %s self-detected stall on CPU", then the stack of the
# interrupted CPU: the timer interrupt on the IRQ stack, the interrupted registers, the task stack.
RCU_STALL = """\
[  200.100000] rcu: INFO: rcu_preempt self-detected stall on CPU
[  200.100001] rcu: 	0-....: (2099 ticks this GP) idle=8f4c/1/0x4000000000000000 softirq=3310/3310 fqs=1049
[  200.100002] rcu: 	(t=2100 jiffies g=2953 q=212 ncpus=2)
[  200.100003] CPU: 0 UID: 0 PID: 250 Comm: python3 Not tainted 6.12.117 #1
[  200.100004] RIP: 0010:dmirror_exclusive+0x1b0/0x2a0 [test_hmm]
[  200.100005] Call Trace:
[  200.100006]  <IRQ>
[  200.100007]  rcu_dump_cpu_stacks+0xee/0x160
[  200.100008]  rcu_sched_clock_irq+0x4b4/0xb90
[  200.100009]  update_process_times+0x7b/0xb0
[  200.100010]  tick_nohz_handler+0x8c/0x140
[  200.100011]  __hrtimer_run_queues+0x10f/0x2a0
[  200.100012]  hrtimer_interrupt+0xf6/0x230
[  200.100013]  __sysvec_apic_timer_interrupt+0x4e/0x120
[  200.100014]  sysvec_apic_timer_interrupt+0x69/0x90
[  200.100015]  </IRQ>
[  200.100016]  <TASK>
[  200.100017]  asm_sysvec_apic_timer_interrupt+0x1a/0x20
[  200.100018] RIP: 0010:dmirror_exclusive+0x1b0/0x2a0 [test_hmm]
[  200.100019] RSP: 0018:ffffb3c2c04dfd38 EFLAGS: 00000246
[  200.100020]  dmirror_fops_unlocked_ioctl+0x2f4/0x8b0 [test_hmm]
[  200.100021]  __x64_sys_ioctl+0x94/0xd0
[  200.100022]  do_syscall_64+0x82/0x190
[  200.100023]  entry_SYSCALL_64_after_hwframe+0x76/0x7e
[  200.100024]  </TASK>
"""


def test_rcu_stall() -> None:
    r = one(RCU_STALL)
    assert r.title == "INFO: rcu detected stall in dmirror_fops_unlocked_ioctl"
    assert (r.kind, r.fatal) == ("rcu_stall", True)


def test_rcu_expedited_stall() -> None:
    # kernel/rcu/tree_exp.h: "INFO: %s detected expedited stalls on CPUs/tasks: {" ... then NMI backtraces.
    text = RCU_STALL.replace("rcu_preempt self-detected stall on CPU",
                             "rcu_preempt detected expedited stalls on CPUs/tasks: { 0-.... } 21 jiffies s: 157")
    assert one(text).title == "INFO: rcu detected stall in dmirror_fops_unlocked_ioctl"


def test_rcu_stall_with_caller_ids_keeps_the_nmi_backtraces_of_other_cpus() -> None:
    text = ("[ 200.1][    C1] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:\n"
            "[ 200.1][    C1] rcu: 	0-...!: (1 GPs behind) idle=7a1c/1/0x4000000000000000\n"
            "[ 200.1][    C1] Sending NMI from CPU 1 to CPUs 0:\n"
            "[ 200.1][    C0] NMI backtrace for cpu 0\n"
            "[ 200.1][  T250] hmmbench: some other task's line\n"
            "[ 200.1][    C0] Call Trace:\n[ 200.1][    C0]  <IRQ>\n"
            "[ 200.1][    C0]  sysvec_apic_timer_interrupt+0x69/0x90\n[ 200.1][    C0]  </IRQ>\n"
            "[ 200.1][    C0]  <TASK>\n[ 200.1][    C0]  asm_sysvec_apic_timer_interrupt+0x1a/0x20\n"
            "[ 200.1][    C0] RIP: 0010:dmirror_exclusive+0x1b0/0x2a0 [test_hmm]\n"
            "[ 200.1][    C0]  dmirror_fops_unlocked_ioctl+0x2f4/0x8b0 [test_hmm]\n"
            "[ 200.1][    C0]  __x64_sys_ioctl+0x94/0xd0\n[ 200.1][    C0]  do_syscall_64+0x82/0x190\n")
    r = one(text)
    assert r.title == "INFO: rcu detected stall in dmirror_fops_unlocked_ioctl"
    assert "hmmbench: some other task's line" not in r.excerpt


def test_tasks_rcu_stall() -> None:
    # kernel/rcu/tasks.h check_all_holdout_tasks: "INFO: rcu_tasks detected stalls on tasks:", then each
    # holdout task (sched_show_task), preempted in the scheduler; syzbot titles it as an RCU stall.
    text = ("INFO: rcu_tasks detected stalls on tasks:\n"
            "00000000c0ffee00: .. nvcsw: 2/2 holdout: 1 idle_cpu: -1/1\n"
            "task:python3         state:R  running task     stack:0     pid:250   tgid:250   ppid:1\n"
            "Call Trace:\n <TASK>\n __schedule+0x1/0x2\n preempt_schedule_irq+0x1/0x2\n"
            " asm_sysvec_apic_timer_interrupt+0x1a/0x20\n dmirror_exclusive+0x80/0x2a0 [test_hmm]\n"
            " dmirror_fops_unlocked_ioctl+0x2f4/0x8b0 [test_hmm]\n __x64_sys_ioctl+0x94/0xd0\n </TASK>\n")
    r = one(text)
    assert r.title == "INFO: rcu detected stall in dmirror_fops_unlocked_ioctl"
    assert (r.kind, r.fatal) == ("rcu_stall", True)


def test_workqueue_lockup() -> None:
    # kernel/workqueue.c wq_watchdog_timer_fn: "BUG: workqueue lockup - pool" ... " stuck for %us!".
    r = one("BUG: workqueue lockup - pool cpus=0 node=0 flags=0x0 nice=0 stuck for 32s!\n"
            "Showing busy workqueues and worker pools:\n")
    assert (r.title, r.kind, r.fatal) == ("BUG: workqueue lockup", "workqueue_lockup", True)


# --------------------------------------------------------------------------------------- sanitizers

# mm/kasan/report.c print_error_description: "BUG: KASAN: %s in %pS", "%s of size %zu at addr %px by task".
KASAN = """\
==================================================================
BUG: KASAN: slab-use-after-free in dmirror_fault+0x1c/0x80 [test_hmm]
Read of size 8 at addr ffff888003a1b2c0 by task python3/250

CPU: 0 UID: 0 PID: 250 Comm: python3 Not tainted 6.12.117 #1
Call Trace:
 <TASK>
 dump_stack_lvl+0x5d/0x80
 print_report+0xcf/0x610
 kasan_report+0xb8/0xf0
 dmirror_fault+0x1c/0x80 [test_hmm]
 dmirror_fops_unlocked_ioctl+0x2f4/0x8b0 [test_hmm]
 </TASK>

Allocated by task 250:
 kasan_save_stack+0x20/0x40
 dmirror_fops_open+0x2e/0x1a0 [test_hmm]

Freed by task 250:
 kfree+0xd6/0x2e0
 dmirror_fops_release+0x4e/0xc0 [test_hmm]

The buggy address belongs to the object at ffff888003a1b2c0
==================================================================
"""


def test_kasan_names_the_access() -> None:
    r = one(KASAN)
    assert r.title == "KASAN: slab-use-after-free Read in dmirror_fault"
    assert (r.kind, r.culprit, r.fatal) == ("kasan", "dmirror_fault", False)
    assert r.frames[:2] == ["dmirror_fault", "dmirror_fops_unlocked_ioctl"]  # the access stack only
    assert r.excerpt[-1].startswith("=====")


def test_kasan_in_a_string_helper_names_its_caller() -> None:
    text = (KASAN.replace("slab-use-after-free in dmirror_fault+0x1c/0x80 [test_hmm]",
                          "slab-out-of-bounds in __asan_memcpy+0x38/0x60")
            .replace("Read of size 8", "Write of size 16")
            .replace(" kasan_report+0xb8/0xf0\n", " kasan_report+0xb8/0xf0\n kasan_check_range+0x1/0x2\n"
                     " __asan_memcpy+0x38/0x60\n"))
    assert one(text).title == "KASAN: slab-out-of-bounds Write in dmirror_fault"


def test_kasan_double_free() -> None:
    text = ("BUG: KASAN: double-free in dmirror_fops_release+0x4e/0xc0 [test_hmm]\n"
            "Free of addr ffff888003a1b2c0 by task python3/250\n\nCall Trace:\n <TASK>\n dump_stack_lvl+0x1/0x2\n"
            " kasan_report_invalid_free+0x1/0x2\n kfree+0xd6/0x2e0\n dmirror_fops_release+0x4e/0xc0 [test_hmm]\n")
    r = one(text)
    assert (r.title, r.kind) == ("KASAN: invalid-free in dmirror_fops_release", "kasan")


def test_kfence() -> None:
    # mm/kfence/report.c: "BUG: KFENCE: use-after-free %s in %pS" then the stack, without "Call Trace".
    text = ("==================================================================\n"
            "BUG: KFENCE: use-after-free read in dmirror_fault+0x1c/0x80\n\n"
            "Use-after-free read at 0x00000000c0ffee00 (in kfence-#12):\n dmirror_fault+0x1c/0x80\n"
            " dmirror_fops_unlocked_ioctl+0x2f4/0x8b0\n\nkfence-#12: 0x00000000c0ffee00-0x00000000c0ffee3f, size=64\n"
            "==================================================================\n")
    r = one(text)
    assert (r.title, r.kind, r.fatal) == ("KFENCE: use-after-free read in dmirror_fault", "kfence", False)


def test_kmsan() -> None:
    # mm/kmsan/report.c: "BUG: KMSAN: %s in %pSb", the stack, "Uninit was created at:", its stack.
    text = ("=====================================================\n"
            "BUG: KMSAN: uninit-value in dmirror_exclusive+0x2c1/0x2a0\n dmirror_exclusive+0x2c1/0x2a0\n"
            " dmirror_fops_unlocked_ioctl+0x2f4/0x8b0\n\nUninit was created at:\n __kmalloc_noprof+0x1/0x2\n"
            " dmirror_fops_open+0x2e/0x1a0\n\nCPU: 0 UID: 0 PID: 250 Comm: python3 Not tainted 6.12.117 #1\n"
            "=====================================================\n")
    r = one(text)
    assert (r.title, r.kind, r.fatal) == ("KMSAN: uninit-value in dmirror_exclusive", "kmsan", False)


def test_kcsan() -> None:
    # kernel/kcsan/report.c: "BUG: KCSAN: %s in %ps / %ps".
    text = ("==================================================================\n"
            "BUG: KCSAN: data-race in dmirror_fault / dmirror_migrate_to_device\n\n"
            "write to 0xffff888003a1b2c0 of 8 bytes by task 250 on cpu 0:\n dmirror_fault+0x1c/0x80\n"
            "==================================================================\n")
    r = one(text)
    assert r.title == "KCSAN: data-race in dmirror_fault / dmirror_migrate_to_device"
    assert (r.kind, r.culprit, r.fatal) == ("kcsan", "dmirror_fault", False)


def test_ubsan() -> None:
    # lib/ubsan.c ubsan_prologue: CUT_HERE, "UBSAN: %s in %s:%d:%d", the message; epilogue dump_stack, end marker.
    text = ("------------[ cut here ]------------\nUBSAN: shift-out-of-bounds in lib/test_hmm.c:123:45\n"
            "shift exponent 64 is too large for 64-bit type 'long unsigned int'\n"
            "CPU: 0 UID: 0 PID: 250 Comm: python3 Not tainted 6.12.117 #1\nCall Trace:\n <TASK>\n"
            " dump_stack_lvl+0x5d/0x80\n __ubsan_handle_shift_out_of_bounds+0x1a4/0x370\n"
            " dmirror_exclusive+0x80/0x2a0\n </TASK>\n---[ end trace ]---\n")
    r = one(text)
    assert r.title == "UBSAN: shift-out-of-bounds in dmirror_exclusive"
    assert (r.kind, r.location, r.fatal) == ("ubsan", "lib/test_hmm.c:123", False)


# ------------------------------------------------------------------------------------------ lockdep

# kernel/locking/lockdep.c print_circular_bug_header: "%s/%d is trying to acquire lock:" then the lock
# "..., at: %pS"; "but task is already holding lock:".
LOCKDEP_CIRCULAR = """\
======================================================
WARNING: possible circular locking dependency detected
6.12.117 #1 Not tainted
------------------------------------------------------
python3/250 is trying to acquire lock:
ffff888004a1c0a8 (&mm->mmap_lock){++++}-{3:3}, at: __might_fault+0x5a/0xb0

but task is already holding lock:
ffff888003e1d0b0 (&dmirror->mutex){+.+.}-{3:3}, at: dmirror_fops_unlocked_ioctl+0x120/0x8b0

which lock already depends on the new lock.

stack backtrace:
CPU: 0 UID: 0 PID: 250 Comm: python3 Not tainted 6.12.117 #1
Call Trace:
 <TASK>
 dump_stack_lvl+0x5d/0x80
 print_circular_bug+0x2d4/0x3f0
 check_noncircular+0x10e/0x120
 __lock_acquire+0x1260/0x2080
 lock_acquire+0xc2/0x2e0
 __might_fault+0x5a/0xb0
 _copy_to_user+0x22/0x70
 dmirror_fops_unlocked_ioctl+0x3ad/0x8b0
 </TASK>
"""


def test_lockdep_circular() -> None:
    r = one(LOCKDEP_CIRCULAR)
    # The first acquisition site that is not a generic helper (__might_fault is).
    assert r.title == "possible deadlock in dmirror_fops_unlocked_ioctl"
    assert (r.kind, r.fatal) == ("lockdep", False)


def test_lockdep_recursive() -> None:
    text = ("============================================\nWARNING: possible recursive locking detected\n"
            "6.12.117 #1 Not tainted\n--------------------------------------------\n"
            "python3/250 is trying to acquire lock:\n"
            "ffff888003e1d0b0 (&dmirror->mutex){+.+.}-{3:3}, at: dmirror_migrate_to_system+0x4d/0x110\n\n"
            "but task is already holding lock:\n"
            "ffff888003e1d0b0 (&dmirror->mutex){+.+.}-{3:3}, at: dmirror_fops_unlocked_ioctl+0x120/0x8b0\n")
    assert one(text).title == "possible deadlock in dmirror_migrate_to_system"


def test_lockdep_inconsistent_lock_state() -> None:
    text = ("================================\nWARNING: inconsistent lock state\n6.12.117 #1 Not tainted\n"
            "--------------------------------\ninconsistent {SOFTIRQ-ON-W} -> {IN-SOFTIRQ-W} usage.\n"
            "swapper/0/0 [HC0[0]:SC1[1]:HE1:SE0] takes:\n"
            "ffff888003e1d0c8 (&dmirror->lock){+.?.}-{2:2}, at: dmirror_timer_fn+0x1e/0x60\n"
            "stack backtrace:\nCall Trace:\n <IRQ>\n dump_stack_lvl+0x5d/0x80\n print_usage_bug.part.0+0x1/0x2\n"
            " mark_lock+0x1/0x2\n __lock_acquire+0x1/0x2\n lock_acquire+0x1/0x2\n _raw_spin_lock+0x2f/0x40\n"
            " dmirror_timer_fn+0x1e/0x60\n call_timer_fn+0x1/0x2\n </IRQ>\n")
    r = one(text)
    assert (r.title, r.kind) == ("inconsistent lock state in dmirror_timer_fn", "lockdep")


def test_suspicious_rcu_usage() -> None:
    # kernel/locking/lockdep.c lockdep_rcu_suspicious: "%s:%d %s!" after the headline.
    text = ("=============================\nWARNING: suspicious RCU usage\n6.12.117 #1 Not tainted\n"
            "-----------------------------\nmm/memory.c:1234 suspicious rcu_dereference_check() usage!\n\n"
            "stack backtrace:\nCall Trace:\n <TASK>\n dump_stack_lvl+0x5d/0x80\n lockdep_rcu_suspicious+0x1/0x2\n"
            " folio_walk_start+0x3a/0x2f0\n make_device_exclusive+0x9c/0x1c0\n </TASK>\n")
    r = one(text)
    assert r.title == "WARNING: suspicious RCU usage in folio_walk_start"
    assert (r.kind, r.location) == ("lockdep", "mm/memory.c:1234")


def test_lockdep_off_is_titled_by_its_line() -> None:
    # print_lockdep_off: no format of its own in syzkaller, the line is the title.
    r = one("BUG: MAX_LOCKDEP_KEYS too low!\nturning off the locking correctness validator.\n")
    assert (r.title, r.kind) == ("BUG: MAX_LOCKDEP_KEYS too low!", "bug")


# --------------------------------------------------------------------------- atomic sleep, bad page, leaks

def test_scheduling_while_atomic() -> None:
    # kernel/sched/core.c __schedule_bug: "BUG: scheduling while atomic: %s/%d/0x%08x".
    text = ("BUG: scheduling while atomic: python3/250/0x00000002\nCall Trace:\n <TASK>\n dump_stack_lvl+0x1/0x2\n"
            " __schedule_bug+0x1/0x2\n __schedule+0x1/0x2\n schedule+0x1/0x2\n dmirror_exclusive+0x80/0x2a0\n")
    r = one(text)
    assert (r.title, r.kind, r.fatal) == ("BUG: scheduling while atomic in dmirror_exclusive", "atomic_sleep", False)


def test_sleeping_function_called_from_invalid_context() -> None:
    # kernel/sched/core.c __might_resched: "BUG: sleeping function called from invalid context at %s:%d".
    text = ("BUG: sleeping function called from invalid context at mm/memory.c:6210\n"
            "in_atomic(): 1, irqs_disabled(): 0, non_block: 0, pid: 250, name: python3\n"
            "preempt_count: 1, expected: 0\nCall Trace:\n <TASK>\n dump_stack_lvl+0x1/0x2\n"
            " __might_resched+0x1/0x2\n __might_fault+0x1/0x2\n _copy_to_user+0x1/0x2\n"
            " dmirror_fops_unlocked_ioctl+0x3ad/0x8b0\n </TASK>\n")
    r = one(text)
    assert r.title == "BUG: sleeping function called from invalid context in dmirror_fops_unlocked_ioctl"
    assert (r.kind, r.location, r.fatal) == ("atomic_sleep", "mm/memory.c:6210", False)


def test_bad_page_state() -> None:
    # mm/page_alloc.c bad_page: "BUG: Bad page state in process %s  pfn:%05lx", dump_page, dump_stack.
    text = ("BUG: Bad page state in process python3  pfn:1a2b3\n"
            "page: refcount:0 mapcount:1 mapping:0000000000000000 index:0x7f0 pfn:0x1a2b3\n"
            "page dumped because: nonzero mapcount\nModules linked in: test_hmm\nCall Trace:\n <TASK>\n"
            " dump_stack_lvl+0x5d/0x80\n bad_page+0x70/0x110\n free_unref_folios+0x1/0x2\n folios_put_refs+0x1/0x2\n"
            " dmirror_devmem_free+0x44/0x90\n </TASK>\n")
    r = one(text)
    assert (r.title, r.kind, r.fatal) == ("BUG: Bad page state in dmirror_devmem_free", "bad_page", False)


def test_kmemleak_verbose() -> None:
    # mm/kmemleak.c print_unreferenced with kmemleak.verbose=1 (pr_fmt "kmemleak: " on every line).
    text = ("kmemleak: unreferenced object 0xffff888003a1b2c0 (size 64):\n"
            'kmemleak:   comm "python3", pid 250, jiffies 4294937296\n'
            "kmemleak:   hex dump (first 32 bytes):\nkmemleak:     00 00 00 00 00 00 00 00  ........\n"
            "kmemleak:   backtrace (crc 5c0e7b8a):\nkmemleak:     __kmalloc_cache_noprof+0x2c5/0x360\n"
            "kmemleak:     dmirror_fops_open+0x2e/0x1a0\nkmemleak:     chrdev_open+0x1/0x2\n"
            "kmemleak: 1 new suspected memory leaks (see /sys/kernel/debug/kmemleak)\n")
    r = one(text)
    assert (r.title, r.kind, r.fatal) == ("memory leak in dmirror_fops_open", "kmemleak", False)
    assert r.frames[0] == "dmirror_fops_open"


def test_kmemleak_summary_alone() -> None:
    r = one("kmemleak: 2 new suspected memory leaks (see /sys/kernel/debug/kmemleak)\n")
    assert (r.title, r.kind) == ("memory leak", "kmemleak")


# --------------------------------------------------------------------------------------------- panics

def test_panic_alone_is_reported() -> None:
    r = one("[    2.000000] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)\n")
    assert (r.kind, r.fatal) == ("panic", True)
    # Numbers are normalised away, as in syzbot's titles.
    assert r.title == "kernel panic: VFS: Unable to mount root fs on unknown-block(NUM,NUM)"


def test_fatal_exception_alone_is_reported() -> None:
    r = one("Kernel panic - not syncing: Fatal exception\n")
    assert (r.title, r.kind, r.fatal) == ("kernel panic: Fatal exception", "panic", True)


@pytest.mark.parametrize("panic", ["hung_task: blocked tasks", "softlockup: hung tasks", "Hard LOCKUP",
                                   "RCU Stall", "Fatal exception in interrupt"])
def test_panics_that_follow_from_the_report_before_them(panic: str) -> None:
    # kernel/hung_task.c, kernel/watchdog.c, kernel/rcu/tree_stall.h, oops_end: the panic they end with.
    (r,) = reports_of(HUNG_TASK + f"[  124.000000] Kernel panic - not syncing: {panic}\n")
    assert r.title == "INFO: task hung in dmirror_devmem_fault"
    assert r.excerpt[-1] == f"Kernel panic - not syncing: {panic}"


def test_a_panic_of_its_own_after_a_report_is_a_second_report() -> None:
    panic = "[   13.000000] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000009\n"
    reports = reports_of(WARNING + panic)
    assert [r.title for r in reports] == ["WARNING in restore_exclusive_pte", "kernel panic: Attempted to kill init!"]
    assert [r.fatal for r in reports] == [False, True]


def test_consequence_panic_after_a_warning_makes_it_fatal() -> None:
    text = KASAN + "Kernel panic - not syncing: KASAN: panic_on_warn set ...\n"
    r = one(text)
    assert r.title == "KASAN: slab-use-after-free Read in dmirror_fault"
    assert r.fatal is True


# ---------------------------------------------------------------------- what is not kernel trouble

CLEAN_BOOT = """\
[    0.000000] Linux version 6.12.117 (hmmbench@build) (gcc (Debian 12.2.0-14) 12.2.0) #1 SMP PREEMPT_DYNAMIC
[    0.000000] Command line: console=ttyS0 root=/dev/vda rw init=/sbin/hmmbench-init
[    0.100000] x86/cpu: User Mode Instruction Prevention (UMIP) activated
[    0.200000] RETBleed: WARNING: Spectre v2 mitigation leaves CPU vulnerable to RETBleed attacks, data leaks possible!
[    0.300000] ACPI: PM-Timer IO Port: 0x608
[    0.412345] clocksource: Switched to clocksource tsc
""" + ("[    0.500000] Spectre V2 : WARNING: Unprivileged eBPF is enabled with eIBRS on, data leaks possible via"
       " Spectre v2 BHB attacks!\n") + """\
[    0.600000] rcu: Hierarchical RCU implementation.
[    0.600001] rcu: 	RCU event tracing is enabled.
[    0.700000] INFO: lockdep is turned off.
[    1.000000] debug_vm_pgtable: [debug_vm_pgtable         ]: Validating architecture page table helpers
[    1.234567] HMM test module loaded. This is only for testing HMM.
[    1.300000] Run /sbin/hmmbench-init as init process
[    1.400000] random: crng init done
[    1.500000] EXT4-fs (vda): mounted filesystem with ordered data mode. Quota mode: none.
hmmbench-init: network up, starting sshd
Server listening on 0.0.0.0 port 22.
"""

KTAP = """\
[    3.100000] KTAP version 1
[    3.100001] 1..2
[    3.100002]     KTAP version 1
[    3.100003]     # Subtest: hmm
[    3.100004]     1..3
[    3.100005]     ok 1 hmm_anon_read
[    3.100006]     # hmm_exclusive: EXPECTATION FAILED at lib/test_hmm.c:1234
[    3.100007]     Expected ret == 0, but
[    3.100008]         ret == -16 (0xfffffffffffffff0)
[    3.100009]     not ok 2 hmm_exclusive
[    3.100010]     ok 3 hmm_migrate # SKIP no device private memory
[    3.100011] # hmm: pass:1 fail:1 skip:1 total:3
[    3.100012] not ok 1 hmm
[    3.100013] ok 2 hmm_dmirror_selftests # SKIP
"""


def test_clean_boot_and_ktap_have_no_reports() -> None:
    assert reports_of(CLEAN_BOOT) == []
    assert reports_of(KTAP) == []
    assert kernel_reports.parse([]) == []


# arch/x86/kernel/traps.c show_signal ("traps: " pr_fmt), arch/x86/mm/fault.c show_signal_msg, kernel/signal.c.
USER_SPACE = """\
[   61.000001] traps: python3[123] general protection fault ip:7f3c55d8f749 sp:7ffd2b1c3a10 error:0 in libc.so.6[7f3c5\
5d00000+155000]
[   61.000002] python3[124]: segfault at 0 ip 00007f3c55d8f749 sp 00007ffd2b1c3a10 error 4 in libc.so.6[28749,7f3c5\
5d00000+155000] likely on CPU 1 (core 1, socket 0)
[   61.000003] Code: 48 89 f8 48 89 f7 48 89 d6 48 89 ca 4d 89 c2 4d 89 c8 4c 8b 4c 24 08 0f 05 <48> 3d 01 f0 ff ff
[   61.000004] traps: hmm-tests[125] trap divide error ip:401136 sp:7ffd2b1c3a10 error:0 in hmm-tests[401000+1000]
[   61.000005] traps: python3[126] general protection fault ip:7f3c55d8f749 sp:7ffd2b1c3a10 error:0
[   61.000006] python3: potentially unexpected fatal signal 11.
"""


@pytest.mark.parametrize(("text", "title", "kind", "fatal"), [
    # kernel/locking/spinlock_debug.c spin_dump: "BUG: spinlock %s on CPU#%d, %s/%d".
    ("BUG: spinlock bad magic on CPU#0, python3/250\nCall Trace:\n <TASK>\n dump_stack_lvl+0x1/0x2\n"
     " do_raw_spin_lock+0x1/0x2\n _raw_spin_lock+0x1/0x2\n dmirror_fault+0x1a/0x80\n",
     "BUG: spinlock bad magic in dmirror_fault", "spinlock", False),
    # kernel/panic.c __stack_chk_fail: panic("stack-protector: Kernel stack is corrupted in: %pB").
    ("Kernel panic - not syncing: stack-protector: Kernel stack is corrupted in: dmirror_fault+0x1a/0x80\n",
     "kernel panic: stack is corrupted in dmirror_fault", "panic", True),
    # mm/memory.c check_mm: "BUG: Bad rss-counter state mm:%p type:%s val:%ld".
    ("BUG: Bad rss-counter state mm:000000003a1b2c3d type:MM_ANONPAGES val:1\n", "BUG: Bad rss-counter state",
     "bug", False),
    # net/core/dev.c netdev_wait_allrefs_any, fs/super.c generic_shutdown_super.
    ("unregister_netdevice: waiting for lo to become free. Usage count = 2\n",
     "unregister_netdevice: waiting for DEV to become free", "netdev", False),
    ("VFS: Busy inodes after unmount of tmpfs (tmpfs)\n", "VFS: Busy inodes after unmount (use-after-free)", "vfs",
     False),
])
def test_other_kinds(text: str, title: str, kind: str, fatal: bool) -> None:
    r = one(text)
    assert (r.title, r.kind, r.fatal) == (title, kind, fatal)


@pytest.mark.parametrize(("text", "title"), [
    # 5.10: the die banner without "Oops: ", UBSAN's old headline, the old workqueue leak message.
    ("divide error: 0000 [#1] SMP NOPTI\nRIP: 0010:dmirror_fault+0x1a/0x80\n", "divide error in dmirror_fault"),
    ("UBSAN: Undefined behaviour in lib/test_hmm.c:12:3\nCall Trace:\n dump_stack+0x1/0x2\n"
     " ubsan_epilogue+0x1/0x2\n dmirror_fault+0x1a/0x80\n", "UBSAN: undefined-behaviour in dmirror_fault"),
    ("BUG: workqueue leaked lock or atomic: kworker/0:1/0x00000000/12\n     last function: dmirror_work_fn\n",
     "BUG: workqueue leaked lock or atomic in dmirror_work_fn"),
])
def test_older_kernels(text: str, title: str) -> None:
    assert one(text).title == title


def test_words_without_the_kernel_format_are_not_trouble() -> None:
    # Python's logging on the console ("WARNING:root:..."), lines that only mention the words.
    text = ("WARNING:root:hmmbench agent: slow start\nINFO:hmmbench:case starts\n"
            "[    1.0] ODEBUG: Out of memory. ODEBUG disabled\n[    1.1] INFO: NMI handler (perf_event_nmi_handler) "
            "took too long to run: 2.277 msecs\n")
    assert reports_of(text) == []
    # The same words in the kernel's own format are trouble, titled by their text.
    assert one("[    1.2] WARNING: something the table does not know\n").title == \
        "WARNING: something the table does not know"


def test_user_space_faults_are_notes_not_reports() -> None:
    assert reports_of(USER_SPACE) == []
    notes = kernel_reports.user_space_notes(USER_SPACE.splitlines())
    assert len(notes) == 5 and not any(n.startswith("Code:") for n in notes)
    assert notes[0].startswith("traps: python3[123] general protection fault ip:")
    assert notes[1].startswith("python3[124]: segfault at 0 ip ")
    # A kernel GPF after them is still kernel trouble, and is no note.
    reports = reports_of(USER_SPACE + GPF)
    assert [r.title for r in reports] == ["general protection fault in dmirror_devmem_free"]
    assert kernel_reports.user_space_notes(GPF.splitlines()) == []


# ------------------------------------------------------------------------ contexts, kmsg, printk quirks

def test_caller_ids_keep_interleaved_tasks_apart() -> None:
    # CONFIG_PRINTK_CALLER: another task's lines (and its own WARNING) interleave with the first report.
    lines = []
    for n, line in enumerate(WARNING.splitlines()):
        lines.append(line.replace("] ", "][  T234] ", 1))
        if n == 5:
            lines.append("[   12.345731][  T235] WARNING: CPU: 0 PID: 235 at lib/test_hmm.c:99 dmirror_fault+0x1/0x2")
            lines.append("[   12.345732][  T235] RIP: 0010:dmirror_fault+0x1/0x2")
            lines.append("[   12.345733][    T1] random: crng init done")
    reports = kernel_reports.parse(lines)
    assert [r.title for r in reports] == ["WARNING in restore_exclusive_pte", "WARNING in dmirror_fault"]
    assert not any("crng" in line or "dmirror_fault" in line for line in reports[0].excerpt)
    assert reports[0].frames[:1] == ["do_swap_page"]


def test_replayed_printk_message() -> None:
    # printk prints "** replaying previous printk message **" and the whole message after a cut-off start.
    text = ("[  584.319520][   T31] INFO: t\n** replaying previous printk message **\n"
            + "\n".join(line.replace("] ", "][   T31] ", 1) for line in HUNG_TASK.splitlines()))
    r = one(text)
    assert r.title == "INFO: task hung in dmirror_devmem_fault"


def test_reports_from_kmsg_records() -> None:
    # /dev/kmsg gives one record per line, without the console's timestamps.
    records = [{"seq": 100 + n, "level": 4, "text": line} for n, line in enumerate(
        kernel_reports.strip_timestamp(x) for x in WARNING.splitlines())]
    (r,) = kernel_reports.reports_from_kmsg(records)
    assert r.title == "WARNING in restore_exclusive_pte"
    assert kernel_reports.reports_from_kmsg([{"seq": 1}]) == []


def test_kmsg_records_user_space_wrote_are_not_trouble() -> None:
    # Writes to /dev/kmsg get the user facility (1); the kernel's records have facility 0.
    records = [{"seq": 1, "level": 4, "facility": 1, "text": "WARNING: CPU: 0 PID: 1 at x.c:1 f+0x1/0x2"},
               {"seq": 2, "level": 4, "facility": 0, "text": "BUG: workqueue lockup - pool cpus=0 stuck for 32s!"}]
    assert [r.title for r in kernel_reports.reports_from_kmsg(records)] == ["BUG: workqueue lockup"]


def test_kmsg_record_with_escaped_newlines() -> None:
    # A record printed in one printk with "\n" inside reaches /dev/kmsg with "\x0a" escapes.
    records = [{"seq": 1, "level": 3, "text": "BUG: workqueue leaked atomic, lock or RCU: kworker/0:1[12]\\x0a"
                "     preempt=0x00000001 lock=0->0 RCU=0->0 workfn=dmirror_work_fn"}]
    (r,) = kernel_reports.reports_from_kmsg(records)
    assert r.title == "BUG: workqueue leaked lock or atomic in dmirror_work_fn"


@pytest.mark.parametrize(("raw", "title"), [
    ("WARNING in foo", "WARNING in foo"),
    ("kernel panic: Attempted to kill init! exitcode=0x00000009", "kernel panic: Attempted to kill init! exitcode="
     "ADDR"),
    ("BUG: unable to handle kernel paging request at ffffc90000a3b000", "BUG: unable to handle kernel paging "
     "request at ADDR"),
    ("KASAN: use-after-free in foo+0x1c/0x80", "KASAN: use-after-free in foo"),
    ("a\tb   c", "a b c"),
    ("x" * 200, "x" * 120),
    ("in cfg80211_foo and nl802154_bar at mm/memory.c:42", "in cfg80211_foo and nl802154_bar at mm/memory.c:LINE"),
])
def test_normalize_title(raw: str, title: str) -> None:
    assert kernel_reports.normalize_title(raw) == title


@pytest.mark.parametrize(("value", "letters"), [
    (0, ""), (None, ""), (512, "W"), (1, "P"), (512 | 4096, "WO"), (1 << 14, "L"), (1 << 18, "N"),
    (1 | (1 << 5) | (1 << 7), "PBD"),
])
def test_taint_letters(value: int | None, letters: str) -> None:
    assert kernel_reports.taint_letters(value) == letters


def test_parse_kmsg_record() -> None:
    raw = (b"4,1234,40100000,-;WARNING: CPU: 1 PID: 234 at mm/memory.c:4170 restore_exclusive_pte+0x1b2/0x1d0\n"
           b" SUBSYSTEM=cpu\n DEVICE=+cpu:1\n")
    rec = parse_record(raw)
    assert rec == {"seq": 1234, "level": 4, "facility": 0, "ts_usec": 40100000,
                   "text": "WARNING: CPU: 1 PID: 234 at mm/memory.c:4170 restore_exclusive_pte+0x1b2/0x1d0"}
    # prio 14 = facility 1 (user), level 6 (info); continuation flag 'c'.
    rec = parse_record(b"14,7,123,c;hmmbench: case exclusive_basic starts\n")
    assert rec is not None and rec["facility"] == 1 and rec["level"] == 6 and rec["seq"] == 7
    assert parse_record(b"garbage without separator") is None
    assert parse_record(b"x,y,z;text") is None
    assert parse_record(b"6,1;too few fields") is None
