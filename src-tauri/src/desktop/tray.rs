//! The tray: an icon for the worst state, a summary, and a menu with one "Copy NAME token"
//! entry per account (its state and time left in the label; the first [`TRAY_ACCOUNTS`], then
//! one entry saying how many more the window lists), then Refresh all, Open Tokenwarden and
//! Quit. Linux cannot swap a tray menu once set and sends no click events
//! for the icon, so the same menu is edited in place and every action lives in it. The
//! AppIndicator protocol has no tooltip either, so the summary is also the menu's first,
//! disabled entry.

use std::sync::Mutex;
use std::time::SystemTime;

use tauri::image::Image;
use tauri::menu::{Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::{TrayIcon, TrayIconBuilder};
use tauri::{AppHandle, Runtime};

use crate::engine::{AccountName, AccountView, Severity, Status};

pub const TRAY_ID: &str = "tokenwarden";
/// The summary entry: disabled, so it never sends an event.
const SUMMARY_ID: &str = "summary";
/// The summary and its separator come before the accounts.
const FIRST_ACCOUNT: usize = 2;
/// The most accounts the menu lists: a menu of 10,000 entries is neither readable nor cheap
/// (each is a D-Bus menu item on Linux). The window lists and searches them all.
pub const TRAY_ACCOUNTS: usize = 25;
/// The entry after the listed accounts when there are more: it opens the window.
const MORE_ID: &str = "more";

/// Menu ids, to and from their strings in one place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MenuId {
    Copy(AccountName),
    RefreshAll,
    Open,
    Quit,
}

impl MenuId {
    pub fn id(&self) -> String {
        match self {
            Self::Copy(name) => format!("copy:{name}"),
            Self::RefreshAll => "refresh-all".into(),
            Self::Open => "open".into(),
            Self::Quit => "quit".into(),
        }
    }

    pub fn parse(id: &str) -> Option<Self> {
        match id {
            "refresh-all" => Some(Self::RefreshAll),
            "open" | MORE_ID => Some(Self::Open),
            "quit" => Some(Self::Quit),
            other => other.strip_prefix("copy:")?.parse().ok().map(Self::Copy),
        }
    }
}

/// The icon: one drawing per [`Severity`], but for a refresh under way and a retry, which
/// share the amber one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Look {
    Fresh,
    Busy,
    Alert,
    Idle,
}

impl From<Severity> for Look {
    fn from(severity: Severity) -> Self {
        match severity {
            Severity::Idle => Self::Idle,
            Severity::Fine => Self::Fresh,
            Severity::Busy | Severity::Attention => Self::Busy,
            Severity::Bad => Self::Alert,
        }
    }
}

/// The icon for the worst severity the engine gave any account (idle without accounts).
pub fn look(views: &[AccountView]) -> Look {
    views
        .iter()
        .map(|v| v.severity)
        .max()
        .map_or(Look::Idle, Look::from)
}

fn icon(look: Look) -> tauri::Result<Image<'static>> {
    Image::from_bytes(match look {
        Look::Fresh => include_bytes!("../../../icons/tray-fresh.png").as_slice(),
        Look::Busy => include_bytes!("../../../icons/tray-busy.png").as_slice(),
        Look::Alert => include_bytes!("../../../icons/tray-alert.png").as_slice(),
        Look::Idle => include_bytes!("../../../icons/tray-idle.png").as_slice(),
    })
}

/// "59m", "7h 12m", "3d": time left, coarse enough for a menu.
pub fn left(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..86_400 => format!("{}h {:02}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d", secs / 86_400),
    }
}

/// The entry for one account, and whether Copy is offered (the engine's `can_copy`).
pub fn entry(view: &AccountView, now: SystemTime) -> (String, bool) {
    let copy = view.can_copy_at(now);
    let remaining = view.expires_at.map(|e| e.remaining(now).as_secs());
    // At start the keychain is read a few accounts at a time; until then (or until an
    // `http` account's first fetch answers) there is nothing to copy yet, which is not news.
    if view.status == Status::Refreshing && remaining.is_none() {
        return (format!("Copy {} token — getting token…", view.name), copy);
    }
    let left = match remaining {
        Some(0) => "expired".to_owned(),
        Some(secs) => left(secs),
        None => "no token".to_owned(),
    };
    (
        format!(
            "Copy {} token — {} · {left}",
            view.name,
            view.status.as_str()
        ),
        copy,
    )
}

