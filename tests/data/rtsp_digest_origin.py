#!/usr/bin/python3
"""A third-party RTSP origin that asks for Digest credentials, for tests/edge_pull_rtsp_srt.rs:
GStreamer's gst-rtsp-server (Debian's gir1.2-gst-rtsp-server-1.0) serving a live x264 test
picture at rtsp://127.0.0.1:PORT/cam to USER:PASSWORD only, with Digest authentication
(RFC 2617, MD5). Prints `ready` once listening; runs until killed.

    tests/data/rtsp_digest_origin.py PORT USER PASSWORD
"""
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

port, user, password = sys.argv[1], sys.argv[2], sys.argv[3]
Gst.init(None)
server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(port)

factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch(
    "( videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=25/1 "
    "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=25 bframes=0 "
    "! video/x-h264,profile=constrained-baseline ! rtph264pay name=pay0 pt=96 config-interval=1 )"
)
factory.set_shared(True)
permissions = GstRtspServer.RTSPPermissions()
permissions.add_role_from_structure(
    Gst.Structure.new_from_string(
        f"{user}, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"
    )
)
factory.set_permissions(permissions)
server.get_mount_points().add_factory("/cam", factory)

auth = GstRtspServer.RTSPAuth()
auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
token = GstRtspServer.RTSPToken()
token.set_string("media.factory.role", user)
auth.add_digest(user, password, token)
server.set_auth(auth)

server.attach(None)
print("ready", flush=True)
GLib.MainLoop().run()
