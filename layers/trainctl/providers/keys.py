"""Where a provider's API key comes from: Secrets Manager in the stack, an environment variable on the command line.

The key is returned to the caller and nowhere else: it is never logged, and no error here carries it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

from botocore.exceptions import ClientError

from trainctl.core.errors import TrainctlError
from trainctl.core.permissions import needs
from trainctl.core.text import one_line

PERMISSIONS = needs("secretsmanager:GetSecretValue")
# On the command line the keys come from the variables the providers' own tools read.
KEY_VARIABLES = {"runpod": "RUNPOD_API_KEY", "lyceum": "LYCEUM_API_KEY"}
# A secret may hold the key alone, or a JSON object with the key under one of these names.
_JSON_KEY_NAMES = ("api_key", "apiKey", "key")


class ProviderKeyMissing(TrainctlError):
    """No key could be read for a provider; the message names the provider and where it looked, never a value."""


class SecretReader(Protocol):
    """The one Secrets Manager call this needs (a boto3 client fits)."""

    def get_secret_value(self, *, SecretId: str) -> Mapping[str, Any]: ...  # noqa: N803 (boto3's own name)


def key_from_secret(secrets: SecretReader, secret_id: str, provider: str) -> str:
    """The provider's key from its secret: the secret string itself, or its api_key member when it is JSON."""
    try:
        answer = secrets.get_secret_value(SecretId=secret_id)
    except ClientError as exc:
        code = one_line(exc.response.get("Error", {}).get("Code", "error"), 64)
        raise ProviderKeyMissing(
            f"{provider}: the API key secret {one_line(secret_id, 256)} could not be read ({code})"
        ) from None
    text = answer.get("SecretString")
    if not isinstance(text, str) or not text.strip():
        raise ProviderKeyMissing(f"{provider}: the API key secret {one_line(secret_id, 256)} holds no text")
    text = text.strip()
    if text.startswith("{"):
        try:
            fields = json.loads(text)
        except json.JSONDecodeError:
            raise ProviderKeyMissing(
                f"{provider}: the API key secret {one_line(secret_id, 256)} is not valid JSON"
            ) from None
        found = next(
            (fields[n] for n in _JSON_KEY_NAMES if isinstance(fields, dict) and isinstance(fields.get(n), str)), ""
        )
        if not found.strip():
            names = ", ".join(_JSON_KEY_NAMES)
            raise ProviderKeyMissing(f"{provider}: the API key secret {one_line(secret_id, 256)} has none of {names}")
        return str(found).strip()
    return text


def key_from_environment(environ: Mapping[str, str], provider: str) -> str:
    """The provider's key from its variable (RUNPOD_API_KEY, LYCEUM_API_KEY), for the command line."""
    variable = KEY_VARIABLES[provider]
    key = environ.get(variable, "").strip()
    if not key:
        raise ProviderKeyMissing(f"{provider}: no API key: set {variable}")
    return key
