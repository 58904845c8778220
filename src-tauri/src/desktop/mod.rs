//! The tray app (feature `desktop`): a thin shell over the same engine and local API as
//! `serve`, started and stopped through `host`. It maps engine operations to window commands,
//! engine events to the window, the tray and notifications, and nothing more.
//! * `asks`      ask first: the prompt's asks and answers, approvals in Settings
//! * `commands`  one engine call per window command   * `error`     what `invoke` rejects with
//! * `tray`      icon per worst state, menu edited in place   * `window`    open (build) the window
//! * `notify`    episode events → desktop notifications
//! * `clipboard` copy a token, clear it later if it is still there
//! * `settings`  desktop.json: notifications, clipboard delay, start at login
//! * `autostart` the start-at-login entry
//! * `home`      tray or window: whether this desktop shows tray icons at all

mod asks;
mod autostart;
mod clipboard;
mod commands;
mod error;
mod home;
mod notify;
mod settings;
mod tray;
mod window;

use std::process::ExitCode;
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use tauri::{AppHandle, Emitter, Manager, RunEvent, WindowEvent, Wry};
use tokio::sync::broadcast::error::RecvError;

use crate::engine::{AccountName, Context, Engine, EngineError};
use crate::host::Host;
use commands::ConfigProblem;
use error::UiError;
use settings::Settings;
use tray::{MenuId, Tray};

/// What the commands share: where things live, the running host (none while a bad config
/// or another engine keeps it from starting), and the desktop settings.
pub struct Shell {
    ctx: Context,
    host: tokio::sync::Mutex<Option<Host>>,
    engine: RwLock<Option<Engine>>,
    problem: Mutex<Option<ConfigProblem>>,
    settings: Mutex<Settings>,
    copier: clipboard::Copier,
    home: home::Home,
}

impl Shell {
    fn engine(&self) -> Result<Engine, UiError> {
        self.engine
            .read()
            .expect("poisoned")
            .clone()
            .ok_or_else(|| {
                let why = self
                    .problem()
                    .map_or_else(|| "it is starting".to_owned(), |p| p.message);
                UiError::new("unavailable", format!("the engine is not running: {why}"))
            })
    }

    fn problem(&self) -> Option<ConfigProblem> {
        self.problem.lock().expect("poisoned").clone()
    }

    fn settings(&self) -> Settings {
        self.settings.lock().expect("poisoned").clone()
    }

    /// Without a tray, the first closed window says once (ever) how to get it back.
    fn tell_how_to_return(&self, app: &AppHandle) {
        let mut settings = self.settings.lock().expect("poisoned");
        if settings.told_how_to_return {
            return;
        }
        settings.told_how_to_return = true;
        if let Err(e) = settings::save(&self.ctx.data_dir, &settings) {
            tracing::warn!(error = %e, "could not save the settings");
        }
        notify::still_running(app);
    }

    /// Copies `name`'s current token to the clipboard (window and tray alike); returns after
    /// how many seconds it is cleared.
    async fn copy_token(&self, app: &AppHandle, name: &AccountName) -> Result<u64, UiError> {
        let engine = self.engine()?;
        let token = engine.token(name, Duration::ZERO).await?;
        engine.took(
            name,
            crate::engine::Taker::this_process(crate::engine::Via::Tray),
        );
        let clear_after_secs = self.settings().clear_clipboard_secs;
        clipboard::copy(
            app,
            &self.copier,
            &token.access_token,
            Duration::from_secs(clear_after_secs),
        )
        .map_err(|e| UiError::new("clipboard", e))?;
        Ok(clear_after_secs)
    }
}

