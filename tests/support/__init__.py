"""Reusable test support: real local servers for contract and integration tests."""

from __future__ import annotations
