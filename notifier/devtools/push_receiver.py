"""One local push receiver for tests, the demo and the e2e runs: FCM, APNs, Web Push, webhooks.

:class:`PushReceiver` is an ASGI app that plays every far end of the push channels and checks
what it gets the way the real service would: the FCM OAuth token endpoint verifies the RS256
assertion and issues bearer tokens that ``/v1/projects/{p}/messages:send`` then requires; APNs
``/3/device/{token}`` requires HTTP/2 and verifies the ES256 provider token against the
registered public key; ``/webpush/{id}`` verifies the VAPID JWT and *decrypts* the aes128gcm
body with the subscription's private key; ``/webhook/{name}`` verifies the Standard Webhooks
signature. Each accepted message is appended to ``received`` (and, if asked, to a JSON-lines
file); each refusal to ``refused``. ``script()`` makes a token answer scripted errors first.
:class:`PushReceiverThread` serves it with hypercorn in a background thread on free ports
(cleartext HTTP/1.1 + h2c prior knowledge, and optionally TLS with a trustme CA for h2 via ALPN).
Test/demo tooling only; never imported by the daemon's own modules.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import socket
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, cast
from urllib.parse import parse_qs

import http_ece
import jwt
import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypercorn.asyncio import serve
from hypercorn.config import Config, Sockets
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

__all__ = [
    "PushReceiver",
    "PushReceiverThread",
    "make_apns_key",
    "make_fcm_service_account",
    "make_vapid_key",
    "make_webhook_secret",
    "make_webpush_subscription",
]

FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
Scripted = tuple[int, Any, dict[str, str] | None]  # (status, JSON body or None, headers)
_FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
_RESERVED_DATA = re.compile(r"^(from|message_type|google\..*|gcm\.notification\..*)$")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _point(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.X962,
                            serialization.PublicFormat.UncompressedPoint)


def make_fcm_service_account(token_url: str, *, project_id: str = "notifier-demo",
                             client_email: str | None = None) -> dict[str, str]:
    """A service-account JSON mapping with a fresh RSA key, shaped like Google's download."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    email = client_email or f"notifier-{secrets.token_hex(3)}@{project_id}.iam.gserviceaccount.com"
    return {"type": "service_account", "project_id": project_id,
            "private_key_id": secrets.token_hex(20), "private_key": pem,
            "client_email": email, "client_id": str(secrets.randbelow(10**20)),
            "token_uri": token_url}


def make_apns_key() -> tuple[bytes, ec.EllipticCurvePublicKey]:
    """An APNs-style .p8 signing key: (PKCS#8 PEM of a P-256 private key, its public key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    return pem, key.public_key()


def make_vapid_key() -> tuple[bytes, str]:
    """A VAPID key: (PEM private key, base64url public point = the ``applicationServerKey``)."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    return pem, _b64url(_point(key.public_key()))


def make_webpush_subscription(endpoint: str) -> tuple[dict[str, Any], ec.EllipticCurvePrivateKey]:
    """What a browser's ``PushSubscription.toJSON()`` gives, plus the browser's private key."""
    key = ec.generate_private_key(ec.SECP256R1())
    sub = {"endpoint": endpoint, "keys": {"p256dh": _b64url(_point(key.public_key())),
                                          "auth": _b64url(os.urandom(16))}}
    return sub, key


def make_webhook_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


