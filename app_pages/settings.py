"""Tune retrieval, chunking and the language model; saved values survive a restart.

Every value is validated by the engine's Settings before it is written or applied; a field set
by an environment variable is shown but locked, because the environment wins on every start.
"""

from __future__ import annotations

from typing import Any

import streamlit as st
from pydantic import SecretStr, ValidationError

from rag.config import Settings, describe_validation_error
from rag.user_settings import save_settings, saved_path, value_sources
from ui.indexing import mismatch_text
from ui.state import get_rag, rebuild_rag

engine = get_rag()
live = engine.settings
sources = value_sources(live.data_dir)

SOURCE_TEXT = {
    "saved": "saved on this page",
    ".env": "from the .env file",
    "default": "default",
}


def env_name(field: str) -> str:
    return "RAG_LLM_API_KEY" if field == "llm_api_key" else f"RAG_{field.upper()}"


def locked(field: str) -> bool:
    return sources.get(field) == "environment"


def help_text(field: str) -> str:
    info = Settings.model_fields[field]
    default = info.default
    shown = "none" if default is None else ("on" if default is True else
                                            "off" if default is False else default)
    return f"{info.description} Default: {shown}."


def source_caption(field: str) -> None:
    if locked(field):
        st.caption(f"Set by the environment ({env_name(field)}); change it there.")
    else:
        st.caption(f"Value: {SOURCE_TEXT.get(sources.get(field, 'default'), 'default')}")


def clamp(value: Any, low: Any, high: Any) -> Any:
    return min(max(value, low), high)


# What each control showed when the page was drawn: only fields the user moved are saved, so an
# untouched control never pins today's default into the saved file.
shown: dict[str, Any] = {}


def slider(field: str, label: str, low: Any, high: Any, step: Any = None) -> Any:
    shown[field] = clamp(getattr(live, field), low, high)
    value = st.slider(label, low, high, shown[field], step=step, help=help_text(field),
                      disabled=locked(field), key=f"setting-{field}")
    source_caption(field)
    return value


def selectbox(field: str, label: str) -> Any:
    options = list(Settings.model_fields[field].annotation.__args__)
    shown[field] = getattr(live, field)
    value = st.selectbox(label, options, index=options.index(shown[field]), help=help_text(field),
                         disabled=locked(field), key=f"setting-{field}")
    source_caption(field)
    return value


def text(field: str, label: str, placeholder: str = "") -> str | None:
    shown[field] = getattr(live, field) or None
    value = st.text_input(label, shown[field] or "", placeholder=placeholder,
                          help=help_text(field), disabled=locked(field), key=f"setting-{field}")
    source_caption(field)
    return value.strip() or None


def toggle(field: str, label: str) -> bool:
    shown[field] = bool(getattr(live, field))
    value = st.toggle(label, shown[field], help=help_text(field), disabled=locked(field),
                      key=f"setting-{field}")
    source_caption(field)
    return value


st.title("Settings")
st.caption(
    "Saved in `settings.json` under the data folder and applied to the next question. "
    "Precedence, lowest first: defaults, `.env`, saved here, environment variables."
)
if flash := st.session_state.pop("settings_flash", None):
    st.success(flash)
if warning := mismatch_text(engine):
    st.warning(warning)
    st.page_link("app_pages/documents.py", label="Re-index on the Documents page",
                 icon=":material/sync:")

