from __future__ import annotations

from .assistant import Assistant
from .chat import ChatAnswer, Feedback
from .chunks import Chunk
from .files import File, VectorStore, VectorStoreFile, VectorStoreFileBatch
from .keys import ApiKey
from .run import Run, RunStep
from .thread import Message, Thread

__all__ = [
    "ApiKey",
    "Assistant",
    "ChatAnswer",
    "Chunk",
    "Feedback",
    "File",
    "Message",
    "Run",
    "RunStep",
    "Thread",
    "VectorStore",
    "VectorStoreFile",
    "VectorStoreFileBatch",
]
