"""Stand-in for NVIDIA NeMo (nemo_toolkit) in unit tests: same import paths, call
signatures and return types as the real APIs the NeMo engine uses, with tiny
deterministic behaviour instead of neural networks. See nemo/_standin.py for how a
test scripts what the models "hear", and nemo/collections/asr/models.py for where each
return shape comes from in the real NeMo.
"""

__version__ = "0.0-standin"
