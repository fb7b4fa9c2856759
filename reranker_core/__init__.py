"""Common base of the project: errors, atomic files, config, the product template, the model zip contract.

Imports nothing else of ours, so training and the OpenSearch side can both build on it.
"""
