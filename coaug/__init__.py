"""coaug: query-document co-augmentation with a frozen retriever and an RL-trained policy."""

__version__ = "0.1.0"
