"""Kernel trouble in console text and kmsg records, on realistic x86_64 excerpts."""

from __future__ import annotations

import pytest

from hmmbench import console
from hmmbench.guest.kmsg import parse_record

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

CLEAN_BOOT = """\
[    0.000000] Linux version 6.12.117 (hmmbench@build) (gcc (Debian 12.2.0-14) 12.2.0) #1 SMP PREEMPT_DYNAMIC
[    0.000000] Command line: console=ttyS0 root=/dev/vda rw init=/sbin/hmmbench-init
[    0.412345] clocksource: Switched to clocksource tsc
[    1.234567] HMM test module loaded. This is only for testing HMM.
[    1.300000] Run /sbin/hmmbench-init as init process
[    1.400000] random: crng init done
hmmbench-init: network up, starting sshd
"""


def reports_of(text: str) -> list[console.CrashReport]:
    return console.parse(text.splitlines())


def test_strip_timestamp() -> None:
    assert console.strip_timestamp("[   12.345678] WARNING: x\r\n") == "WARNING: x"
    assert console.strip_timestamp("[12345.000001] foo") == "foo"
    assert console.strip_timestamp("no timestamp here") == "no timestamp here"


def test_warning() -> None:
    (r,) = reports_of(WARNING)
    assert r.title == "WARNING in restore_exclusive_pte"
    assert r.kind == "warning"
    assert r.location == "mm/memory.c:4170"
    assert r.frames[:3] == ["do_swap_page", "__handle_mm_fault", "handle_mm_fault"]
    # "?" frames and the fault-handling machinery are not part of the signature.
    assert "__warn" not in r.frames and "exc_page_fault" not in r.frames and "asm_exc_page_fault" not in r.frames
    assert r.first_line.startswith("WARNING: CPU: 1 PID: 234")
    assert r.excerpt[0] == r.first_line
    assert r.signature == r.title
    assert r.to_dict()["location"] == "mm/memory.c:4170"


def test_kernel_bug_with_oops_banner_is_one_report() -> None:
    (r,) = reports_of(KERNEL_BUG)
    assert r.title == "kernel BUG in page_table_check_clear"  # ".part.0" suffix dropped
    assert r.kind == "bug"
    assert r.location == "mm/page_table_check.c:87"
    assert r.frames[0] == "__page_table_check_ptes_set"
    assert "set_ptes" in r.frames and "restore_exclusive_pte" in r.frames
    assert any(line.startswith("Oops: invalid opcode") for line in r.excerpt)


def test_null_deref_then_panic_is_one_report() -> None:
    (r,) = reports_of(NULL_DEREF_PANIC)
    assert r.kind == "oops"
    assert "NULL pointer dereference in folio_walk_start" in r.title
    assert r.frames[:2] == ["make_device_exclusive", "dmirror_exclusive"]
    # The panic line was merged into the oops' excerpt, not reported separately.
    assert any(line.startswith("Kernel panic - not syncing: Fatal exception") for line in r.excerpt)


def test_separate_die_is_a_second_report() -> None:
    # A die banner that is a headline of its own (no BUG line before it) after a finished report.
    text = WARNING + "[   50.000000] Oops: divide error: 0000 [#1] PREEMPT SMP NOPTI\n" \
        "[   50.000001] RIP: 0010:dmirror_fops_unlocked_ioctl+0x10/0x8b0 [test_hmm]\n"
    titles = [r.title for r in reports_of(text)]
    assert titles == ["WARNING in restore_exclusive_pte", "Oops in dmirror_fops_unlocked_ioctl"]


def test_two_oopses_are_two_reports() -> None:
    reports = reports_of(KERNEL_BUG + NULL_DEREF_PANIC)
    assert [r.kind for r in reports] == ["bug", "oops"]
    assert reports[1].title == "BUG: kernel NULL pointer dereference in folio_walk_start"


def test_soft_lockup() -> None:
    (r,) = reports_of(SOFT_LOCKUP)
    assert r.kind == "soft_lockup"
    assert r.title == "BUG: soft lockup in dmirror_exclusive"
    assert r.frames[:2] == ["dmirror_fops_unlocked_ioctl", "__x64_sys_ioctl"]
    assert not any(f.startswith(("do_syscall", "entry_SYSCALL")) for f in r.frames)


def test_hung_task() -> None:
    (r,) = reports_of(HUNG_TASK)
    assert r.kind == "hung_task"
    assert r.title == "INFO: task hung in dmirror_devmem_fault"  # scheduler frames are not the culprit
    assert "dmirror_devmem_fault" in r.frames


def test_clean_boot_has_no_reports() -> None:
    assert reports_of(CLEAN_BOOT) == []
    assert console.parse([]) == []


def test_panic_alone_is_reported() -> None:
    (r,) = reports_of("[    2.000000] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)\n")
    assert r.kind == "panic"
    assert r.title == "kernel panic: VFS: Unable to mount root fs on unknown-block(0,0)"


def test_reports_from_kmsg_records() -> None:
    # /dev/kmsg gives one record per line, without the console's timestamps.
    records = [{"seq": 100 + n, "level": 4, "text": line} for n, line in enumerate(
        console.strip_timestamp(x) for x in WARNING.splitlines())]
    (r,) = console.reports_from_kmsg(records)
    assert r.title == "WARNING in restore_exclusive_pte"
    assert console.reports_from_kmsg([{"seq": 1}]) == []


@pytest.mark.parametrize(("value", "letters"), [
    (0, ""), (None, ""), (512, "W"), (1, "P"), (512 | 4096, "WO"), (1 << 14, "L"), (1 << 18, "N"),
    (1 | (1 << 5) | (1 << 7), "PBD"),
])
def test_taint_letters(value: int | None, letters: str) -> None:
    assert console.taint_letters(value) == letters


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
    (r,) = console.parse(HUNG_GUESSED.splitlines())
    assert r.title == "INFO: task hung in dmirror_exclusive"
    assert r.frames[:2] == ["dmirror_exclusive", "check_new_pages"]
