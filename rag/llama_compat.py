"""Loading a llama.cpp model on CPUs with AMX, where llama.cpp's own defaults crash.

A native build on a CPU with AMX (Sapphire Rapids and later) puts the weights in ggml's AMX
buffers, and on the machines this project runs on the first prompt of more than one token then
dies with a segmentation fault inside `llama_decode` (seen with SmolLM2 Q4_1 and Qwen2.5 Q4_K_M,
llama-cpp-python 0.3.36, in-process and in `llama_cpp.server`). Loading without llama.cpp's extra
buffer types avoids those kernels; CPUs without AMX keep them (they also repack weights for
faster AVX2 kernels).
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llama_cpp import Llama

_patch_lock = threading.Lock()


@cache
def cpu_has_amx() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " amx_int8" in flags or " amx_tile" in flags


@contextmanager
def without_extra_buffers():
    """llama-cpp-python builds its model parameters inside `Llama()` from this default, and
    offers no argument for `use_extra_bufts`: the default is wrapped while a model loads."""
    import llama_cpp.llama as llama_module

    with _patch_lock:
        original = llama_module.llama_cpp.llama_model_default_params

        def params() -> Any:
            value = original()
            value.use_extra_bufts = False
            return value

        llama_module.llama_cpp.llama_model_default_params = params
        try:
            yield
        finally:
            llama_module.llama_cpp.llama_model_default_params = original


def load_llama(**kwargs: Any) -> Llama:
    from llama_cpp import Llama

    if not cpu_has_amx():
        return Llama(**kwargs)
    with without_extra_buffers():
        return Llama(**kwargs)
