#!/usr/bin/env python3
"""Owns org.freedesktop.secrets on the session bus in DBUS_SESSION_BUS_ADDRESS and dies without
replying at the first method call it receives, as gnome-keyring 42 does when it aborts on an
upstream bug (GNOME gitlab gnome-keyring #190, #196, #199). The caller sees D-Bus NoReply
("disconnected from message bus without replying"). Prints "ready" once it owns the name;
exits 3 when it dies of a call.

With the argument `hang` it never answers and never dies, as a keyring waiting on an unlock
prompt nobody answers: every call waits for its D-Bus timeout."""
import os
import sys

HANG = sys.argv[1:] == ["hang"]

from gi.repository import Gio, GLib

connection = Gio.bus_get_sync(Gio.BusType.SESSION, None)


def on_message(_connection, message, incoming):
    if (incoming and message.get_message_type() == Gio.DBusMessageType.METHOD_CALL
            and message.get_interface() != "org.freedesktop.DBus"):
        if HANG:
            return None  # dropped: no answer, ever
        os._exit(3)
    return message


connection.add_filter(on_message)
connection.call_sync("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                     "RequestName", GLib.Variant("(su)", ("org.freedesktop.secrets", 4)),
                     None, Gio.DBusCallFlags.NONE, -1, None)
print("ready", flush=True)
GLib.MainLoop().run()
