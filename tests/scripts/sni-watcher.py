#!/usr/bin/python3
"""A stand-in for the desktop's org.kde.StatusNotifierWatcher, for tray tests on a bare bus.

libayatana-appindicator registers its StatusNotifierItem only when a watcher owns
org.kde.StatusNotifierWatcher; without one the icon silently falls back to an invisible X
window. This one accepts every registration, claims a host is present, and appends one JSON
line per registration to RECORD_FILE: {"bus": ..., "path": ..., "sender": ..., "pid": ...}
(pid: the registering connection's process, so a test finds its own app's item).
Prints "ready" on stdout once it owns the name. Usage: sni-watcher.py RECORD_FILE
Needs python3-gi (run it with /usr/bin/python3: a pyenv python has no gi).
"""
import json
import sys

from gi.repository import Gio, GLib

NAME = "org.kde.StatusNotifierWatcher"
PATH = "/StatusNotifierWatcher"
XML = """
<node>
  <interface name="org.kde.StatusNotifierWatcher">
    <method name="RegisterStatusNotifierItem"><arg name="service" type="s" direction="in"/></method>
    <method name="RegisterStatusNotifierHost"><arg name="service" type="s" direction="in"/></method>
    <property name="RegisteredStatusNotifierItems" type="as" access="read"/>
    <property name="IsStatusNotifierHostRegistered" type="b" access="read"/>
    <property name="ProtocolVersion" type="i" access="read"/>
    <signal name="StatusNotifierItemRegistered"><arg type="s"/></signal>
    <signal name="StatusNotifierItemUnregistered"><arg type="s"/></signal>
    <signal name="StatusNotifierHostRegistered"/>
  </interface>
</node>
"""

record_path = sys.argv[1]
items = []
loop = GLib.MainLoop()


def pid_of(conn, sender):
    try:
        reply = conn.call_sync("org.freedesktop.DBus", "/org/freedesktop/DBus",
                               "org.freedesktop.DBus", "GetConnectionUnixProcessID",
                               GLib.Variant("(s)", (sender,)), GLib.VariantType("(u)"),
                               Gio.DBusCallFlags.NONE, 2000, None)
        return reply.unpack()[0]
    except GLib.Error:
        return None


def on_call(conn, sender, path, iface, method, params, invocation):
    if method == "RegisterStatusNotifierItem":
        (service,) = params.unpack()
        # Ayatana passes its object path; other items pass a bus name (path then fixed).
        if service.startswith("/"):
            bus, obj = sender, service
        else:
            bus, obj = service, "/StatusNotifierItem"
        record = {"bus": bus, "path": obj, "sender": sender, "pid": pid_of(conn, sender)}
        with open(record_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        items.append(bus + obj)
        invocation.return_value(None)
        conn.emit_signal(None, PATH, NAME, "StatusNotifierItemRegistered",
                         GLib.Variant("(s)", (bus + obj,)))
    elif method == "RegisterStatusNotifierHost":
        invocation.return_value(None)
    else:
        invocation.return_dbus_error("org.freedesktop.DBus.Error.UnknownMethod", method)


def on_get(conn, sender, path, iface, prop):
    if prop == "RegisteredStatusNotifierItems":
        return GLib.Variant("as", items)
    if prop == "IsStatusNotifierHostRegistered":
        return GLib.Variant("b", True)
    if prop == "ProtocolVersion":
        return GLib.Variant("i", 0)
    return None


def on_bus(conn, name):
    info = Gio.DBusNodeInfo.new_for_xml(XML).interfaces[0]
    conn.register_object(PATH, info, on_call, on_get, None)


def on_name(conn, name):
    print("ready", flush=True)


def on_lost(conn, name):
    print(f"could not own {NAME}: another watcher has it", file=sys.stderr, flush=True)
    loop.quit()
    sys.exit(1)


Gio.bus_own_name(Gio.BusType.SESSION, NAME, Gio.BusNameOwnerFlags.NONE,
                 on_bus, on_name, on_lost)
loop.run()
