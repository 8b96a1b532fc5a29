"""``notifier outbox``, ``outbox retry`` and ``send-test`` in-process, on a configuration file
whose database is a temporary SQLite file and whose SMTP server is a real local SmtpSink.

Rows are created the real way (planner via ``store.enqueue``) and their states set with the
store's own outcome methods, so the listing is checked against what was written.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from notifier import models
from notifier.cli import main
from notifier.devtools.smtp_sink import SmtpSink
from notifier.domain import DomainEvent, EventKind
from notifier.planner import PlanPolicy, plan
from notifier.store.base import OrderInput, ShipmentInput
from notifier.store.sqlite import SqliteStore
from notifier.unsubscribe import verify_token
from tests.conftest import config_text

NOW = datetime(2026, 11, 2, 15, 0, tzinfo=UTC)


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    with SmtpSink() as s:
        yield s


@pytest.fixture
def cfg(tmp_path: Path, sink: SmtpSink) -> Path:
    text = config_text(str(tmp_path / "cli.sqlite3"))
    text = re.sub(r"(?m)^port = 8025$", f"port = {sink.port}", text)
    text = text.replace("[notifications]\n", "[notifications]\nretry_attempts = 1\n")
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


async def _seed(db: Path) -> list[int]:
    """Three e-mail rows: one sent, one failed, one dead; returns their ids in that order."""
    async with SqliteStore(db) as store:
        pol = PlanPolicy(channels={t.value: ("email",) for t in models.Trigger})
        store.planner = lambda events, inputs: plan(events, inputs, policy=pol, now=NOW)
        await store.upsert_orders([OrderInput(
            id=f"C{i}", email=f"c{i}@example.com",
            shipments=(ShipmentInput(carrier="ups", tracking_number=f"1Z999AA1012345678{i}"),))
            for i in range(3)], now=NOW)
        orders = [await store.get_order(f"C{i}") for i in range(3)]
        async with store.transaction() as tx:
            await store.enqueue(tx, [DomainEvent(
                kind=EventKind.shipment_status_changed, order_id=o.id, at=NOW,
                shipment_id=o.shipments[0].id,
                data={"old": "in_transit", "new": "delivered", "event_at": "2026-11-02T14:00:00Z"})
                for o in orders])
        claimed = await store.claim_due(now=NOW, lease_until=NOW + timedelta(minutes=5),
                                        limit=10, channels=["email"])
        ids = [n.id for n in claimed if n.id is not None]
        await store.mark_sent(ids[0], now=NOW, provider_id="<n1@shop>")
        await store.mark_failed(ids[1], "550 5.1.1 no such user")
        await store.mark_failed(ids[2], "421 never came back (gave up)", status="dead")
        return ids


def test_outbox_lists_rows_with_counts(cfg: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    ids = asyncio.run(_seed(tmp_path / "cli.sqlite3"))
    code, out, _ = run(capsys, "outbox", "--json", "--config", str(cfg))
    assert code == 0
    data = json.loads(out)
    assert data["counts"] == {"sent": 1, "failed": 1, "dead": 1}
    got = {n["id"]: (n["status"], n["recipient"], n["trigger"]) for n in data["notifications"]}
    assert got == {ids[0]: ("sent", "c0@example.com", "delivered"),
                   ids[1]: ("failed", "c1@example.com", "delivered"),
                   ids[2]: ("dead", "c2@example.com", "delivered")}
    code, out, _ = run(capsys, "outbox", "--status", "failed", "--config", str(cfg))
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "outbox: 1 sent, 1 failed, 1 dead"
    (row,) = [ln for ln in lines[2:]]
    assert row.split()[:3] == [str(ids[1]), "failed", "email"]
    assert "550 5.1.1 no such user" in row


def test_outbox_retry_by_id_and_dead(cfg: Path, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    ids = asyncio.run(_seed(tmp_path / "cli.sqlite3"))
    code, out, _ = run(capsys, "outbox", "retry", str(ids[1]), "--config", str(cfg))
    assert (code, out.strip()) == (0, "outbox retry: 1 notification(s) pending again")
    code, out, _ = run(capsys, "outbox", "retry", "--dead", "--config", str(cfg))
    assert (code, out.strip()) == (0, "outbox retry: 1 notification(s) pending again")
    code, out, _ = run(capsys, "outbox", "--json", "--config", str(cfg))
    rows = {n["id"]: n for n in json.loads(out)["notifications"]}
    assert [rows[i]["status"] for i in ids] == ["sent", "pending", "pending"]
    assert rows[ids[1]]["last_error"].startswith("manual retry: 550")
    # A sent row cannot be retried; an unknown id neither; ids and --dead are exclusive.
    code, _, err = run(capsys, "outbox", "retry", str(ids[0]), "999", "--config", str(cfg))
    assert code == 1 and "not found or not failed" in err
    assert run(capsys, "outbox", "retry", "--config", str(cfg))[0] == 2
    assert run(capsys, "outbox", "retry", "1", "--dead", "--config", str(cfg))[0] == 2


def test_send_test_email_reaches_the_sink(cfg: Path, sink: SmtpSink,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "send-test", "--channel", "email", "--to", "qa@example.com",
                         "--trigger", "delivered", "--locale", "fr", "--config", str(cfg))
    assert code == 0, err
    assert out.startswith("send-test: sent delivered via email (id <test-")
    (msg,) = sink.messages
    assert msg.envelope_to == ("qa@example.com",)
    assert "livr" in str(msg["Subject"]).lower()  # the French template was used
    url = str(msg["List-Unsubscribe"]).split("<")[1].split(">")[0]
    assert verify_token(url.split("t=")[1], "demo-unsubscribe-secret") == ("qa@example.com",
                                                                            "email")


def test_send_test_reports_failures(cfg: Path, sink: SmtpSink,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    sink.fail_next("550 5.1.1 no such user", stage="RCPT")
    code, out, err = run(capsys, "send-test", "--channel", "email", "--to", "nobody@example.com",
                         "--config", str(cfg))
    assert code == 1 and out == "" and "DeliveryRejected" in err and "550" in err
    sink.down()
    code, _, err = run(capsys, "send-test", "--channel", "email", "--to", "qa@example.com",
                       "--config", str(cfg))
    assert code == 1 and "DeliveryTransient" in err
    # The webhook channel has no secret in this configuration: a configuration problem.
    code, _, err = run(capsys, "send-test", "--channel", "webhook", "--to",
                       "https://127.0.0.1:9/hook", "--config", str(cfg))
    assert code == 78 and "misconfigured" in err
