"""The prompt with numbered sources, and the LLM backends that stream the answer as text deltas."""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit, urlunsplit

from rag.config import Settings
from rag.llama_compat import load_llama
from rag.local_models import resolve_gguf
from rag.types import Hit

if TYPE_CHECKING:
    from llama_cpp import Llama

logger = logging.getLogger(__name__)

REFUSAL = "I don't have enough information in your documents to answer that."
FAILURE_PREFIX = "\n\n[The language model failed: "

# Two exchanges are enough to resolve "it" and "that one"; every older token would be read
# again on each question, at about 66 tokens/s on a CPU.
HISTORY_MESSAGES = 4

# Candidates of the first token asked of an endpoint: the refusal's "I" is among them whenever
# its probability matters.
TOP_LOGPROBS = 10

# One retry covers a stale keep-alive connection or a 429; each further retry would add a
# whole timeout to what the user waits before seeing the failure.
_MAX_RETRIES = 1
_MAX_REASON_CHARS = 300

SYSTEM_PROMPT = (
    "Answer the question using only the numbered sources below. Cite the sources you use "
    "as [n]. If the sources do not contain the answer, reply with exactly this sentence "
    "and nothing else: {refusal}\n\nSources:\n\n{sources}"
)


def failure_message(reason: str) -> str:
    """The last delta of a failed answer: appended, so text already streamed and the sources
    stay on screen instead of vanishing behind an exception."""
    return f"{FAILURE_PREFIX}{reason}]"


@dataclass(frozen=True)
class FirstToken:
    """What the model's first generated token tells before any text is shown."""

    # of starting the refusal sentence; None when the backend returns no log-probabilities
    refusal_probability: float | None
    prompt_tokens: int | None  # the whole prompt in the model's tokens, when the backend says


# Called once, at the first generated token; True stops the answer there (declined).
FirstTokenHook = Callable[[FirstToken], bool]


def build_messages(question: str, hits: Sequence[Hit], history: Sequence[dict] = (),
                   texts: Sequence[str] | None = None,
                   instructions: str = SYSTEM_PROMPT) -> list[dict]:
    """Sources are numbered in hit order with repeats dropped (fusion can return one chunk
    twice), so [n] in the answer is the n-th distinct hit. `texts` are what the prompt shows of
    each hit (excerpts of it); by default the whole chunk. The instructions come first and never
    change, so llama.cpp reuses their evaluated prefix from one question to the next."""
    seen: set[str] = set()
    blocks = []
    for index, hit in enumerate(hits):
        if hit.chunk.chunk_id in seen:
            continue
        seen.add(hit.chunk.chunk_id)
        text = texts[index] if texts is not None else hit.chunk.text
        blocks.append(f"[{len(blocks) + 1}] {hit.chunk.label}\n{text.strip()}")
    system = instructions.format(refusal=REFUSAL, sources="\n\n".join(blocks))
    turns = [
        {"role": turn["role"], "content": turn["content"]}
        for turn in history
        if turn.get("role") in ("user", "assistant") and turn.get("content")
    ][-HISTORY_MESSAGES:]
    return [{"role": "system", "content": system}, *turns, {"role": "user", "content": question}]


class LLM(Protocol):
    """What the pipeline needs from a language model: a label for the UI and a text stream."""

    name: str

    def stream(self, messages: list[dict], max_tokens: int | None = None,
               on_first_token: FirstTokenHook | None = None) -> Iterator[str]: ...


def _refusal_start(token: str) -> bool:
    """Whether a token's text starts the refusal sentence ("I" of "I don't have...")."""
    word = token.strip()
    return bool(word) and REFUSAL.startswith(word) and len(word) <= len(REFUSAL.split()[0])


def public_url(url: str) -> str:
    """Drop user:password@ from a URL so it can be shown and logged."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


def root_cause(exc: BaseException) -> str:
    """The innermost error names the real problem ('connection refused'), the wrapper doesn't."""
    while (inner := exc.__cause__ or exc.__context__) is not None:
        exc = inner
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return str(exc) or type(exc).__name__


