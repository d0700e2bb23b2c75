"""One Dagster partition per corpus, added at runtime when a corpus folder appears."""

import dagster as dg

corpus_partitions = dg.DynamicPartitionsDefinition(name="corpora")