pub fn tooltip(views: &[AccountView]) -> String {
    if views.is_empty() {
        return "Tokenwarden: no accounts yet".to_owned();
    }
    let order = [
        Status::Fresh,
        Status::Refreshing,
        Status::Retrying,
        Status::Expired,
        Status::NeedsReconnect,
        Status::NotConnected,
    ];
    let parts: Vec<String> = order
        .iter()
        .filter_map(|s| {
            let n = views.iter().filter(|v| v.status == *s).count();
            (n > 0).then(|| format!("{n} {}", s.as_str().replace('_', " ")))
        })
        .collect();
    format!("Tokenwarden: {}", parts.join(", "))
}

/// The menu and its account entries, kept to be edited in place.
pub struct Tray<R: Runtime> {
    icon: TrayIcon<R>,
    menu: Menu<R>,
    summary: MenuItem<R>,
    entries: Mutex<Vec<(AccountName, MenuItem<R>)>>,
    more: Mutex<Option<MenuItem<R>>>,
    look: Mutex<Option<Look>>,
}

impl<R: Runtime> Tray<R> {
    pub fn build(app: &AppHandle<R>) -> tauri::Result<Self> {
        let summary = MenuItem::with_id(app, SUMMARY_ID, "Tokenwarden", false, None::<&str>)?;
        let menu = Menu::with_items(
            app,
            &[
                &summary,
                &PredefinedMenuItem::separator(app)?,
                &PredefinedMenuItem::separator(app)?,
                &MenuItem::with_id(
                    app,
                    MenuId::RefreshAll.id(),
                    "Refresh all",
                    true,
                    None::<&str>,
                )?,
                &MenuItem::with_id(
                    app,
                    MenuId::Open.id(),
                    "Open Tokenwarden",
                    true,
                    None::<&str>,
                )?,
                &MenuItem::with_id(app, MenuId::Quit.id(), "Quit", true, None::<&str>)?,
            ],
        )?;
        let builder = TrayIconBuilder::with_id(TRAY_ID)
            .icon(icon(Look::Idle)?)
            .tooltip("Tokenwarden");
        // macOS draws a title as words beside the icon in the menu bar, where a wide item is
        // the first hidden behind the notch; the tooltip names the app there.
        #[cfg(not(target_os = "macos"))]
        let builder = builder.title("Tokenwarden");
        let icon = builder
            .menu(&menu)
            .show_menu_on_left_click(true)
            .build(app)?;
        Ok(Self {
            icon,
            menu,
            summary,
            entries: Mutex::new(Vec::new()),
            more: Mutex::new(None),
            look: Mutex::new(None),
        })
    }

    /// Brings icon, tooltip and entries up to date with the accounts.
    /// "…and N more in the window" after the listed accounts, at `position`; none for 0.
    fn more(&self, app: &AppHandle<R>, count: usize, position: usize) -> tauri::Result<()> {
        let mut more = self.more.lock().expect("poisoned");
        let text = format!("…and {count} more: Open Tokenwarden");
        match (more.as_ref(), count) {
            (Some(item), 0) => {
                self.menu.remove(item)?;
                *more = None;
            }
            (Some(item), _) => {
                if item.text()? != text {
                    // Removed and put back: the accounts before it may have been redrawn.
                    self.menu.remove(item)?;
                    item.set_text(text)?;
                    self.menu.insert(item, position)?;
                }
            }
            (None, 0) => {}
            (None, _) => {
                let item = MenuItem::with_id(app, MORE_ID, text, true, None::<&str>)?;
                self.menu.insert(&item, position)?;
                *more = Some(item);
            }
        }
        Ok(())
    }