def _first_refusal_probability(choice) -> float | None:
    """The probability of the refusal's first word among the first token's top candidates."""
    content = getattr(choice.logprobs, "content", None) if choice.logprobs else None
    if not content:
        return None
    return sum(math.exp(top.logprob) for top in content[0].top_logprobs
               if _refusal_start(top.token))


class OpenAIChat:
    """Any OpenAI-compatible endpoint: OpenAI, vLLM, Ollama, llama.cpp's server."""

    def __init__(
        self,
        base_url: str | None,
        model: str,
        api_key: str | None,
        timeout: float,
        max_tokens: int,
        temperature: float,
    ) -> None:
        import openai

        self.model = model
        self.timeout = timeout
        self.max_tokens = max_tokens
        self.temperature = temperature
        # Local servers don't check the key, but the client refuses to start without one.
        # With neither, the client falls back to OPENAI_API_KEY or fails here, clearly.
        if base_url and not api_key:
            api_key = "not-needed"
        self._client = openai.OpenAI(
            base_url=base_url, api_key=api_key, timeout=timeout, max_retries=_MAX_RETRIES
        )
        self.endpoint = public_url(base_url or str(self._client.base_url)).rstrip("/")
        self.name = f"{model} @ {self.endpoint}"
        self._logprobs = True  # until the endpoint refuses them

    def _describe(self, exc: Exception, streaming: bool) -> str:
        import openai

        if isinstance(exc, openai.APITimeoutError):
            reason = f"no answer from {self.endpoint} within {self.timeout:g} s"
        elif isinstance(exc, openai.APIConnectionError):
            what = "the connection to {} broke off" if streaming else "could not connect to {}"
            reason = f"{what.format(self.endpoint)} ({root_cause(exc)})"
        elif isinstance(exc, openai.APIStatusError):
            body = exc.body if isinstance(exc.body, dict) else {}
            detail = body.get("message") or exc.message
            reason = f"{self.endpoint} answered HTTP {exc.status_code}: {detail}"
        else:
            reason = f"{type(exc).__name__}: {exc}"
        key = self._client.api_key
        if len(key) >= 8:  # error bodies may echo the key; a short placeholder isn't secret
            reason = reason.replace(key, "***")
        return reason[:_MAX_REASON_CHARS]

    def _create(self, messages: list[dict], max_tokens: int | None, logprobs: bool):
        import openai

        options = {"logprobs": True, "top_logprobs": TOP_LOGPROBS} if logprobs else {}
        request = {"model": self.model, "messages": messages, "stream": True,
                   "max_tokens": max_tokens or self.max_tokens, "temperature": self.temperature}
        if logprobs and self._logprobs:
            try:
                return self._client.chat.completions.create(**request, **options)
            except (openai.BadRequestError, openai.UnprocessableEntityError) as exc:
                if "logprob" not in str(exc).lower():
                    raise
                # some servers refuse log-probabilities: answer without, from now on
                logger.warning("%s refused logprobs (%s); answering without them", self.name,
                               self._describe(exc, False))
                self._logprobs = False
        return self._client.chat.completions.create(**request)

    def stream(self, messages: list[dict], max_tokens: int | None = None,
               on_first_token: FirstTokenHook | None = None) -> Iterator[str]:
        """Yield text deltas; a failure ends the stream with failure_message, never raises."""
        streaming = False
        try:
            response = self._create(messages, max_tokens, on_first_token is not None)
            streaming = True
            with response:
                for chunk in response:
                    if not chunk.choices:
                        continue
                    choice = chunk.choices[0]
                    # the first chunk may carry only the role: the first token comes after it
                    if on_first_token is not None and (choice.delta.content or choice.logprobs):
                        hook, on_first_token = on_first_token, None
                        if hook(FirstToken(_first_refusal_probability(choice), None)):
                            return
                    if choice.delta.content:
                        yield choice.delta.content
        except Exception as exc:  # the UI must keep what it has; the reason goes on screen
            reason = self._describe(exc, streaming)
            # No traceback: str(exc) of an API error can carry an unmasked key; the reason can't.
            logger.warning("%s failed: %s (%s)", self.name, reason, type(exc).__name__)
            yield failure_message(reason)


