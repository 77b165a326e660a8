"""Find kernel trouble in console output or kmsg records and title it the way syzkaller does.

hmmbench makes kernel trouble during a case a result: the case FAILs with a title such as "WARNING in
restore_exclusive_pte", ``bisect --signature`` chases one title and ignores others, and the gate compares
titles between kernels. For those titles to mean the same as syzbot's for the same console text, the
rules here are a port of syzkaller's ``pkg/report/linux.go`` (its table of report formats, the frames it
skips when it picks the culprit, its stall and hang frame extractors, its title normalisation), checked
against the format strings of Linux 5.10 to 7.x that print each kind (kernel/panic.c, lib/bug.c,
mm/kasan/report.c, kernel/locking/lockdep.c, ...; see ``_FAMILIES``), and scored against real syzbot
console logs in tests/test_kernel_reports_corpus.py.

The recognition is a table: a :class:`Family` per headline word ("BUG:", "WARNING:", ...) with the lines
that look like it but are not trouble, and per kind a :class:`Format`: the headline regex, the kind, the
title template, how the culprit frame is found (:class:`Culprit`: a sequence of line regexes and stack
traces, as syzkaller's ``stackFmt``), and whether the kernel is usually left dead or stuck (``fatal``:
the host ends the case at once instead of waiting for its timeout).

Lines from user space (``traps: python3[123] general protection fault ...``, ``python3[123]: segfault
at ...``) are never reports; :func:`user_space_notes` returns them as notes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, fields

# ----------------------------------------------------------------------------------- console lines

# A console or dmesg line: optional "** N printk messages dropped **", syslog level "<4>", timestamp
# "[   12.345678]" and CONFIG_PRINTK_CALLER's caller id "[  T123]" (task) or "[   C1]" (CPU, in interrupt).
_PREFIX = re.compile(
    r"^(?:\*\* \d+ printk messages dropped \*\* )?(?:[^\[]* login: )?(?:<\d+>)?"
    r"(?:(?P<ts>\[\s*\d+\.\d+\])(?:\s?\[\s*(?P<c1>[CT]\d+)\])?|\[\s*(?P<c2>[CT]\d+)\])\s?")
# A /dev/kmsg record as read raw: "prio,seq,usec,flags[,caller=T123];text".
_KMSG = re.compile(r"^\d+,\d+,\d+,[^;,]*(?:,caller=(?P<c>[CT]\d+))?[^;]*;")
_REPLAY = "** replaying previous printk message **"
_CONSOLE = "console"  # the context of timestamped lines without a caller id


@dataclass(frozen=True)
class _Line:
    """One line with its printk context: "T123"/"C1" (caller id), "console" (timestamp only) or ""."""

    ctx: str
    text: str


def _split(raw: str) -> _Line:
    line = raw.rstrip("\r\n")
    if m := _PREFIX.match(line):
        caller = m.group("c1") or m.group("c2")
        return _Line(caller or (_CONSOLE if m.group("ts") else ""), line[m.end():])
    if m := _KMSG.match(line):
        return _Line(m.group("c") or "", line[m.end():])
    return _Line("", line)


def strip_timestamp(line: str) -> str:
    """The text of a console line, without timestamp, caller id, syslog level or kmsg record header."""
    return _split(line).text


def _prepare(lines: Iterable[str]) -> list[_Line]:
    """Split lines (records may hold several), dropping lines printk cut short and replayed."""
    out: list[_Line] = []
    for raw in lines:
        for piece in raw.split("\n"):
            item = _split(piece)
            if item.text.strip() == _REPLAY:
                out.append(item)  # resolved below, once the replayed line is known
                continue
            if out and out[-1].text.strip() == _REPLAY:
                out.pop()
                cut = next((k for k in range(len(out) - 1, -1, -1) if out[k].ctx == item.ctx), None)
                if cut is not None and item.text.startswith(out[cut].text):
                    del out[cut]
            out.append(item)
    return [x for x in out if x.text.strip() != _REPLAY]


# ------------------------------------------------------------------ building blocks (syzkaller's)

def _re(pattern: str) -> re.Pattern[str]:
    """Compile with syzkaller's placeholders: {{FUNC}} a function name (group), {{SRC}} file:line (group),
    {{PC}} an "[<ffffffff81234567>]" address."""
    pattern = (pattern.replace("{{ADDR}}", r"0x[0-9a-f]+")
               .replace("{{PC}}", r"\[\<?(?:0x)?[0-9a-f]+\>?\]")
               .replace("{{FUNC}}", r"([a-zA-Z0-9_]+)(?:\.|\+)")
               .replace("{{SRC}}", r"([a-zA-Z0-9\-_/.]+\.[a-z]+:[0-9]+)"))
    return re.compile(pattern)


def _src(pattern: str) -> re.Pattern[str]:
    """Like :func:`_re`, with the {{SRC}} group named ``src``: it becomes the report's location."""
    return _re(pattern.replace("{{SRC}}", r"(?P<src>[a-zA-Z0-9\-_/.]+\.[a-z]+:[0-9]+)"))


# The faulting function: x86 "RIP: 0010:f+0x1/0x2", powerpc "NIP", arm "pc : f+0x", "PC is at f+0x".
_RIP = _re(r"(?:IP|NIP|pc |PC is at):? (?:(?:[0-9]+:)?(?:{{PC}} +){0,2}{{FUNC}}|(?:[0-9]+:)?0x[0-9a-f]+"
           r"|(?:[0-9]+:)?{{PC}} +\[< *\(null\)>\] +\(null\)|[0-9]+: +\(null\))")
_CALL_TRACE = _re(r"(?:Call (?:T|t)race:)|(?:Backtrace:)")
# Where a stack trace starts (and so where the previous one ended).
_STACK_START = re.compile(
    r"Call (?:T|t)race|Allocated:|Allocated by task [0-9]+:|Freed:|Freed by task [0-9]+:"
    r"|[^k] backtrace(?: \(crc [0-9a-fA-F]*\))?:|Backtrace:|Uninit was stored to memory at"
    r"|status: [0-9a-f]{16} badaddr: [0-9a-f]{16} cause: [0-9a-f]{16}")
# A frame line: " f+0x1/0x2", " [<ffffffff81234567>] f+0x1/0x2", and arm's "[<c0>] (f) from [<c1>] (g+0x".
_FRAMES = (_re(r"^ *(?:{{PC}} ){0,2}{{FUNC}}"), _re(r"^ *{{PC}} \(([a-zA-Z0-9_.]+)\) from {{PC}} \({{FUNC}}"))
# A frame the unwinder is not sure of (" ? f+0x1/0x2"); powerpc marks them " (unreliable)".
_QUESTIONABLE = re.compile(r"(?:\[\<[0-9a-f]+\>\])? \? ")
# Fault injection stacks interleave with reports: a report that shows one is not trusted for its culprit.
_CORRUPTED_LINE = re.compile(r"^( \[\<?(?:0x)?[0-9a-f]+\>?\])? should_fail(slab)?(\.[a-z0-9.]+)?\+0x")

