"""breaker_client: engine client for breakerd (standard library only).

    import breaker_client as bk

    client = bk.attach("default")          # read-only mapping of /dev/shm/breaker.default
    slot = client.resolve("momo-eu-1")      # KeyError: not registered -> do not trade
    if client.check_live(slot) is bk.Mode.HALTED:
        ...                                 # stop sending, cancel working orders

    tel = bk.attach_telemetry("default")    # read-write: /dev/shm/breaker.default.tel
    tel.heartbeat(slot); tel.report_order(slot)   # the numbers breakerd's rules judge

See docs/clients.md for the integration guide and docs/shm-layout.md for the
byte layout this package reads.
"""

from .client import (
    DAEMON_UID_ENV,
    BreakerError,
    Client,
    Header,
    LayoutError,
    Mode,
    NotReadyError,
    Limits,
    Reason,
    Scope,
    UntrustedSegmentError,
    attach,
    mode_of,
    reason_name,
    segment_path,
)
from .layout import LAYOUT_VERSION, MAX_STRATEGIES
from .telemetry import ORDERED_STORES, Telemetry, TelemetrySlot, attach_telemetry, telemetry_path

__all__ = [
    "DAEMON_UID_ENV",
    "BreakerError",
    "Client",
    "Header",
    "LAYOUT_VERSION",
    "LayoutError",
    "Limits",
    "MAX_STRATEGIES",
    "Mode",
    "NotReadyError",
    "ORDERED_STORES",
    "Reason",
    "Scope",
    "UntrustedSegmentError",
    "Telemetry",
    "TelemetrySlot",
    "attach",
    "attach_telemetry",
    "mode_of",
    "reason_name",
    "segment_path",
    "telemetry_path",
]
__version__ = "0.1.0"
