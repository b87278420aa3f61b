"""``client.secrets``: ``GET /v1/secrets``."""

from __future__ import annotations

from typing import Final

from flatjobs.errors import SecretNotFound
from flatjobs.models import Secret

from ._transport import Caller, Endpoint, data_list, secret_fields

__all__ = ["SecretsAPI"]

LIST: Final = Endpoint("GET", "/secrets", "secrets.list")
# Every value read is registered for redaction: none can reach a log, a span or an outcome.
_secrets = secret_fields("value", data_list(Secret))


class SecretsAPI:
    """``client.secrets``: ``GET /v1/secrets``."""

    def __init__(self, client: Caller) -> None:
        self._client = client

    async def list(
        self,
        *,
        environment_id: str | None = None,
        space_id: str | None = None,
        actor_id: str | None = None,
    ) -> list[Secret]:
        """The secrets of an environment (and optionally a space and an actor). Their
        values are redacted from everything flatjobs lets out from then on (see
        :mod:`flatjobs.log`)."""
        params = {
            "environmentId": self._client.require_environment(environment_id),
            "spaceId": space_id,
            "actorId": actor_id,
        }
        return await self._client.call(LIST, params=params, decode=_secrets)

    async def get(
        self,
        name: str,
        *,
        environment_id: str | None = None,
        space_id: str | None = None,
        actor_id: str | None = None,
    ) -> str:
        """The value of the secret ``name``; raises :class:`flatjobs.SecretNotFound`."""
        secrets = await self.list(
            environment_id=environment_id, space_id=space_id, actor_id=actor_id
        )
        for secret in secrets:
            if secret.name == name:
                return secret.value
        raise SecretNotFound(f"secret {name!r} not found")