# Functions that are never the culprit: the reporting machinery, sanitizer runtime, locking, allocation,
# string/copy helpers, list/tree helpers, work/timer/device plumbing (syzkaller's skipPatterns, matched
# as regexes anywhere in the name).
_SKIP = (
    "__sanitizer", "__asan", "kasan", "hwasan", "__msan", "kmsan", "kcsan_setup_watchpoint",
    "check_memory_region", "check_heap_object", "check_object", "read_word_at_a_time",
    "(read|write)_once_.*nocheck", "print_address_description", "panic", "invalid_op", "report_bug",
    "fixup_bug", "print_report", "print_usage_bug", "do_error", "_trap$|do_trap", "show_stack",
    "dump_stack", "walk_stack", "dump_backtrace", "warn_slowpath", "warn_alloc", "warn_bogus", "__warn",
    "alloc_page", "k?v?(?:m|z|c)alloc", "krealloc", "kmem_cache", "allocate_slab",
    "__alloc_frozen_pages_noprof", "folio_(?:alloc|unlock)", "filemap_alloc_folio", "__filemap_get_folio",
    "find_or_create_page", "do_read_cache_folio", "read_cache_page", "pagecache_get_page",
    "grab_cache_page_write_begin", "slab_", "debug_object", "timer_is_static_object",
    "work_is_static_object", "__might_fault", "print_unlock", "imbalance_bug", "lockdep", "bh_enable",
    "bh_disable", "perf_trace", "lock_acquire", "lock_release", "lock_class", "mark_lock",
    "(reacquire|mark)_held_locks", "raw_spin_rq", "spin_lock", "spin_trylock", "spin_unlock", "read_lock",
    "read_trylock", "write_lock", "write_trylock", "read_unlock", "write_unlock", "^down$", "down_read",
    "down_write", "down_read_trylock", "down_write_trylock", "down_trylock", "up_read", "up_write",
    "^mutex_", "^__mutex_", "^rt_mutex_", "owner_on_cpu", "osq_lock", "osq_unlock",
    "atomic(64)?_(dec|inc|read|set|or|xor|and|add|sub|fetch|xchg|cmpxchg|try)", "(set|clear|change|test)_bit",
    "__wake_up", "^refcount_", "^kref_", "ref_tracker", "seqprop_assert", "memcpy", "memcmp", "memset",
    "memchr", "memmove", "memdup", "strcmp", "strncmp", "strcpy", "strlcpy", "strncpy", "strscpy", "strlen",
    "strstr", "strnstr", "strnlen", "strchr", "strdup", "strndup", "copy_to_user", "copy_from_user",
    "copy_to_iter", "copy_from_iter", "copy_page_to_iter", "copy_page_from_iter", "copy_folio_to_iter",
    "^copyin$", "^copyout$", "put_user", "get_user", "might_fault", "might_sleep", "list_add", "list_del",
    "list_replace", "list_move", "list_splice", "^rb_", "^__rb_", "_indirect_thunk_", "string", "pointer",
    "snprintf", "scnprintf", "kasprintf", "kvasprintf", "printk", "va_format", "dev_info", "dev_notice",
    "dev_warn", "dev_err", "dev_alert", "dev_crit", "dev_emerg", "program_check_exception",
    "program_check_common", "del_timer", "flush_work", "__cancel_work_timer", "cancel_work_sync",
    "try_to_grab_pending", "flush_workqueue", "drain_workqueue", "destroy_workqueue", "queue_work",
    "finish_wait", "kthread_stop", "kobject_", "add_uevent_var", "get_device_parent", "device_add",
    "device_del", "device_unregister", "device_destroy", "device_release", "devres_release_all",
    "hwrng_unregister", "i2c_del_adapter", "__unregister_client", "device_for_each_child",
    "rollback_registered", "unregister_netdev", "sysfs_remove", "device_remove_file", "tty_unregister_device",
    "dummy_urb_enqueue", "usb_kill_urb", "usb_kill_anchored_urbs", "usb_control_msg", "usb_hcd_submit_urb",
    "usb_submit_urb", "^complete$", "wait_for_completion", "^kv?free$", "kfree_skb", "readb$", "readw$",
    "readl$", "readq$", "writeb$", "writew$", "writel$", "writeq$", "logic_in", "logic_out", r"^crc\d+",
    "crc_itu_t", "__might_resched", "assertfail", "^iput$", "^iput_final$", "^ihold$", "hex_dump_to_buffer",
    "print_hex_dump", "^klist_", "(trace|lockdep)_(hard|soft)irq", "^(un)?lock_page",
    "stack_trace_consume_entry", "arch_stack_walk", "stack_trace_save", "insert_work", "__queue_delayed_work",
    "queue_delayed_work_on", "ida_free", "do_(kernel|translation)_fault", "do_mem_abort", "el1_abort",
    "el1h_64_sync(?:_handler)?", "print_tainted", "xas_(?:start|load|find)", "find_lock_entries",
    "truncate_inode_pages_range", "__phys_addr", "__fortify_report", "cleanup_srcu_struct",
    "rhashtable_lookup", "extract_(user|iter)_to_sg", "drop_nlink", "^get_taint$", "^put_device$",
    "lock_timer_base", "__timer_delete_sync", "sk_stop_timer_sync", "__mod_timer", "fast_dput", "dput",
)
# Syscall wrappers differ between arches and versions: the culprit is named without them (shortest wins).
_STRIP_PREFIXES = ("SYSC_", "SyS_", "sys_", "__x64_", "__ia32_", "__arm64_", "____sys_", "___sys_", "__sys_",
                   "__se_", "__se_sys_", "__do_sys_", "compat_SYSC_", "compat_SyS_", "ksys_")


def _canonical(frame: str) -> str:
    return min((frame.removeprefix(p) for p in _STRIP_PREFIXES), key=len)


# Stalls and lockups point at a random place in a loop: syzkaller names them after the frame just above
# a dispatch point (syscall entry, workqueue, softirq, ...), which is stable from one report to the next.
_STALL_ANCHORS = re.compile("|".join((
    "process_one_work", "do_syscall_", "do_fast_syscall_", "sysenter_dispatch", "tracesys_phase2",
    "el0_svc_handler", "invoke_syscall", "ret_fast_syscall", "netif_receive_skb", "do_softirq", "call_timer_fn",
    "_run_timers", "run_timer_softirq", "hrtimer_run", "run_ksoftirqd", "smpboot_thread_fn", "^kthread$",
    "start_secondary", "cpu_startup_entry", "ret_from_fork", "vfs_write", "vfs_read", "vfs_iter_read",
    "vfs_iter_write", "do_iter_read", "do_iter_write", "call_read_iter", "call_write_iter", "new_sync_read",
    "new_sync_write", "vfs_ioctl", "ksys_ioctl", "compat_ioctl", "compat_sys_ioctl", "blkdev_driver_ioctl",
    "blkdev_ioctl", "^call_read_iter", "^call_write_iter", "do_iter_readv_writev", "^call_mmap", "mmap_region",
    "do_mmap", "do_dentry_open", "vfs_open", "^sock_sendmsg", "^sock_recvmsg", "^sock_release",
    "^__sock_release", "^setsockopt$", "kernel_setsockopt", "sock_common_setsockopt", "^listen$",
    "kernel_listen", "sk_common_release", "^sock_mmap", "^accept$", "kernel_accept", "^sock_do_ioctl",
    "^sock_ioctl", "^compat_sock_ioctl", "^nfnetlink_rcv_msg", "^rtnetlink_rcv_msg", "^netlink_dump",
    "^(sys_)?(socketpair|connect|ioctl)", "__do_fault", "do_page_fault", "^page_fault$", "__fput",
    "task_work_run", "exit_to_usermode", "smp_call_function", "tasklet_action", "tasklet_hi_action",
)))


def _stall_frame(frames: list[str]) -> str:
    """The frame above the first dispatch point; the top frame when the stack has none (syzkaller would
    say "corrupted": a one-line lockup report still names the function it is stuck in)."""
    prev = frames[0]
    for frame in frames:
        if _STALL_ANCHORS.search(frame):
            return "smp_call_function" if "smp_call_function" in frame else prev
        prev = frame
    return frames[0]


_HANG_ANCHORS = {"rtnl_lock": "rtnl_lock", "synchronize_rcu": "synchronize_rcu", "synchronize_srcu": "synchronize_rcu",
                 "synchronize_net": "synchronize_rcu", "synchronize_sched": "synchronize_rcu"}
_HANG_SKIP = ("sched", "_lock", "_slowlock", "down", "rwsem", "completion", "kthread", "wait", "synchronize",
              "context_switch", "__switch_to", "cancel_delayed_work", "rcu_barrier")


def _hang_frame(frames: list[str]) -> str:
    """Where a hung task sleeps says little: hangs on RCU grace periods and on rtnl_lock are grouped, and
    otherwise the first frame that is not scheduling, locking or waiting machinery is the culprit."""
    for frame in frames:
        for anchor, name in _HANG_ANCHORS.items():
            if anchor in frame:
                return name
    return next((f for f in frames if not any(s in f for s in _HANG_SKIP)), "")


# ---------------------------------------------------------------------------------- the table

STACK = None  # in Culprit.parts: "parse a stack trace here"


@dataclass(frozen=True)
class Culprit:
    """How the culprit frame is found, as syzkaller's stackFmt: ``parts`` are matched in order from the
    headline on; a regex part skips to the next line it matches (capturing groups are frames), ``STACK``
    takes the frames of the stack trace that follows. The first frame that no skip pattern matches is
    the culprit, unless ``extractor`` picks one. ``parts2`` is tried when ``parts`` finds none."""

    parts: tuple[re.Pattern[str] | None, ...]
    parts2: tuple[re.Pattern[str] | None, ...]
    skip: re.Pattern[str]  # syzkaller's skip patterns and this kind's own
    extractor: Callable[[list[str]], str] | None = None


@dataclass(frozen=True)
class Format:
    """One kind of report: ``start`` matches (searched in) its headline; ``detail`` regexes must then match
    later lines of the report, in order, and add their groups after the headline's. ``title`` is a
    ``str.format`` template over those groups and ``{frame}``, the culprit. A group named ``src`` is the
    file:line the kernel printed (the report's location)."""

    start: re.Pattern[str]
    kind: str
    title: str
    culprit: Culprit | None
    fatal: bool
    detail: tuple[re.Pattern[str], ...] = ()
    strip: str = ""  # a pr_fmt prefix the kernel puts on every line of this report's frames


@dataclass(frozen=True)
class Family:
    """The formats that share a headline word (syzkaller's "oops"). A line holding ``header`` that matches
    none of ``ignore`` starts a report if a format matches it or the header is followed by a message
    (then the line is the title). ``dies``: the die() banner ("Oops: ...: 0000 [#1]") that follows such a
    headline belongs to its report."""

    header: str
    formats: tuple[Format, ...]
    ignore: tuple[re.Pattern[str], ...] = ()
    kind: str = "bug"
    fatal: bool = False
    dies: bool = False


