"""Live video relay (RTSP → fragmented MP4): process-wide state.

The relay itself (one upstream RTSP session per camera per process, shared by all
viewers) is built on PyAV. This module owns what the rest of the system may ask of it.
"""

from __future__ import annotations

from typing import Any

import av

# Streams currently pulled by this process, keyed by camera id.
ACTIVE_UPSTREAMS: dict[int, object] = {}


def relay_status() -> dict[str, Any]:
    """Whether this process can relay video: PyAV must demux RTSP and mux MP4."""
    can_demux_rtsp = "rtsp" in av.formats_available
    can_mux_mp4 = "mp4" in av.formats_available
    return {
        "ok": can_demux_rtsp and can_mux_mp4,
        "pyav": av.__version__,
        "upstreams": len(ACTIVE_UPSTREAMS),
    }
