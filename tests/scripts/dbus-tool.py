#!/usr/bin/python3
"""D-Bus reads and clicks for the desktop tests, printed as JSON for the Rust side.

  dbus-tool.py owner NAME                 {"owner": ":1.5"} or {"owner": null}
  dbus-tool.py notifications              every Notify call the dbusmock notification daemon
                                          received: [{"app_name","summary","body","time"}]
  dbus-tool.py props BUS PATH             the org.kde.StatusNotifierItem properties (pixmaps
                                          left out; ToolTip as [icon, [], title, text])
  dbus-tool.py menu BUS PATH              the item's menu: {"menu_path", "revision", "items":
                                          [{"id","label","enabled","visible","type"}]} (top level)
  dbus-tool.py click BUS MENU_PATH ID     com.canonical.dbusmenu Event(ID, "clicked", <i 0>, now)
  dbus-tool.py lock COLLECTION            Secret Service Lock([COLLECTION]): {"locked": [...]}
  dbus-tool.py unlock COLLECTION          gnome-keyring's UnlockWithMasterPassword, the password
                                          read from stdin (as a user typing it would unlock it)

Labels are as dbusmenu sends them (`_` marks a mnemonic, `__` is a literal underscore).
Needs python3-gi: run it with /usr/bin/python3.
"""
import json
import sys
import time

from gi.repository import Gio, GLib

bus = Gio.bus_get_sync(Gio.BusType.SESSION, None)


def call(dest, path, iface, method, params, reply_type):
    reply = bus.call_sync(dest, path, iface, method, params,
                          GLib.VariantType(reply_type) if reply_type else None,
                          Gio.DBusCallFlags.NO_AUTO_START, 5000, None)
    return reply.unpack() if reply is not None else None


def jsonable(value):
    if isinstance(value, (bytes, bytearray)):
        return len(value)
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    return value


def get_prop(dest, path, iface, name):
    return call(dest, path, "org.freedesktop.DBus.Properties", "Get",
                GLib.Variant("(ss)", (iface, name)), "(v)")[0]


def main(argv):
    cmd = argv[1]
    if cmd == "owner":
        try:
            owner = call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                         "GetNameOwner", GLib.Variant("(s)", (argv[2],)), "(s)")[0]
        except GLib.Error:
            owner = None
        return {"owner": owner}
    if cmd == "notifications":
        calls = call("org.freedesktop.Notifications", "/org/freedesktop/Notifications",
                     "org.freedesktop.DBus.Mock", "GetMethodCalls",
                     GLib.Variant("(s)", ("Notify",)), "(a(tav))")[0]
        out = []
        for stamp, args in calls:
            out.append({"time": stamp, "app_name": args[0], "summary": args[3], "body": args[4]})
        return out
    if cmd == "props":
        props = call(argv[2], argv[3], "org.freedesktop.DBus.Properties", "GetAll",
                     GLib.Variant("(s)", ("org.kde.StatusNotifierItem",)), "(a{sv})")[0]
        for key in list(props):
            if key.endswith("Pixmap"):
                del props[key]
        if "ToolTip" in props:
            icon, _pixmaps, title, text = props["ToolTip"]
            props["ToolTip"] = [icon, [], title, text]
        return jsonable(props)
    if cmd == "menu":
        menu_path = get_prop(argv[2], argv[3], "org.kde.StatusNotifierItem", "Menu")
        revision, layout = call(argv[2], menu_path, "com.canonical.dbusmenu", "GetLayout",
                                GLib.Variant("(iias)", (0, -1, [])), "(u(ia{sv}av))")
        items = []
        for child in layout[2]:
            item_id, props, _children = child
            items.append({
                "id": item_id,
                "label": props.get("label", ""),
                "enabled": props.get("enabled", True),
                "visible": props.get("visible", True),
                "type": props.get("type", "standard"),
            })
        return {"menu_path": menu_path, "revision": revision, "items": items}
    if cmd == "click":
        call(argv[2], argv[3], "com.canonical.dbusmenu", "Event",
             GLib.Variant("(isvu)", (int(argv[4]), "clicked", GLib.Variant("i", 0),
                                     int(time.time()))), None)
        return {"clicked": int(argv[4])}
    if cmd in ("lock", "unlock"):
        secrets = ("org.freedesktop.secrets", "/org/freedesktop/secrets")
        if cmd == "lock":
            locked, _prompt = call(*secrets, "org.freedesktop.Secret.Service", "Lock",
                                   GLib.Variant("(ao)", ([argv[2]],)), "(aoo)")
            return {"locked": locked}
        _out, session = call(*secrets, "org.freedesktop.Secret.Service", "OpenSession",
                             GLib.Variant("(sv)", ("plain", GLib.Variant("s", ""))), "(vo)")
        password = sys.stdin.buffer.read()
        secret = (session, b"", password, "text/plain")
        call(*secrets, "org.gnome.keyring.InternalUnsupportedGuiltRiddenInterface",
             "UnlockWithMasterPassword", GLib.Variant("(o(oayays))", (argv[2], secret)), None)
        return {"unlocked": argv[2]}
    raise SystemExit(f"unknown command {cmd}")


try:
    print(json.dumps(main(sys.argv)))
except GLib.Error as e:
    print(f"dbus-tool: {e.message}", file=sys.stderr)
    sys.exit(1)
