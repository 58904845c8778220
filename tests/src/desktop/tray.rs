//! The tray side: the app's StatusNotifierItem ([`TrayItem`]) and its dbusmenu ([`MenuEntry`]),
//! read and clicked over D-Bus.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::dbus_tool;

/// A dbusmenu label as the user reads it: `_` marks a mnemonic, `__` is a literal underscore.
pub fn dbusmenu_text(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '_' {
            if chars.peek() == Some(&'_') {
                chars.next();
                out.push('_');
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// One top-level entry of the tray menu.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MenuEntry {
    pub id: i32,
    /// Mnemonic markers removed ([`dbusmenu_text`]).
    pub label: String,
    pub enabled: bool,
    pub visible: bool,
    pub separator: bool,
}

/// The app's StatusNotifierItem, as the watcher stand-in recorded it.
#[derive(Clone, Debug)]
pub struct TrayItem {
    pub bus: String,
    pub path: String,
}

impl TrayItem {
    /// The top-level menu entries, or why they could not be read.
    pub async fn try_menu(&self) -> Result<(String, Vec<MenuEntry>), String> {
        let menu = dbus_tool(&["menu", &self.bus, &self.path]).await?;
        let path = menu["menu_path"].as_str().unwrap_or_default().to_string();
        let entries = menu["items"]
            .as_array()
            .ok_or_else(|| format!("no items in {menu}"))?
            .iter()
            .map(|i| MenuEntry {
                id: i["id"].as_i64().unwrap_or(-1) as i32,
                label: dbusmenu_text(i["label"].as_str().unwrap_or_default()),
                enabled: i["enabled"].as_bool().unwrap_or(true),
                visible: i["visible"].as_bool().unwrap_or(true),
                separator: i["type"] == "separator",
            })
            .collect();
        Ok((path, entries))
    }

    /// The visible top-level menu entries.
    pub async fn menu(&self) -> Vec<MenuEntry> {
        let (_, entries) = self.try_menu().await.unwrap_or_else(|e| panic!("{e}"));
        entries.into_iter().filter(|e| e.visible).collect()
    }

    /// Waits (20 s at most) until the visible menu satisfies `cond`, and returns it.
    pub async fn wait_menu(
        &self,
        what: &str,
        cond: impl Fn(&[MenuEntry]) -> bool,
    ) -> Vec<MenuEntry> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let last = match self.try_menu().await {
                Ok((_, entries)) => {
                    let visible: Vec<MenuEntry> =
                        entries.into_iter().filter(|e| e.visible).collect();
                    if cond(&visible) {
                        return visible;
                    }
                    format!("{visible:#?}")
                }
                Err(e) => e,
            };
            assert!(
                Instant::now() < deadline,
                "timed out after 20 s waiting for the tray menu: {what}\nlast menu: {last}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Clicks entry `id` (com.canonical.dbusmenu `Event(id, "clicked", <i 0>, now)`).
    pub async fn click(&self, id: i32) {
        let (menu_path, _) = self.try_menu().await.unwrap_or_else(|e| panic!("{e}"));
        dbus_tool(&["click", &self.bus, &menu_path, &id.to_string()])
            .await
            .unwrap_or_else(|e| panic!("click tray entry {id}: {e}"));
    }

    /// The org.kde.StatusNotifierItem properties (pixmaps left out).
    pub async fn properties(&self) -> Value {
        dbus_tool(&["props", &self.bus, &self.path])
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

/// Finds the entry whose label starts with `prefix`; panics listing the menu otherwise.
#[track_caller]
pub fn entry<'a>(menu: &'a [MenuEntry], prefix: &str) -> &'a MenuEntry {
    menu.iter()
        .find(|e| e.label.starts_with(prefix))
        .unwrap_or_else(|| panic!("no tray entry starting with {prefix:?} in {menu:#?}"))
}
