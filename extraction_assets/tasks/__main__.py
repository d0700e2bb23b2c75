"""python -m extraction_assets.tasks list|validate|schema|version (see commands.py)."""

import sys

from extraction_assets.tasks.commands import main

sys.exit(main())
