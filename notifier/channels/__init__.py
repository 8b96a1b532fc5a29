"""Delivery channels: e-mail (aiosmtplib) and push (FCM, APNs, Web Push, signed webhooks)."""

from __future__ import annotations
