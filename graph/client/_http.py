"""GraphQL over HTTP: POST a document, get its `data` or a ClientError."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from graph.client._errors import ClientError, ConnectionFailed


class HTTPTransport:
    def __init__(
        self, url: str, headers: Mapping[str, str], *, timeout: float, trust_env: bool
    ) -> None:
        self.url = url
        self._http = httpx.AsyncClient(headers=dict(headers), timeout=timeout, trust_env=trust_env)

    async def execute(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The `data` of the response; ClientError for any GraphQL error, even beside data.

        A mutation request runs in one transaction, so a response with errors
        changed nothing worth returning half of.
        """
        body: dict[str, Any] = {"query": query}
        if variables:
            body["variables"] = dict(variables)
        try:
            response = await self._http.post(self.url, json=body)
        except httpx.HTTPError as error:
            raise ConnectionFailed(f"cannot reach {self.url}: {error!r}") from error
        try:
            payload = response.json()
        except ValueError:
            raise ClientError(
                f"{self.url} answered {response.status_code} with a body that is not JSON"
            ) from None
        if not isinstance(payload, dict):
            raise ClientError(f"{self.url} answered {response.status_code} with {payload!r}")
        errors = payload.get("errors")
        if errors:
            raise ClientError.from_graphql(errors if isinstance(errors, list) else [errors])
        data = payload.get("data")
        if response.is_error or not isinstance(data, dict):
            raise ClientError(f"{self.url} answered {response.status_code} without data")
        return data

    async def aclose(self) -> None:
        await self._http.aclose()
