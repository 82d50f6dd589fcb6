"""One augmentation per document and query, resumable and shardable (the ``augment`` stage)."""
