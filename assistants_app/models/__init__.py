from __future__ import annotations

from .accounts import AccountApproval, Invitation, UserLimits
from .assistant import Assistant
from .chat import ChatAnswer, Feedback
from .chunks import Chunk
from .endpoints import FunctionEndpoint
from .files import File, VectorStore, VectorStoreFile, VectorStoreFileBatch
from .keys import ApiKey
from .run import Run, RunStep
from .thread import Message, Thread

__all__ = [
    "AccountApproval",
    "ApiKey",
    "Assistant",
    "ChatAnswer",
    "Chunk",
    "Feedback",
    "File",
    "FunctionEndpoint",
    "Invitation",
    "Message",
    "Run",
    "RunStep",
    "Thread",
    "UserLimits",
    "VectorStore",
    "VectorStoreFile",
    "VectorStoreFileBatch",
]
