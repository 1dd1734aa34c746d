"""Classification: sampling, networks, inference (probabilities), labels and features.

This package's ``__init__`` imports nothing heavy: ``rbcflow.classify.labels`` must load without
torch.
"""
