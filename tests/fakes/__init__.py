"""Test doubles that run over real transports (HTTP), so the code under test is exercised end to end."""

from __future__ import annotations
