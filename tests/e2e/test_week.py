"""A simulated week end to end: ``notifier run`` as a subprocess against the carrier sandbox, an
SMTP sink and a push receiver; orders arrive through the HTTP API and through the CLI
(``orders add`` and ``orders import`` while the daemon runs); a customer files a dispute.

Assertions are on what the receivers actually got, joined to the database's outbox rows by the
notification id each message carries: the triggers each scenario must produce (and nothing a
scenario cannot produce), the right customer and the language of their locale, each
de-duplication key delivered exactly once, every sent row really received, one ops digest per
morning, and ``notifier orders show --json`` agreeing with all of it.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Callable
from datetime import timedelta
from email.message import EmailMessage
from typing import Any
from urllib.parse import quote

from tests.e2e.conftest import OPS, START, World, ledger

SPEED = 21_600.0  # one simulated day per 4 real seconds: the week takes about 30 s
DAYS = 7

# (order, locale, tz, carrier, scenario, how it arrives)
ORDERS = [
    ("W-1001", "en", "America/New_York", "ups", "normal", "api"),
    ("W-1002", "fr", "Europe/Paris", "fedex", "normal", "api"),
    ("W-1003", "de", "Europe/Berlin", "dhl", "normal", "api"),
    ("W-1004", "fr_CA", "America/Toronto", "usps", "normal", "api"),
    ("W-1005", "en", "America/Chicago", "ups", "failed_attempt_pickup", "api"),
    ("W-1006", "de", "Europe/Vienna", "fedex", "exception_return", "api"),
    ("W-1007", "fr", "Europe/Paris", "ups", "edd_slip_once", "api"),
    ("W-2001", "en", "America/Los_Angeles", "usps", "normal", "add"),
    ("W-2002", "de", "Europe/Berlin", "fedex", "normal", "add"),
    ("W-3001", "en", "Europe/London", "dhl", "normal", "import"),
    ("W-3002", "fr", "Europe/Paris", "fedex", "normal", "import"),
    ("W-3003", "de", "Europe/Berlin", "ups", "normal", "import"),
]
# What each scenario must notify, and what it may notify besides (a slipped EDD or an overdue
# parcel legitimately adds "delayed"; the dispute adds "dispute_received"; UPS, FedEx and DHL
# report a weather delay as an exception scan, reason weather, which is an "exception" notice).
MUST = {
    "normal": {"shipped", "out_for_delivery", "delivered"},
    "failed_attempt_pickup": {"shipped", "out_for_delivery", "failed_attempt",
                              "ready_for_pickup", "delivered"},
    "exception_return": {"shipped", "exception", "returned"},
    "edd_slip_once": {"shipped", "delayed", "out_for_delivery", "delivered"},
}
MAY = {"delayed", "dispute_received"}
MAY_BY_SCENARIO = {"edd_slip_once": {"exception"}}
# The delivered subject in each language (templates/email/<lang>/delivered/subject.txt).
DELIVERED_SUBJECT = {"en": "has been delivered", "fr": "a été livrée", "de": "wurde zugestellt"}
NOT_EMAIL = re.compile(r"\S+@\S+")


def email_of(order: str) -> str:
    return f"{order.lower()}@example.org"


def lang_of(locale: str) -> str:
    return locale.split("_")[0]


def _number(carrier: str, seed: int) -> str:
    """A valid tracking number of ``carrier`` (the sandbox and the detector agree on it)."""
    import random

    from carriers import numbers

    return numbers.generate(carrier, random.Random(seed))


def test_a_simulated_week(world: Callable[..., World]) -> None:
    w = world(speed=SPEED, channels=("email", "webhook", "fcm"))
    w.write_config()
    # A valid tracking number per order (check digits right, as the detector wants them).
    orders = [(o, loc, tz, c, _number(c, i), sc, how)
              for i, (o, loc, tz, c, sc, how) in enumerate(ORDERS)]
    scenario_of = {o[0]: o[5] for o in orders}
    locale_of = {o[0]: o[1] for o in orders} | {"W-4001": "de", "W-4002": "fr"}
    extra = {"W-4001": {"backordered"}}
    # Parcels labelled two hours before the start (or before their order arrives).
    for _order, _, _, carrier, number, scenario, how in orders:
        arrives = {"api": START, "add": START + timedelta(hours=12),
                   "import": START + timedelta(days=1)}[how]
        w.register(carrier, number, scenario, arrives - timedelta(hours=2))
    w.start_daemon()

    # Day 0: the shop's API integration sends seven orders, a backorder and one it will cancel.
    for order, locale, tz, carrier, number, _, how in orders:
        if how != "api":
            continue
        r = w.api("PUT", f"/v1/orders/{order}", json={
            "email": email_of(order), "name": f"Customer {order}", "locale": locale, "tz": tz,
            "status": "processing", "shipments": [{"carrier": carrier, "tracking": number}]})
        assert r.status_code == 201, r.text
    r = w.api("PUT", "/v1/orders/W-4001", json={
        "email": email_of("W-4001"), "locale": "de", "tz": "Europe/Berlin",
        "status": "backordered", "expected_ship": (START + timedelta(days=2)).date().isoformat()})
    assert r.status_code == 201, r.text
    r = w.api("PUT", "/v1/orders/W-4002", json={
        "email": email_of("W-4002"), "locale": "fr", "tz": "Europe/Paris",
        "status": "processing"})
    assert r.status_code == 201, r.text
    for order in ("W-1001", "W-1002"):  # two customers have the shop's app
        r = w.api("PUT", f"/v1/customers/{quote(email_of(order), safe='@')}/devices",
                  json={"channel": "fcm", "token": f"fcm-token-{order}"})
        assert r.status_code == 200, r.text

    # Half a day in: the warehouse keys two orders in by hand while the daemon runs.
    w.sleep_until(START + timedelta(hours=12))
    for order, locale, tz, carrier, number, _, how in orders:
        if how == "add":
            done = w.cli("orders", "add", "--order", order, "--email", email_of(order),
                         "--locale", locale, "--tz", tz, "--carrier", carrier,
                         "--tracking", number)
            assert done.returncode == 0, done.stderr
            assert "created, 1 shipment(s) added" in done.stdout

    # Day 1: the nightly export is imported, and W-4002 is cancelled.
    w.sleep_until(START + timedelta(days=1))
    csv = w.root / "export.csv"
    csv.write_text("order,email,locale,tz,carrier,tracking\n" + "".join(
        f"{o},{email_of(o)},{loc},{tz},{c},{n}\n"
        for o, loc, tz, c, n, _, how in orders if how == "import"), encoding="utf-8")
    done = w.cli("orders", "import", str(csv))
    assert done.returncode == 0, done.stderr
    assert "3 imported (3 new" in done.stdout
    r = w.api("POST", "/v1/orders/W-4002/status", json={"status": "cancelled"})
    assert r.status_code == 200, r.text

    # Day 2: the backorder ships (a Wednesday: the parcel arrives before the weekend).
    w.sleep_until(START + timedelta(days=2))
    late = _number("ups", 99)
    w.register("ups", late, "normal", w.now() - timedelta(hours=1))
    r = w.api("POST", "/v1/orders/W-4001/shipments", json={"carrier": "ups", "tracking": late})
    assert r.status_code == 201, r.text
    r = w.api("POST", "/v1/orders/W-4001/status", json={"status": "processing"})
    assert r.status_code == 200, r.text
    scenario_of["W-4001"] = "normal"

    # Day 4: W-1002's customer says the delivered parcel never came.
    w.sleep_until(START + timedelta(days=4))
    track = w.http.get(w.api_url + "/v1/track",
                       params={"order": "W-1002", "email": email_of("W-1002")})
    assert track.status_code == 200, track.text
    shipped = track.json()["shipments"]
    assert [s["status"] for s in shipped] == ["delivered"], shipped
    r = w.api("POST", "/v1/orders/W-1002/disputes", json={
        "reason": "Marked delivered but nothing at the door.",
        "tracking": shipped[0]["tracking_number"]})
    assert r.status_code == 201, r.text

    # The end of the week: let the outbox catch up, then SIGTERM (the service's drain).
    w.sleep_until(START + timedelta(days=DAYS, hours=3))
    w.wait_for("the outbox to drain", w.outbox_idle)
    assert w.stop_daemon() == 0, w.log_tail()
    assert w.log_text().rstrip().endswith("notifier stopped")
    assert "Traceback" not in w.log_text(), w.log_text()[-5000:]

    assert w.sink is not None and w.push is not None
    book = ledger(w.database, w.sink.messages, w.push.receiver.received)
    assert not book.strays, book.strays

    # 1. Every row marked sent was really received, exactly once; nothing was lost.
    statuses: dict[str, int] = defaultdict(int)
    for row in book.rows.values():
        statuses[row.status] += 1
    assert statuses["sent"] > 0 and not statuses["dead"] and not statuses["failed"], statuses
    assert book.duplicates == 0, book.duplicated_keys()
    unsent = [r for r in book.rows.values() if r.status == "sent"
              and book.received[r.dedup_key] != 1]
    assert not unsent, unsent
    assert all(book.received[r.dedup_key] == 0 for r in book.rows.values()
               if r.status != "sent")
    assert not book.lost or all(r.status in ("pending", "sending") for r in book.lost)

    # 2. Per order: the right triggers on every channel it uses, to the right customer.
    mails: dict[str, dict[str, EmailMessage]] = defaultdict(dict)
    pushed: dict[tuple[str, str], set[str]] = defaultdict(set)
    for key, got in book.by_key.items():
        row = book.rows[key]
        assert row.order_id is not None
        if row.channel == "email":
            (message,) = got
            assert message["To"].addresses[0].addr_spec == email_of(row.order_id)
            mails[row.order_id][row.trigger] = message
        else:
            for entry in got:
                assert entry["payload"]["data"]["trigger"] == row.trigger
                assert entry["payload"]["data"]["order_id"] == row.order_id
            pushed[(row.channel, row.order_id)].add(row.trigger)
    for order, scenario in scenario_of.items():
        triggers = set(mails[order])
        must = MUST[scenario] | extra.get(order, set())
        may = MAY | MAY_BY_SCENARIO.get(scenario, set())
        assert must <= triggers <= must | may, (order, scenario, triggers)
        # The shop's webhook hears the same notices as the customer's inbox.
        assert pushed[("webhook", order)] == triggers, order
    assert set(mails["W-4002"]) == {"cancelled"}
    assert "dispute_received" in mails["W-1002"]
    # The app users got pushes too; the others none.
    assert pushed[("fcm", "W-1001")] >= {"out_for_delivery", "delivered"}
    assert pushed[("fcm", "W-1002")] >= {"delivered", "dispute_received"}
    assert {o for (c, o) in pushed if c == "fcm"} == {"W-1001", "W-1002"}

    # 3. The customer's language: the delivered subject, and the HTML's lang attribute.
    for order, by_trigger in mails.items():
        lang = lang_of(locale_of[order])
        for trigger, message in by_trigger.items():
            html = message.get_body(("html",))
            assert html is not None
            assert re.search(rf'<html[^>]*lang="{lang}', html.get_content()), (order, trigger)
        if "delivered" in by_trigger:
            assert DELIVERED_SUBJECT[lang] in str(by_trigger["delivered"]["Subject"]), order

    # 4. One ops digest per simulated morning, to the ops address, each period once: the
    # first start sends the latest period already due (yesterday 08:00), then every 08:00.
    digests = [m for m in book.ops_mail if str(m["Subject"]).startswith("Ops digest")]
    ids = [str(m["Message-ID"]) for m in digests]
    assert len(ids) == len(set(ids))
    mornings = [(START + timedelta(days=d)).date().isoformat() for d in range(-1, DAYS + 1)]
    assert sorted(str(m["Subject"]).split()[2] for m in digests) == mornings
    assert all(m["To"].addresses[0].addr_spec == OPS for m in digests)
    assert len(list((w.root / "digests").glob("*.html"))) == len(mornings)

    # 5. `orders show --json` reflects the delivered status and the notifications sent.
    shown = w.cli("orders", "show", "W-1002", "--json")
    assert shown.returncode == 0, shown.stderr
    data: dict[str, Any] = json.loads(shown.stdout)
    assert data["status"] == "delivered"
    assert data["shipments"][0]["status"] == "delivered"
    assert data["customer"]["locale"] == "fr"
    assert len(data["disputes"]) == 1
    sent = {(n["trigger"], n["channel"]) for n in data["notifications"]
            if n["status"] == "sent"}
    assert {("delivered", "email"), ("delivered", "fcm"), ("delivered", "webhook"),
            ("dispute_received", "email")} <= sent
    rows_sent = {(r.trigger, r.channel) for r in book.rows.values()
                 if r.order_id == "W-1002" and r.status == "sent"}
    assert sent == rows_sent
