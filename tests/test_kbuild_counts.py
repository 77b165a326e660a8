"""The shipped make-step count of the default configuration (hmmbench/data/kbuild-objects.json): the
progress line of a fresh machine's first kernel build takes its total and time left from it."""

from __future__ import annotations

import json

from hmmbench import data, progress
from hmmbench.kernel import build, kconfig


def test_default_configuration_has_a_shipped_count():
    want = build.config_request_hash(kconfig.load_fragments(build.default_fragments()))
    counts = build.shipped_object_counts()
    assert want in counts, (
        f"the default fragments changed (config request hash {want}): build once with an empty cache "
        f"(HMMBENCH_CACHE=$(mktemp -d) hmmbench kernel build debian-6.12) and put the count from "
        f"$HMMBENCH_CACHE/kbuild-objects.json into {data.KBUILD_OBJECTS}")
    assert 500 < counts[want] < 5000


def test_shipped_file_is_documented_and_parses():
    text = json.loads(data.KBUILD_OBJECTS.read_text())
    assert "about" in text and text["counts"]


def test_a_total_gives_the_time_left():
    t = progress.Ticker("make bzImage", expected=1402)
    t.start -= 100.0
    t.count = 350
    assert t.status(t.start + 100.0) == "350/~1402 objects after 100s, ~301s left"
