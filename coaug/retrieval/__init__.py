"""The frozen retrievers: BM25 on Lucene and a dense encoder on faiss (the ``index`` stage and search)."""