def _c(*parts: re.Pattern[str] | None, skip: Iterable[str] = (), extractor=None,
       parts2: tuple[re.Pattern[str] | None, ...] = ()) -> Culprit:
    return Culprit(tuple(parts), parts2, re.compile("|".join(_SKIP + tuple(skip))), extractor)


_TRACE = _c(_CALL_TRACE, STACK)       # the first frame of the call trace
_RIP_STACK = _c(_RIP, _CALL_TRACE, STACK)  # the faulting function, else the call trace


def _warning_stack(*skip: str) -> Culprit:
    """A WARNING's culprit: RIP (or powerpc's interrupt frame) then the call trace; older kernels and
    other arches print only a call trace."""
    return _c(_re(f"(?:{_RIP.pattern}|--- interrupt: [0-9]+ at {{{{FUNC}}}})"), STACK, skip=skip,
              parts2=(_CALL_TRACE, STACK))


_AT = _re(r"at: (?:{{PC}} +)?{{FUNC}}")  # lockdep's "..., at: f+0x1/0x2" lock acquisition sites
_KASAN_IN = _re(r"BUG: KASAN: (?:[a-z\-]+) in {{FUNC}}")
_KFENCE_IN = _re(r"BUG: KFENCE: (?:[a-z\- ]+) in {{FUNC}}")


def _f(start: str, kind: str, title: str, culprit: Culprit | None, fatal: bool, *detail: str,
       strip: str = "") -> Format:
    return Format(_src(start), kind, title, culprit, fatal, tuple(_src(d) for d in detail), strip)


