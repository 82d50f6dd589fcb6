"""Reading, checking and preparing BEIR datasets (the ``prepare`` stage)."""