class LlamaCppChat:
    """A GGUF model run in-process by llama.cpp, so the app answers with no server at all."""

    def __init__(
        self,
        gguf_path: Path,
        n_ctx: int,
        n_threads: int,
        max_tokens: int,
        temperature: float,
    ) -> None:
        self.gguf_path = Path(gguf_path)
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.name = self.gguf_path.name
        self._llm: Llama | None = None
        self._vocab: Llama | None = None
        # One Llama holds one KV cache: two UI sessions generating at once would corrupt it.
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        """Loading takes seconds; the UI asks first so it can say "loading model…"."""
        return self._llm is not None

    def load(self) -> Llama:
        """Load the weights once; safe to call from several threads."""
        if self._llm is not None:
            return self._llm
        with self._lock:
            if self._llm is None:
                # n_threads defaults to half the cores and n_ctx to 512, which truncates RAG
                # prompts; both measured (DESIGN.md).
                # flash attention read a 400-token prompt at 100 tokens/s instead of 84 here
                self._llm = load_llama(
                    model_path=str(self.gguf_path),
                    n_ctx=self.n_ctx,
                    n_threads=self.n_threads,
                    n_threads_batch=self.n_threads,
                    flash_attn=True,
                    verbose=False,
                )
            return self._llm

    def count_tokens(self, text: str) -> int:
        """Tokens of this model, from its vocabulary alone until the weights are loaded, so a
        prompt can be budgeted before the first answer loads them."""
        llm = self._llm
        if llm is None:
            with self._lock:
                if self._vocab is None:
                    self._vocab = load_llama(model_path=str(self.gguf_path), vocab_only=True,
                                             verbose=False)
                llm = self._vocab
        return len(llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def _first_token_processor(self, llm: Llama, hook: FirstTokenHook):
        """A logits processor that reads the first token's distribution, and ends the answer
        there (only end-of-text left to sample) when the hook declines."""
        import numpy as np
        from llama_cpp import LogitsProcessorList

        refusal = llm.tokenize(REFUSAL.encode("utf-8"), add_bos=False, special=False)[0]
        state = {"first": True}

        def process(input_ids, logits):
            if not state["first"]:
                return logits
            state["first"] = False
            shifted = np.exp(logits - logits.max())
            probability = float(shifted[refusal] / shifted.sum())
            if hook(FirstToken(probability, len(input_ids))):
                ended = np.full_like(logits, -np.inf)
                ended[llm.token_eos()] = 0.0
                return ended
            return logits

        return LogitsProcessorList([process])

    def stream(self, messages: list[dict], max_tokens: int | None = None,
               on_first_token: FirstTokenHook | None = None) -> Iterator[str]:
        """Yield text deltas; a failure ends the stream with failure_message, never raises."""
        loading = True
        try:
            llm = self.load()
            loading = False
            processor = (self._first_token_processor(llm, on_first_token)
                         if on_first_token is not None else None)
            with self._lock:
                # chat_format unset: llama.cpp applies the template stored in the GGUF.
                for chunk in llm.create_chat_completion(
                    messages=messages,
                    max_tokens=max_tokens or self.max_tokens,
                    temperature=self.temperature,
                    stream=True,
                    logits_processor=processor,
                ):
                    delta = chunk["choices"][0]["delta"].get("content")
                    if delta:
                        yield delta
        except Exception as exc:  # the UI must keep what it has; the reason goes on screen
            logger.exception("%s failed", self.name)
            what = f"could not load {self.name}: " if loading else ""
            yield failure_message(f"{what}{type(exc).__name__}: {exc}"[:_MAX_REASON_CHARS])


def create_llm(settings: Settings) -> LLM:
    """An endpoint or key in the settings means a server; otherwise the embedded model."""
    if settings.uses_remote_llm:
        key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
        return OpenAIChat(
            base_url=settings.llm_base_url,
            model=settings.llm_model,
            api_key=key,
            timeout=settings.llm_timeout_s,
            max_tokens=settings.llm_max_tokens,
            temperature=settings.llm_temperature,
        )
    return LlamaCppChat(
        gguf_path=resolve_gguf(settings),
        n_ctx=settings.llm_context_window,
        n_threads=settings.llm_threads,
        max_tokens=settings.llm_max_tokens,
        temperature=settings.llm_temperature,
    )
