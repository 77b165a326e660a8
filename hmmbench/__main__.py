"""Allow ``python -m hmmbench``."""

from hmmbench.cli import main

raise SystemExit(main())
