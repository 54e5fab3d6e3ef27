"""Signing in to the app (ui/sign_in.py) through AppTest: the real engine and a real accounts file.
Who must sign in, what a reader and an admin may open, and whose conversations each one sees."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st
from streamlit import config
from streamlit.testing.v1 import AppTest

from rag.accounts import Accounts
from tests.processes import clear_settings_env

pytestmark = pytest.mark.slow

APP = Path(__file__).resolve().parent.parent / "streamlit_app.py"
TIMEOUT = 120  # the first run loads the embedder
PASSWORDS = {"ada": "ada-admin-passphrase-1", "rui": "rui-reader-passphrase-2",
             "sam": "sam-reader-passphrase-3"}
OFF_TOPIC = "What is a good recipe for chocolate chip cookies?"


def _clear_engine() -> None:
    from ui.state import get_rag

    get_rag.clear()
    st.cache_resource.clear()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The app's settings for this module: its own data dir, on loopback; no documents, so every
    question is refused without a language model."""
    folder = tmp_path_factory.mktemp("sign_in_data")
    with pytest.MonkeyPatch.context() as patch:
        clear_settings_env(patch)
        patch.setenv("RAG_DATA_DIR", str(folder))
        address = config.get_option("server.address")
        config.set_option("server.address", "127.0.0.1")
        _clear_engine()
        yield folder
        config.set_option("server.address", address)
        _clear_engine()


@pytest.fixture
def listening_everywhere() -> Iterator[None]:
    config.set_option("server.address", "0.0.0.0")
    yield
    config.set_option("server.address", "127.0.0.1")


def _run(**query: str) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.query_params.update(query)
    at.run()
    assert not at.exception, [exception.message for exception in at.exception]
    return at


def _sign_in(name: str, password: str | None = None, **query: str) -> AppTest:
    at = _run(**query)
    at.text_input(key="sign-in-name").set_value(name)
    at.text_input(key="sign-in-password").set_value(password or PASSWORDS[name])
    at.button(key="sign-in").click().run()
    assert not at.exception, [exception.message for exception in at.exception]
    return at


def _signed_in_as(at: AppTest) -> str | None:
    found = [c.value for c in at.sidebar.caption if c.value.startswith("Signed in as")]
    return found[0] if found else None


def _conversations(at: AppTest) -> list[str]:
    return [button.label for button in at.sidebar.button if button.key.startswith("open-")]


def _opens(at: AppTest, page: str) -> bool:
    """Whether the page is among this user's pages, and then opens without error."""
    try:
        at.switch_page(page)
    except ValueError:  # not registered in this run's navigation
        return False
    at.run()
    assert not at.exception, [exception.message for exception in at.exception]
    return True


def test_on_loopback_with_no_account_the_app_opens_without_sign_in(data_dir: Path) -> None:
    at = _run()
    assert at.chat_input and not at.text_input
    assert _signed_in_as(at) is None
    assert any(c.value.startswith("Store: ") for c in at.sidebar.caption)
    assert _opens(at, "app_pages/documents.py")


def test_listening_beyond_loopback_with_no_account_shows_nothing_but_how_to_create_one(
    data_dir: Path, listening_everywhere: None
) -> None:
    at = _run()
    assert not at.chat_input and not at.sidebar.caption
    assert "python -m rag users add NAME --role admin" in at.error[0].value


@pytest.fixture(scope="module")
def accounts(data_dir: Path) -> Accounts:
    accounts = Accounts.in_data_dir(data_dir)
    accounts.users.add("ada", "admin", PASSWORDS["ada"])
    accounts.users.add("rui", "reader", PASSWORDS["rui"])
    accounts.users.add("sam", "reader", PASSWORDS["sam"])
    return accounts


def test_once_an_account_exists_a_wrong_password_or_name_opens_nothing(accounts: Accounts) -> None:
    for name, password in [("rui", PASSWORDS["sam"]), ("nobody", PASSWORDS["rui"])]:
        at = _sign_in(name, password)
        assert at.error[0].value == "Wrong name or password."
        assert not at.chat_input and not at.sidebar.caption


@pytest.fixture(scope="module")
def rui_asked(accounts: Accounts) -> tuple[AppTest, str]:
    """rui, a reader, signed in and asked once: the tab, and the new conversation's id."""
    at = _sign_in("rui")
    at.chat_input[0].set_value(OFF_TOPIC).run()
    assert not at.exception
    return at, at.query_params["c"]


def test_a_reader_asks_in_a_conversation_of_their_own(rui_asked: tuple[AppTest, str],
                                                      accounts: Accounts) -> None:
    at, conversation_id = rui_asked
    assert _signed_in_as(at) == "Signed in as **rui** (reader)"
    assert _conversations(at) == [OFF_TOPIC]
    assert accounts.users.current(accounts.owners.owner(conversation_id)).name == "rui"


def test_a_reader_sees_no_admin_page_and_no_server_detail(rui_asked: tuple[AppTest, str]) -> None:
    at = rui_asked[0]
    assert not any(c.value.startswith(("Store: ", "LLM: ")) for c in at.sidebar.caption)
    for page in ("app_pages/documents.py", "app_pages/settings.py", "app_pages/evaluation.py"):
        assert not _opens(at, page), page


def test_another_reader_neither_lists_nor_opens_it(rui_asked: tuple[AppTest, str]) -> None:
    conversation_id = rui_asked[1]
    at = _sign_in("sam", c=conversation_id)
    assert _conversations(at) == []
    assert not at.chat_message  # the link opened a new chat, not rui's questions
    assert "c" not in at.query_params


def test_an_admin_sees_every_conversation_and_every_page(rui_asked: tuple[AppTest, str]) -> None:
    at = _sign_in("ada", c=rui_asked[1])
    assert _signed_in_as(at) == "Signed in as **ada** (admin)"
    assert _conversations(at) == [OFF_TOPIC]
    assert at.chat_message[0].markdown[0].value == OFF_TOPIC
    assert any(c.value.startswith("Store: ") for c in at.sidebar.caption)
    assert _opens(at, "app_pages/settings.py")


def test_signing_out_or_a_removed_account_asks_to_sign_in_again(accounts: Accounts) -> None:
    at = _sign_in("sam")
    at.button(key="sign-out").click().run()
    assert not at.chat_input and at.text_input(key="sign-in-password")

    at = _sign_in("sam")
    assert at.chat_input
    accounts.users.remove("sam")
    at.run()  # the next click of a tab signed in before the removal
    assert not at.chat_input and at.text_input(key="sign-in-password")
