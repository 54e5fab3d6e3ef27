"""Which stored conversation a tab shows, and the widgets to switch, rename, export and delete.

The open conversation's id lives in the URL (`?c=`), so a reload or a restarted server reopens
it, and in the session, so visiting another page and coming back keeps it."""

from __future__ import annotations

import re

import streamlit as st

from rag.accounts import LOCAL
from rag.conversation_export import to_markdown
from rag.conversations import Conversation
from rag.user_conversations import UserConversations

PARAM = "c"
SESSION_KEY = "conversation"
CONFIRM_KEY = "deleting-conversation"  # the id a delete waits to be confirmed for
MENU_KEY = "conversation-menu"
WHO_SEES = {  # by who is signed in
    "local": "Conversations are stored with this index: everyone using it sees the same list "
             "(until there are user accounts).",
    "admin": "As an admin you see every user's conversations.",
    "reader": "Only you and the admins see your conversations.",
}


def current(own: UserConversations) -> Conversation | None:
    """The conversation this tab shows; None for a new chat (created at its first question)."""
    conversation_id = st.query_params.get(PARAM) or st.session_state.get(SESSION_KEY)
    conversation = own.get(conversation_id) if conversation_id else None
    if conversation is None:
        if conversation_id:
            st.toast("That conversation no longer exists: this is a new chat.")
        show(None)
    elif st.query_params.get(PARAM) != conversation.id:
        show(conversation.id)
    return conversation


def show(conversation_id: str | None) -> None:
    """Open that conversation in this tab (None: a new chat)."""
    if conversation_id is None:
        st.query_params.pop(PARAM, None)
        st.session_state.pop(SESSION_KEY, None)
    else:
        st.query_params[PARAM] = conversation_id
        st.session_state[SESSION_KEY] = conversation_id
    st.session_state.pop(CONFIRM_KEY, None)  # a pending delete was for the one shown before


def conversation_list(own: UserConversations, shown: Conversation | None) -> None:
    """New chat and every stored conversation, newest first."""
    st.subheader("Conversations")
    st.button("New chat", icon=":material/add_comment:", key="new-chat", width="stretch",
              on_click=show, args=(None,), help="Start a new conversation in this tab")
    for conversation in own.list():
        is_shown = shown is not None and conversation.id == shown.id
        st.button(conversation.title, key=f"open-{conversation.id}", width="stretch",
                  type="primary" if is_shown else "tertiary", on_click=show,
                  args=(conversation.id,))
    # HTML allowed (the note is ours) so the browser loads Streamlit's HTML-in-Markdown plugin
    # with the page: it is fetched when first needed, and a new chat's first passage preview
    # (ui/sources.show_preview) waited ~0.4 s for it on a busy 2-core machine.
    who = "local" if own.principal == LOCAL else own.principal.role
    st.caption(WHO_SEES[who], unsafe_allow_html=True)


def conversation_header(own: UserConversations, conversation: Conversation) -> None:
    """Its title, a menu to rename, export or delete it; a delete asks first."""
    heading, menu = st.columns([3, 1], vertical_alignment="bottom")
    heading.subheader(conversation.title)
    # Tracks its open state so that "Delete…" can close it: it would cover the confirmation.
    with menu.popover("Conversation", icon=":material/more_horiz:", key=MENU_KEY,
                      on_change="rerun"):
        st.text_input("Title", value=conversation.title, key=f"title-{conversation.id}",
                      on_change=_rename, args=(own, conversation.id))
        st.download_button(
            "Export as Markdown", icon=":material/download:", key="export-conversation",
            data=to_markdown(conversation, own.store.messages(conversation.id)),
            file_name=f"{_slug(conversation.title)}.md", mime="text/markdown", on_click="ignore",
        )
        st.button("Delete…", icon=":material/delete:", key="delete-conversation",
                  on_click=_ask_to_delete, args=(conversation.id,))
    if st.session_state.get(CONFIRM_KEY) == conversation.id:
        with st.container(border=True):
            st.warning(f"Delete “{conversation.title}”? Its questions and answers are removed "
                       "for good.")
            confirm, cancel, _ = st.columns([1, 1, 6])
            if confirm.button("Delete", type="primary", key="confirm-delete-conversation"):
                own.delete(conversation.id)
                show(None)
                st.rerun()
            if cancel.button("Cancel", key="cancel-delete-conversation"):
                st.session_state.pop(CONFIRM_KEY, None)
                st.rerun()


def _ask_to_delete(conversation_id: str) -> None:
    st.session_state[CONFIRM_KEY] = conversation_id
    st.session_state[MENU_KEY] = False


def _rename(own: UserConversations, conversation_id: str) -> None:
    title = st.session_state[f"title-{conversation_id}"].strip()
    if title:
        own.store.rename(conversation_id, title)


def _slug(title: str) -> str:
    return re.sub(r"[^\w-]+", "-", title).strip("-")[:60] or "conversation"