/// Runs the tray app until Quit. Tauri owns the main thread and the async runtime. `hidden`:
/// start in the tray without the window (start at login), where there is a tray.
pub fn run(ctx: Context, hidden: bool) -> ExitCode {
    let launched = std::time::Instant::now();
    let mut context = tauri::generate_context!();
    // One instance per keychain service: tests (and profiles) with their own service each
    // get their own app.
    if ctx.keychain_service != crate::engine::DEFAULT_KEYCHAIN_SERVICE {
        let suffix: String = ctx
            .keychain_service
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        context.config_mut().identifier = format!("dev.tokenwarden.s_{suffix}");
    }
    let start_at_login = autostart::plugin::<Wry>(&ctx);
    let shell = Shell {
        settings: Mutex::new(settings::load(&ctx.data_dir)),
        ctx,
        host: tokio::sync::Mutex::new(None),
        engine: RwLock::new(None),
        problem: Mutex::new(None),
        copier: clipboard::Copier::default(),
        home: home::detect(),
    };
    tracing::info!(tray = shell.home.tray, "{}", shell.home.why);
    let show_window = shell.home.shows_window_at_start(hidden);
    let app = tauri::Builder::default()
        // First: a second launch focuses this one and exits before starting anything.
        .plugin(tauri_plugin_single_instance::init(|app, _, _| {
            window::open_window(app)
        }))
        .plugin(tauri_plugin_notification::init())
        .plugin(tauri_plugin_clipboard_manager::init())
        .plugin(tauri_plugin_opener::init())
        .plugin(start_at_login)
        .manage(shell)
        .manage(window::Clock::new(launched))
        .invoke_handler(tauri::generate_handler![
            commands::accounts,
            commands::history,
            commands::takers,
            commands::diagnose,
            commands::refresh_now,
            commands::copy_token,
            commands::begin_connect,
            commands::cancel_connect,
            commands::remove_account,
            commands::presets,
            commands::add_account,
            commands::set_client_secret,
            commands::config_status,
            commands::reload_config,
            commands::settings,
            commands::save_settings,
            commands::api_keys,
            commands::create_api_key,
            commands::revoke_api_key,
            commands::quit,
            asks::asks,
            asks::answer_ask,
            asks::approvals,
            asks::revoke_approval,
            asks::set_ask_first,
            window::window_drawn,
        ])
        .on_window_event(|window, event| {
            // Closing the window destroys it (WebKit's web process and the page's memory go
            // with it; Open builds it again): the engine keeps serving programs, from the tray
            // or, without one, until the app is started again or quit from the window.
            if let WindowEvent::CloseRequested { .. } = event {
                let shell = window.state::<Shell>();
                if !shell.home.tray {
                    shell.tell_how_to_return(window.app_handle());
                }
            }
        })
        .on_menu_event(|app, event| on_menu(app, event.id().as_ref()))
        .setup(move |app| {
            let handle = app.handle().clone();
            quit_on_signal(&handle);
            app.manage(Tray::build(&handle)?);
            let shell = handle.state::<Shell>();
            // Rewrites the entry so it starts the binary that runs now.
            if shell.settings().start_at_login {
                if let Err(e) = autostart::apply(&handle, true) {
                    tracing::warn!(error = %e, "start at login");
                }
            }
            // The window first: WebKit starts its web process while the engine starts. The
            // page asks for nothing before this returns (its requests are served on this
            // thread), so it never sees an engine half started.
            if show_window {
                window::open_window(&handle);
            }
            if let Err(e) = tauri::async_runtime::block_on(start_engine(&handle, &shell)) {
                tracing::error!(error = %e.message, "the engine did not start");
            }
            Ok(())
        })
        .build(context);
    let app = match app {
        Ok(app) => app,
        Err(e) => {
            eprintln!("tokenwarden: the tray app could not start: {e}");
            return ExitCode::FAILURE;
        }
    };
    app.run(|app, event| match event {
        RunEvent::ExitRequested {
            api, code: None, ..
        } => api.prevent_exit(),
        // A click on the Dock icon while the window is hidden: the one way back to it on a Mac
        // whose menu bar item is behind the notch.
        #[cfg(target_os = "macos")]
        RunEvent::Reopen {
            has_visible_windows: false,
            ..
        } => window::open_window(app),
        RunEvent::Exit => {
            let shell = app.state::<Shell>();
            let host = tauri::async_runtime::block_on(shell.host.lock()).take();
            if let Some(host) = host {
                // In-flight refreshes finish their keychain writes; unsaved sets get a last try.
                if let Err(e) = tauri::async_runtime::block_on(host.stop()) {
                    tracing::error!(error = %e, "stopping the engine");
                }
            }
        }
        _ => {}
    });
    ExitCode::SUCCESS
}

/// SIGTERM (a session logging out, `systemctl stop`, `kill`) and SIGINT quit as Quit does:
/// the engine stops and writes what it holds, and the app exits 0.
fn quit_on_signal(app: &AppHandle) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let app = app.clone();
        tauri::async_runtime::spawn(async move {
            let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) else {
                tracing::warn!(
                    "cannot catch SIGTERM: a signal would end the app without a clean stop"
                );
                return;
            };
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            app.exit(0);
        });
    }
    #[cfg(not(unix))]
    let _ = app;
}

/// Starts engine + API + lock; on failure (a bad config, another engine running) the window
/// shows why and `reload_config` tries again. Returns the number of accounts.
async fn start_engine(app: &AppHandle, shell: &Shell) -> Result<usize, UiError> {
    let mut host = shell.host.lock().await;
    if host.is_some() {
        return Ok(shell.engine()?.config().accounts.len());
    }
    match Host::start(&shell.ctx).await {
        Ok(started) => {
            let engine = started.engine().clone();
            engine.answer_asks_here();
            *shell.engine.write().expect("poisoned") = Some(engine.clone());
            *shell.problem.lock().expect("poisoned") = None;
            *host = Some(started);
            let count = engine.config().accounts.len();
            tauri::async_runtime::spawn(forward(app.clone(), engine));
            Ok(count)
        }
        Err(e) => {
            let (message, line) = match e.downcast_ref::<EngineError>() {
                Some(EngineError::Config(c)) => (c.to_string(), c.line()),
                _ => (format!("{e:#}"), None),
            };
            *shell.problem.lock().expect("poisoned") = Some(ConfigProblem {
                message: message.clone(),
                line,
            });
            Err(UiError::new("config", message))
        }
    }
}

