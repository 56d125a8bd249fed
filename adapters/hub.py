"""Hub ids without the minutes of retries: before transformers looks a checkpoint up on the hub, one short
connection attempt says whether the hub can be reached; when it cannot, the run stops in seconds naming the fix
(a local folder, or ``HF_HUB_OFFLINE=1`` with a checkpoint already in the cache), as ``owleval data fetch`` does."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

from owleval.adapters.base import AdapterError

#: seconds one connection attempt to the hub may take
CONNECT_TIMEOUT_S = 4.0


def _offline() -> bool:
    return any(os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")
               for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def hub_host() -> tuple[str, int]:
    url = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    parts = urlsplit(url)
    return parts.hostname or "huggingface.co", parts.port or (80 if parts.scheme == "http" else 443)


def _cached(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # a malformed id or cache: transformers reports it
        return False
    return isinstance(found, str)


def check_hub_reachable(repo_id: str, what: str = "checkpoint") -> None:
    """Refuse at once when ``repo_id`` would have to come from a hub that cannot be reached.

    Offline mode (``HF_HUB_OFFLINE=1``) is left to transformers, which then reads only the local cache.
    """
    if _offline():
        return
    host, port = hub_host()
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
        return
    except socket.gaierror:
        why = "the name does not resolve (no network?)"
    except TimeoutError:
        why = f"no answer within {CONNECT_TIMEOUT_S:g} s"
    except OSError as exc:
        why = f"connection failed ({exc})"
    if _cached(repo_id):
        fix = f"{repo_id!r} is in the local cache: run with HF_HUB_OFFLINE=1 to use it without the network"
    else:
        fix = (f"download {repo_id!r} where the hub is reachable and pass its folder to --checkpoint "
               "(or set HF_ENDPOINT to a reachable mirror)")
    raise AdapterError(f"{what} {repo_id!r} is a hub id, but {host} cannot be reached: {why}. {fix}")
