from __future__ import annotations

import sys

from tidings.cli import main

sys.exit(main())
