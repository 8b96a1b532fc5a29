"""The carrier sandbox: one local HTTP server speaking UPS, FedEx, DHL and USPS tracking.

Adapters run against it unchanged with only their base URL changed. Parcels follow
deterministic scenario timelines on the shared simulated clock; faults and quotas are
injected per carrier through ``/_sandbox/*`` control endpoints (see ``control.py``).

Public API: :func:`create_app`, :func:`serve`, :class:`SandboxThread`,
:class:`SandboxCredentials`, :class:`Quota`, :class:`Scenario`.
"""

from __future__ import annotations

from carriers.sandbox.app import create_app
from carriers.sandbox.quota import Quota
from carriers.sandbox.scenarios import Scenario
from carriers.sandbox.server import SandboxThread, serve
from carriers.sandbox.state import SandboxCredentials, SandboxState

__all__ = ["Quota", "SandboxCredentials", "SandboxState", "SandboxThread", "Scenario",
           "create_app", "serve"]
