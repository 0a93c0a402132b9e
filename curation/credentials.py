"""Credentials never go into an address: a run's URI or an endpoint's URL is printed, logged and
written into the run folder (recipe.yaml, the dataset card), so a secret in it would travel with
every copy of the data. Keys come from the environment; addresses only say where.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from pydantic_core import PydanticCustomError

# The pydantic error type of a refused URL: error formatters must not echo its input.
URL_CREDENTIALS_ERROR = "url_credentials"

# Query parameter names that carry a secret (pyarrow's S3 URIs, API gateways, signed URLs),
# compared with '-' read as '_'.
CREDENTIAL_PARAMETERS = frozenset({
    "access_key", "secret_key", "session_token", "api_key", "apikey", "key", "token", "access_token",
    "auth", "authorization", "password", "passwd", "secret", "client_secret", "sig", "signature",
    "x_amz_signature", "x_amz_credential", "x_amz_security_token", "subscription_key",
})  # fmt: skip
# Names that end like these are secrets too (e.g. openai_api_key, x_goog_signature).
CREDENTIAL_SUFFIXES = ("_key", "_token", "_secret", "_signature", "_password")
# In an HTTP URL anything before '@' is basic auth (a bare user part is often the token itself);
# other schemes (hdfs://user@namenode) may name a user who is not a secret.
HTTP_SCHEMES = frozenset({"http", "https", "ws", "wss"})


def url_credentials(url: str) -> list[str]:
    """What in `url` is a credential, described without its value (empty: none)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    found = []
    if parts.password is not None:
        found.append("a password in user:password@")
    elif parts.username and parts.scheme.lower() in HTTP_SCHEMES:
        found.append("a user name or token before '@'")
    names = sorted({name for name, _ in parse_qsl(parts.query, keep_blank_values=True) if _is_secret_name(name)})
    if names:
        found.append("query parameter" + ("s " if len(names) > 1 else " ") + ", ".join(names))
    return found


def _is_secret_name(name: str) -> bool:
    norm = name.strip().lower().replace("-", "_")
    return norm in CREDENTIAL_PARAMETERS or norm.endswith(CREDENTIAL_SUFFIXES)


def refuse_url_credentials(url: str, instead: str) -> str:
    """`url` when it holds no credential, else a pydantic error (of type URL_CREDENTIALS_ERROR)
    saying what is in it, never its value, and `instead`: where the secret goes."""
    found = url_credentials(url)
    if found:
        raise PydanticCustomError(URL_CREDENTIALS_ERROR, "has credentials in it ({found}); a URL is printed and written into "
                                  "the run folder and the dataset card, so {instead}", {"found": "; ".join(found), "instead": instead})
    return url
