"""Data jobs against a live cluster: index a catalog, read UBI logs, search, mine pairs, evaluate."""