# Sources: syzkaller pkg/report/linux.go (linuxOopses) for the titles and culprits; the kernel files named
# in each comment for the text (Linux 5.10 and 6.12 format strings, 6.19+/7.x where they changed).
_FAMILIES: tuple[Family, ...] = (
    Family("BUG:", (
        # mm/kasan/report.c: "BUG: KASAN: %s in %pS" then "%s of size %zu at addr %px" (Read/Write).
        _f(r"BUG: KASAN: ([a-z\-]+) in {{FUNC}}", "kasan", "KASAN: {0} {2} in {frame}",
           _c(_KASAN_IN, _CALL_TRACE, STACK, skip=("kernel_fault", "tag_check", "mem_abort", "^el1_", "^el1h_")),
           False, r"(Read|Write) (?:of size|at addr) (?:[0-9a-f]+)"),
        # mm/kasan/report.c: invalid-free / double-free ("Free of addr ...").
        _f(r"BUG: KASAN: (?:double-free or invalid-free|double-free|invalid-free) in {{FUNC}}", "kasan",
           "KASAN: invalid-free in {frame}",
           _c(_re(r"BUG: KASAN: (?:double-free or invalid-free|double-free|invalid-free) in {{FUNC}}"),
              _CALL_TRACE, STACK, skip=("slab_", "kfree", "vunmap", "vfree")), False),
        _f(r"BUG: KASAN: ([a-z\-]+) on address", "kasan", "KASAN: {0} {1}", None, False,
           r"(Read|Write) of size ([0-9]+)"),
        _f(r"BUG: KASAN: (.*)", "kasan", "KASAN: {0}", None, False),
        # mm/kmsan/report.c: "BUG: KMSAN: %s in %pSb", the stack, "Uninit was created at:".
        _f(r"BUG: KMSAN: kernel-usb-infoleak in {{FUNC}}", "kmsan", "KMSAN: kernel-usb-infoleak in {frame}",
           _c(STACK, _re(r"(Local variable .* created at:|Uninit was created at:)"), STACK,
              skip=("alloc_skb", "usb_submit_urb", "usb_start_wait_urb", "usb_bulk_msg", "usb_interrupt_msg",
                    "usb_control_msg")), False),
        _f(r"BUG: KMSAN: ([a-z\-]+) in {{FUNC}}", "kmsan", "KMSAN: {0} in {frame}",
           _c(STACK, _re(r"(Local variable .* created at:|Uninit was created at:)"), STACK,
              skip=("alloc_skb", "netlink_ack", "netlink_rcv_skb", "_encrypt$", "^(?:crypto|cipher|drbg|rng)_")),
           False),
        # kernel/kcsan/report.c: "BUG: KCSAN: %s in %ps / %ps" (the title keeps both functions).
        _f(r"BUG: KCSAN: (.*)", "kcsan", "KCSAN: {0}", _c(re.compile(r"BUG: KCSAN: .*? in ([a-zA-Z0-9_]+)")), False),
        # mm/kfence/report.c.
        _f(r"BUG: KFENCE: (use-after-free|out-of-bounds) (read|write) in {{FUNC}}", "kfence",
           "KFENCE: {0} {1} in {frame}", _c(_KFENCE_IN, STACK), False),
        _f(r"BUG: KFENCE: invalid free in {{FUNC}}", "kfence", "KFENCE: invalid free in {frame}",
           _c(_KFENCE_IN, STACK), False),
        _f(r"BUG: KFENCE: invalid (read|write) in {{FUNC}}", "kfence", "KFENCE: invalid {0} in {frame}",
           _c(_KFENCE_IN, STACK), False),
        _f(r"BUG: KFENCE: memory corruption in {{FUNC}}", "kfence", "KFENCE: memory corruption in {frame}",
           _c(_KFENCE_IN, STACK), False),
        # arch/x86/mm/fault.c page_fault_oops (5.0+: "BUG: unable to handle page fault for address: %px",
        # "BUG: kernel NULL pointer dereference, address: %px"), powerpc "Unable to handle kernel data access".
        _f(r"BUG: (?:unable to handle kernel paging request|unable to handle page fault for address"
           r"|Unable to handle kernel data access)", "oops", "BUG: unable to handle kernel paging request in {frame}",
           _RIP_STACK, True),
        _f(r"BUG: (?:unable to handle kernel NULL pointer dereference|kernel NULL pointer dereference"
           r"|Kernel NULL pointer dereference)", "oops",
           "BUG: unable to handle kernel NULL pointer dereference in {frame}", _RIP_STACK, True),
        _f(r"BUG: (?:unable to handle kernel|Unable to handle kernel)", "oops", "BUG: unable to handle kernel",
           None, True),
        # kernel/locking/spinlock_debug.c spin_dump.
        _f(r"BUG: (spinlock|rwlock) (lockup suspected|already unlocked|recursion|cpu recursion|bad magic"
           r"|wrong owner|wrong CPU|trylock failure on UP)", "spinlock", "BUG: {0} {1} in {frame}",
           _c(_CALL_TRACE, STACK, skip=("spin_", "_lock", "_unlock")), False),
        # kernel/watchdog.c: "BUG: soft lockup - CPU#%d stuck for %us! [%s:%d]".
        _f(r"BUG: soft lockup", "soft_lockup", "BUG: soft lockup in {frame}",
           _c(_RIP, _CALL_TRACE, STACK, extractor=_stall_frame), True),
        # kernel/locking/lockdep.c (debug_check_no_locks_held), old lock listing with [<pc>].
        _f(r"BUG: .*still has locks held!", "lockdep", "BUG: still has locks held in {0}", None, False,
           r"{{PC}} +{{FUNC}}"),
        # kernel/sched/core.c __schedule_bug: "BUG: scheduling while atomic: %s/%d/0x%08x".
        _f(r"BUG: scheduling while atomic", "atomic_sleep", "BUG: scheduling while atomic in {frame}",
           _c(_CALL_TRACE, STACK, skip=("schedule",)), False),
        _f(r"BUG: lock held when returning to user space", "lockdep",
           "BUG: lock held when returning to user space in {0}", None, False,
           r"leaving the kernel with locks still held", r"at: (?:{{PC}} +)?{{FUNC}}"),
        _f(r"BUG: bad unlock balance detected!", "lockdep", "BUG: bad unlock balance in {frame}",
           _c(_re(r"{{PC}} +{{FUNC}}"), _CALL_TRACE, STACK), False),
        _f(r"BUG: held lock freed!", "lockdep", "BUG: held lock freed in {0}", None, False, r"{{PC}} +{{FUNC}}"),
        _f(r"BUG: Bad rss-counter state", "bug", "BUG: Bad rss-counter state", None, False),
        _f(r"BUG: non-zero nr_ptes on freeing mm", "bug", "BUG: non-zero nr_ptes on freeing mm", None, False),
        _f(r"BUG: non-zero nr_pmds on freeing mm", "bug", "BUG: non-zero nr_pmds on freeing mm", None, False),
        # fs/dcache.c umount_check: the filesystem and device are left out (they make duplicates).
        _f(r"BUG: Dentry .* still in use \([0-9]+\) \[(unmount) of ([^\]]+)\]", "bug",
           "BUG: Dentry still in use in {0}", None, False),
        # mm/page_alloc.c bad_page: "BUG: Bad page state in process %s  pfn:%05lx"; the page owner's
        # allocation stack when page_owner is on, else (not in syzkaller) the stack that found it, past
        # page_alloc.c's checkers (bad_page, free_page_is_bad, check_new_page...).
        _f(r"BUG: Bad page (state|cache)", "bad_page", "BUG: Bad page {0} in {frame}",
           _c(_re(r"page last allocated"), STACK, parts2=(_CALL_TRACE, STACK),
              skip=("(free|put|get|update|release)_page", "free_unref", "^_*folio", "truncate_inode_pages",
                    "page_frag_free", "alloc", "vmap", "page_owner", "bad_page", "page_is_bad", "check_new_page",
                    "free_tail_page")), False),
        # mm/memory.c print_bad_pte: "BUG: Bad page map in process %s  pte:%08llx pmd:%08llx".
        _f(r"BUG: Bad page map", "bad_page", "BUG: Bad page map", _TRACE, False),
        # kernel/workqueue.c: "BUG: workqueue lockup - pool ... stuck for %us!".
        _f(r"BUG: workqueue lockup", "workqueue_lockup", "BUG: workqueue lockup", None, True),
        # kernel/sched/core.c __might_resched: "BUG: sleeping function called from invalid context at %s:%d".
        _f(r"BUG: sleeping function called from invalid context at (?P<src>\S+)", "atomic_sleep",
           "BUG: sleeping function called from invalid context in {frame}", _TRACE, False),
        # lib/smp_processor_id.c check_preemption_disabled.
        _f(r"BUG: using ([a-z_]+)\(\) in preemptible", "bug", "BUG: using {0}() in preemptible code in {frame}",
           _c(_CALL_TRACE, STACK, skip=("dump_stack", "preemption", "preempt", "debug_", "processor_id", "this_cpu")),
           False),
        # kernel/workqueue.c process_one_work: 5.10 "BUG: workqueue leaked lock or atomic: ..." then
        # "last function: %ps"; 6.x "BUG: workqueue leaked atomic, lock or RCU: ..." then "... workfn=%ps".
        _f(r"BUG: workqueue leaked lock or atomic", "bug", "BUG: workqueue leaked lock or atomic in {0}", None,
           False, r"last function: ([a-zA-Z0-9_]+)"),
        _f(r"BUG: workqueue leaked atomic, lock or RCU", "bug", "BUG: workqueue leaked lock or atomic in {0}", None,
           False, r"workfn=([a-zA-Z0-9_]+)"),
        # syzkaller prints "BUG: memory leak" before what it reads from /sys/kernel/debug/kmemleak.
        _f(r"BUG: memory leak", "kmemleak", "memory leak in {frame}", _c(
            _re(r"backtrace(?: \(crc [0-9a-fA-F]*\))?:"), STACK,
            skip=("kmemleak", "mmap", "kmem", "slab", "alloc", "create_object", "idr_get", "list_lru_init",
                  "kasprintf", "kvasprintf", "pcpu_create", "strdup", "strndup", "memdup")), False),
        # arch/x86/kernel/traps.c handle_stack_overflow: "BUG: %s stack guard page was hit at %p ...".
        _f(r"BUG: .*stack guard page was hit at", "stack_overflow", "BUG: stack guard page was hit in {frame}",
           _c(_RIP, _CALL_TRACE, STACK, extractor=_stall_frame), True),
        # kernel/locking/lockdep.c "[ BUG: Invalid wait context ]": syzkaller merges it with lockdep's WARNING.
        _f(r"BUG: Invalid wait context", "lockdep", "WARNING: locking bug in {frame}",
           _c(_CALL_TRACE, STACK, skip=("lock_sock", "release_sock")), False),
        _f(r"BUG:\s*$", "bug", "BUG: corrupted", None, False),
    ), ignore=tuple(re.compile(p) for p in (
        r"ODEBUG:", r"Boot_DEBUG:", r"xlog_status:", r"DEBUG:", r"BUG: no syscalls can create resource")),
        dies=True),
    Family("WARNING:", (
        # lib/debugobjects.c debug_print_object: WARN(1, "ODEBUG: %s %s (active state %u) object: ...").
        _f(r"WARNING: .*lib/debugobjects\.c.* (?:debug_print|debug_check|at)", "odebug",
           "WARNING: ODEBUG bug in {frame}", _warning_stack("debug_", "rcu", "hrtimer_", "timer_", "work_", "percpu_",
                                                            "vunmap", "vfree", "__free_", "debug_check", "kobject_"),
           False),
        _f(r"WARNING: .*mm/usercopy\.c.* (?:usercopy_warn|at)", "warning", "WARNING: bad usercopy in {frame}",
           _warning_stack("usercopy", "__check"), False),
        _f(r"WARNING: .*lib/kobject\.c.* (?:kobject_|at)", "warning", "WARNING: kobject bug in {frame}",
           _warning_stack("kobject_"), False),
        _f(r"WARNING: .*fs/proc/generic\.c.* (?:proc_register|at)", "warning",
           "WARNING: proc registration bug in {frame}", _warning_stack("proc_"), False),
        # lib/refcount.c refcount_warn_saturate: WARN_ONCE(1, "refcount_t: underflow; use-after-free.\n").
        _f(r"WARNING: .*lib/refcount\.c.* (?:refcount_|at)", "refcount", "WARNING: refcount bug in {frame}",
           _warning_stack("refcount", "kobject_"), False),
        _f(r"WARNING: .*kernel/locking/lockdep\.c.*lock_", "lockdep", "WARNING: locking bug in {frame}",
           _warning_stack("lock_sock", "release_sock"), False),
        # kernel/locking/lockdep.c: "WARNING: %s/%d still has locks held!" then the held locks ("at: f").
        _f(r"WARNING: .*still has locks held!", "lockdep", "WARNING: still has locks held in {0}", None, False,
           r"at: {{FUNC}}"),
        _f(r"WARNING: Nested lock was not taken", "lockdep", "WARNING: nested lock was not taken in {frame}",
           _warning_stack(), False),
        _f(r"WARNING: lock held when returning to user space", "lockdep",
           "WARNING: lock held when returning to user space in {0}", None, False,
           r"leaving the kernel with locks still held", r"at: (?:{{PC}} +)?{{FUNC}}"),
        _f(r"WARNING: .*mm/.*\.c.* k?.?malloc", "warning", "WARNING: kmalloc bug in {frame}",
           _warning_stack("kmalloc", "krealloc", "slab", "kmem"), False),
        _f(r"WARNING: .*mm/vmalloc.c.*__vmalloc_node", "warning", "WARNING: zero-size vmalloc in {frame}",
           _warning_stack(), False),
        _f(r"WARNING: .* usb_submit_urb", "warning", "WARNING in {frame}/usb_submit_urb",
           _warning_stack("usb_submit_urb", "usb_start_wait_urb", "usb_bulk_msg", "usb_interrupt_msg",
                          "usb_control_msg"), False),
        # kernel/panic.c __warn, 6.19+: "WARNING: %s:%d at %pS, CPU#%d: %s/%d" (the bug address may not
        # resolve: "at 0x0") and "WARNING: at %pS, CPU#%d: %s/%d" without a file.
        _f(r"WARNING: {{SRC}} at 0x[0-9a-f]+, CPU#\d+", "warning", "WARNING in {frame}", _warning_stack(), False),
        # kernel/panic.c __warn, up to 6.18: "WARNING: CPU: %d PID: %d at %s:%d %pS".
        _f(r"WARNING: .* at {{SRC}} {{FUNC}}", "warning", "WARNING in {frame}", _warning_stack(), False),
        _f(r"WARNING: {{SRC}} at {{FUNC}}", "warning", "WARNING in {frame}", _warning_stack(), False),
        _f(r"WARNING: \[.*\] {{SRC}} at {{FUNC}}.*", "warning", "WARNING in {frame}", _warning_stack(), False),
        # The same without a file (assembly callers, CONFIG_DEBUG_BUGVERBOSE=n): 6.19+ and up to 6.18.
        _f(r"WARNING: at .+?, CPU#\d+", "warning", "WARNING in {frame}", _warning_stack(), False),
        _f(r"WARNING: CPU: \d+ PID: \d+ at \S+\+0x", "warning", "WARNING in {frame}", _warning_stack(), False),
        # kernel/locking/lockdep.c reports ("possible deadlock" names the first lock acquisition site that
        # is not a generic helper).
        _f(r"WARNING: possible circular locking dependency detected", "lockdep", "possible deadlock in {frame}",
           _c(_AT, _AT, STACK, skip=("process_one_work", "flush_workqueue", "drain_workqueue", "destroy_workqueue")),
           False, r"is trying to acquire lock"),
        _f(r"WARNING: possible irq lock inversion dependency detected", "lockdep", "possible deadlock in {0}", None,
           False, r"just changed the state of lock", r"at: (?:{{PC}} +)?{{FUNC}}"),
        _f(r"WARNING: .*-safe -> .*-unsafe lock order detected", "lockdep", "possible deadlock in {frame}",
           _c(_re(r"which became (?:.*) at:"), STACK), False),
        _f(r"WARNING: possible recursive locking detected", "lockdep", "possible deadlock in {0}", None, False,
           r"is trying to acquire lock", r"at: (?:{{PC}} +)?{{FUNC}}"),
        _f(r"WARNING: inconsistent lock state", "lockdep", "inconsistent lock state in {frame}", _TRACE, False,
           r"takes", r"at: (?:{{PC}} +)?{{FUNC}}"),
        # lockdep_rcu_suspicious: "WARNING: suspicious RCU usage" then "%s:%d %s!" (file:line, message).
        _f(r"WARNING: suspicious RCU usage", "lockdep", "WARNING: suspicious RCU usage in {frame}",
           _c(_CALL_TRACE, STACK, skip=("rcu", "kmem", "slab")), False, r"{{SRC}}"),
        _f(r"WARNING: kernel stack regs at [0-9a-f]+ in [^ ]* has bad '([^']+)' value", "warning",
           "WARNING: kernel stack regs has bad '{0}' value", None, False),
        _f(r"WARNING: kernel stack frame pointer at [0-9a-f]+ in [^ ]* has bad value", "warning",
           "WARNING: kernel stack frame pointer has bad value", None, False),
        _f(r"WARNING: bad unlock balance detected!", "lockdep", "WARNING: bad unlock balance in {frame}",
           _c(_re(r"{{PC}} +{{FUNC}}"), _CALL_TRACE, STACK), False),
        _f(r"WARNING: held lock freed!", "lockdep", "WARNING: held lock freed in {0}", None, False,
           r"at:(?: {{PC}})? +{{FUNC}}"),
        _f(r"WARNING: kernel stack regs .* has bad 'bp' value", "warning", "WARNING: kernel stack regs has bad value",
           None, False),
        _f(r"WARNING: kernel stack frame pointer .* has bad value", "warning",
           "WARNING: kernel stack regs has bad value", None, False),
        _f(r"WARNING:\s*$", "warning", "WARNING: corrupted", None, False),
    ), ignore=tuple(re.compile(p) for p in (
        r"WARNING: /etc/ssh/moduli does not exist, using fixed modulus",
        r"WARNING: workqueue cpumask: online intersect > possible intersect", r"WARNING: [Tt]he mand mount option",
        r"WARNING: Unsupported flag value\(s\) of 0x%x in DT_FLAGS_1",
        r"WARNING: Unprivileged eBPF is enabled with eIBRS",
        r"WARNING: fbcon: Driver '(.*)' missed to adjust virtual screen size",
        r"WARNING: See https.* for mitigation options.",
        r"WARNING: kernel not compiled with CPU_SRSO", r"EXT4-[Ff][Ss](?: \(.*\))?:",
        r"(?i)warning: .* uses (deprecated v2 capabilities|wireless extensions)", r"XFS \(\w+\): WARNING",
        # Not in syzkaller: boot notices about CPU vulnerabilities (arch/x86/kernel/cpu/bugs.c, after its
        # pr_fmt "RETBleed: ", "Spectre V2 : ", ...) and firmware (mtrr, io_apic), which QEMU's CPU models
        # can print; a WARN is never behind such a prefix.
        r"^[A-Za-z][\w -]* ?: WARNING: .*(?:[Mm]itigation|data leaks possible|MITIGATION_|IBPB|retbleed|BIOS bug)",
        r"WARNING: bogus zero IO-APIC address")),
        kind="warning"),
    Family("INFO:", (
        # Lockdep as printed before 4.x ("[ INFO: ... ]").
        _f(r"INFO: possible circular locking dependency detected", "lockdep", "possible deadlock in {0}", None, False,
           r"is trying to acquire lock", r"at: {{PC}} +{{FUNC}}"),
        _f(r"INFO: possible irq lock inversion dependency detected", "lockdep", "possible deadlock in {0}", None,
           False, r"just changed the state of lock", r"at: {{PC}} +{{FUNC}}"),
        _f(r"INFO: SOFTIRQ-safe -> SOFTIRQ-unsafe lock order detected", "lockdep", "possible deadlock in {0}", None,
           False, r"is trying to acquire", r"at: {{PC}} +{{FUNC}}"),
        _f(r"INFO: possible recursive locking detected", "lockdep", "possible deadlock in {0}", None, False,
           r"is trying to acquire lock", r"at: {{PC}} +{{FUNC}}"),
        _f(r"INFO: inconsistent lock state", "lockdep", "inconsistent lock state in {0}", None, False,
           r"takes", r"at: {{PC}} +{{FUNC}}"),
        # kernel/rcu/tree_stall.h: "INFO: %s self-detected stall on CPU", "INFO: %s detected stalls on
        # CPUs/tasks:"; tree_exp.h: "INFO: %s detected expedited stalls on CPUs/tasks:". The culprit is what
        # the timer interrupt interrupted.
        _f(r"INFO: rcu_(?:preempt|sched|bh) (?:self-)?detected(?: expedited)? stall", "rcu_stall",
           "INFO: rcu detected stall in {frame}",
           _c(_re(r"apic_timer_interrupt"), _RIP, STACK, skip=("apic_timer_interrupt", "rcu"), extractor=_stall_frame,
              parts2=(_re(r"(?:apic_timer_interrupt|Exception stack|el1h_64_irq)"), STACK)), True),
        # kernel/rcu/tasks.h: "INFO: rcu_tasks detected stalls on tasks:" then each holdout task's stack
        # (sched_show_task). syzbot titles it as an RCU stall (the corpus); the culprit is found as for
        # one, past the scheduler frames the holdout's stack starts with.
        _f(r"INFO: rcu_tasks\w* detected stalls", "rcu_stall", "INFO: rcu detected stall in {frame}",
           _c(_CALL_TRACE, STACK, skip=("rcu", "schedule", "__switch_to", "apic_timer_interrupt"),
              extractor=_stall_frame), True),
        # kernel/locking/lockdep.c register_lock_class.
        _f(r"INFO: trying to register non-static key", "lockdep", "INFO: trying to register non-static key in {frame}",
           _c(_CALL_TRACE, STACK, skip=("stack", "lock", "IRQ")), False),
        _f(r"INFO: suspicious RCU usage", "lockdep", "INFO: suspicious RCU usage in {frame}",
           _c(_CALL_TRACE, STACK, skip=("rcu", "kmem", "slab")), False, r"{{SRC}}"),
        # kernel/hung_task.c: "INFO: task %s:%d blocked for more than %ld seconds." (7.x: "blocked in I/O
        # wait for more than").
        _f(r"INFO: task .* blocked (?:in I/O wait )?for more than [0-9]+ seconds", "hung_task",
           "INFO: task hung in {frame}", _c(_CALL_TRACE, STACK, extractor=_hang_frame), True),
        _f(r"INFO: task .* can't die for more than .* seconds", "hung_task", "INFO: task can't die in {frame}",
           _c(_CALL_TRACE, STACK, skip=("schedule",)), True),
        _f(r"INFO: (Freed|Allocated) in (.*)", "kasan", "INFO: {0} in {1}", None, False),
        _f(r"INFO:\s*$", "bug", "INFO: corrupted", None, False),
    ), ignore=tuple(re.compile(p) for p in (
        r"INFO: lockdep is turned off", r"INFO: Stall ended before state dump start", r"INFO: NMI handler",
        r"INFO: recovery required on readonly filesystem", r"(handler|interrupt).*took too long",
        r"INFO: sys_.* is not present in /proc/kallsyms", r"INFO: no syscalls can create resource",
        r"rmt_storage:INFO:", r"_INFO:",
        # kernel/hung_task.c debug_show_blocker (6.15+), inside a hung task report: "INFO: task %s:%d is
        # blocked on a mutex likely owned by task %s:%d.", "... blocked on a semaphore likely last held by".
        r"INFO: task .* blocked on an? (?:mutex|semaphore|rw-semaphore)"))),
    # arm, arm64, riscv page faults.
    Family("Unable to handle kernel", (
        _f(r"Unable to handle kernel (paging request|NULL pointer dereference|access to user memory)", "oops",
           "BUG: unable to handle kernel {0} in {frame}", _RIP_STACK, True),
    ), kind="oops", fatal=True, dies=True),
    # arch/x86/kernel/traps.c exc_general_protection: die_addr("general protection fault, ...") (6.x
    # prints the die banner "Oops: %s: %04lx [#%d]" as the headline).
    Family("general protection fault", (
        _f(r"general protection fault.*:", "oops", "general protection fault in {frame}", _RIP_STACK, True),
    ), ignore=(re.compile(r"general protection fault .* error:\d+ in "),), kind="oops", fatal=True, dies=True),
    Family("stack segment: ", (
        _f(r"stack segment: ", "oops", "stack segment fault in {frame}", _RIP_STACK, True),
    ), kind="oops", fatal=True, dies=True),
    # kernel/panic.c panic(): "Kernel panic - not syncing: %s".
    Family("Kernel panic", (
        _f(r"Kernel panic - not syncing: stack-protector: Kernel stack is corrupted in: {{FUNC}}", "panic",
           "kernel panic: stack is corrupted in {0}", None, True),
        _f(r"Kernel panic - not syncing: stack-protector: Kernel stack is corrupted in: [a-f0-9]+", "panic",
           "kernel panic: stack is corrupted in {frame}", _c(_CALL_TRACE, STACK, skip=("stack_chk",)), True),
        _f(r"Kernel panic - not syncing: corrupted stack end detected inside scheduler", "stack_overflow",
           "kernel panic: corrupted stack end in {frame}",
           _c(_CALL_TRACE, STACK, skip=("schedule", "retint_kernel"), extractor=_stall_frame), True),
        # arch/x86/kernel/traps.c handle_stack_overflow (older kernels).
        _f(r"Kernel panic - not syncing: kernel stack overflow", "stack_overflow", "kernel stack overflow in {frame}",
           _c(_CALL_TRACE, STACK, skip=("bad_stack",), extractor=_stall_frame), True),
        _f(r"Kernel panic - not syncing: Attempted to kill init!", "panic", "kernel panic: Attempted to kill init!",
           None, True),
        _f(r"Kernel panic - not syncing: Couldn't open N_TTY ldisc for [^ ]+ --- error -[0-9]+", "panic",
           "kernel panic: Couldn't open N_TTY ldisc", None, True),
        # Printed after the report that caused them; alone, the report was lost.
        _f(r"Kernel panic - not syncing: Fatal exception", "panic", "kernel panic: Fatal exception", None, True),
        _f(r"Kernel panic - not syncing: panic_on_warn set", "panic", "kernel panic: panic_on_warn set", None, True),
        _f(r"Kernel panic - not syncing: hung_task: blocked tasks", "panic", "kernel panic: hung_task: blocked tasks",
           None, True),
        _f(r"Kernel panic - not syncing: (.*)", "panic", "kernel panic: {0}", None, True),
    ), kind="panic", fatal=True),
    # arch/x86/kernel/traps.c exc_double_fault: "PANIC: double fault, error_code: 0x%lx".
    Family("PANIC: double fault", (
        _f(r"PANIC: double fault", "double_fault", "PANIC: double fault in {frame}", _c(_RIP), True),
    ), kind="double_fault", fatal=True, dies=True),
    Family("rust_kernel: panicked", (
        _f(r"rust_kernel: panicked", "bug", "{0} in {frame}",
           _c(_CALL_TRACE, STACK, skip=(re.escape("__rustc::rust_begin_unwind"),)), True, r"^(.+)$"),
    ), fatal=True, dies=True),
    # lib/bug.c report_bug: "kernel BUG at %s:%u!" (6.x without a file: "Kernel BUG at %pB [verbose debug
    # info unavailable]").
    Family("kernel BUG", (
        _f(r"kernel BUG at (?P<src>mm/usercopy\.c:\d+)", "bug", "BUG: bad usercopy in {frame}",
           _c(_CALL_TRACE, STACK, skip=("usercopy", "__check")), True),
        _f(r"kernel BUG at (?P<src>lib/list_debug\.c:\d+)", "bug", "BUG: corrupted list in {frame}", _TRACE, True),
        _f(r"kernel BUG at (?P<src>[^\s!]+)", "bug", "kernel BUG in {frame}",
           _c(_RIP, _CALL_TRACE, STACK, skip=("^skb_",)), True),
    ), fatal=True, dies=True),
    Family("Kernel BUG", (
        _f(r"Kernel BUG (.*)", "bug", "kernel BUG {0}", None, True),
    ), fatal=True, dies=True),
    # mm/slub.c slab_err/object_err: "BUG %s (%s): %pV".
    Family("BUG kmalloc-", (
        _f(r"BUG kmalloc-.*: Object already free", "bug", "BUG: Object already free", None, False),
    )),
    # arch/x86/kernel/traps.c: do_error_trap("divide error") -> "Oops: divide error: 0000 [#1]" (before 5.8
    # without "Oops: "; 5.8's IDTENTRY conversion printed "divide_error").
    Family("divide error:", (
        _f(r"divide error: ", "divide_error", "divide error in {frame}", _c(_RIP), True),
    ), kind="divide_error", fatal=True, dies=True),
    Family("divide_error:", (
        _f(r"divide_error: ", "divide_error", "divide error in {frame}", _c(_RIP), True),
    ), kind="divide_error", fatal=True, dies=True),
    Family("invalid opcode:", (
        _f(r"invalid opcode: ", "oops", "invalid opcode in {frame}", _c(_RIP), True),
    ), kind="oops", fatal=True, dies=True),
    # lib/ubsan.c ubsan_prologue: "UBSAN: %s in %s:%d:%d" (before 5.11: "UBSAN: Undefined behaviour in").
    Family("UBSAN:", (
        _f(r"UBSAN: Undefined behaviour in", "ubsan", "UBSAN: undefined-behaviour in {frame}",
           _c(_CALL_TRACE, STACK, skip=("ubsan", "overflow")), False),
        _f(r"UBSAN: array-index-out-of-bounds in (?:{{SRC}})?", "ubsan", "UBSAN: array-index-out-of-bounds in {frame}",
           _c(_CALL_TRACE, STACK, skip=("ubsan", "overflow")), False),
        _f(r"UBSAN: (.*?) in (?:{{SRC}})?", "ubsan", "UBSAN: {0} in {frame}",
           _c(_CALL_TRACE, STACK, skip=("ubsan", "overflow")), False),
    ), kind="ubsan"),
    # net/core/dev.c netdev_wait_allrefs_any.
    Family("unregister_netdevice: waiting for", (
        _f(r"unregister_netdevice: waiting for (?:.*) to become free", "netdev",
           "unregister_netdevice: waiting for DEV to become free", None, False),
    ), kind="netdev"),
    Family("VFS: Close: file count is 0", (
        _f(r"VFS: Close: file count is 0", "vfs", "VFS: Close: file count is zero (use-after-free)", None, False),
    ), kind="vfs"),
    # fs/super.c generic_shutdown_super.
    Family("VFS: Busy inodes after unmount", (
        _f(r"VFS: Busy inodes after unmount", "vfs", "VFS: Busy inodes after unmount (use-after-free)", None, False),
    ), kind="vfs"),
    # arm/arm64 die(): "Internal error: %s: %x [#%d]".
    Family("Internal error:", (
        _f(r"Internal error:", "oops", "Internal error in {frame}", _RIP_STACK, True),
    ), kind="oops", fatal=True, dies=True),
    Family("Unhandled fault:", (
        _f(r"Unhandled fault:", "oops", "Unhandled fault in {frame}", _RIP_STACK, True),
    ), kind="oops", fatal=True, dies=True),
    Family("Alignment trap:", (
        _f(r"Alignment trap:", "oops", "Alignment trap in {frame}", _RIP_STACK, True),
    ), kind="oops", fatal=True),
    Family("trusty: panic", (
        _f(r"trusty: panic \(.*?\):(?: DEBUG)? ASSERT FAILED at \(.*?\): (.+)", "panic", "trusty: ASSERT FAILED: {0}",
           None, True),
        _f(r"trusty: panic.* ASSERT FAILED.*: *(.*)", "panic", "trusty: ASSERT FAILED: {0}", None, True),
        _f(r"trusty: panic \(.*?\): (.+)", "panic", "trusty: panic: {0}", None, True),
    ), kind="panic", fatal=True),
    # Not in syzkaller. kernel/watchdog.c watchdog_hardlockup_check: "Watchdog detected hard LOCKUP on
    # cpu %d" (then the stuck CPU's registers or backtrace); titled like a soft lockup.
    Family("detected hard LOCKUP", (
        _f(r"Watchdog detected hard LOCKUP on cpu", "hard_lockup", "hard LOCKUP in {frame}",
           _c(_RIP, _CALL_TRACE, STACK, extractor=_stall_frame), True),
    ), kind="hard_lockup", fatal=True),
    # Not in syzkaller. mm/kmemleak.c with kmemleak.verbose=1 prints each leak on the console ("kmemleak:
    # unreferenced object 0x%08lx (size %zu):" ... "backtrace (crc %x):" then the frames); the scan's
    # summary "kmemleak: %d new suspected memory leaks" has no frames.
    Family("unreferenced object 0x", (
        _f(r"unreferenced object 0x[0-9a-f]+ \(size \d+\):", "kmemleak", "memory leak in {frame}", _c(
            _re(r"backtrace(?: \(crc [0-9a-fA-F]*\))?:"), STACK,
            skip=("kmemleak", "mmap", "kmem", "slab", "alloc", "create_object", "idr_get", "list_lru_init",
                  "kasprintf", "kvasprintf", "pcpu_create", "strdup", "strndup", "memdup")), False, strip="kmemleak: "),
    ), kind="kmemleak"),
    Family("new suspected memory leak", (
        _f(r"kmemleak: \d+ new suspected memory leaks?", "kmemleak", "memory leak", None, False),
    ), kind="kmemleak"),
    # The x86 die() banner on its own, for the traps without a format above ("Oops: int3: 0000 [#1]") and a
    # page fault oops whose "BUG:" line was lost ("Oops: Oops: 0000 [#1]").
    Family("Oops: ", (
        _f(r"^Oops: .*\[#\d+\]", "oops", "Oops in {frame}", _RIP_STACK, True),
    ), kind="oops", fatal=True, dies=True),
)