/// How often the app checks that its engine still does its job.
const HEALTH_EVERY: Duration = Duration::from_secs(2);

/// Engine events → the window (a hint to re-read), the tray, and notifications; and the
/// engine's health, which ends the app (exit code 1) once it fails. The tray's
/// "time left" is redrawn once a minute; nothing ticks faster while the window is hidden.
async fn forward(app: AppHandle, engine: Engine) {
    let mut events = engine.subscribe();
    let mut minute = tokio::time::interval(Duration::from_secs(60));
    let mut health = tokio::time::interval(HEALTH_EVERY);
    let mut tray = TrayPace::default();
    loop {
        tokio::select! {
            _ = health.tick() => {
                if let Err(why) = engine.health() {
                    // An app whose engine no longer refreshes must not sit in the tray
                    // looking fine: say so, save what can be saved (RunEvent::Exit), exit 1.
                    tracing::error!("{why}; Tokenwarden exits");
                    notify::stopped(&app, &why);
                    // The plugin hands the notification to a task of its own and returns: an
                    // exit right away can end the process before it reaches the bus (seen in
                    // CI: the app exited 1 and no notification arrived).
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    app.exit(1);
                    return;
                }
                continue;
            }
            event = events.recv() => match event {
                Ok(event) => {
                    if matches!(event, crate::engine::EngineEvent::AskStarted { .. }) {
                        asks::asked(&app);
                    }
                    if let Err(e) = app.emit("engine-event", &event) {
                        tracing::warn!(error = %e, "could not tell the window");
                    }
                    if app.state::<Shell>().settings().notifications {
                        notify::show(&app, &event);
                    }
                }
                // The window re-reads only the accounts events name: events it missed make
                // it read them all.
                Err(RecvError::Lagged(_)) => {
                    let _ = app.emit("engine-event", serde_json::json!({"kind": "lagged"}));
                }
                Err(RecvError::Closed) => return,
            },
            () = tray.wait() => {}
            _ = minute.tick() => {}
        }
        tray.redraw_when_due(&app, &engine);
    }
}

/// How often the tray is redrawn: at most once a second, and never more than a tenth of the
/// time (a redraw reads every account's view: 180 ms with 100,000 accounts, while their
/// refreshes send events many times a second).
#[derive(Default)]
struct TrayPace {
    next: Option<tokio::time::Instant>,
    pending: bool,
}

impl TrayPace {
    /// Until a redraw held back is due (never, when none is).
    async fn wait(&self) {
        match (self.pending, self.next) {
            (true, Some(at)) => tokio::time::sleep_until(at).await,
            _ => std::future::pending().await,
        }
    }

    fn redraw_when_due(&mut self, app: &AppHandle, engine: &Engine) {
        let now = tokio::time::Instant::now();
        if self.next.is_some_and(|at| now < at) {
            self.pending = true;
            return;
        }
        let views = engine.snapshot();
        let took = now.elapsed();
        // On the main thread, handed over and not waited for: a menu edited from here waits
        // for the main thread, which blocks in the engine's stop while Quit saves what is in
        // flight, and a redraw held back until then never returned (Quit hung).
        let handle = app.clone();
        let handed = app.run_on_main_thread(move || {
            if let Err(e) = handle.state::<Tray<Wry>>().redraw(&handle, &views) {
                tracing::warn!(error = %e, "could not redraw the tray");
            }
        });
        if let Err(e) = handed {
            tracing::warn!(error = %e, "could not redraw the tray");
        }
        self.next = Some(tokio::time::Instant::now() + (took * 10).max(Duration::from_secs(1)));
        self.pending = false;
    }
}

fn on_menu(app: &AppHandle, id: &str) {
    let Some(id) = MenuId::parse(id) else {
        return;
    };
    match id {
        MenuId::Open => window::open_window(app),
        MenuId::Quit => app.exit(0),
        MenuId::Copy(name) => {
            let app = app.clone();
            tauri::async_runtime::spawn(async move {
                if let Err(e) = app.state::<Shell>().copy_token(&app, &name).await {
                    tracing::warn!(account = %name, error = %e.message, "copy failed");
                }
            });
        }
        MenuId::RefreshAll => {
            let Ok(engine) = app.state::<Shell>().engine() else {
                return;
            };
            tauri::async_runtime::spawn(async move { engine.refresh_all().await });
        }
    }
}

/// Opens a URL in the system browser; `BROWSER`, when set, names the program to use.
fn open_in_browser(app: &AppHandle, url: &str) {
    use tauri_plugin_opener::OpenerExt;
    let result = match std::env::var_os("BROWSER").filter(|b| !b.is_empty()) {
        Some(browser) => std::process::Command::new(browser)
            .arg(url)
            .spawn()
            .map(drop)
            .map_err(|e| e.to_string()),
        None => app
            .opener()
            .open_url(url, None::<&str>)
            .map_err(|e| e.to_string()),
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, "could not open the browser");
    }
}
