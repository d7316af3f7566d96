"""Precis as its own OAuth 2.0 authorization server: Authlib's core with a small Starlette adapter.

Authlib's server is synchronous, the database is not: the adapter reads the form, loads the calling
client before handing the request to Authlib, and persists what Authlib decided (revocations) after.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from authlib.oauth2 import AuthorizationServer as _AuthlibServer
from authlib.oauth2.rfc6749 import (
    ClientMixin,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Error,
    OAuth2Request,
    UnauthorizedClientError,
)
from authlib.oauth2.rfc6749.grants import BaseGrant, ClientCredentialsGrant, TokenEndpointMixin
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc6749.util import extract_basic_authorization
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from authlib.oauth2.rfc9068 import JWTIntrospectionEndpoint
from joserfc.jwk import KeySet
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from api.auth.verifier import TokenVerifier
from api.ids import BadId, decode_id, encode_id
from domain.audit.service import Actor
from domain.auth import service as auth_service
from domain.auth import shoppers
from domain.auth.models import OAuthClient
from domain.auth.scopes import ADMIN_SCOPE, CLIENT_SCOPES, DELEGATE_SCOPE, SHOPPER_SCOPES
from domain.auth.tokens import TokenGenerator
from domain.db import Database
from domain.keys import Keys
from domain.settings import Settings

MAX_FORM_BYTES = 16_384


class Client(ClientMixin):  # type: ignore[misc]
    """Authlib's view of an ``OAuthClient`` row."""

    def __init__(self, row: OAuthClient) -> None:
        self.row = row
        self.scopes = frozenset(row.scopes.split())

    def get_client_id(self) -> str:
        return self.row.id

    def get_default_redirect_uri(self) -> None:
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        if not scope:
            return " ".join(sorted(self.scopes))
        requested = set(scope.split())
        if not requested <= self.scopes:
            raise InvalidScopeError(
                description="scope not allowed for this client: "
                + " ".join(sorted(requested - self.scopes))
            )
        return " ".join(sorted(requested))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        return auth_service.secret_matches(self.row, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.row.grant_types.split()


class ClientCredentials(ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]


class StarletteOAuth2Request(OAuth2Request):  # type: ignore[misc]
    def __init__(self, method: str, uri: str, headers: dict[str, str], form: dict[str, str]):
        super().__init__(method=method, uri=uri, headers=headers)
        self._form = form
        self.payload = BasicOAuth2Payload(form)

    @property
    def args(self) -> dict[str, str]:
        return {}

    @property
    def form(self) -> dict[str, str]:
        return self._form


@dataclass(frozen=True)
class Shopper:
    """Authlib's "user" of a token exchange: the customer a shopper token is bound to."""

    customer_id: int

    def get_user_id(self) -> str:
        return encode_id("User", self.customer_id)  # ``sub``: the customer's global User id


class ShopperClient(ClientMixin):  # type: ignore[misc]
    """The delegate client as the token generator sees it when signing a shopper token: the scope
    was checked against the shopper scopes already, the lifetime is the shopper-token one and the
    token id is chosen up front so the exchange can audit it."""

    def __init__(self, client: Client, ttl: int) -> None:
        self.client = client
        self.ttl = ttl
        self.jti = secrets.token_urlsafe(16)

    def get_client_id(self) -> str:
        return str(self.client.get_client_id())

    def get_allowed_scope(self, scope: str) -> str:
        return scope


@dataclass
class Issued:
    client_id: str
    customer_id: int
    scope: str
    jti: str
    ttl: int


@dataclass
class Exchange:
    """What one token-endpoint call loaded before Authlib ran and what it must persist after."""

    clients: dict[str, Client] = field(default_factory=dict)
    revoked: list[dict[str, Any]] = field(default_factory=list)
    # Token exchange: the customer named by subject_token (None: unknown or erased), what was issued.
    shopper: Shopper | None = None
    scope: str = ""
    issued: Issued | None = None


class InvalidTargetError(OAuth2Error):  # type: ignore[misc]
    """RFC 8693 section 2.2.2: the requested ``resource`` or ``audience`` is not served here."""

    error = "invalid_target"


class TokenExchange(BaseGrant, TokenEndpointMixin):  # type: ignore[misc]
    """RFC 8693 token exchange: a trusted back end (holding ``shoppers:delegate`` and this grant
    type) mints a short-lived shopper token bound to one customer. The subject token is not a token
    but the customer's id (external or global), vouched for by the authenticated client; the client
    is the actor (``act``). No refresh token: the back end exchanges again when it needs to."""

    GRANT_TYPE = shoppers.TOKEN_EXCHANGE
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def validate_token_request(self) -> None:
        client: Client = self.authenticate_token_endpoint_client()
        if not client.check_grant_type(self.GRANT_TYPE):
            raise UnauthorizedClientError(
                description="the client is not allowed to use token exchange"
            )
        if DELEGATE_SCOPE not in client.scopes:
            raise UnauthorizedClientError(
                description=f"token exchange needs the {DELEGATE_SCOPE} scope"
            )
        form = self.request.form
        subject_token = form.get("subject_token")
        subject_type = form.get("subject_token_type")
        if not subject_token:
            raise InvalidRequestError(description="missing subject_token")
        if not subject_type:
            raise InvalidRequestError(description="missing subject_token_type")
        if subject_type in shoppers.TOKEN_TYPES:
            raise InvalidRequestError(
                description="tokens are not exchanged (a shopper token cannot mint another); "
                "present the customer's id as subject_token"
            )
        if subject_type not in shoppers.SUBJECT_TOKEN_TYPES:
            raise InvalidRequestError(
                description="unsupported subject_token_type; use one of "
                + ", ".join(shoppers.SUBJECT_TOKEN_TYPES)
            )
        if form.get("actor_token") or form.get("actor_token_type"):
            raise InvalidRequestError(
                description="actor_token is not supported: the authenticated client is the actor"
            )
        requested = form.get("requested_token_type")
        if requested and requested != shoppers.ACCESS_TOKEN_TYPE:
            raise InvalidRequestError(
                description=f"requested_token_type must be {shoppers.ACCESS_TOKEN_TYPE}"
            )
        server: PrecisAuthorizationServer = self.server
        if form.get("resource") or form.get("audience") not in (None, "", server.settings.audience):
            raise InvalidTargetError(
                description=f"shopper tokens are only for audience {server.settings.audience}"
            )
        wanted = (form.get("scope") or "").split()
        extra = sorted(set(wanted) - set(SHOPPER_SCOPES))
        if extra:
            raise InvalidScopeError(
                description="a shopper token may carry only "
                + " ".join(SHOPPER_SCOPES)
                + "; not allowed: "
                + " ".join(extra)
            )
        shopper = self.request.exchange.shopper
        if shopper is None:
            raise InvalidGrantError(description="unknown customer")
        self.request.client = client
        self.request.user = shopper
        self.request.exchange.scope = " ".join(sorted(set(wanted or SHOPPER_SCOPES)))

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        server: PrecisAuthorizationServer = self.server
        exchange: Exchange = self.request.exchange
        scope = exchange.scope
        signer = ShopperClient(self.request.client, server.shopper_ttl)
        token: dict[str, Any] = server.generate_token(
            client=signer,
            grant_type=self.GRANT_TYPE,
            user=self.request.user,
            scope=scope,
            expires_in=signer.ttl,
            include_refresh_token=False,
        )
        token["issued_token_type"] = shoppers.ACCESS_TOKEN_TYPE
        exchange.issued = Issued(
            client_id=signer.get_client_id(),
            customer_id=self.request.user.customer_id,
            scope=scope,
            jti=signer.jti,
            ttl=signer.ttl,
        )
        return 200, token, self.TOKEN_RESPONSE_HEADER


class Introspection(JWTIntrospectionEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def __init__(self, server: PrecisAuthorizationServer) -> None:
        super().__init__(issuer=server.settings.issuer, server=server)
        self._verifier = server.verifier

    def get_jwks(self) -> KeySet:
        return self._verifier.validator.get_jwks()

    def check_permission(self, token: Any, client: Client, request: Any) -> bool:
        # A client may introspect its own tokens; an admin client any token.
        return bool(token["client_id"] == client.get_client_id() or ADMIN_SCOPE in client.scopes)

    def create_introspection_payload(self, token: Any) -> dict[str, Any]:
        payload: dict[str, Any] = super().create_introspection_payload(token)
        if payload.get("active") and (
            token["jti"] in self._verifier.revoked or token["client_id"] in self._verifier.disabled
        ):
            return {"active": False}
        if payload.get("active"):
            payload["token_type"] = "Bearer"
            payload["jti"] = token["jti"]
            for claim in ("act", "customer_id"):  # shopper tokens (RFC 8693 section 4.1)
                if claim in token:
                    payload[claim] = token[claim]
        return payload


@dataclass
class RevocableToken:
    claims: dict[str, Any]

    def check_client(self, client: Client) -> bool:
        return bool(
            self.claims.get("client_id") == client.get_client_id() or ADMIN_SCOPE in client.scopes
        )


class Revocation(RevocationEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]
    SUPPORTED_TOKEN_TYPES = ("access_token",)

    def __init__(self, server: PrecisAuthorizationServer) -> None:
        super().__init__(server=server)
        self._verifier = server.verifier

    def query_token(self, token_string: str, token_type_hint: str | None) -> RevocableToken | None:
        # Signature, issuer and audience must hold; an expired token needs no revoking.
        try:
            self._verifier.validator.claims(token_string)
            claims = self._verifier.validator.authenticate_token(token_string)
        except Exception:  # RFC 7009: an invalid token is not an error for the caller
            return None
        return RevocableToken(claims=dict(claims))

    def revoke_token(self, token: RevocableToken, request: StarletteOAuth2Request) -> None:
        exchange: Exchange = request.exchange  # type: ignore[attr-defined]
        exchange.revoked.append(token.claims)


class PrecisAuthorizationServer(_AuthlibServer):  # type: ignore[misc]
    def __init__(
        self, settings: Settings, keys: Keys, db: Database, verifier: TokenVerifier
    ) -> None:
        super().__init__(scopes_supported=sorted(CLIENT_SCOPES))
        self.settings = settings
        self.db = db
        self.verifier = verifier
        self.generator = TokenGenerator(settings, keys)
        self.register_token_generator("default", self.generator)
        self.register_grant(ClientCredentials)
        self.register_grant(TokenExchange)
        self.shopper_ttl = min(settings.shopper_token_ttl, settings.access_token_ttl)
        self.register_endpoint(Introspection(self))
        self.register_endpoint(Revocation(self))
        self._current: Exchange | None = None

    # Authlib hooks (synchronous; everything they need was loaded beforehand) ----------------------
    def query_client(self, client_id: str) -> Client | None:
        assert self._current is not None
        return self._current.clients.get(client_id)

    def save_token(self, token: dict[str, Any], request: Any) -> None:
        # JWT access tokens are self-contained; revocation is recorded by jti when asked.
        return None

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None

    def create_oauth2_request(self, request: StarletteOAuth2Request) -> StarletteOAuth2Request:
        return request

    def create_json_request(self, request: Any) -> Any:
        raise NotImplementedError("JSON requests are not used by these endpoints")

    def handle_response(self, status: int, body: Any, headers: list[tuple[str, str]]) -> Response:
        return JSONResponse(body, status_code=status, headers=dict(headers))

    # Starlette side ------------------------------------------------------------------------------
    async def _prepare(self, request: Request) -> StarletteOAuth2Request | Response:
        if request.headers.get("content-type", "").split(";")[0].strip() != (
            "application/x-www-form-urlencoded"
        ):
            return _oauth_error("invalid_request", "use application/x-www-form-urlencoded", 400)
        body = await _read_limited(request, MAX_FORM_BYTES)
        if body is None:
            return _oauth_error("invalid_request", "request body too large", 413)
        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            return _oauth_error("invalid_request", "body is not UTF-8", 400)
        form: dict[str, str] = {}
        for key, value in pairs:
            if "\x00" in key or "\x00" in value:  # PostgreSQL text cannot hold NUL
                return _oauth_error("invalid_request", "NUL characters are not allowed", 400)
            if key in form:
                return _oauth_error("invalid_request", f"parameter {key} repeated", 400)
            form[key] = value
        headers = dict(request.headers)
        headers["Authorization"] = request.headers.get("authorization", "")
        exchange = Exchange()
        client_id = extract_basic_authorization(headers)[0] or form.get("client_id")
        if client_id and len(client_id) <= 64 and "\x00" not in client_id:
            async with self.db.read_only() as session:
                row = await auth_service.get_client(session, client_id)
                if row is not None and row.disabled_at is None:
                    exchange.clients[row.id] = Client(row)
                    # Token exchange: the customer, loaded before Authlib's synchronous flow runs.
                    if form.get("grant_type") == shoppers.TOKEN_EXCHANGE:
                        exchange.shopper = await _load_shopper(session, form)
        uri = self.settings.issuer.rstrip("/") + request.url.path
        oauth_request = StarletteOAuth2Request(request.method, uri, headers, form)
        oauth_request.exchange = exchange
        return oauth_request

    def _run(self, oauth_request: StarletteOAuth2Request, call: Any) -> Response:
        # Authlib runs synchronously with no await inside, so one request at a time per process.
        self._current = oauth_request.exchange  # type: ignore[attr-defined]
        try:
            response: Response = call(oauth_request)
        finally:
            self._current = None
        response.headers["Cache-Control"] = "no-store"
        response.headers["Pragma"] = "no-cache"
        return response

    async def token(self, request: Request) -> Response:
        prepared = await self._prepare(request)
        if isinstance(prepared, Response):
            return prepared
        exchange: Exchange = prepared.exchange  # type: ignore[attr-defined]
        response = self._run(prepared, self.create_token_response)
        issued = exchange.issued
        if response.status_code == 200 and issued is not None:
            actor = Actor(client_id=issued.client_id, subject=issued.client_id)
            async with self.db.unit_of_work() as session:
                await shoppers.record_exchange(
                    session,
                    actor,
                    issued.customer_id,
                    scope=issued.scope,
                    jti=issued.jti,
                    ttl=issued.ttl,
                )
        return response

    async def introspect(self, request: Request) -> Response:
        prepared = await self._prepare(request)
        if isinstance(prepared, Response):
            return prepared
        await self.verifier.refresh()
        return self._run(prepared, lambda r: self.create_endpoint_response("introspection", r))

    async def revoke(self, request: Request) -> Response:
        prepared = await self._prepare(request)
        if isinstance(prepared, Response):
            return prepared
        response = self._run(prepared, lambda r: self.create_endpoint_response("revocation", r))
        exchange: Exchange = prepared.exchange  # type: ignore[attr-defined]
        if response.status_code == 200 and exchange.revoked:
            async with self.db.unit_of_work() as session:
                for claims in exchange.revoked:
                    await auth_service.revoke_token(
                        session,
                        jti=str(claims["jti"]),
                        client_id=str(claims["client_id"]),
                        expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
                    )
            for claims in exchange.revoked:
                self.verifier.note_revoked(str(claims["jti"]))
        return response

    def metadata(self) -> dict[str, Any]:
        base = self.settings.issuer.rstrip("/")
        data = {
            "issuer": self.settings.issuer,
            "token_endpoint": f"{base}/oauth/token",
            "jwks_uri": f"{base}/.well-known/jwks.json",
            "introspection_endpoint": f"{base}/oauth/introspect",
            "revocation_endpoint": f"{base}/oauth/revoke",
            "scopes_supported": sorted(CLIENT_SCOPES),
            "response_types_supported": [],
            "grant_types_supported": ["client_credentials", shoppers.TOKEN_EXCHANGE],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "introspection_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
            ],
            "revocation_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
            ],
            "token_endpoint_auth_signing_alg_values_supported": ["RS256"],
        }
        meta = AuthorizationServerMetadata(data)
        meta.validate_issuer()
        meta.validate_token_endpoint()
        meta.validate_jwks_uri()
        meta.validate_scopes_supported()
        return dict(meta)

    def mint(self, client: OAuthClient, scope: str) -> dict[str, Any]:
        """Issue an access token without an HTTP round trip (``precis token``, tests, bench)."""
        token: dict[str, Any] = self.generator(
            grant_type="client_credentials",
            client=Client(client),
            user=None,
            scope=scope,
            include_refresh_token=False,
        )
        token["issued_at"] = int(time.time())
        return token


async def _load_shopper(session: AsyncSession, form: dict[str, str]) -> Shopper | None:
    """The customer a token exchange's subject_token names; None if unknown or erased."""
    kind, value = form.get("subject_token_type"), form.get("subject_token") or ""
    if kind == shoppers.EXTERNAL_ID_TYPE:
        row = await shoppers.customer_by_external_id(session, value)
    elif kind == shoppers.USER_ID_TYPE:
        try:
            pk = decode_id(value, "User")[1]
        except BadId:
            return None
        row = await shoppers.customer_by_id(session, pk)
    else:
        return None
    return None if row is None or row.id is None else Shopper(customer_id=row.id)


async def _read_limited(request: Request, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _oauth_error(error: str, description: str, status: int) -> Response:
    return JSONResponse(
        {"error": error, "error_description": description},
        status_code=status,
        headers={"Cache-Control": "no-store"},
    )
