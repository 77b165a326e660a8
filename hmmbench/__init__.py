"""hmmbench: prove on real kernels whether the device-exclusive (HMM) memory paths behave.

Host-side code lives in this package; code that runs inside the target lives in
:mod:`hmmbench.guest` (standard library + cffi only) and is copied to the target at connect time.
"""

__version__ = "0.1.0"