# Lines that never start a new report while one is open (syzkaller's reportStartIgnores, and the
# follow-up lines of a kmemleak report).
_INSIDE = re.compile(r"invalid opcode: 0000|Kernel panic - not syncing|unregister_netdevice: waiting for"
                     r"|PANIC: double fault|Internal error:|unreferenced object 0x|kmemleak: \d+ new suspected")
# The die() banner: 6.x "Oops: general protection fault ...: 0000 [#1] PREEMPT SMP", older "%s: %04lx [#%d]".
_DIE = re.compile(r": [0-9a-f]{4} \[#\d+\]")
_PANIC = "Kernel panic - not syncing"
# A panic that says it was caused by the report before it (the report is then fatal).
_CONSEQUENCE = re.compile(r"Kernel panic - not syncing: (?:.*(?:Fatal exception|panic_on_warn set|panic_on_kmsan"
                          r"|hung_task: blocked tasks|softlockup: hung tasks|Hard LOCKUP|RCU Stall))")
# What ends a report: the oops/WARN end marker, the end of a panic, a sanitizer report's closing rule.
_END = re.compile(r"---\[ end trace|---\[ end Kernel panic|^={20,}\s*$")
_CUT_HERE = "------------[ cut here ]------------"
# A source file and line in a headline (where a WARNING or BUG was printed from).
_LOCATION = re.compile(r"(?<![\w/.-])([a-zA-Z0-9_\-/.]+\.(?:c|h|rs|S):\d+)")
_HEADERS = re.compile("|".join(re.escape(f.header) for f in _FAMILIES))

