"""The ML Commons path: the ML Commons front, the all-or-nothing deploy of a model zip, the rerank pipeline."""
