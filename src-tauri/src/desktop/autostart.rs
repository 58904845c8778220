//! "Start at login" through tauri-plugin-autostart: on Linux an XDG autostart entry
//! (`~/.config/autostart/NAME.desktop`), a LaunchAgent on macOS, the Run key on Windows.
//! The entry starts this binary with `--hidden --config PATH` (in the tray, no window, where
//! there is a tray), so the app that starts at login reads
//! the same config as the one the user turned the setting on in, whatever its environment
//! holds then. Each keychain service (profile) gets its own entry name.

use std::path::Path;

use tauri::plugin::TauriPlugin;
use tauri::{AppHandle, Runtime};
use tauri_plugin_autostart::ManagerExt;

use crate::engine::{Context, DEFAULT_KEYCHAIN_SERVICE};

pub fn plugin<R: Runtime>(ctx: &Context) -> TauriPlugin<R> {
    let builder = tauri_plugin_autostart::Builder::new()
        .app_name(entry_name(&ctx.keychain_service))
        .args([
            "--hidden".to_owned(),
            "--config".to_owned(),
            config_arg(&ctx.config_path),
        ]);
    #[cfg(target_os = "macos")]
    let builder = builder.macos_launcher(tauri_plugin_autostart::MacosLauncher::LaunchAgent);
    builder.build()
}

/// Turns start at login on or off; an error says what could not be written.
pub fn apply<R: Runtime>(app: &AppHandle<R>, on: bool) -> Result<(), String> {
    let launcher = app.autolaunch();
    let result = if on {
        launcher.enable()
    } else {
        launcher.disable()
    };
    result.map_err(|e| {
        let what = if on { "turn on" } else { "turn off" };
        format!("could not {what} start at login: {e}")
    })
}

/// "tokenwarden" for the default profile, "tokenwarden-NAME" for another keychain service.
pub fn entry_name(keychain_service: &str) -> String {
    if keychain_service == DEFAULT_KEYCHAIN_SERVICE {
        return "tokenwarden".to_owned();
    }
    let suffix: String = keychain_service
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!("tokenwarden-{suffix}")
}

/// The config path as one argument of the entry's command line. The plugin joins the
/// arguments with spaces: into the desktop entry's `Exec` key on Linux, quoted by the Desktop
/// Entry rules; into the Run key's command line on Windows, quoted as Windows programs split
/// theirs (`C:\Users\Ann Lee\…` holds a space). A LaunchAgent passes each argument on its
/// own, as it is.
pub fn config_arg(path: &Path) -> String {
    let text = path.to_string_lossy().into_owned();
    if cfg!(target_os = "linux") {
        exec_quoted(&text)
    } else if cfg!(windows) {
        command_line_quoted(&text)
    } else {
        text
    }
}

/// One argument of a Windows command line, as `CommandLineToArgvW` and the C runtime read
/// it back: quoted when it holds a space, a tab or a quote; a quote takes a backslash, and
/// backslashes before a quote (or before the closing one) are doubled.
fn command_line_quoted(arg: &str) -> String {
    if !arg.is_empty() && !arg.contains([' ', '\t', '"']) {
        return arg.to_owned();
    }
    let mut out = String::from("\"");
    let mut backslashes = 0;
    for c in arg.chars() {
        match c {
            '\\' => backslashes += 1,
            '"' => {
                out.extend(std::iter::repeat_n('\\', 2 * backslashes + 1));
                out.push('"');
                backslashes = 0;
            }
            _ => {
                out.extend(std::iter::repeat_n('\\', backslashes));
                out.push(c);
                backslashes = 0;
            }
        }
    }
    out.extend(std::iter::repeat_n('\\', 2 * backslashes));
    out.push('"');
    out
}

fn exec_quoted(arg: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+,:=@~".contains(c);
    if !arg.is_empty() && arg.chars().all(plain) {
        return arg.to_owned();
    }
    let mut out = String::from("\"");
    for c in arg.chars() {
        match c {
            // Inside quotes `"`, `` ` ``, `$` and `\` take a backslash, and the value's own
            // string escaping doubles that backslash again.
            '"' | '`' | '$' => {
                out.push_str("\\\\");
                out.push(c);
            }
            '\\' => out.push_str("\\\\\\\\"),
            // A field code would be expanded by the launcher.
            '%' => out.push_str("%%"),
            _ => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_names_differ_per_profile() {
        assert_eq!(entry_name(DEFAULT_KEYCHAIN_SERVICE), "tokenwarden");
        assert_eq!(entry_name("tw test.1"), "tokenwarden-tw-test-1");
    }

    #[test]
    fn plain_paths_stay_plain_and_others_are_quoted_for_exec() {
        assert_eq!(
            exec_quoted("/home/a/.config/tokenwarden/config.toml"),
            "/home/a/.config/tokenwarden/config.toml"
        );
        assert_eq!(
            exec_quoted("/home/a/My Tokens/c.toml"),
            "\"/home/a/My Tokens/c.toml\""
        );
        assert_eq!(exec_quoted("/t/$x%"), "\"/t/\\\\$x%%\"");
    }

    #[test]
    fn windows_paths_with_spaces_are_one_argument_of_the_run_key() {
        let plain = r"C:\Users\ann\AppData\Roaming\tokenwarden\config\config.toml";
        assert_eq!(command_line_quoted(plain), plain);
        assert_eq!(
            command_line_quoted(r"C:\Users\Ann Lee\config.toml"),
            r#""C:\Users\Ann Lee\config.toml""#
        );
        // Backslashes are literal except before a quote.
        assert_eq!(command_line_quoted(r"D:\my dir\"), r#""D:\my dir\\""#);
        assert_eq!(command_line_quoted(r#"a "b""#), r#""a \"b\"""#);
        assert_eq!(command_line_quoted(""), r#""""#);
    }
}
