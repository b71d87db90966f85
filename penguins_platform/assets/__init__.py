"""The lineage, one module per stage: data, training, registry."""
