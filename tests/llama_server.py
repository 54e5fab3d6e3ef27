"""`python -m llama_cpp.server`, loading its model as rag.llama_compat does: on a CPU with AMX
llama.cpp's default buffers crash the first prompt (see that module)."""

from __future__ import annotations

import runpy

from rag.llama_compat import cpu_has_amx, without_extra_buffers

if __name__ == "__main__":
    if cpu_has_amx():
        with without_extra_buffers():  # for the server's whole life: it loads the model late
            runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
    else:
        runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