# Lines user-space faults make the kernel print: notes, never reports. arch/x86/kernel/traps.c show_signal
# "traps: %s[%d] %s%s ip:%lx sp:%lx error:%lx in ...", arch/x86/mm/fault.c show_signal_msg "%s[%d]: segfault
# at %lx ip %px sp %px error %lx in ...", kernel/signal.c "%s: potentially unexpected fatal signal %d.",
# arch/x86/kernel/umip.c "umip: %s[%d] ip:%lx sp:%lx: ...".
_USER_NOTE = re.compile(
    r"^(?:traps: |umip: )?.{1,16}?\[\d+\](?:: segfault at [0-9a-f]+ ip | .*\bip:[0-9a-f]+ sp:[0-9a-f]+)"
    r"|: potentially unexpected fatal signal \d+\.")

_TOP_FRAMES = 5
_WINDOW = 1500  # lines of one report looked at for its title and culprit (its excerpt is max_excerpt)
# Frames that describe how the report was printed, not the bug: left out of CrashReport.frames.
_MACHINERY = {
    "die", "__die", "die_addr", "do_trap", "do_error_trap", "handle_bug", "exc_invalid_op", "asm_exc_invalid_op",
    "oops_end", "page_fault_oops", "kernelmode_fixup_or_oops", "__bad_area_nosemaphore", "bad_area_nosemaphore",
    "do_user_addr_fault", "exc_page_fault", "asm_exc_page_fault", "exc_general_protection",
    "asm_exc_general_protection", "watchdog_timer_fn", "__hrtimer_run_queues", "hrtimer_interrupt", "dump_page",
    "bad_page", "check_panic_on_warn", "__schedule", "schedule", "schedule_timeout", "schedule_preempt_disabled",
    "io_schedule", "io_schedule_timeout", "__wait_for_common", "rwsem_down_read_slowpath",
    "rwsem_down_write_slowpath", "folio_wait_bit_common", "__folio_lock", "__folio_lock_killable",
    "context_switch", "__switch_to_asm", "__switch_to",
}
_SKIP_RE = re.compile("|".join(_SKIP))


