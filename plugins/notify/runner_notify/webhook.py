"""POST a run's summary as JSON. Only the URL's scheme, host and port ever appear in a
message: a webhook URL's path is often its secret (Slack's are)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def post(url: str, body: dict[str, Any], timeout: float) -> None:
    from . import NotifyError, __version__

    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": f"runner-notify/{__version__}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError as e:
        raise NotifyError(f"webhook {origin(url)} answered {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", None) or e
        raise NotifyError(f"webhook {origin(url)} could not be reached: {reason}") from None


def origin(url: str) -> str:
    """scheme://host:port, without credentials, path or query."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0].split('?', 1)[0].rpartition('@')[2]}"
