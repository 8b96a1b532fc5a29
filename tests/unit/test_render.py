"""Customer notice rendering: every trigger x locale x channel kind, overrides, locale fallback,
escaping, header safety, time zones across DST, and delivery windows.

Expected date strings are computed with Babel/zoneinfo directly (independently of the filters'
composition), or are facts about the calendar (the local hour of a UTC instant).
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from babel.dates import format_date, format_interval, format_skeleton
from markupsafe import escape

from notifier import models
from notifier.render import (
    BUILTIN_TEMPLATES,
    NoticeContext,
    Renderer,
    RenderError,
    normalize_locale,
    sample_context,
)

NOW = datetime(2024, 11, 29, 15, 30, tzinfo=UTC)
TRIGGERS = [t.value for t in models.Trigger]
LOCALES = ["en", "fr", "de"]
EDD_LABEL = {"en": "Estimated delivery", "fr": "Livraison estimée",
             "de": "Voraussichtliche Zustellung"}


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer(BUILTIN_TEMPLATES)


def ctx_for(trigger: str, locale: str = "en", **changes: object) -> NoticeContext:
    return replace(sample_context(trigger, locale, now=NOW), **changes)  # type: ignore[arg-type]


def with_shipment(ctx: NoticeContext, **changes: object) -> NoticeContext:
    assert ctx.shipment is not None
    return replace(ctx, shipment=replace(ctx.shipment, **changes))  # type: ignore[arg-type]


def write(root: Path, name: str, text: str) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def all_output(msg: object) -> str:
    return " ".join(str(getattr(msg, f)) for f in ("subject", "text", "html", "title", "body"))


# --- every trigger x locale x channel kind ---------------------------------------------------

@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("trigger", TRIGGERS)
def test_email_renders(renderer: Renderer, trigger: str, locale: str) -> None:
    ctx = ctx_for(trigger, locale)
    msg = renderer.render("n-1", ctx, channel="email")
    assert msg.locale == locale and msg.trigger == trigger
    assert ctx.order_id in msg.subject and "\n" not in msg.subject
    assert ctx.order_id in msg.text and ctx.customer_name in msg.text
    assert msg.html is not None and f'lang="{locale}"' in msg.html
    assert ctx.shop_name in msg.html and ctx.support_email in msg.html
    assert msg.list_unsubscribe_url == ctx.unsubscribe_url
    assert ctx.unsubscribe_url and ctx.unsubscribe_url in msg.html
    assert ctx.unsubscribe_url in msg.text
    if ctx.shipment is not None:
        assert ctx.shipment.tracking_number in msg.text
    out = all_output(msg)
    assert "{{" not in out and "{%" not in out and "None" not in out
    assert not re.search(r"[^\W\d_]\.\.(?!\.)", out), "double full stop after an abbreviation"


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("trigger", TRIGGERS)
def test_push_renders(renderer: Renderer, trigger: str, locale: str) -> None:
    ctx = ctx_for(trigger, locale)
    msg = renderer.render("n-2", ctx, channel="fcm")
    assert msg.title and msg.body and msg.html is None and not msg.subject
    assert ctx.order_id in msg.body
    assert "\n" not in msg.title + msg.body and len(msg.body) <= 600
    assert all(isinstance(v, str) and v for v in msg.data.values())
    assert msg.data["order_id"] == ctx.order_id and msg.data["notification_id"] == "n-2"
    assert msg.urgent == (trigger in {"out_for_delivery", "delivered", "failed_attempt",
                                      "exception", "ready_for_pickup"})


def test_builtin_templates_pass_check(renderer: Renderer) -> None:
    assert set(LOCALES) <= set(renderer.locales) and renderer.locales[0] == "en"
    assert renderer.check() == []


def test_builtin_folder_is_the_repo_templates() -> None:
    assert Path(__file__).resolve().parents[2] / "templates" == BUILTIN_TEMPLATES


# --- EDD, delayed, backordered ---------------------------------------------------------------

@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("trigger", TRIGGERS)
def test_no_empty_estimated_delivery_line(renderer: Renderer, trigger: str,
                                          locale: str) -> None:
    ctx = ctx_for(trigger, locale)
    if ctx.shipment is not None:
        ctx = with_shipment(ctx, edd_start=None, edd_end=None)
    for channel in ("email", "webpush"):
        out = all_output(renderer.render("n", ctx, channel=channel))
        assert EDD_LABEL[locale] not in out


@pytest.mark.parametrize("locale", LOCALES)
def test_shipped_gives_carrier_tracking_link_and_edd_window(renderer: Renderer,
                                                            locale: str) -> None:
    start, end = date(2024, 11, 29), date(2024, 12, 3)
    ctx = with_shipment(ctx_for("shipped", locale), edd_start=start, edd_end=end)
    msg = renderer.render("n", ctx, channel="email")
    window = format_interval(start, end, "MMMEd", locale=locale)
    assert ctx.shipment is not None
    url = ctx.shipment.tracking_url
    for part, link in ((msg.text, url), (msg.html or "", str(escape(url)))):
        assert ctx.shipment.carrier_name in part and ctx.shipment.tracking_number in part
        assert link in part and "&" in url  # "&" in a link is written "&amp;" in HTML
        assert f"{EDD_LABEL[locale]}" in part and window in part


@pytest.mark.parametrize(("start", "end", "skeleton"), [
    (date(2024, 12, 3), date(2024, 12, 3), None),           # one day
    (date(2024, 12, 3), date(2024, 12, 5), "MMMEd"),        # window in one month
    (date(2024, 12, 30), date(2025, 1, 2), "yMMMEd"),       # across the new year
    (date(2024, 12, 5), date(2024, 12, 3), None),           # end before start: the start day
])
@pytest.mark.parametrize("locale", ["en", "fr", "de", "en_GB", "fr_CA"])
def test_edd_window_rendering(renderer: Renderer, start: date, end: date,
                              skeleton: str | None, locale: str) -> None:
    ctx = with_shipment(ctx_for("shipped", locale), edd_start=start, edd_end=end)
    text = renderer.render("n", ctx, channel="email").text
    expected = (format_skeleton("MMMMEEEEd", start, locale=locale) if skeleton is None
                else format_interval(start, end, skeleton, locale=locale))
    assert expected in text


@pytest.mark.parametrize("locale", LOCALES)
def test_delayed_says_the_new_date_or_that_there_is_none(renderer: Renderer,
                                                         locale: str) -> None:
    new = date(2024, 12, 9)
    ctx = with_shipment(ctx_for("delayed", locale, new_edd_start=new), edd_start=new,
                        edd_end=new)
    day = format_skeleton("MMMMEEEEd", new, locale=locale)
    msg = renderer.render("n", ctx, channel="email")
    push = renderer.render("n", ctx, channel="apns")
    assert day in msg.text and day in (msg.html or "") and day in push.body
    bare = renderer.render("n", replace(ctx, new_edd_start=None), channel="email")
    assert day not in bare.text and bare.subject != msg.subject


@pytest.mark.parametrize("locale", LOCALES)
def test_backordered_gives_expected_ship_date(renderer: Renderer, locale: str) -> None:
    ship = date(2025, 1, 14)
    ctx = ctx_for("backordered", locale, expected_ship_date=ship)
    expected = format_date(ship, "long", locale=locale)
    assert expected in renderer.render("n", ctx, channel="email").text
    assert expected in renderer.render("n", ctx, channel="fcm").body
    without = renderer.render("n", replace(ctx, expected_ship_date=None), channel="email")
    assert str(ship.year) not in without.text


# --- exceptions: what the customer can do ----------------------------------------------------

REASONS = ["address", "damaged", "customs", "weather", "refused", "held", "lost", "other"]


@pytest.mark.parametrize("locale", LOCALES)
def test_exception_advice_depends_on_reason(renderer: Renderer, locale: str) -> None:
    texts = {}
    for reason in REASONS:
        ctx = with_shipment(ctx_for("exception", locale), exception_reason=reason,
                            last_event_location="Depot Nord")
        msg = renderer.render("n", ctx, channel="email")
        texts[reason] = msg.text
        assert ctx.shipment is not None
        link = {"address": ctx.support_url, "damaged": ctx.support_url,
                "refused": ctx.support_url, "other": ctx.support_url,
                "customs": ctx.shipment.tracking_url, "held": ctx.shipment.tracking_url}
        if reason in link:
            assert str(escape(link[reason])) in (msg.html or "")
        if reason == "held":
            assert "Depot Nord" in msg.text
    assert len(set(texts.values())) == len(REASONS)
    # An unknown reason from a newer carrier mapping gets the generic advice, not a crash.
    odd = with_shipment(ctx_for("exception", locale), exception_reason="martian")
    assert renderer.render("n", odd, channel="email").text == texts["other"]


# --- escaping and header safety --------------------------------------------------------------

def test_hostile_carrier_text_is_escaped_in_html_only(renderer: Renderer) -> None:
    evil = '<script>alert(1)</script> "quoted"'
    ctx = with_shipment(ctx_for("exception"), carrier_name=evil, status_detail=evil,
                        exception_reason="customs",  # its button links the tracking page
                        tracking_url='https://t.example/?n=1"><img src=x onerror=alert(1)>')
    msg = renderer.render("n", ctx, channel="email")
    html = msg.html or ""
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert '"quoted"' not in html and "&#34;quoted&#34;" in html
    assert "<img" not in html
    assert 'href="https://t.example/?n=1&#34;&gt;&lt;img src=x onerror=alert(1)&gt;"' in html
    assert evil in msg.text  # the text part stays readable


def test_non_http_links_are_dropped(renderer: Renderer) -> None:
    ctx = with_shipment(ctx_for("shipped"), tracking_url="javascript:alert(1)")
    msg = renderer.render("n", replace(ctx, support_url="javascript:alert(2)"),
                          channel="email")
    assert "javascript:" not in all_output(msg)


def test_crlf_cannot_reach_the_subject(tmp_path: Path) -> None:
    write(tmp_path, "email/en/shipped/subject.txt",
          "Hi {{ customer_name }}, order {{ order_id }} shipped\n")
    r = Renderer(BUILTIN_TEMPLATES, user_dir=tmp_path)
    ctx = ctx_for("shipped", customer_name="Eve\r\nBcc: victim@example.com",
                  order_id="77\n\rX-Evil: 1\u2028")
    msg = r.render("n", ctx, channel="email")
    assert not set("\r\n\u2028") & set(msg.subject)
    assert msg.subject.startswith("Hi Eve Bcc: victim@example.com, order 77 X-Evil: 1")
    push = r.render("n", ctx, channel="fcm")
    assert "\r" not in push.title + push.body and "\n" not in push.title + push.body


# --- overrides, fallback, check() ------------------------------------------------------------

def test_user_override_wins_for_one_file_and_the_rest_falls_back(tmp_path: Path,
                                                                 renderer: Renderer) -> None:
    write(tmp_path, "email/en/shipped/subject.txt", "Custom: {{ order_id }} left the shop")
    r = Renderer(BUILTIN_TEMPLATES, user_dir=tmp_path)
    ctx = ctx_for("shipped")
    mine, builtin = r.render("n", ctx, channel="email"), renderer.render("n", ctx,
                                                                        channel="email")
    assert mine.subject == f"Custom: {ctx.order_id} left the shop" != builtin.subject
    assert mine.text == builtin.text and mine.html is not None
    # Other locales are untouched by an English override.
    fr = r.render("n", ctx_for("shipped", "fr"), channel="email")
    assert fr.subject == renderer.render("n", ctx_for("shipped", "fr"),
                                         channel="email").subject
    assert r.check() == []


def test_user_can_add_a_locale(tmp_path: Path) -> None:
    write(tmp_path, "push/es/shipped.txt",
          "{% block title %}Pedido enviado{% endblock %}"
          "{% block body %}Tu pedido {{ order_id }} va en camino.{% endblock %}")
    r = Renderer(BUILTIN_TEMPLATES, user_dir=tmp_path)
    assert "es" in r.locales
    msg = r.render("n", ctx_for("shipped", "es_MX"), channel="apns")
    assert msg.title == "Pedido enviado" and msg.locale == "es"
    # Everything the user did not translate falls back to the default locale.
    assert r.render("n", ctx_for("delivered", "es"), channel="apns").locale == "en"


@pytest.mark.parametrize(("customer", "template_locale"), [
    ("fr_CA", "fr"), ("fr-ca", "fr"), ("de_AT.UTF-8", "de"), ("xx", "en"), ("", "en"),
    ("en_GB", "en")])
def test_locale_fallback(renderer: Renderer, customer: str, template_locale: str) -> None:
    ctx = ctx_for("shipped", customer)
    msg = renderer.render("n", ctx, channel="email")
    reference = renderer.render("n", ctx_for("shipped", template_locale), channel="email")
    assert msg.locale == template_locale and msg.subject == reference.subject


def test_regional_locale_formats_dates_the_regional_way(renderer: Renderer) -> None:
    start, end = date(2024, 12, 3), date(2024, 12, 5)
    ctx = with_shipment(ctx_for("shipped", "fr_CA"), edd_start=start, edd_end=end)
    text = renderer.render("n", ctx, channel="email").text
    assert format_interval(start, end, "MMMEd", locale="fr_CA") in text


def test_normalize_locale() -> None:
    assert normalize_locale("FR-ca") == "fr_CA"
    assert normalize_locale("zh-hant-tw") == "zh_Hant_TW"
    assert normalize_locale("de_DE@euro") == "de_DE"
    assert normalize_locale("  ", default="de") == "de"


def test_check_reports_missing_variable_with_the_user_file_path(tmp_path: Path) -> None:
    bad = write(tmp_path, "email/fr/delivered/body.txt",
                "Bonjour,\n\nLivré à {{ shipment.delivered_to_door }}.\n")
    r = Renderer(BUILTIN_TEMPLATES, user_dir=tmp_path)
    [problem] = r.check()
    assert problem.startswith(f"{bad}:3: UndefinedError") and "delivered_to_door" in problem
    assert problem.endswith("(delivered, fr, email, sample)")
    with pytest.raises(RenderError) as err:
        r.render("n", ctx_for("delivered", "fr_CA"), channel="email")
    assert err.value.path == f"{bad}:3"
    # The English notice does not use the broken French file.
    r.render("n", ctx_for("delivered", "en"), channel="email")


def test_check_reports_errors_inside_included_files(tmp_path: Path) -> None:
    footer = write(tmp_path, "email/de/_footer.html", "<p>{{ shop.phone }}</p>\n")
    r = Renderer(BUILTIN_TEMPLATES, user_dir=tmp_path)
    # One broken file is one line, however many notices it breaks.
    [problem] = r.check()
    assert problem.startswith(f"{footer}:1: UndefinedError") and "'shop' is undefined" in problem
    for trigger in TRIGGERS:
        with pytest.raises(RenderError):
            r.render("n", ctx_for(trigger, "de_CH"), channel="email")
        r.render("n", ctx_for(trigger, "de_CH"), channel="fcm")


def test_check_reports_syntax_errors_missing_blocks_and_stray_files(tmp_path: Path) -> None:
    syntax = write(tmp_path, "email/en/cancelled/subject.txt", "Order {{ order_id }\n")
    push = write(tmp_path, "push/de/delivered.txt", "{% block title %}Da!{% endblock %}\n")
    write(tmp_path, "email/en/shiped/subject.txt", "typo in the folder name\n")
    write(tmp_path, "email/en/_my_partial.html", "shared bits are fine\n")
    problems = Renderer(BUILTIN_TEMPLATES, user_dir=tmp_path).check()
    assert any(p.startswith(f"{syntax}:1: TemplateSyntaxError") for p in problems)
    assert any(p.startswith(f"{push}: missing block(s): body") for p in problems)
    assert any("email/en/shiped/subject.txt: not a known template name" in p
               for p in problems)
    assert not any("_my_partial" in p for p in problems)


def test_check_reports_a_layout_that_drops_the_unsubscribe_link(tmp_path: Path) -> None:
    write(tmp_path, "email/_layout.html", "<html><body>{% block content %}{% endblock %}"
          "</body></html>\n")
    problems = Renderer(BUILTIN_TEMPLATES, user_dir=tmp_path).check()
    assert len(problems) == len(TRIGGERS) * len(LOCALES)  # one per body.html it breaks
    assert all(p.startswith(str(BUILTIN_TEMPLATES / "email"))
               and "body.html: does not show the unsubscribe link" in p for p in problems)


def test_check_reports_a_missing_user_folder(tmp_path: Path) -> None:
    problems = Renderer(BUILTIN_TEMPLATES, user_dir=tmp_path / "nope").check()
    assert problems == [f"{tmp_path / 'nope'}: user template folder does not exist"]


def test_missing_template_names_the_expected_file(tmp_path: Path) -> None:
    r = Renderer(tmp_path)  # an empty built-in folder
    with pytest.raises(RenderError) as err:
        r.render("n", ctx_for("cancelled"), channel="email")
    assert err.value.path == str(tmp_path / "email/en/cancelled/subject.txt")


def test_shipment_triggers_need_a_shipment(renderer: Renderer) -> None:
    with pytest.raises(RenderError):
        renderer.render("n", ctx_for("shipped", shipment=None), channel="email")


# --- time zones ------------------------------------------------------------------------------

@pytest.mark.parametrize(("tz", "locale", "instant", "local"), [
    # New York, spring forward 2024-03-10 02:00 EST -> 03:00 EDT
    ("America/New_York", "en", datetime(2024, 3, 10, 6, 30, tzinfo=UTC), (2024, 3, 10, 1, 30)),
    ("America/New_York", "en", datetime(2024, 3, 10, 7, 30, tzinfo=UTC), (2024, 3, 10, 3, 30)),
    # New York, fall back 2024-11-03 02:00 EDT -> 01:00 EST; UTC 04:30 is Nov 2 locally
    ("America/New_York", "en", datetime(2024, 11, 3, 7, 30, tzinfo=UTC), (2024, 11, 3, 2, 30)),
    ("America/New_York", "en", datetime(2024, 11, 3, 3, 30, tzinfo=UTC), (2024, 11, 2, 23, 30)),
    # Paris, 2024-03-31 02:00 CET -> 03:00 CEST, and 2024-10-27 03:00 CEST -> 02:00 CET
    ("Europe/Paris", "fr", datetime(2024, 3, 31, 0, 30, tzinfo=UTC), (2024, 3, 31, 1, 30)),
    ("Europe/Paris", "fr", datetime(2024, 3, 31, 1, 30, tzinfo=UTC), (2024, 3, 31, 3, 30)),
    ("Europe/Paris", "fr", datetime(2024, 10, 27, 2, 30, tzinfo=UTC), (2024, 10, 27, 3, 30)),
])
def test_delivered_at_in_the_customers_zone_across_dst(renderer: Renderer, tz: str,
                                                       locale: str, instant: datetime,
                                                       local: tuple[int, ...]) -> None:
    y, mo, d, h, mi = local
    ctx = with_shipment(ctx_for("delivered", locale, tz=tz), delivered_at=instant)
    text = renderer.render("n", ctx, channel="email").text
    clock = (f"{(h % 12) or 12}:{mi:02d}\u202f{'AM' if h < 12 else 'PM'}" if locale == "en"
             else f"{h:02d}:{mi:02d}")
    day = format_skeleton("MMMEd", date(y, mo, d), locale=locale)
    assert f"{day}, {clock}" in text


def test_naive_instants_are_utc_and_unknown_zones_fall_back_to_utc(renderer: Renderer) -> None:
    aware = datetime(2024, 7, 1, 18, 5, tzinfo=UTC)
    base = with_shipment(ctx_for("delivered", tz="Nowhere/Atlantis"), delivered_at=aware)
    naive = with_shipment(base, delivered_at=aware.replace(tzinfo=None))
    a = renderer.render("n", base, channel="email").text
    assert a == renderer.render("n", naive, channel="email").text
    assert "6:05\u202fPM" in a


# --- push metadata ---------------------------------------------------------------------------

def test_collapse_key_ttl_and_urgency(renderer: Renderer) -> None:
    ofd = renderer.render("n", ctx_for("out_for_delivery"), channel="apns")
    shipped = renderer.render("n", ctx_for("shipped"), channel="apns")
    delivered = renderer.render("n", ctx_for("delivered"), channel="apns")
    problem = renderer.render("n", ctx_for("exception"), channel="apns")
    other_order = renderer.render("n", ctx_for("delivered", order_id="9"), channel="apns")
    assert ofd.ttl_s < shipped.ttl_s and ofd.ttl_s <= 6 * 3600
    assert ofd.urgent and delivered.urgent and not shipped.urgent
    assert shipped.collapse_key == delivered.collapse_key != problem.collapse_key
    assert other_order.collapse_key != delivered.collapse_key
    long_id = renderer.render("n", ctx_for("shipped", order_id="X" * 200), channel="apns")
    assert long_id.collapse_key and len(long_id.collapse_key.encode()) <= 64


def test_sample_context_is_relative_to_now() -> None:
    later = NOW + timedelta(days=30)
    ctx = sample_context("shipped", "de", now=later)
    assert ctx.shipment is not None and ctx.shipment.edd_start is not None
    assert ctx.shipment.edd_start > later.date() and ctx.tz == "Europe/Berlin"
    assert sample_context("cancelled", now=NOW).shipment is None


def test_filters_documented_for_template_authors(tmp_path: Path) -> None:
    write(tmp_path, "push/de/delivered.txt",
          '{% block title %}{{ shipment.delivered_at|time("Hm") }}{% endblock %}'
          '{% block body %}{{ shipment.delivered_at|datetime("yMMMd") }}|'
          '{{ shipment.delivered_at|date("full") }}|{{ shipment.delivered_at|time }}|'
          "{{ shipment.edd_start|edd }}{% endblock %}")
    r = Renderer(BUILTIN_TEMPLATES, user_dir=tmp_path)
    instant = datetime(2024, 12, 31, 23, 15, tzinfo=UTC)  # already 2025 in Berlin
    ctx = with_shipment(ctx_for("delivered", "de", tz="Europe/Berlin"), delivered_at=instant,
                        edd_start=date(2024, 12, 30))
    msg = r.render("n", ctx, channel="webpush")
    local_day = date(2025, 1, 1)
    assert msg.title == "00:15"
    assert msg.body.split("|") == [
        f"{format_skeleton('yMMMd', local_day, locale='de')}, 00:15",
        format_date(local_day, "full", locale="de"), "00:15",
        format_skeleton("MMMMEEEEd", date(2024, 12, 30), locale="de")]


def test_check_with_given_contexts(renderer: Renderer, tmp_path: Path) -> None:
    empty = write(tmp_path, "push/en/cancelled.txt",
                  "{% block title %}{% endblock %}{% block body %}{{ order_id }}{% endblock %}")
    given = [ctx_for("cancelled", "en"), ctx_for("shipped", "fr")]
    assert renderer.check(given) == []
    problems = Renderer(BUILTIN_TEMPLATES, user_dir=tmp_path).check(given)
    assert problems == [f"{empty}: renders an empty title or body (cancelled, en, push, custom)"]