# ---------------------------------------------------------------------------------------- reports

@dataclass
class CrashReport:
    """One piece of kernel trouble.

    ``title`` is syzkaller-style and is the signature; ``culprit`` the frame it names (None when none was
    found); ``frames`` the top frames of the first stack trace (reporting machinery left out);
    ``location`` the file:line the kernel printed (a WARNING's, a BUG's); ``fatal`` whether the kernel is
    usually dead or stuck after it (or a panic followed).

    Kinds: fatal ones bug (BUG(), Rust panics), oops (page faults, GPF, die banners), panic, soft_lockup,
    hard_lockup, hung_task, rcu_stall, workqueue_lockup, stack_overflow, divide_error, double_fault; the
    kernel survives warning, refcount, odebug, kasan, kfence, kmsan, kcsan, ubsan, lockdep, spinlock,
    kmemleak, bad_page, atomic_sleep, netdev, vfs (and the rarer "bug" lines such as "BUG: Bad rss-counter
    state")."""

    title: str
    kind: str
    frames: list[str] = field(default_factory=list)
    first_line: str = ""
    excerpt: list[str] = field(default_factory=list)
    location: str | None = None
    culprit: str | None = None
    fatal: bool = False

    @property
    def signature(self) -> str:
        return self.title

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> CrashReport:
        """From results.json; a file of schema 1 has no ``culprit``/``fatal`` (fatal then by kind)."""
        known = {f.name for f in fields(cls)}
        report = cls(**{k: v for k, v in d.items() if k in known})
        if "fatal" not in d:
            report.fatal = report.kind in _FATAL_KINDS
        return report


_FATAL_KINDS = {"bug", "oops", "panic", "soft_lockup", "hard_lockup", "hung_task", "rcu_stall", "workqueue_lockup",
                "stack_overflow", "divide_error", "double_fault"}


def _family_of(text: str) -> Family | None:
    """The family whose headline this line is, or None (most lines: one regex search)."""
    if not _HEADERS.search(text) or _USER_NOTE.search(text):
        return None
    for fam in _FAMILIES:
        if fam.header in text and not any(p.search(text) for p in fam.ignore) and _is_headline(fam, text):
            return fam
    return None


def _is_headline(fam: Family, text: str) -> bool:
    """A line of a family's formats, or its header word followed by a message (titled by its text):
    "WARNING:root:..." is Python's logging, not the kernel."""
    if any(f.start.search(text) for f in fam.formats):
        return True
    rest = text[text.find(fam.header) + len(fam.header):]
    return not fam.header.endswith(":") or not rest or rest[0].isspace()


def user_space_notes(lines: list[str]) -> list[str]:
    """Lines about user-space faults (segfaults, traps, fatal signals): worth showing, never kernel trouble."""
    return [t for t in (strip_timestamp(x) for raw in lines for x in raw.split("\n")) if _USER_NOTE.search(t)]


def parse(lines: list[str], max_excerpt: int = 80) -> list[CrashReport]:
    """All reports in ``lines`` (console text or kmsg record texts), in order.

    Lines may carry a timestamp ("[   12.345678]"), a caller id ("[  T123]", "[    C1]"), a syslog level
    ("<4>") or a raw /dev/kmsg record header ("4,1234,40100000,-;"); a report's lines are those of its
    headline's context. A panic that says it follows from the report before it ("Fatal exception",
    "panic_on_warn set", ...) is appended to that report and makes it fatal."""
    recs = _prepare(lines)
    fams = [_family_of(r.text) for r in recs]
    used = [False] * len(recs)
    reports: list[CrashReport] = []
    for i, fam in enumerate(fams):
        if fam is None or used[i]:
            continue
        own, read = _span(recs, fams, used, i)
        for k in own:
            used[k] = True
        if reports and _CONSEQUENCE.search(recs[i].text):
            # "Kernel panic - not syncing: Fatal exception" after the oops that caused it: one report.
            reports[-1].excerpt += [recs[k].text for k in own][:max_excerpt]
            reports[-1].fatal = True
            continue
        lead = [recs[k].text for k in _lead_in(recs, used, i)]
        reports.append(_report(fam, [recs[k] for k in own], [recs[k] for k in read], lead, max_excerpt))
    return reports


def _span(recs: list[_Line], fams: list[Family | None], used: list[bool], i: int) -> tuple[list[int], list[int]]:
    """The lines of the report that starts at ``i``, and the lines its title and culprit are read from.

    A report is the lines of its printk context (with a caller id, other tasks' lines interleave) up to
    the next report's headline, an end marker, or _WINDOW lines. With a caller id the lines read go on
    past a following report of the same task, as syzkaller's do (an RCU stall report can hold a WARNING
    and still be named after what the timer interrupt interrupted)."""
    ctx = recs[i].ctx
    caller = ctx not in ("", _CONSOLE)
    dies = bool(fams[i] and fams[i].dies)
    died = bool(_DIE.search(recs[i].text))
    own, read = [i], [i]
    cpu_trace, ended = False, False
    for j in range(i + 1, min(len(recs), i + 4 * _WINDOW)):
        line = recs[j]
        if line.ctx != ctx and not (cpu_trace and line.ctx.startswith("C")):
            continue
        if not ended and fams[j] is not None and not used[j]:
            if dies and not died and _DIE.search(line.text):
                died = True  # the die() banner of this oops
            elif not _INSIDE.search(line.text):
                ended = True
                if not caller:
                    break
        if not ended:
            own.append(j)
        read.append(j)
        if "Sending NMI from CPU" in line.text:
            cpu_trace = True  # the NMI backtraces of all CPUs belong to this report
        if _END.search(line.text) and not ended:
            ended = True
            if not caller:
                break
        if len(read) >= _WINDOW:
            break
    return own, read