    pub fn redraw(&self, app: &AppHandle<R>, views: &[AccountView]) -> tauri::Result<()> {
        let now = SystemTime::now();
        let mut entries = self.entries.lock().expect("poisoned");
        let listed = &views[..views.len().min(TRAY_ACCOUNTS)];
        let same_accounts = entries.len() == listed.len()
            && entries.iter().zip(listed).all(|((n, _), v)| *n == v.name);
        if !same_accounts {
            for (_, item) in entries.drain(..) {
                self.menu.remove(&item)?;
            }
            for (position, view) in listed.iter().enumerate() {
                let (text, enabled) = entry(view, now);
                let id = MenuId::Copy(view.name.clone()).id();
                let item = MenuItem::with_id(app, id, text, enabled, None::<&str>)?;
                self.menu.insert(&item, FIRST_ACCOUNT + position)?;
                entries.push((view.name.clone(), item));
            }
        } else {
            for ((_, item), view) in entries.iter().zip(listed) {
                let (text, enabled) = entry(view, now);
                if item.text()? != text {
                    item.set_text(text)?;
                }
                if item.is_enabled()? != enabled {
                    item.set_enabled(enabled)?;
                }
            }
        }
        self.more(
            app,
            views.len() - listed.len(),
            FIRST_ACCOUNT + listed.len(),
        )?;
        let look = look(views);
        let mut shown = self.look.lock().expect("poisoned");
        if *shown != Some(look) {
            self.icon.set_icon(Some(icon(look)?))?;
            *shown = Some(look);
        }
        let summary = tooltip(views);
        if self.summary.text()? != summary {
            self.summary.set_text(&summary)?;
        }
        self.icon.set_tooltip(Some(summary))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ConnectsWith;
    use crate::engine::Deadline;

    /// WCAG's relative luminance of an sRGB colour.
    fn luminance(rgb: &[u8]) -> f64 {
        let channel = |c: u8| {
            let c = f64::from(c) / 255.0;
            if c <= 0.039_28 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * channel(rgb[0]) + 0.7152 * channel(rgb[1]) + 0.0722 * channel(rgb[2])
    }

    fn contrast(a: f64, b: f64) -> f64 {
        (a.max(b) + 0.05) / (a.min(b) + 0.05)
    }

    /// Each state's tile keeps 3:1 (WCAG's least for a control) against the lightest and the
    /// darkest taskbars it meets: Windows 11 light (#f3f3f3) and dark (#202020), GNOME's
    /// black top bar, a white macOS menu bar.
    #[test]
    fn every_tray_icon_reads_on_light_and_dark_taskbars() {
        let bars: [(&str, [u8; 3]); 4] = [
            ("Windows light", [0xf3, 0xf3, 0xf3]),
            ("Windows dark", [0x20, 0x20, 0x20]),
            ("GNOME", [0, 0, 0]),
            ("macOS light", [0xff, 0xff, 0xff]),
        ];
        for look in [Look::Idle, Look::Fresh, Look::Busy, Look::Alert] {
            let image = icon(look).expect("a PNG");
            let (w, h) = (image.width() as usize, image.height() as usize);
            assert_eq!((w, h), (64, 64), "{look:?}");
            // The tile's colour, a few pixels in from its corner, inside the rounded edge.
            let at = (12 * w + 12) * 4;
            let tile = &image.rgba()[at..at + 4];
            assert_eq!(tile[3], 255, "{look:?}: the tile is opaque");
            for (bar, colour) in bars {
                let ratio = contrast(luminance(tile), luminance(&colour));
                assert!(
                    ratio >= 3.0,
                    "{look:?} ({tile:?}) on a {bar} taskbar: {ratio:.2}:1, below 3:1"
                );
            }
        }
    }

    /// A view as the engine makes it for a token with `left` seconds to go (or none).
    fn view(name: &str, status: Status, left: Option<u64>) -> AccountView {
        AccountView {
            name: name.parse().unwrap(),
            provider: "fitbit".into(),
            status,
            severity: status.severity(),
            can_copy: left.is_some_and(|s| s > 0),
            expires_at: left.map(|s| {
                Deadline::after(
                    SystemTime::UNIX_EPOCH,
                    std::time::Duration::from_secs(1000 + s),
                )
            }),
            expiry_estimated: false,
            last_refresh: None,
            last_error: None,
            next_refresh: None,
            attempt: 0,
            connects_with: ConnectsWith::Browser,
            refresh_token_expires_at: None,
            unsaved: false,
            remedy: None,
            quota: None,
        }
    }

    #[test]
    fn entries_say_state_and_time_left_and_copy_needs_a_valid_token() {
        let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1000);
        let (text, enabled) = entry(&view("fb", Status::Fresh, Some(3540)), now);
        assert_eq!(text, "Copy fb token — fresh · 59m");
        assert!(enabled);
        let (text, enabled) = entry(&view("wx", Status::NotConnected, None), now);
        assert_eq!(text, "Copy wx token — not_connected · no token");
        assert!(!enabled);
        assert!(!entry(&view("x", Status::Expired, Some(0)), now).1);
        let (text, enabled) = entry(&view("new", Status::Refreshing, None), now);
        assert_eq!(text, "Copy new token — getting token…");
        assert!(!enabled);
        let (text, enabled) = entry(&view("busy", Status::Refreshing, Some(30)), now);
        assert_eq!(text, "Copy busy token — refreshing · 30s");
        assert!(
            enabled,
            "a token still valid while it is refreshed can be copied"
        );
        assert_eq!(left(7 * 3600 + 12 * 60), "7h 12m");
    }

    /// The tray decides neither: for every status, its icon is the engine's severity and its
    /// Copy entry the engine's `can_copy`, even where the two seem at odds.
    #[test]
    fn icon_and_copy_follow_the_engine_for_every_status() {
        let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1000);
        for status in Status::ALL {
            for can_copy in [false, true] {
                let v = AccountView {
                    can_copy,
                    ..view("a", status, Some(60))
                };
                assert_eq!(
                    look(std::slice::from_ref(&v)),
                    Look::from(status.severity())
                );
                assert_eq!(entry(&v, now).1, can_copy, "{status:?}");
            }
        }
        let expected = [
            (Severity::Idle, Look::Idle),
            (Severity::Fine, Look::Fresh),
            (Severity::Busy, Look::Busy),
            (Severity::Attention, Look::Busy),
            (Severity::Bad, Look::Alert),
        ];
        for (severity, look) in expected {
            assert_eq!(Look::from(severity), look);
        }
        // An expired token serves nobody: red, as for a reconnect, not amber.
        assert_eq!(look(&[view("x", Status::Expired, Some(0))]), Look::Alert);
        // A view whose token ran out since it was made offers no Copy.
        let stale = view("s", Status::Fresh, Some(30));
        assert!(!entry(&stale, now + std::time::Duration::from_secs(30)).1);
    }

    #[test]
    fn the_icon_shows_the_worst_state_and_ids_round_trip() {
        let fresh = view("a", Status::Fresh, Some(60));
        let retry = view("b", Status::Retrying, Some(60));
        let gone = view("c", Status::NeedsReconnect, None);
        assert_eq!(look(&[]), Look::Idle);
        assert_eq!(look(std::slice::from_ref(&fresh)), Look::Fresh);
        assert_eq!(look(&[fresh.clone(), retry.clone()]), Look::Busy);
        assert_eq!(look(&[fresh, retry, gone]), Look::Alert);
        for id in [
            MenuId::Copy("fb".parse().unwrap()),
            MenuId::RefreshAll,
            MenuId::Open,
            MenuId::Quit,
        ] {
            assert_eq!(MenuId::parse(&id.id()), Some(id));
        }
        assert_eq!(
            tooltip(&[
                view("a", Status::Fresh, Some(1)),
                view("b", Status::NotConnected, None)
            ]),
            "Tokenwarden: 1 fresh, 1 not connected"
        );
    }
}
