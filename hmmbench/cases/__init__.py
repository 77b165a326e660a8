"""Host-side halves of the cases, and everything that judges: rules, verdicts, kernel reports.

Guest modules (:mod:`hmmbench.guest.cases`) observe; the rules here judge (:mod:`.judge`). The registry
(:mod:`.registry`) finds both halves of each case by name.
"""

from hmmbench.cases.registry import CaseSpec, load_all

__all__ = ["CaseSpec", "load_all"]
