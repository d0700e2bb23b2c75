"""One Dagster partition per corpus, added at runtime when a corpus folder appears."""

import dagster as dg

CORPORA = "corpora"  # the dynamic partitions' name in the instance
corpus_partitions = dg.DynamicPartitionsDefinition(name=CORPORA)
