"""Allow ``python -m mmlsp``."""

from mmlsp.cli import main

raise SystemExit(main())