def _lead_in(recs: list[_Line], used: list[bool], i: int) -> list[int]:
    """The "cut here" line and a WARN's message printed before the headline, for the excerpt."""
    same = [k for k in range(i - 1, max(-1, i - 20), -1) if recs[k].ctx == recs[i].ctx][:5]
    for n, k in enumerate(same):
        if used[k]:
            return []
        if recs[k].text.strip() == _CUT_HERE:
            return sorted(same[:n + 1])
    return []


def _report(fam: Family, own: list[_Line], read: list[_Line], lead: list[str], max_excerpt: int) -> CrashReport:
    texts = [x.text for x in own]
    head = texts[0]
    # After a panic well into the report, the panic's own stack follows: it is not this report's.
    panics = [n for n, x in enumerate(read) if n and _PANIC in x.text]
    if panics and panics[0] + 1 > (16 if "BUG: KMSAN:" in head else 22):
        read = read[:panics[0]]
    analysis = [x.text for x in read]
    fmt, groups, location = _choose(fam, head, analysis[1:])
    culprit, strip = None, fmt.strip if fmt else ""
    if fmt is None:
        title = head[head.find(fam.header):]
        kind, fatal = fam.kind, fam.fatal
    else:
        if fmt.culprit is not None:
            culprit = _culprit(fmt, read)
        title = fmt.title.format(*(g or "" for g in groups), frame=culprit or "corrupted")
        kind, fatal = fmt.kind, fmt.fatal
    if location is None and (m := _LOCATION.search(head)):
        location = m.group(1)
    return CrashReport(
        title=normalize_title(title), kind=kind, frames=_top_frames(read, strip), first_line=head,
        excerpt=(lead + texts)[:max_excerpt], location=location, culprit=culprit,
        fatal=fatal or any(_PANIC in t for t in texts[1:]))


def _choose(fam: Family, head: str, rest: list[str]) -> tuple[Format | None, tuple[str | None, ...], str | None]:
    """The first format whose headline regex and detail regexes match, its groups and its location."""
    for fmt in fam.formats:
        m = fmt.start.search(head)
        if m is None:
            continue
        groups, src, pos = list(m.groups()), m.groupdict().get("src"), 0
        for regex in fmt.detail:
            while pos < len(rest) and (d := regex.search(rest[pos])) is None:
                pos += 1
            if pos == len(rest):
                break
            pos += 1
            groups += d.groups()
            src = src or d.groupdict().get("src")
        else:
            return fmt, tuple(groups), src
    return None, (), None


def _culprit(fmt: Format, lines: list[_Line]) -> str | None:
    """The culprit frame (syzkaller's extractStackFrame). Frames the unwinder marked "?" count only when
    the report has no other (a kernel without frame-pointer or ORC unwinder marks them all)."""
    skip = fmt.culprit.skip
    for questionable in (False, True):
        texts = _analysis_lines(lines, questionable, fmt.strip)
        for parts in (fmt.culprit.parts, fmt.culprit.parts2):
            if not parts:
                continue
            frames, ok = _walk(parts, texts, skip)
            if frames:
                canonical = [_canonical(f) for f in frames]
                pick = fmt.culprit.extractor(canonical) if fmt.culprit.extractor else canonical[0]
                if pick:
                    return pick
            if ok:
                break
    return None


def _analysis_lines(lines: list[_Line], questionable: bool, strip: str) -> list[str]:
    out = []
    for line in lines:
        text = line.text.removeprefix(strip) if strip else line.text
        if "<EOI>" not in text and (m := _QUESTIONABLE.search(text)):
            if not questionable:
                continue
            text = text[:m.start()] + " " + text[m.end():]
        elif text.endswith(" (unreliable)"):
            if not questionable:
                continue
            text = text[:-13]
        out.append(text)
    return out


def _walk(parts: tuple[re.Pattern[str] | None, ...], lines: list[str], skip: re.Pattern[str]) -> tuple[list[str], bool]:
    """Match ``parts`` against ``lines`` in order: the frames found up to the end of the parts or the
    start of a second stack (titles name one frame), and whether no corrupted line was met."""
    raw: list[str] = []
    ok, stacks, pos, idx = True, 0, 0, 0

    def add(m: re.Match[str]) -> None:
        raw.extend(g for g in m.groups() if g is not None and not skip.search(g))

    while idx < len(parts) and not (parts[idx] is STACK and stacks > 0):
        part = parts[idx]
        if part is STACK:
            stacks += 1
            while pos < len(lines):
                line = lines[pos]
                pos += 1
                if _CORRUPTED_LINE.search(line):
                    ok = False
                    break
                if _STACK_START.search(line):
                    break
                nxt = parts[idx + 1] if idx + 1 < len(parts) else STACK
                if nxt is not STACK and (m := nxt.search(line)):
                    add(m)
                    idx += 1
                    break
                for frame_re in _FRAMES:
                    if m := frame_re.search(line):
                        add(m)
                        break
        else:
            while pos < len(lines):
                line = lines[pos]
                pos += 1
                if _CORRUPTED_LINE.search(line):
                    ok = False
                    break
                if m := part.search(line):
                    add(m)
                    break
        idx += 1
    return raw, ok and bool(raw)


def _top_frames(lines: list[_Line], strip: str = "") -> list[str]:
    """The function names of the first stack trace, reporting machinery and generic helpers left out;
    "?" frames only when the trace has no other."""
    reliable: list[str] = []
    guessed: list[str] = []
    start = next((n for n, x in enumerate(lines) if _STACK_START.search(x.text)), 0)
    for line in lines[start + 1:]:
        text = line.text.removeprefix(strip) if strip else line.text
        if _STACK_START.search(text):
            if reliable or guessed:
                break
            continue
        m = _QUESTIONABLE.search(text)
        frame = _FRAMES[0].search(text[m.end() - 1:] if m else text)
        if frame is None:
            continue
        name = frame.group(1)
        if name in _MACHINERY or _SKIP_RE.search(name) or name.startswith(("entry_SYSCALL", "do_syscall")):
            continue
        (guessed if m else reliable).append(name)
    return (reliable or guessed)[:_TOP_FRAMES]


# syzkaller's title normalisation (pkg/report/report.go dynamicTitleReplacement, sanitizeTitle): numbers,
# addresses, line numbers and offsets vary between runs of the same bug, so titles leave them out.
_TITLE_REPLACEMENTS = tuple((re.compile(p, re.ASCII), r) for p, r in (
    (r"syz-executor\.?[0-9]+((/|:)[0-9]+)?", "syz-executor"),
    (r"syzkaller[0-9]+((/|:)[0-9]+)?", "syzkaller"),
    (r"([^a-zA-Z0-9])(?:0x)?[0-9a-f]{6,}", r"\1ADDR"),
    (r"([0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3})", "IP"),
    (r"(\.\w+)(:[0-9]+)+", r"\1:LINE"),
    (r"([a-zA-Z][a-zA-Z0-9_.]+)\+0x[0-9a-z]+/0x[0-9a-z]+", r"\1"),
    (r"CPU#[0-9]+", "CPU"),
    (r"(\W)(\d+)(\W|$)", r"\1NUM\3"),
    (r"(\d+){7,}", "NUM"),
))


def normalize_title(title: str) -> str:
    """A title as syzkaller would store it: variable parts replaced, at most 120 printable characters."""
    for regex, repl in _TITLE_REPLACEMENTS:
        while (new := regex.sub(repl, title)) != title:
            title = new
    out, prev = [], " "
    for ch in title[:120]:
        ch = " " if ch == "\t" else ch
        if ch < " " or ch >= "\x7f" or (ch == " " and prev == " "):
            continue
        out.append(ch)
        prev = ch
    return "".join(out).strip()


def reports_from_kmsg(records: list[dict]) -> list[CrashReport]:
    """Reports in /dev/kmsg records (a "text" key each; records user space wrote are left out)."""
    texts = [(r.get("text") or "").replace("\\x0a", "\n") for r in records if not r.get("facility")]
    return parse(texts)


TAINT_FLAGS = "PFSRMBUDAWCIOELKXTN"  # bit order of /proc/sys/kernel/tainted (P=0 ... )


def taint_letters(value: int | None) -> str:
    if not value:
        return ""
    return "".join(ch for bit, ch in enumerate(TAINT_FLAGS) if value >> bit & 1)
