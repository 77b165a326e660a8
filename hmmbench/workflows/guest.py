"""``hmmbench guest``: boot guests of a kernel and keep them up, for a person or another tool to use.

Each guest's ``ssh://`` URL, key, pinned known_hosts and console are printed as one JSON line as soon
as it is up (for scripts and for ``--target``/``--inventory`` runs against it), and a ready ``ssh``
command line goes to stderr. The guests stop after ``--for`` seconds, on Ctrl-C or SIGTERM, or when one
of them dies; the network namespace of ``--net tap`` goes with them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from hmmbench import progress
from hmmbench.reports import results
from hmmbench.targets.session import GuestShape, open_sessions
from hmmbench.targets.ssh import host_entry
from hmmbench.workflows import run


def keep_up(req: run.RunRequest, count: int, duration: float | None, out: Path | None) -> int:
    _tree, kernel, image = run.prepare(req)
    out_dir = (out or results.default_out_dir(kernel.release + "-guest")).resolve()
    shape = GuestShape(accel=req.accel, net=req.net, append=tuple(req.append))
    with open_sessions(out_dir, kernel=kernel, image=image, shape=shape, count=count) as opened:
        for i, session in enumerate(opened.sessions):
            session.boot()
            host, port = session.guest.ssh_address
            known = out_dir / f"guest{i}-known_hosts"
            known.write_text(f"{host_entry(host, port)} {image.host_public_key}\n")
            net = opened.net
            print(json.dumps({"url": f"ssh://root@{host}:{port}", "identity": str(image.client_key),
                              "known_hosts": str(known), "release": kernel.release,
                              "netns": net.name if net else None, "console": str(session.guest.console_path)}),
                  flush=True)
            prefix = f"ip netns exec {net.name} " if net else ""
            progress.say(f"guest {i} up: {prefix}ssh -i {image.client_key} -o UserKnownHostsFile={known} "
                         f"-p {port} root@{host}")
        deadline = time.monotonic() + duration if duration else None
        while (deadline is None or time.monotonic() < deadline) and all(s.alive() for s in opened.sessions):
            time.sleep(1)
    return 0
