"""Chat with your documents: the retrieval-augmented generation engine (no UI code here)."""

import os

# Set before numpy/torch/chromadb load. No model or telemetry ever reaches for the network,
# and on a small CPU box torch's threads and OpenBLAS's must not fight over the same cores.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
