"""Developer tools used by tests, the demo and benches (local stand-ins for real services)."""

from __future__ import annotations
