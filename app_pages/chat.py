"""Ask questions in stored conversations; answers stream in with the sources they came from.

The engine answers in its own worker: this page stores nothing itself, it only asks, renders the
stored messages and follows the unfinished answers, so a rerun (another question, another page,
a closed tab) never cancels an answer."""

from __future__ import annotations

from itertools import chain

import streamlit as st

from rag.chat_service import AnswerJob
from rag.citations import link_markers
from rag.conversations import Conversation, Message
from rag.generation import REFUSAL
from rag.user_conversations import UserConversations
from ui import conversations, sign_in
from ui.indexing import mismatch_text
from ui.sources import anchor, show_preview, show_sources
from ui.state import get_rag

NEW_SCOPE_KEY = "scope-new"  # the picker before a new chat's first question creates it

engine = get_rag()
store = engine.conversations
user = sign_in.user()
own = UserConversations(store, sign_in.get_accounts(engine.settings.data_dir), user)


def searched_caption(searched: str | None, question: str) -> None:
    if searched and searched.strip().casefold() != question.strip().casefold():
        st.caption(f"Searched as: {searched}")


def show_answer(message: Message, question: str) -> None:
    """A stored answer: citations as links to its sources, then why it is what it is."""

    def href(number: int) -> str:
        return f"#{anchor(message.id, number)}"

    searched_caption(message.searched, question)
    with st.container(key=f"answer-m{message.id}"):
        st.markdown(link_markers(message.content, href))
    if message.note:
        st.caption(message.note)
    elif message.status == "interrupted":
        st.caption("This answer was interrupted (the app stopped while it was being written).")
    if overview := message.meta.get("overview"):
        st.caption(f"Overview drawn from {overview} passages across the document")
    if message.sources:
        show_sources(message.sources, engine, key=f"m{message.id}", message_id=message.id,
                     answer=message.content, cited=message.cited,
                     attributed=bool(message.meta.get("attributed")))


def follow(job: AnswerJob) -> None:
    """An unfinished answer: sources as soon as they are known, then the text as it streams."""
    with st.spinner("Searching…"):
        job.wait_for_sources()
    searched_caption(job.searched, job.question)
    # Above the answer and kept while it streams (taking it away at the first token would move
    # the text being read); dropped when it is done, as the stored answer's sources then mark the
    # sentences the answer itself used. None for a refusal and a whole-document question.
    preview_area = st.empty()
    # Keyed apart from the stored answer's container, so a test can tell the two renders apart.
    text_area, sources_area = st.container(key=f"live-answer-m{job.message_id}"), st.container()
    if job.preview is not None and not job.refused:
        with preview_area.container(border=True, key=f"live-preview-m{job.message_id}"):
            show_preview(job.preview, job.hits)
    if job.hits:
        with sources_area:  # before the first token: a CPU reads the sources for seconds
            show_sources(job.hits, engine, key=f"live-{job.message_id}")
    with text_area:
        deltas = job.follow()
        reading = ("Reading the sources…" if engine.llm_ready
                   else "Loading the language model (first answer only)…")
        with st.spinner(reading):
            first = next(deltas, "")
        if first.startswith(REFUSAL):  # the model declined: the passage answers nothing
            preview_area.empty()
        st.write_stream(chain([first], deltas))
    preview_area.empty()


def scope_picker(conversation: Conversation | None) -> None:
    documents = {info.doc_id: info.source for info in engine.documents()}
    if not documents:
        return
    options = {"help": "Search only these documents in this conversation; none: all of them.",
               "placeholder": "All documents", "format_func": documents.get}
    if conversation is None:
        st.multiselect("Ask about", list(documents), key=NEW_SCOPE_KEY, **options)
    else:
        key = f"scope-{conversation.id}"
        st.multiselect(
            "Ask about", list(documents), key=key,
            default=[doc_id for doc_id in conversation.documents if doc_id in documents],
            on_change=lambda: store.set_documents(conversation.id, st.session_state[key]),
            **options,
        )


conversation = conversations.current(own)

st.title("Chat with your documents")
if not engine.documents():
    coming = sum(not job.finished for job in engine.queue.jobs.jobs())
    if coming:  # the first files of a drop: on their way, not missing
        st.info(f"Indexing {coming} file{'s' if coming > 1 else ''}: ask as soon as the first "
                "one is done; the sidebar shows how far it got.")
    elif user.is_admin:
        st.info("Nothing is indexed yet: add files on the Documents page.")
    else:
        st.info("Nothing is indexed yet: an admin adds the documents to ask about.")
elif (warning := mismatch_text(engine)) and user.is_admin:
    st.warning(warning)
    st.page_link("app_pages/documents.py", label="Re-index on the Documents page",
                 icon=":material/sync:")

# Read first, drawn pinned to the bottom: the question must be stored before the page renders.
question = st.chat_input("Ask a question about your documents")
if question and question.strip():
    if conversation is None:
        conversation = own.create(documents=st.session_state.pop(NEW_SCOPE_KEY, []))
        conversations.show(conversation.id)
    engine.chat.ask(conversation.id, question)  # queued behind an answer still being written
    conversation = store.get(conversation.id) or conversation  # titled by its first question

with st.sidebar:  # after the question: a new conversation is listed while it is answered
    conversations.conversation_list(own, conversation)
if conversation is not None:
    conversations.conversation_header(own, conversation)
scope_picker(conversation)

jobs = engine.chat.jobs(conversation.id) if conversation else []
live = {job.message_id for job in jobs}
slots = {}
question_text = ""
for message in store.messages(conversation.id) if conversation else []:
    with st.chat_message(message.role):
        if message.role == "user":
            question_text = message.content
            st.markdown(message.content)
        elif message.id in live:
            slots[message.id] = st.empty()
            if len(slots) > 1:
                slots[message.id].caption("Waiting for the answer above to finish…")
        else:
            show_answer(message, question_text)

for job in jobs:  # running first, then the queued ones in order
    if job.message_id in slots:
        with slots[job.message_id].container():
            follow(job)
    else:  # its conversation was deleted meanwhile
        job.wait()
if jobs:
    st.rerun()  # the stored answers, with their citation links, replace the streamed text
