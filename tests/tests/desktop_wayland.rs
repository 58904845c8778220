//! The tray app on Wayland, beside the X11 tests: under a real compositor (sway on its
//! headless backend) the window draws natively (GDK_BACKEND=wayland; a screenshot is saved),
//! and Copy token puts the token on the Wayland clipboard through the compositor's
//! data-control protocol, where another Wayland client (`wl-paste`) reads it, with the
//! password-manager hint, and it is cleared after the delay.

use std::time::Duration;

use tokenwarden_e2e::desktop::{self, entry, Session};
use tokenwarden_e2e::harness::LegacyAccount;
use tokenwarden_e2e::wait_until;
use tokenwarden_e2e::wayland::Compositor;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_wayland_the_window_draws_and_copy_reaches_the_wayland_clipboard() {
    let session = Session::start().await;
    let wayland = Compositor::start();
    let (_fake, env, seeded) = LegacyAccount::new(|c| c.expires_in(3600))
        .connected(3600)
        .await;
    desktop::write_settings(&env, true, 3);
    let mut app = session.launch(&env, &wayland.client_vars());
    app.wait_api().await;
    let tray = session.tray_item(app.pid()).await;

    // The window draws on Wayland: the page itself (its text and controls: over a thousand
    // colours; the window frame and title alone have about 300). Xvfb stays up
    // beside it, so a window that went to X11 instead would leave this output black.
    let shot = desktop::screenshot_dir().join("wayland-window.png");
    wait_until(
        Duration::from_secs(30),
        "the window's page shows on the Wayland output",
        async || {
            wayland.screenshot(&shot);
            colours(&shot) > 1000
        },
    )
    .await;
    println!("wayland-window.png: {} colours", colours(&shot));
    assert!(
        wayland.clipboard().as_deref() != Some(seeded.as_str()),
        "nothing copied yet"
    );

    let menu = tray
        .wait_menu("fb's Copy entry", |m| {
            m.iter()
                .any(|e| e.label.starts_with("Copy fb token — fresh") && e.enabled)
        })
        .await;
    tray.click(entry(&menu, "Copy fb token").id).await;
    wait_until(
        Duration::from_secs(10),
        "wl-paste reads fb's token from the Wayland clipboard",
        async || wayland.clipboard().as_deref() == Some(seeded.as_str()),
    )
    .await;
    let types = wayland.clipboard_types();
    assert!(
        types.iter().any(|t| t == "x-kde-passwordManagerHint"),
        "marked as a secret for clipboard managers: {types:?}"
    );
    wayland.screenshot(&desktop::screenshot_dir().join("wayland-accounts.png"));
    wait_until(
        Duration::from_secs(15),
        "the Wayland clipboard is cleared 3 s later",
        async || wayland.clipboard().as_deref() != Some(seeded.as_str()),
    )
    .await;
    assert_eq!(app.stop().await.code, 0);
}

/// How many colours a PNG holds (ImageMagick): an empty or black output has one or two.
fn colours(png: &std::path::Path) -> u64 {
    let out = std::process::Command::new("convert")
        .arg(png)
        .args(["-format", "%k", "info:"])
        .output()
        .expect("convert (imagemagick)");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}