class PushReceiver:
    """The fake far ends. ``clock`` (unix seconds) judges token ages and timestamps."""

    def __init__(self, *, clock: Callable[[], float] = time.time, out_file: Path | None = None,
                 fcm_token_lifetime_s: int = 3600) -> None:
        self.clock = clock
        self.received: list[dict[str, Any]] = []
        self.refused: list[dict[str, Any]] = []
        self.token_requests = 0
        self.apns_provider_tokens: list[str] = []  # as presented, one per APNs request
        self.base_url = ""  # set by the runner; used to build URLs for credentials
        self.fcm_token_lifetime_s = fcm_token_lifetime_s
        self._out = out_file
        self._write_lock = threading.Lock()
        self._fcm_accounts: dict[str, tuple[Any, str]] = {}  # email -> (public key, project)
        self._fcm_tokens: dict[str, tuple[str, float]] = {}  # access token -> (email, expiry)
        self._apns_keys: dict[tuple[str, str], ec.EllipticCurvePublicKey] = {}
        self._subs: dict[str, tuple[ec.EllipticCurvePrivateKey, bytes, str | None]] = {}
        self._webhook_secrets: dict[str, bytes] = {}
        self._webhook_ids: set[tuple[str, str]] = set()
        self._scripts: dict[tuple[str, str], deque[Scripted]] = {}
        self.app = Starlette(routes=[
            Route("/oauth2/token", self._fcm_token, methods=["POST"]),
            Route("/v1/projects/{project}/messages:send", self._fcm_send, methods=["POST"]),
            Route("/3/device/{token}", self._apns, methods=["POST"]),
            Route("/webpush/{sub_id}", self._webpush, methods=["POST"]),
            Route("/webhook/{name}", self._webhook, methods=["POST"]),
        ])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)

    # -- registration -------------------------------------------------------------------------

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/oauth2/token"

    def add_fcm_account(self, account: dict[str, str]) -> None:
        key = serialization.load_pem_private_key(account["private_key"].encode(), None)
        self._fcm_accounts[account["client_email"]] = (key.public_key(), account["project_id"])

    def new_fcm_account(self, project_id: str = "notifier-demo") -> dict[str, str]:
        account = make_fcm_service_account(self.token_url, project_id=project_id)
        self.add_fcm_account(account)
        return account

    def add_apns_key(self, team_id: str, key_id: str, public_key: ec.EllipticCurvePublicKey
                     ) -> None:
        self._apns_keys[(team_id, key_id)] = public_key

    def new_apns_key(self, team_id: str, key_id: str) -> bytes:
        pem, public = make_apns_key()
        self.add_apns_key(team_id, key_id, public)
        return pem

    def add_webpush_subscription(self, subscription: dict[str, Any],
                                 private_key: ec.EllipticCurvePrivateKey, *,
                                 vapid_public_key: str | None = None) -> str:
        """Register a subscription whose endpoint is ``.../webpush/<id>``; returns the id.
        With ``vapid_public_key`` pushes signed with any other VAPID key get 403."""
        sub_id = str(subscription["endpoint"]).rstrip("/").rsplit("/", 1)[-1]
        auth = _unb64url(subscription["keys"]["auth"])
        self._subs[sub_id] = (private_key, auth, vapid_public_key)
        return sub_id

    def new_webpush_subscription(self, sub_id: str | None = None, *,
                                 vapid_public_key: str | None = None
                                 ) -> tuple[dict[str, Any], ec.EllipticCurvePrivateKey]:
        sub, key = make_webpush_subscription(
            f"{self.base_url}/webpush/{sub_id or secrets.token_urlsafe(12)}")
        self.add_webpush_subscription(sub, key, vapid_public_key=vapid_public_key)
        return sub, key

    def add_webhook(self, name: str, secret: str) -> str:
        """Accept ``/webhook/<name>`` signed with ``secret``; returns the URL."""
        self._webhook_secrets[name] = base64.b64decode(secret.removeprefix("whsec_"))
        return f"{self.base_url}/webhook/{name}"

    def script(self, channel: str, token: str, responses: Iterable[Scripted]) -> None:
        """Answer the next requests for ``(channel, token)`` with these, in order, once each.
        ``channel`` is fcm / apns / webpush (token = subscription id) / webhook (token = name)
        / fcm_oauth (token = client_email). Credentials are still checked first."""
        self._scripts.setdefault((channel, token), deque()).extend(responses)

    def by_channel(self, channel: str) -> list[dict[str, Any]]:
        return [m for m in self.received if m["channel"] == channel]

    # -- bookkeeping --------------------------------------------------------------------------

    def _record(self, entry: dict[str, Any]) -> None:
        entry["received_at"] = self.clock()
        self.received.append(entry)
        if self._out is not None:
            with self._write_lock, self._out.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(entry, default=str) + "\n")

    def _refuse(self, channel: str, token: str, status: int, body: Any,
                headers: dict[str, str] | None = None) -> Response:
        self.refused.append({"channel": channel, "token": token, "status": status,
                             "body": body})
        if body is None:
            return Response(status_code=status, headers=headers)
        return JSONResponse(body, status_code=status, headers=headers)

    def _scripted(self, channel: str, token: str) -> Response | None:
        queue = self._scripts.get((channel, token))
        if not queue:
            return None
        status, body, headers = queue.popleft()
        return self._refuse(channel, token, status, body, headers)

    # -- FCM ----------------------------------------------------------------------------------

    async def _fcm_token(self, request: Request) -> Response:
        form = parse_qs((await request.body()).decode())
        assertion = form.get("assertion", [""])[0]
        if form.get("grant_type", [""])[0] != JWT_BEARER:
            return self._refuse("fcm_oauth", "", 400, {"error": "unsupported_grant_type"})
        try:
            email = jwt.decode(assertion, options={"verify_signature": False})["iss"]
            public, _project = self._fcm_accounts[email]
            claims = jwt.decode(assertion, public, algorithms=["RS256"],
                                options={"verify_exp": False, "verify_iat": False,
                                         "verify_aud": False, "require": ["iat", "exp"]})
        except (jwt.PyJWTError, KeyError) as exc:
            return self._refuse("fcm_oauth", "", 400, {"error": "invalid_grant",
                                                        "error_description": str(exc)})
        now = self.clock()
        problems = [why for bad, why in (
            (claims.get("aud") != f"{request.url.scheme}://{request.url.netloc}/oauth2/token",
             "aud is not this token endpoint"),
            (FCM_SCOPE not in str(claims.get("scope", "")).split(), "scope lacks FCM"),
            (claims["exp"] <= now or claims["exp"] - claims["iat"] > 3600, "bad exp/iat"),
        ) if bad]
        if problems:
            return self._refuse("fcm_oauth", email, 400, {
                "error": "invalid_grant", "error_description": "; ".join(problems)})
        if scripted := self._scripted("fcm_oauth", email):
            return scripted
        self.token_requests += 1
        token = "ya29.local-" + secrets.token_urlsafe(24)
        self._fcm_tokens[token] = (email, now + self.fcm_token_lifetime_s)
        return JSONResponse({"access_token": token, "expires_in": self.fcm_token_lifetime_s,
                             "token_type": "Bearer"})

    def _fcm_error(self, token: str, status: int, rpc: str, text: str,
                   details: list[dict[str, Any]] | None = None) -> Response:
        return self._refuse("fcm", token, status, {"error": {
            "code": status, "message": text, "status": rpc, "details": details or []}})

    async def _fcm_send(self, request: Request) -> Response:
        raw = await request.body()  # read before any answer: see _apns
        project = request.path_params["project"]
        auth = request.headers.get("authorization", "")
        grant = self._fcm_tokens.get(auth[7:]) if auth.startswith("Bearer ") else None
        if grant is None or grant[1] <= self.clock():
            return self._fcm_error("", 401, "UNAUTHENTICATED",
                                   "Request had invalid authentication credentials.")
        if self._fcm_accounts[grant[0]][1] != project:
            return self._fcm_error("", 403, "PERMISSION_DENIED",
                                   f"Permission denied on project {project}")
        try:
            message = json.loads(raw)["message"]
            token = message["token"]
        except (ValueError, KeyError, TypeError):
            return self._fcm_error("", 400, "INVALID_ARGUMENT", "Request contains an invalid "
                                   "argument.")
        if scripted := self._scripted("fcm", token):
            return scripted
        data = message.get("data") or {}
        for index, (key, value) in enumerate(data.items()):
            if not isinstance(value, str) or _RESERVED_DATA.match(key):
                field = f"message.data[{index}].value"
                return self._fcm_error(token, 400, "INVALID_ARGUMENT", f"Invalid value at "
                                       f"'{field}'", [{"@type": "type.googleapis.com/google."
                                                       "rpc.BadRequest", "fieldViolations": [
                                                           {"field": field}]}])
        self._record({"channel": "fcm", "token": token, "project": project,
                      "headers": {}, "payload": message})
        return JSONResponse({"name": f"projects/{project}/messages/{uuid.uuid4().hex}"})

    # -- APNs ---------------------------------------------------------------------------------

    async def _apns(self, request: Request) -> Response:
        # Read the whole body before answering: hypercorn 0.18 crashes the HTTP/2 connection
        # (KeyError in DataReceived) when DATA frames arrive for a stream already answered.
        body = await request.body()
        token = request.path_params["token"]
        if request.scope.get("http_version") != "2":
            return self._refuse("apns", token, 505, {"reason": "HTTP/2 required"})
        auth = request.headers.get("authorization", "")
        if not auth.lower().startswith("bearer "):
            return self._refuse("apns", token, 403, {"reason": "MissingProviderToken"})
        provider = auth[7:].strip()
        self.apns_provider_tokens.append(provider)
        try:
            header = jwt.get_unverified_header(provider)
            iss = jwt.decode(provider, options={"verify_signature": False})["iss"]
            key = self._apns_keys[(iss, header["kid"])]
            claims = jwt.decode(provider, key, algorithms=["ES256"],
                                options={"verify_iat": False, "require": ["iss", "iat"]})
        except (jwt.PyJWTError, KeyError):
            return self._refuse("apns", token, 403, {"reason": "InvalidProviderToken"})
        if self.clock() - float(claims["iat"]) > 3600:
            return self._refuse("apns", token, 403, {"reason": "ExpiredProviderToken"})
        headers = {k: v for k, v in request.headers.items() if k.startswith("apns-")}
        if not headers.get("apns-topic"):
            return self._refuse("apns", token, 400, {"reason": "MissingTopic"})
        if headers.get("apns-priority", "10") not in ("10", "5", "1"):
            return self._refuse("apns", token, 400, {"reason": "BadPriority"})
        if not re.fullmatch(r"[0-9a-fA-F]+", token):
            return self._refuse("apns", token, 400, {"reason": "BadDeviceToken"})
        if scripted := self._scripted("apns", token):
            return scripted
        if not body:
            return self._refuse("apns", token, 400, {"reason": "PayloadEmpty"})
        if len(body) > 4096:
            return self._refuse("apns", token, 413, {"reason": "PayloadTooLarge"})
        apns_id = headers.get("apns-id") or str(uuid.uuid4())
        self._record({"channel": "apns", "token": token, "headers": headers,
                      "payload": json.loads(body), "scheme": request.url.scheme})
        return Response(status_code=200, headers={"apns-id": apns_id})

    # -- Web Push -----------------------------------------------------------------------------

    def _check_vapid(self, auth: str, origin: str) -> tuple[str | None, str]:
        """(problem or None, the ``k`` public key) for an ``Authorization: vapid`` header."""
        if not auth.lower().startswith("vapid "):
            return "no vapid Authorization", ""
        parts = dict(p.strip().split("=", 1) for p in auth[6:].split(",") if "=" in p)
        try:
            public = ec.EllipticCurvePublicKey.from_encoded_point(
                ec.SECP256R1(), _unb64url(parts["k"]))
            claims = jwt.decode(parts["t"], public, algorithms=["ES256"],
                                options={"verify_exp": False, "verify_aud": False,
                                         "require": ["aud", "exp"]})
        except (jwt.PyJWTError, KeyError, ValueError) as exc:
            return f"bad VAPID token: {exc}", parts.get("k", "")
        now = self.clock()
        if claims["aud"] != origin:
            return f"aud {claims['aud']!r} is not {origin!r}", parts["k"]
        if not now < claims["exp"] <= now + 86400:
            return "exp is past or more than 24 h ahead", parts["k"]
        if not str(claims.get("sub", "")).startswith(("mailto:", "https:")):
            return "sub is not a mailto: or https: URI", parts["k"]
        return None, parts["k"]

    async def _webpush(self, request: Request) -> Response:
        body = await request.body()  # read before any answer: see _apns
        sub_id = request.path_params["sub_id"]
        origin = f"{request.url.scheme}://{request.url.netloc}"
        problem, k = self._check_vapid(request.headers.get("authorization", ""), origin)
        if problem:
            return self._refuse("webpush", sub_id, 401, {"code": 401, "error": "Unauthorized",
                                                         "message": problem})
        ttl = request.headers.get("ttl", "")
        if not ttl.isdigit() or request.headers.get("content-encoding") != "aes128gcm":
            return self._refuse("webpush", sub_id, 400, {
                "code": 400, "error": "Bad Request",
                "message": "TTL and Content-Encoding: aes128gcm are required"})
        if scripted := self._scripted("webpush", sub_id):
            return scripted
        if sub_id not in self._subs:
            return self._refuse("webpush", sub_id, 404, {"code": 404, "error": "Not Found"})
        private_key, auth_secret, expected_k = self._subs[sub_id]
        if expected_k is not None and k != expected_k:
            return self._refuse("webpush", sub_id, 403, {
                "code": 403, "error": "Forbidden", "message": "VAPID key does not match the "
                "applicationServerKey of this subscription"})
        if len(body) > 4096:
            return self._refuse("webpush", sub_id, 413, {"code": 413, "error": "Too Large"})
        try:
            plain = http_ece.decrypt(body, private_key=private_key, auth_secret=auth_secret,
                                     version="aes128gcm")
        except http_ece.ECEException as exc:
            return self._refuse("webpush", sub_id, 400, {"code": 400, "message": str(exc)})
        try:
            payload: Any = json.loads(plain)
        except ValueError:
            payload = plain.decode("utf-8", "replace")
        self._record({"channel": "webpush", "token": sub_id, "endpoint": str(request.url),
                      "headers": {h: request.headers[h] for h in
                                  ("ttl", "urgency", "topic", "content-encoding",
                                   "authorization")
                                  if h in request.headers},
                      "payload": payload, "body_bytes": len(body)})
        return Response(status_code=201, headers={
            "Location": f"{origin}/webpush/{sub_id}/messages/{uuid.uuid4().hex}"})

    # -- webhooks -----------------------------------------------------------------------------

    async def _webhook(self, request: Request) -> Response:
        body = await request.body()  # read before any answer: see _apns
        name = request.path_params["name"]
        key = self._webhook_secrets.get(name)
        if key is None:
            return self._refuse("webhook", name, 404, {"error": "unknown webhook"})
        msg_id = request.headers.get("webhook-id", "")
        stamp = request.headers.get("webhook-timestamp", "")
        signatures = request.headers.get("webhook-signature", "").split()
        if not (msg_id and stamp.isdigit() and signatures):
            return self._refuse("webhook", name, 400, {"error": "missing webhook headers"})
        if abs(self.clock() - int(stamp)) > 300:
            return self._refuse("webhook", name, 401, {"error": "timestamp out of tolerance"})
        expected = base64.b64encode(hmac.new(key, f"{msg_id}.{stamp}.".encode() + body,
                                             hashlib.sha256).digest()).decode()
        if not any(v == "v1" and hmac.compare_digest(sig, expected)
                   for v, _, sig in (s.partition(",") for s in signatures)):
            return self._refuse("webhook", name, 401, {"error": "bad signature"})
        if scripted := self._scripted("webhook", name):
            return scripted
        duplicate = (name, msg_id) in self._webhook_ids  # the consumer's idempotency check
        self._webhook_ids.add((name, msg_id))
        self._record({"channel": "webhook", "token": name, "duplicate": duplicate,
                      "headers": {h: request.headers[h] for h in
                                  ("webhook-id", "webhook-timestamp", "webhook-signature")},
                      "payload": json.loads(body), "raw": body.decode()})
        return Response(status_code=204)


