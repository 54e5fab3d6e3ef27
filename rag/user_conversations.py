"""One principal's view of the stored conversations, shared by the app and the API: a reader
sees and deletes only their own, an admin every one; a new conversation is its creator's."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rag.accounts import Accounts, Principal
from rag.conversations import Conversation, ConversationStore


@dataclass(frozen=True)
class UserConversations:
    store: ConversationStore
    accounts: Accounts
    principal: Principal

    def list(self) -> list[Conversation]:
        listed = self.store.list()
        if self.principal.is_admin:
            return listed
        own = self.accounts.owners.owned_by(self.principal.user_id)
        return [conversation for conversation in listed if conversation.id in own]

    def get(self, conversation_id: str) -> Conversation | None:
        """None whether it does not exist or is someone else's: ids cannot be probed."""
        found = self.store.get(conversation_id)
        if found is None or not (self.principal.is_admin or
                                 self.accounts.owners.owner(found.id) == self.principal.user_id):
            return None
        return found

    def create(self, documents: Sequence[str] = ()) -> Conversation:
        conversation = self.store.create(documents=documents)
        self.accounts.owners.claim(conversation.id, self.principal.user_id)
        return conversation

    def delete(self, conversation_id: str) -> None:
        self.store.delete(conversation_id)
        self.accounts.owners.forget(conversation_id)
