#!/usr/bin/python3
"""Serve N live test cameras over RTSP with gst-rtsp-server.

Demo and test helper: ``rtsp://HOST:PORT/cam1`` … ``/camN`` each carry a live
H.264 (or H.265) stream of a different ``videotestsrc`` pattern, so the streams
can be told apart at a glance.

Runs under Debian's ``/usr/bin/python3``: PyGObject (``gi``) is not importable
from the project's venv. Debian packages needed::

    python3-gi gir1.2-gstreamer-1.0 gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp
    gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly
    (gstreamer1.0-plugins-bad for --codec h265, gstreamer1.0-x for the clock overlay)

Example::

    /usr/bin/python3 scripts/rtsp_server.py --port 8554 --streams 4
    ffplay -rtsp_transport tcp rtsp://127.0.0.1:8554/cam1

Contract with the test fixture (tests/fixtures/rtsp.py):

* prints exactly one ``READY rtsp://HOST:PORT/cam1..camN`` line to stdout once the
  server listens;
* prints ``CLIENT <n>`` to stdout after every RTSP client connect or disconnect,
  ``<n>`` being the number of clients connected now, and rewrites ``--stats-file``
  with that number (one integer and a newline);
* exits on SIGTERM/SIGINT, and by itself within ~1 s if its parent process dies.

Each mount point uses a *shared* media factory: however many clients watch
``/camK``, the server runs one pipeline (one encoder) for it. A pipeline is only
built when the first client asks for the stream, so unwatched streams cost nothing.

``--recording FILE.mp4`` serves an H.264 MP4 made beforehand on every mount instead,
at its real pace, without encoding anything: for load tests, where sixteen live
encoders would take most of the machine being measured. Each mount plays the file
once from the start when its first client arrives (make it longer than the test).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

# One pattern per stream, cycled when there are more streams than patterns.
# "ball" moves; "snow" is noise (the most expensive to encode); the rest are static.
PATTERNS = (
    "ball",
    "smpte",
    "snow",
    "pinwheel",
    "circular",
    "zone-plate",
    "gamut",
    "spokes",
    "colors",
    "checkers-8",
    "bar",
    "chroma-zone-plate",
)

# codec -> (encoder element, encoder settings, caps after the encoder, payloader, Debian package)
CODECS = {
    "h264": (
        "x264enc",
        "tune=zerolatency speed-preset=ultrafast key-int-max={gop} bitrate={bitrate} threads={threads}",
        "video/x-h264,profile=baseline",
        "rtph264pay",
        "gstreamer1.0-plugins-ugly",
    ),
    "h265": (
        "x265enc",
        "tune=zerolatency speed-preset=ultrafast key-int-max={gop} bitrate={bitrate}",
        "video/x-h265,profile=main",
        "rtph265pay",
        "gstreamer1.0-plugins-bad",
    ),
}

ROLE = "viewer"  # the only role; every authenticated user gets it


def log(message: str) -> None:
    print(f"rtsp_server: {message}", file=sys.stderr, flush=True)


def die(message: str) -> None:
    log(f"error: {message}")
    sys.exit(2)


def has_element(name: str) -> bool:
    return Gst.ElementFactory.find(name) is not None


def build_launch(args: argparse.Namespace, index: int) -> str:
    """gst-launch syntax of the pipeline for stream number ``index`` (0-based)."""
    if args.recording:
        # Demuxed and re-payloaded only: the server syncs to the clock, so it plays at
        # the file's own pace; config-interval=1 repeats SPS/PPS before keyframes.
        location = GLib.strescape(args.recording)
        return f'( filesrc location="{location}" ! qtdemux ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 )'
    encoder, settings, caps, payloader, _package = CODECS[args.codec]
    bitrate = args.bitrate or max(200, round(args.width * args.height * args.fps / 3840))
    parts = [
        f"videotestsrc is-live=true pattern={PATTERNS[index % len(PATTERNS)]}",
        f"video/x-raw,width={args.width},height={args.height},framerate={args.fps}/1",
    ]
    if args.overlay:
        # Wall clock burned into the picture: compare with a clock next to the player
        # to eyeball end-to-end latency. Also names the camera.
        parts.append(
            f'clockoverlay text="cam{index + 1}" time-format="%H:%M:%S" '
            'halignment=left valignment=top font-desc="Sans 18" shaded-background=true'
        )
    # key-int-max = 2 s of frames: a client joining mid-stream waits at most ~2 s for a
    # keyframe (x264's default interval made that ~8 s). config-interval=1 repeats
    # SPS/PPS in-band before keyframes.
    parts += [
        f"{encoder} " + settings.format(gop=2 * args.fps, bitrate=bitrate, threads=args.encoder_threads),
        caps,
        f"{payloader} name=pay0 pt=96 config-interval=1",
    ]
    return "( " + " ! ".join(parts) + " )"


def make_auth(user: str, password: str) -> GstRtspServer.RTSPAuth:
    """Basic auth: only ``user``/``password`` gets a token; anonymous clients get none (401)."""
    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, ROLE)
    auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
    return auth


def make_permissions() -> GstRtspServer.RTSPPermissions:
    """The role may see (access) and start (construct) the media of a factory."""
    # RTSPPermissions.add_role() is varargs (not callable from Python) and
    # add_role_empty() is newer than Debian 12's 1.22: build the role as a structure.
    role = Gst.Structure.new_empty(ROLE)
    role.set_value(GstRtspServer.RTSP_PERM_MEDIA_FACTORY_ACCESS, True)
    role.set_value(GstRtspServer.RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, True)
    permissions = GstRtspServer.RTSPPermissions()
    permissions.add_role_from_structure(role)
    return permissions


class ClientCounter:
    """Counts connected RTSP clients (TCP control connections) for tests.

    One PyAV/FFmpeg viewer = one client. A relay that fans one upstream connection
    out to many viewers shows up here as a single client.
    """

    def __init__(self, stats_file: str | None) -> None:
        self.count = 0
        self.stats_file = stats_file
        self.write_stats()  # the file exists (with 0) before READY is printed

    def on_connected(self, _server: GstRtspServer.RTSPServer, client: GstRtspServer.RTSPClient) -> None:
        self.count += 1
        peer = client.get_connection().get_ip() if client.get_connection() else "?"
        log(f"client connected from {peer} ({self.count} connected)")
        client.connect("closed", self.on_closed)
        self.publish()

    def on_closed(self, _client: GstRtspServer.RTSPClient) -> None:
        self.count -= 1
        log(f"client closed ({self.count} connected)")
        self.publish()

    def publish(self) -> None:
        print(f"CLIENT {self.count}", flush=True)
        self.write_stats()

    def write_stats(self) -> None:
        if self.stats_file:
            # Write then rename, so a reader never sees an empty or partial file.
            tmp = f"{self.stats_file}.tmp"
            with open(tmp, "w") as f:
                f.write(f"{self.count}\n")
            os.replace(tmp, self.stats_file)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bind", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8554)
    p.add_argument("--streams", type=int, default=4, help="number of mount points /cam1../camN")
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--fps", type=int, default=25)
    p.add_argument(
        "--bitrate", type=int, default=0, help="kbit/s; 0 = from size and fps (2000 at 640x480@25)"
    )
    p.add_argument("--codec", choices=sorted(CODECS), default="h264")
    p.add_argument("--encoder-threads", type=int, default=1, help="x264 threads per stream (0 = auto)")
    p.add_argument("--user", help="require RTSP basic auth with this user (needs --password)")
    p.add_argument("--password")
    p.add_argument("--stats-file", help="file rewritten with the number of connected clients")
    p.add_argument("--recording", help="serve this H.264 MP4 on every mount instead of encoding live")
    p.add_argument(
        "--overlay",
        choices=("auto", "on", "off"),
        default="auto",
        help="burn a clock into the picture (clockoverlay, Debian package gstreamer1.0-x); "
        "auto = if available",
    )
    args = p.parse_args(argv)
    if (args.user is None) != (args.password is None):
        p.error("--user and --password go together")
    if not 1 <= args.streams <= 1000:
        p.error("--streams must be between 1 and 1000")
    if min(args.width, args.height, args.fps) <= 0:
        p.error("--width, --height and --fps must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    Gst.init(None)

    # Check the elements up front: a missing plugin would otherwise only show up as
    # a failing DESCRIBE when the first client connects.
    encoder, _settings, _caps, payloader, package = CODECS[args.codec]
    needed = [
        ("videotestsrc", "gstreamer1.0-plugins-base"),
        (encoder, package),
        (payloader, "gstreamer1.0-plugins-good"),
    ]
    if args.recording:
        if args.codec != "h264" or not os.path.isfile(args.recording):
            die(f"--recording needs an H.264 MP4 file (and --codec h264): {args.recording}")
        needed = [
            ("qtdemux", "gstreamer1.0-plugins-good"),
            ("h264parse", "gstreamer1.0-plugins-bad"),
            ("rtph264pay", "gstreamer1.0-plugins-good"),
        ]
    for element, pkg in needed:
        if not has_element(element):
            die(
                f"GStreamer element {element} is missing (--codec {args.codec}); install Debian package {pkg}"
            )
    overlay_available = has_element("clockoverlay")
    if args.overlay == "on" and not overlay_available:
        die("clockoverlay is missing; install Debian package gstreamer1.0-x")
    args.overlay = args.overlay == "on" or (args.overlay == "auto" and overlay_available)

    server = GstRtspServer.RTSPServer()
    server.set_address(args.bind)
    server.set_service(str(args.port))
    permissions = None
    if args.user is not None:
        server.set_auth(make_auth(args.user, args.password))
        permissions = make_permissions()

    mounts = server.get_mount_points()
    for i in range(args.streams):
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(build_launch(args, i))
        factory.set_shared(True)  # all clients of /camK share one pipeline
        if permissions is not None:
            factory.set_permissions(permissions)
        mounts.add_factory(f"/cam{i + 1}", factory)
    log(f"cam1 pipeline: {build_launch(args, 0)}")

    counter = ClientCounter(args.stats_file)
    server.connect("client-connected", counter.on_connected)

    loop = GLib.MainLoop()

    def quit_loop(reason: str) -> bool:
        log(f"stopping ({reason})")
        loop.quit()
        return GLib.SOURCE_REMOVE

    for signum in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signum, quit_loop, signal.Signals(signum).name)

    # Exit when the parent (pytest, a shell, …) dies, so no stream is left behind:
    # the orphan gets re-parented and getppid() changes.
    parent = os.getppid()

    def check_parent() -> bool:
        if os.getppid() != parent:
            return quit_loop("parent process exited")
        return GLib.SOURCE_CONTINUE

    GLib.timeout_add_seconds(1, check_parent)

    try:
        if server.attach(None) == 0:
            die(f"cannot listen on {args.bind}:{args.port}")
    except GLib.Error as e:  # e.g. address already in use
        die(f"cannot listen on {args.bind}:{args.port}: {e.message}")

    port = server.get_bound_port()
    host = f"[{args.bind}]" if ":" in args.bind else args.bind
    print(f"READY rtsp://{host}:{port}/cam1..cam{args.streams}", flush=True)
    log(
        f"serving {args.streams} {args.codec} stream(s) {args.width}x{args.height}@{args.fps}"
        f"{' with basic auth' if args.user is not None else ''}"
        f"{', clock overlay' if args.overlay else ', no overlay'}"
    )
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
