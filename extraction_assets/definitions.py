"""The code location Dagster loads (`[tool.dg]` in pyproject.toml): the project's definitions
(`extraction_assets.project`) and the component instances of the defs folder.

Which backend, model, store and tasks are used is read from the environment (see README), never from code.
"""

import dagster as dg

from extraction_assets.project import build_definitions, defs_folder

defs = dg.Definitions.merge(build_definitions(), defs_folder())