class _PreboundConfig(Config):
    """Hypercorn config serving sockets we bound ourselves (port 0 = a free port)."""

    def __init__(self, sockets: Sockets) -> None:
        super().__init__()
        self._prebound = sockets

    def create_sockets(self) -> Sockets:
        return self._prebound


def _listen(host: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.bind((host, 0))
    sock.listen(128)
    sock.setblocking(False)
    return sock


class PushReceiverThread:
    """Runs a :class:`PushReceiver` with hypercorn in a daemon thread; a context manager.

    ``base_url``: cleartext, HTTP/1.1 and h2c prior knowledge (what APNs tests use with
    ``http1=False``). With ``tls=True`` also ``h2_url``, an https port whose certificate is
    signed by ``ca`` (``ca_file`` is its PEM); otherwise ``h2_url`` equals ``base_url``.
    """

    def __init__(self, receiver: PushReceiver | None = None, *, tls: bool = False,
                 host: str = "127.0.0.1") -> None:
        self.receiver = receiver or PushReceiver()
        self._tls = tls
        self._host = host
        self.ca: trustme.CA | None = None
        self.ca_file: Path | None = None
        self.base_url = self.h2_url = ""
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    def __enter__(self) -> PushReceiverThread:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        host = f"[{self._host}]" if ":" in self._host else self._host
        plain = _listen(self._host)
        self.base_url = f"http://{host}:{plain.getsockname()[1]}"
        self.h2_url = self.base_url
        secure: list[socket.socket] = []
        config = _PreboundConfig(Sockets(secure, [plain], []))
        config.graceful_timeout = 1.0
        if self._tls:
            self._tmp = tempfile.TemporaryDirectory(prefix="push-receiver-")
            self.ca = trustme.CA()
            cert = self.ca.issue_cert(self._host, "localhost")
            chain = Path(self._tmp.name) / "server.pem"
            cert.private_key_and_cert_chain_pem.write_to_path(str(chain))
            self.ca_file = Path(self._tmp.name) / "ca.pem"
            self.ca.cert_pem.write_to_path(str(self.ca_file))
            config.certfile = config.keyfile = str(chain)
            tls_sock = _listen(self._host)
            secure.append(tls_sock)
            self.h2_url = f"https://{host}:{tls_sock.getsockname()[1]}"
        self.receiver.base_url = self.base_url
        self._thread = threading.Thread(target=self._run, args=(config,), daemon=True,
                                        name="push-receiver")
        self._thread.start()
        if not self._ready.wait(10) or self._error is not None:
            raise RuntimeError(f"push receiver did not start: {self._error!r}")

    def _run(self, config: Config) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self._ready.set()  # sockets already listen; connections wait in the backlog
            await serve(cast(Any, self.receiver), config, shutdown_trigger=self._stop.wait)

        try:
            asyncio.run(main())
        except BaseException as exc:  # reported by start()/stop(), not lost in the thread
            self._error = exc
            self._ready.set()

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)
        if self._tmp is not None:
            self._tmp.cleanup()
