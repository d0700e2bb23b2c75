"""Dagster components: declare an extraction in a ``defs.yaml``.

.. code-block:: yaml

    type: extraction_assets.components.Extraction
    attributes:
      name: notes
      source_root: data/notes
      task: my_project.tasks:NOTE
"""

from extraction_assets.components._extraction import Extraction, LLMSettings, build_extraction_defs

__all__ = ["Extraction", "LLMSettings", "build_extraction_defs"]
