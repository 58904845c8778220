#!/usr/bin/python3
"""Finds a process's top-level X window by title and reads or closes it, for the desktop tests.

  x11-window.py state PID TITLE    {"window": ID, "mapped": true|false} or {"window": null}
  x11-window.py close PID TITLE    sends WM_DELETE_WINDOW, as a window manager's close button does

Matching on _NET_WM_PID keeps a test from touching another app's window. Uses xwininfo and xprop
(x11-utils) to find the window and libX11 through ctypes to send the message.
"""
import ctypes
import json
import re
import subprocess
import sys
import time


def windows_named(title):
    # xwininfo fails (BadWindow, exit 1) when a window it is walking is destroyed meanwhile,
    # as the app's window is on close: the tree is read again.
    for attempt in range(5):
        run = subprocess.run(["xwininfo", "-root", "-tree"], capture_output=True, text=True)
        if run.returncode == 0:
            break
        time.sleep(0.05)
    else:
        run.check_returncode()
    tree = run.stdout
    pattern = re.compile(r'^\s*(0x[0-9a-f]+) "' + re.escape(title) + r'"', re.M)
    return [int(m.group(1), 16) for m in pattern.finditer(tree)]


def pid_of(window):
    out = subprocess.run(["xprop", "-id", hex(window), "_NET_WM_PID"], capture_output=True,
                         text=True).stdout
    m = re.search(r"= (\d+)", out)
    return int(m.group(1)) if m else None


def mapped(window):
    out = subprocess.run(["xwininfo", "-id", hex(window)], capture_output=True, text=True).stdout
    return "Map State: IsViewable" in out


class ClientMessage(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("serial", ctypes.c_ulong), ("send_event", ctypes.c_int),
                ("display", ctypes.c_void_p), ("window", ctypes.c_ulong),
                ("message_type", ctypes.c_ulong), ("format", ctypes.c_int),
                ("data", ctypes.c_long * 5)]


class XEvent(ctypes.Union):
    _fields_ = [("xclient", ClientMessage), ("pad", ctypes.c_long * 24)]


def close(window):
    x = ctypes.cdll.LoadLibrary("libX11.so.6")
    x.XOpenDisplay.restype = ctypes.c_void_p
    x.XInternAtom.restype = ctypes.c_ulong
    x.XInternAtom.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    x.XSendEvent.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_long,
                             ctypes.POINTER(XEvent)]
    x.XFlush.argtypes = [ctypes.c_void_p]
    x.XCloseDisplay.argtypes = [ctypes.c_void_p]
    display = x.XOpenDisplay(None)
    if not display:
        raise SystemExit("x11-window: cannot open the X display (is DISPLAY set?)")
    event = XEvent()
    event.xclient.type = 33  # ClientMessage
    event.xclient.window = window
    event.xclient.message_type = x.XInternAtom(display, b"WM_PROTOCOLS", 0)
    event.xclient.format = 32
    event.xclient.data[0] = x.XInternAtom(display, b"WM_DELETE_WINDOW", 0)
    event.xclient.data[1] = 0  # CurrentTime
    x.XSendEvent(display, window, 0, 0, ctypes.byref(event))
    x.XFlush(display)
    x.XCloseDisplay(display)


def main(cmd, pid, title):
    ours = [w for w in windows_named(title) if pid_of(w) == pid]
    if not ours:
        return {"window": None}
    # GTK may leave unmapped helper windows with the same title: prefer a mapped one.
    window = next((w for w in ours if mapped(w)), ours[0])
    if cmd == "close":
        close(window)
    return {"window": window, "mapped": mapped(window)}


print(json.dumps(main(sys.argv[1], int(sys.argv[2]), sys.argv[3])))
