"""Ask questions; answers stream in with the sources they came from."""

from __future__ import annotations

from itertools import chain

import streamlit as st

from ui.indexing import mismatch_text
from ui.sources import show_sources
from ui.state import chat_messages, get_rag

engine = get_rag()
messages = chat_messages()

title, new_chat = st.columns([5, 1], vertical_alignment="bottom")
title.title("Chat with your documents")
# Never disabled: it is drawn before this run's question is added to the conversation.
if new_chat.button("New chat", icon=":material/add_comment:", key="new-chat",
                   help="Clear this conversation (other tabs keep theirs)"):
    messages.clear()
    st.rerun()
if not engine.documents():
    st.info("Nothing is indexed yet: add files on the Documents page.")
elif warning := mismatch_text(engine):
    st.warning(warning)
    st.page_link("app_pages/documents.py", label="Re-index on the Documents page",
                 icon=":material/sync:")

for message in messages:
    with st.chat_message(message["role"]):
        st.markdown(message["content"])
        if message.get("hits"):
            show_sources(message["hits"])
        if message.get("note"):
            st.caption(message["note"])

if question := st.chat_input("Ask a question about your documents"):
    with st.chat_message("user"):
        st.markdown(question)
    history = [{"role": m["role"], "content": m["content"]} for m in messages]
    messages.append({"role": "user", "content": question})
    with st.chat_message("assistant"):
        with st.spinner("Searching your documents…"):
            answer = engine.ask(question, history)
        text_area, sources_area = st.container(), st.container()
        note = None
        with sources_area:  # sources show before the first token arrives
            if answer.hits:
                show_sources(answer.hits)
            elif answer.best_similarity is not None:
                note = (
                    f"No passage reached the similarity threshold {answer.threshold:.2f} "
                    f"(best match {answer.best_similarity:.2f})."
                )
                st.caption(note)
        with text_area:
            if not answer.refused and not engine.llm_ready:
                with st.spinner("Loading the language model (first answer only)…"):
                    engine.prepare_llm()
            # On a CPU the model reads the sources for seconds before its first word.
            with st.spinner("Reading the sources…"):
                first = next(answer.deltas, "")
            text = st.write_stream(chain([first], answer.deltas))
    messages.append({"role": "assistant", "content": text, "hits": answer.hits, "note": note})
