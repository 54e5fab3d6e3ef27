"""All tunables in one place: RAG_* environment variables, then `.env`, then these defaults."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"

# Input limits (in tokens, special tokens included) of embedders we know without loading them.
# For any other model the pipeline reads the limit off the loaded model and clamps chunk_size.
KNOWN_INPUT_LIMITS = {DEFAULT_EMBEDDING_MODEL: 256}
SPECIAL_TOKENS = 2  # [CLS] and [SEP] take two places of the input limit
# Qwen2.5-Coder-1.5B's first-token refusal probability cut-off (bench/results/answers.md)
PACKAGED_MODEL_DECLINE = 0.25


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RAG_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        validate_by_name=True,
        validate_assignment=True,
    )

    # Each description is the one-line help the Settings page shows beside the control.
    data_dir: Path = Field(Path("data"), description="Index, kept originals and model files.")

    host: str = Field("127.0.0.1", description=(
        "Address `python -m rag serve` listens on. The default, loopback, is this machine only; "
        "0.0.0.0 exposes the API to the network, where every request needs a token."))
    port: int = Field(8000, ge=1, le=65535, description="Port of `python -m rag serve`.")

    chunk_size: int = Field(160, ge=16, le=8192, description=(
        "Tokens of the embedding model per chunk: small chunks match precisely, large ones "
        "carry more context."))
    chunk_overlap: int = Field(24, ge=0, description=(
        "Tokens neighbouring chunks share, so a sentence cut at a border is still found whole."))
    chunk_strategy: Literal["recursive", "semantic", "fixed"] = Field("recursive", description=(
        "recursive: cut at paragraphs, lines, sentences, words; semantic: merge whole "
        "paragraphs; fixed: plain token windows."))
    embedding_model: str = Field(DEFAULT_EMBEDDING_MODEL, description=(
        "A sentence-transformers model name or local path; the default ships with the app. "
        "With embedding_base_url: the name of the model the endpoint serves."))
    embedding_batch_size: int = Field(16, ge=1, le=4096, description=(
        "Chunks embedded at once (per request to an endpoint). On a CPU 16 beat 64 (28 vs 22 "
        "chunks/s): big batches pad short chunks to the longest."))
    embedding_base_url: str | None = Field(None, description=(
        "An OpenAI-compatible embeddings endpoint (OpenAI, vLLM, TEI, Ollama, llama.cpp server "
        "--embedding), so embedding runs on another machine; empty: the local model. Changing "
        "it asks for a re-index."))
    embedding_api_key: SecretStr | None = Field(None, description=(
        "Key for the embeddings endpoint, sent to it alone (not the language model's key); read "
        "from the environment or .env, never saved."))
    embedding_max_tokens: int = Field(384, ge=16, le=32768, description=(
        "Longest chunk sent to the embeddings endpoint, counted with the local model's tokenizer "
        "as an estimate (the endpoint's is unknown): 384 keeps a margin under the 512 tokens "
        "BERT-style servers and llama.cpp's default batch take."))

    vector_store_type: Literal["chroma", "faiss"] = Field("chroma", description=(
        "Where vectors live: chroma (a folder under data_dir, or a server with chroma_host); "
        "faiss (in-process, files under data_dir)."))
    chroma_host: str | None = Field(None, description=(
        "A Chroma server (`chroma run`) to keep the vectors in, shared by every app process; "
        "empty: the embedded folder under data_dir."))
    chroma_port: int = Field(8000, ge=1, le=65535, description="Port of the Chroma server.")
    chroma_ssl: bool = Field(False, description="Reach the Chroma server over HTTPS.")
    chroma_token: SecretStr | None = Field(None, description=(
        "Bearer token for a Chroma server behind authentication; never saved or shown."))

    load_timeout_s: float = Field(60.0, gt=0, description=(
        "Seconds one file may take to parse before it is refused, so a pathological PDF cannot "
        "hang an upload."))

    top_k: int = Field(5, ge=1, le=100, description="Passages given to the model per answer.")
    fetch_multiplier: int = Field(10, ge=1, le=50, description=(
        "Candidates fetched from each search per passage kept: fusion picks from a deeper pool "
        "(SciFact train nDCG@10 +0.008 at 10 over 3)."))
    similarity_threshold: float = Field(0.40, ge=-1.0, le=1.0, description=(
        "Cosine similarity the best passage must reach; when none does, the app declines to "
        "answer instead of guessing."))
    keyword_floor: float | None = Field(None, ge=-1.0, le=1.0, description=(
        "A lower cosine similarity that still answers when the question's keywords match the "
        "best passage (keyword_evidence, hybrid search only); empty: off. For small indexes, "
        "where real questions can score under the threshold (bench/results/gate.md)."))
    keyword_evidence: float = Field(0.15, ge=0.0, le=1.0, description=(
        "Share of the question's keyword weight (top BM25 score over the most it could score) "
        "the best match must reach for keyword_floor to apply."))
    hybrid: bool = Field(True, description=(
        "Also search by keywords (BM25) and fuse both rankings: finds exact names and rare "
        "terms that meaning-based search blurs (SciFact train nDCG@10 0.742 vs 0.690 dense)."))
    dense_weight: float = Field(0.65, ge=0.0, le=1.0, description=(
        "Share of meaning-based (dense) search in the fused score; the rest is keyword search. "
        "0.65 is the middle of the best range on SciFact train (0.6-0.7)."))
    fusion: Literal["convex", "rrf"] = Field("convex", description=(
        "convex: weighted sum of normalised scores; rrf: reciprocal rank fusion (0.014 lower "
        "on SciFact train)."))
    rerank: bool = Field(False, description=(
        "Re-order the retrieved passages before the cut to top_k. Off by default: on top of "
        "hybrid search the term-overlap re-ranker lost 0.010 nDCG@10 on SciFact train."))
    reranker: Literal["term-overlap", "cross-encoder"] = Field("term-overlap", description=(
        "term-overlap needs no model; cross-encoder reads question and passage together "
        "(needs a local model)."))
    reranker_model: str | None = Field(None, description="Local path of a cross-encoder model.")
    followup_method: Literal["latest", "previous-questions", "previous-sources",
                             "questions-and-sources", "condense"] = Field(
        "previous-questions", description=(
            "How a follow-up is searched: latest: the newest message alone; previous-questions: "
            "with the two questions before it; previous-sources: the last answer's sources stay "
            "candidates; questions-and-sources: both; condense: the language model rewrites it "
            "as a standalone question (a second prompt: seconds on a CPU)."))
    followup_threshold: float = Field(0.12, ge=-1.0, le=1.0, description=(
        "Cosine similarity a follow-up, read alone, must reach against the passages its "
        "context found, so an off-topic follow-up is still refused."))
    context_tokens: int = Field(200, ge=64, le=32768, description=(
        "Tokens of the language model given to retrieved text per prompt: on a CPU, reading "
        "them is nearly all of the wait for the first word; a GPU endpoint can take more."))
    context_mode: Literal["chunks", "sentences"] = Field("sentences", description=(
        "What of the passages the prompt shows: sentences: those closest to the question, with "
        "their neighbours; chunks: whole passages, best first."))
    decline_probability: float | None = Field(None, ge=0.0, le=1.0, description=(
        "Decline when the model's first token is at least this likely to start the refusal "
        "sentence: catches questions the passages are about but do not answer. Empty: 0.25 "
        "for the packaged model, calibrated for it, and off for any other; 1 turns it off."))

    llm_base_url: str | None = Field(None, description=(
        "An OpenAI-compatible endpoint (vLLM, Ollama, llama.cpp server, OpenAI); empty: the "
        "embedded model."))
    llm_model: str = Field("gpt-4o-mini", description="Model name the endpoint serves.")
    llm_api_key: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("RAG_LLM_API_KEY", "OPENAI_API_KEY", "llm_api_key"),
        description="Key for the endpoint; read from the environment or .env, never saved.",
    )
    llm_gguf: Path | None = Field(None, description=(
        "A local GGUF for the embedded model (default: the packaged Qwen2.5-Coder-1.5B)."))
    llm_threads: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1, description=(
        "CPU threads of the embedded model."))
    llm_context_window: int = Field(4096, ge=512, description=(
        "Context window of the embedded model: 4096 fits the prompt and the answer."))
    llm_max_tokens: int = Field(512, ge=1, description="Longest answer, in tokens.")
    llm_temperature: float = Field(0.1, ge=0.0, le=2.0, description=(
        "Low values keep answers close to the sources."))
    llm_timeout_s: float = Field(120.0, gt=0, description=(
        "Seconds before a remote endpoint counts as unreachable."))

    @model_validator(mode="after")
    def _check_consistency(self) -> Settings:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError(
                f"chunk_overlap ({self.chunk_overlap}) must be smaller than chunk_size "
                f"({self.chunk_size}), or every chunk would repeat the previous one"
            )
        limit = KNOWN_INPUT_LIMITS.get(self.embedding_model)
        if limit is not None and self.chunk_size > limit - SPECIAL_TOKENS:
            raise ValueError(
                f"chunk_size ({self.chunk_size}) exceeds the input limit of {self.embedding_model}: "
                f"{limit - SPECIAL_TOKENS} text tokens ({limit} with special tokens); "
                "text past it would never be embedded"
            )
        if self.rerank and self.reranker == "cross-encoder" and not self.reranker_model:
            raise ValueError("reranker 'cross-encoder' needs reranker_model: a local model path")
        return self

    @property
    def decline_cutoff(self) -> float:
        """The decline cut-off in force: a calibration holds for the model it was measured on."""
        if self.decline_probability is not None:
            return self.decline_probability
        packaged = not self.uses_remote_llm and self.llm_gguf is None
        return PACKAGED_MODEL_DECLINE if packaged else 1.0

    @property
    def uses_remote_llm(self) -> bool:
        """An endpoint or a key means an OpenAI-compatible server; otherwise the embedded model."""
        return bool(self.llm_base_url) or self.llm_api_key is not None


def describe_validation_error(error: ValidationError) -> str:
    """One line per bad setting, without the input values: they may hold the API key."""
    lines = []
    for issue in error.errors(include_input=False, include_url=False):
        field_name = ".".join(str(part) for part in issue["loc"]) or "settings"
        message = issue["msg"].removeprefix("Value error, ")
        lines.append(f"{field_name}: {message}")
    return "; ".join(lines)