with st.form("settings"):
    values: dict[str, Any] = {}
    st.subheader("Retrieval")
    left, right = st.columns(2, gap="large")
    with left:
        values["similarity_threshold"] = slider(
            "similarity_threshold", "Similarity threshold", 0.0, 1.0, 0.01)
        values["top_k"] = slider("top_k", "Passages per answer (top k)", 1, 20)
        values["fetch_multiplier"] = slider("fetch_multiplier", "Fetch multiplier", 1, 10)
        values["context_tokens"] = slider("context_tokens", "Context tokens (language model's)",
                                          64, 4096, 16)
        values["context_mode"] = selectbox("context_mode", "Prompt shows of each passage")
        values["followup_method"] = selectbox("followup_method", "Follow-up questions are searched")
        values["followup_threshold"] = slider(
            "followup_threshold", "Follow-up threshold (newest message alone)", 0.0, 1.0, 0.01)
    with right:
        values["hybrid"] = toggle("hybrid", "Hybrid search (keywords + meaning)")
        values["dense_weight"] = slider("dense_weight", "Dense weight in the fused score",
                                        0.0, 1.0, 0.05)
        values["fusion"] = selectbox("fusion", "Fusion")
        values["rerank"] = toggle("rerank", "Re-rank passages")
        values["reranker"] = selectbox("reranker", "Re-ranker")
        values["reranker_model"] = text("reranker_model", "Cross-encoder model path",
                                        "a local folder")

    st.subheader("Chunking")
    st.caption("Changes apply to new uploads; re-index existing documents on the Documents page.")
    left, right = st.columns(2, gap="large")
    with left:
        values["chunk_size"] = slider("chunk_size", "Chunk size (tokens)", 32,
                                      engine.embedder.max_tokens)
        values["chunk_overlap"] = slider("chunk_overlap", "Chunk overlap (tokens)", 0, 127)
    with right:
        values["chunk_strategy"] = selectbox("chunk_strategy", "Chunking strategy")

    st.subheader("Language model")
    left, right = st.columns(2, gap="large")
    with left:
        values["llm_base_url"] = text("llm_base_url", "Endpoint URL (OpenAI-compatible)",
                                      "empty: the embedded model")
    with right:
        values["llm_model"] = text("llm_model", "Model name")

    submitted = st.form_submit_button("Save", type="primary", key="save-settings")

if submitted:
    changed = {field: value for field, value in values.items()
               if not locked(field) and value != shown[field]}
    if "llm_model" in changed and changed["llm_model"] is None:
        del changed["llm_model"]  # an emptied name keeps the current one
    if not changed:
        st.info("Nothing changed.")
    else:
        try:
            new = save_settings(live.data_dir, changed)  # validates before writing anything
        except ValidationError as error:
            st.error(f"Not saved: {describe_validation_error(error)}")
        else:
            if new.llm_api_key is None and live.llm_api_key is not None:
                new = new.model_copy(update={"llm_api_key": live.llm_api_key})  # typed key
            try:
                engine.update_settings(new)
            except ValueError:
                rebuild_rag()  # embedding model or store changed: build a new engine
            st.session_state["settings_flash"] = (
                "Saved " + ", ".join(sorted(changed)) + ": applies to the next question.")
            st.rerun()  # redraw every control and its source from the saved values

saved_file = saved_path(live.data_dir)
if saved_file.exists():
    if st.button("Forget saved settings", icon=":material/restart_alt:", key="forget-settings",
                 help=f"Delete {saved_file}: back to .env, the environment and the defaults"):
        saved_file.unlink(missing_ok=True)
        rebuild_rag()  # rebuilt from .env, the environment and the defaults
        st.session_state["settings_flash"] = "Saved settings forgotten."
        st.rerun()

st.subheader("API key")
key_source = sources.get("llm_api_key", "default")
if key_source == "environment":
    st.caption("An API key is set by the environment (RAG_LLM_API_KEY or OPENAI_API_KEY); "
               "change it there.")
elif key_source == ".env":
    st.caption("An API key is read from the `.env` file.")
elif live.llm_api_key is not None:
    st.caption("A key typed here is in use by this server process until it restarts.")
else:
    st.caption("No API key is configured (the embedded model and most local servers need none).")
st.info(
    "The key is never saved by this page. To keep it, put `RAG_LLM_API_KEY=…` in `.env` or the "
    "server's environment. A key typed below applies to this server process only, until restart.",
    icon=":material/key:",
)


def use_typed_key() -> None:
    """Apply the typed key to the running engine, then forget it: the field is emptied on the
    server too, so the key lives only in the engine's settings (a SecretStr), never on disk."""
    typed = st.session_state.get("api-key-input", "").strip()
    st.session_state["api-key-input"] = ""
    if typed:
        engine.update_settings(engine.settings.model_copy(update={"llm_api_key": SecretStr(typed)}))
        st.session_state["key_flash"] = ("Key applied to this server process until restart; "
                                         "it was not saved.")


with st.form("api-key"):
    st.text_input("API key", value="", type="password", key="api-key-input",
                  help=help_text("llm_api_key"), disabled=key_source == "environment",
                  autocomplete="off")
    st.form_submit_button("Use this key until restart", key="use-api-key", on_click=use_typed_key,
                          disabled=key_source == "environment")
if key_flash := st.session_state.pop("key_flash", None):
    st.success(key_flash)
