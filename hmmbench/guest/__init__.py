"""Code that runs inside the target (a QEMU guest or a real machine).

Standard library + cffi only: the harness copies this package to the target over SFTP at connect
time, so a target needs nothing but python3 and python3-cffi. It *observes* and reports raw facts as
JSON; it never decides PASS or FAIL. Verdicts are made on the host (:mod:`hmmbench.cases`) and can be
recomputed offline from recorded observations.

Modules here use only relative imports, so the package works both as ``hmmbench.guest`` on the host
(unit tests, offline decoding) and as ``hmmbench_guest`` on a target.
"""
