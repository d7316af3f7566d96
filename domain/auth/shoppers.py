"""Shopper tokens: who a token exchange may bind a token to, and the row-level rule "a shopper touches
only its own customer".

The token endpoint resolves the exchange's ``subject_token`` to a customer here (before Authlib's
synchronous flow runs); GraphQL resolvers for ``me`` load the token's own customer here. An erased
customer is a deleted row, so both simply find nothing.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from domain.audit import service as audit
from domain.audit.service import Actor
from domain.users import repository
from domain.users.models import Customer

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
# subject_token types a delegate client may present (RFC 8693 section 3 allows URIs of our own):
# the store's external id of the customer, or Precis' global User id.
EXTERNAL_ID_TYPE = "urn:precis:params:oauth:token-type:customer-external-id"
USER_ID_TYPE = "urn:precis:params:oauth:token-type:user-id"
SUBJECT_TOKEN_TYPES = (EXTERNAL_ID_TYPE, USER_ID_TYPE)
# Token types that are tokens themselves: never exchanged (a shopper token cannot mint another).
TOKEN_TYPES = (
    ACCESS_TOKEN_TYPE,
    "urn:ietf:params:oauth:token-type:refresh_token",
    "urn:ietf:params:oauth:token-type:id_token",
    "urn:ietf:params:oauth:token-type:jwt",
    "urn:ietf:params:oauth:token-type:saml1",
    "urn:ietf:params:oauth:token-type:saml2",
)


async def customer_by_external_id(session: AsyncSession, external_id: str) -> Customer | None:
    if not external_id or len(external_id) > 128:
        return None
    found = await repository.by_external_ids(session, [external_id])
    return found.get(external_id)


async def customer_by_id(session: AsyncSession, customer_id: int) -> Customer | None:
    found = await repository.by_ids(session, [customer_id])
    return found.get(customer_id)


async def own_customer(session: AsyncSession, actor: Actor) -> Customer | None:
    """The customer a shopper token is bound to, or None once it has been erased.

    The only way ``me`` reaches a customer: the id comes from the signed token, never from an
    argument. Raises ``PermissionError`` for a caller that is not a shopper."""
    if actor.customer_id is None:
        raise PermissionError("only a shopper token has its own customer")
    return await customer_by_id(session, actor.customer_id)


async def record_exchange(
    session: AsyncSession, actor: Actor, customer_id: int, *, scope: str, jti: str, ttl: int
) -> None:
    """Audit a minted shopper token (no PII: the customer's number, the scopes, the token id)."""
    await audit.record(
        session,
        actor,
        "token.exchange",
        "User",
        customer_id,
        details={"scope": scope, "jti": jti, "expires_in": ttl},
    )
