"""Conversations per user: a reader sees only their own (any other is "not found", so ids
cannot be probed); an admin sees all, including those asked before accounts existed."""

from __future__ import annotations

from fastapi import APIRouter, Response

from rag.accounts import Accounts, Principal
from rag.api.auth import Caller
from rag.api.deps import AccountsDep, Engine
from rag.api.errors import ApiError
from rag.api.schemas import ConversationDetail, ConversationOut, conversation_out, message_out
from rag.conversations import Conversation
from rag.pipeline import RAG
from rag.user_conversations import UserConversations

router = APIRouter(prefix="/v1", tags=["conversations"])


def of_caller(engine: RAG, accounts: Accounts, caller: Principal) -> UserConversations:
    return UserConversations(engine.conversations, accounts, caller)


def visible(conversations: UserConversations, conversation_id: str) -> Conversation:
    """The conversation, if the caller may see it; else 404, whether it exists or not."""
    found = conversations.get(conversation_id)
    if found is None:
        raise ApiError(404, "not_found", "no conversation with this id")
    return found


@router.get("/conversations", response_model=list[ConversationOut],
            summary="The caller's conversations (an admin's: all), newest first")
def conversations(engine: Engine, accounts: AccountsDep, caller: Caller) -> list[ConversationOut]:
    return [conversation_out(found) for found in of_caller(engine, accounts, caller).list()]


@router.get("/conversations/{conversation_id}", response_model=ConversationDetail)
def conversation(conversation_id: str, engine: Engine, accounts: AccountsDep,
                 caller: Caller) -> ConversationDetail:
    found = visible(of_caller(engine, accounts, caller), conversation_id)
    messages = [message_out(stored) for stored in engine.conversations.messages(found.id)]
    return ConversationDetail(**conversation_out(found).model_dump(), messages=messages)


@router.delete("/conversations/{conversation_id}", status_code=204, response_class=Response)
def delete_conversation(conversation_id: str, engine: Engine, accounts: AccountsDep,
                        caller: Caller) -> Response:
    own = of_caller(engine, accounts, caller)
    own.delete(visible(own, conversation_id).id)
    return Response(status_code=204)
