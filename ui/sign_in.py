"""Who is using this browser tab, by the API's rule (rag/api/auth.py): while the app listens on
loopback only and no password account exists, the person at this machine is its admin, as in
a desktop app; once an account exists, or the app listens beyond loopback, every tab signs in
(accounts: `python -m rag users add NAME --role admin|reader`).

A sign-in lasts as long as the tab's session, and is checked against the accounts file on every
run, so a removed account or a changed role takes effect at the user's next click."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from rag.accounts import LOCAL, Accounts, Principal, is_loopback

SESSION_KEY = "signed-in"
CREATE_ONE = "python -m rag users add NAME --role admin"


@st.cache_resource
def get_accounts(data_dir: Path) -> Accounts:
    return Accounts.in_data_dir(data_dir)


def listens_beyond_loopback() -> bool:
    """Streamlit's `server.address`: empty or 0.0.0.0 means every interface."""
    return not is_loopback(st.get_option("server.address") or "0.0.0.0")


def signed_in(accounts: Accounts) -> Principal:
    """Who uses this tab; when nobody is signed in and someone must be, draws the sign-in form
    and ends the script run there."""
    if not accounts.users.exist():
        if not listens_beyond_loopback():
            st.session_state.pop(SESSION_KEY, None)  # every account was removed meanwhile
            return LOCAL
        st.title("Sign-in needed")
        st.error("This app listens beyond this machine, and no account exists yet. An admin "
                 f"creates the first one on the server: `{CREATE_ONE}`, then reloads this page.")
        st.stop()
    signed = st.session_state.get(SESSION_KEY)
    principal = accounts.users.current(signed.user_id) if signed is not None else None
    if principal is not None:
        st.session_state[SESSION_KEY] = principal  # its role as it is now
        return principal
    st.session_state.pop(SESSION_KEY, None)
    _form(accounts)
    st.stop()


def user() -> Principal:
    """For the pages: who `signed_in` settled for this run, without reading the accounts again
    (the entry script runs it before every page)."""
    return st.session_state.get(SESSION_KEY, LOCAL)


def sign_out() -> None:
    st.session_state.pop(SESSION_KEY, None)


def _form(accounts: Accounts) -> None:
    _, middle, _ = st.columns([1, 2, 1])
    with middle:
        st.title("Sign in")
        st.caption("Chat with your documents")
        with st.form("sign-in-form"):
            name = st.text_input("Name", key="sign-in-name", autocomplete="username")
            password = st.text_input("Password", type="password", key="sign-in-password",
                                     autocomplete="current-password")
            submitted = st.form_submit_button("Sign in", type="primary", key="sign-in")
        if not submitted:
            return
        principal = accounts.users.verify(name.strip(), password)
        if principal is None:
            st.error("Wrong name or password.")
            return
        st.session_state[SESSION_KEY] = principal
        st.rerun()
