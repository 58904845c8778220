//! The packages as a user gets them: the `.deb` that `make package` builds (the debug build in
//! `make test`, `PROFILE=debug`) installed with `apt-get install ./…deb` on this machine (as
//! root), used, checked by each file's own validator, and purged; the `.rpm` holds the same
//! files; `make install` puts the same files under a PREFIX and `make uninstall` takes them
//! all away again.
//!
//! One test installs and purges the package: the machine's /usr is shared by everything.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tokenwarden_e2e::desktop::{self, Session};
use tokenwarden_e2e::harness::LegacyAccount;
use tokenwarden_e2e::wait_until;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The one file `make package PROFILE=debug` left in `target/debug/bundle/KIND/`.
fn bundle(kind: &str, ext: &str) -> PathBuf {
    let dir = repo().join("target/debug/bundle").join(kind);
    let found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}: build the packages first with `make package PROFILE=debug` (make test does)",
                dir.display()
            )
        })
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    assert_eq!(found.len(), 1, "one .{ext} in {}: {found:?}", dir.display());
    found.into_iter().next().unwrap()
}

/// Runs a command to completion; panics naming it unless it exits 0. Returns stdout.
fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} exited {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command, returning (exit code, stdout + stderr).
fn try_run(program: &str, args: &[&str]) -> (i32, String) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn is_root() -> bool {
    run("id", &["-u"]).trim() == "0"
}

/// The files (not folders) a package holds, as absolute paths, sorted.
fn deb_files(deb: &Path) -> Vec<String> {
    let out = run("dpkg-deb", &["-c", deb.to_str().unwrap()]);
    let mut files: Vec<String> = out
        .lines()
        .filter(|l| !l.starts_with('d'))
        .filter_map(|l| l.split_whitespace().last())
        .map(|p| format!("/{}", p.trim_start_matches("./")))
        .collect();
    files.sort();
    files
}

fn rpm_files(rpm: &Path) -> Vec<String> {
    let out = run("rpm", &["-qlp", rpm.to_str().unwrap()]);
    let mut files: Vec<String> = out.lines().map(str::to_owned).collect();
    files.sort();
    files
}

/// What every package ships, whatever else it holds.
const EXPECTED: &[&str] = &[
    "/usr/bin/tokenwarden",
    "/usr/bin/tokenwarden-app",
    "/usr/share/applications/tokenwarden.desktop",
    "/usr/share/metainfo/dev.tokenwarden.app.metainfo.xml",
    "/usr/lib/systemd/user/tokenwarden.service",
    "/usr/lib/tokenwarden/with-keyring",
    "/usr/share/bash-completion/completions/tokenwarden",
    "/usr/share/fish/vendor_completions.d/tokenwarden.fish",
    "/usr/share/man/man1/tokenwarden.1",
    "/usr/share/man/man1/tokenwarden-serve.1",
    "/usr/share/man/man1/tokenwarden-token.1",
    "/usr/share/man/man1/tokenwarden-api-key-create.1",
    "/usr/share/icons/hicolor/scalable/apps/tokenwarden.svg",
];

const ICON_SIZES: &[u32] = &[16, 24, 32, 48, 64, 128, 256, 512];

#[test]
fn the_rpm_holds_the_same_files_as_the_deb() {
    let deb = deb_files(&bundle("deb", "deb"));
    let rpm = rpm_files(&bundle("rpm", "rpm"));
    // Where each family keeps zsh completions and the license: the only two differences.
    let distro = |p: &String| {
        p.replace(
            "/usr/share/zsh/vendor-completions/",
            "/usr/share/zsh/site-functions/",
        )
        .replace(
            "/usr/share/doc/tokenwarden/copyright",
            "/usr/share/licenses/tokenwarden/LICENSE",
        )
    };
    let mut deb: Vec<String> = deb.iter().map(distro).collect();
    deb.sort();
    assert_eq!(rpm, deb, "the .rpm's files against the .deb's");
    for want in EXPECTED {
        assert!(
            deb.iter().any(|p| p == want),
            "{want} is in the packages: {deb:#?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deb_installs_works_validates_and_purges_cleanly() {
    assert!(
        is_root(),
        "this test installs the .deb with apt-get and must run as root (make test in CI does)"
    );
    // One install at a time on this machine, whichever checkout's tests run it.
    let machine = std::fs::File::create(std::env::temp_dir().join("tokenwarden-e2e-package.lock"))
        .expect("the package lock");
    tokio::task::block_in_place(|| machine.lock()).expect("lock the package lock");
    let deb = bundle("deb", "deb");
    let control = run("dpkg-deb", &["-f", deb.to_str().unwrap()]);
    for need in ["libwebkit2gtk-4.1-0", "libayatana-appindicator3-1"] {
        assert!(
            control
                .lines()
                .any(|l| l.starts_with("Depends:") && l.contains(need)),
            "Depends names {need}:\n{control}"
        );
    }
    assert!(
        control
            .lines()
            .any(|l| l.starts_with("Recommends:") && l.contains("gnome-keyring")),
        "a Secret Service is recommended:\n{control}"
    );
    let shipped = deb_files(&deb);

    // A user's data from before the package: it must survive the purge.
    let (fake, env, seeded) = LegacyAccount::new(|c| c.expires_in(3600))
        .connected(3600)
        .await;
    let _ = try_run(
        "apt-get",
        &[
            "-o",
            "DPkg::Lock::Timeout=300",
            "remove",
            "--purge",
            "-y",
            "tokenwarden",
        ],
    );
    run(
        "apt-get",
        &[
            "install",
            "-y",
            "--no-install-recommends",
            deb.to_str().unwrap(),
        ],
    );
    let installed = run("dpkg", &["-L", "tokenwarden"]);
    for want in EXPECTED {
        assert!(
            installed.lines().any(|l| l == *want),
            "{want} installed:\n{installed}"
        );
    }
    for size in ICON_SIZES {
        let icon = format!("/usr/share/icons/hicolor/{size}x{size}/apps/tokenwarden.png");
        assert!(Path::new(&icon).exists(), "{icon}");
        let png = std::fs::read(&icon).unwrap();
        assert_eq!(desktop::png_size(&png), Some((*size, *size)), "{icon}");
    }

    // Each file passes its own validator.
    let (code, said) = try_run(
        "desktop-file-validate",
        &["/usr/share/applications/tokenwarden.desktop"],
    );
    assert!(
        code == 0 && said.trim().is_empty(),
        "desktop-file-validate: {said}"
    );
    let (code, said) = try_run(
        "appstreamcli",
        &[
            "validate",
            "--no-net",
            "/usr/share/metainfo/dev.tokenwarden.app.metainfo.xml",
        ],
    );
    assert_eq!(code, 0, "appstreamcli validate: {said}");
    let (code, said) = try_run(
        "systemd-analyze",
        &["verify", "/usr/lib/systemd/user/tokenwarden.service"],
    );
    assert!(
        code == 0 && said.trim().is_empty(),
        "systemd-analyze verify: {said}"
    );
    let page = Command::new("man")
        .args(["tokenwarden"])
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .output()
        .expect("man");
    let page = String::from_utf8_lossy(&page.stdout);
    assert!(
        page.contains("tokenwarden - Keeps API access tokens fresh")
            && page.contains("tokenwarden-serve(1)"),
        "man tokenwarden renders:\n{page}"
    );
    let completed = run(
        "bash",
        &[
            "-c",
            "source /usr/share/bash-completion/completions/tokenwarden; \
             COMP_WORDS=(tokenwarden to); COMP_CWORD=1; COMP_LINE='tokenwarden to'; COMP_POINT=${#COMP_LINE}; \
             _tokenwarden tokenwarden to tokenwarden; echo \"${COMPREPLY[*]}\"",
        ],
    );
    assert_eq!(completed.trim(), "token", "bash completes `tokenwarden to`");

    // The installed CLI serves the fake provider's token, refreshing it when asked.
    let mut env = env;
    env.bin = Some(PathBuf::from("/usr/bin/tokenwarden"));
    assert_eq!(env.token("fb").await, seeded);
    env.run(&["refresh", "fb"], None).await.ok();
    let current = fake.lock().current_access_token().expect("a new token");
    assert_eq!(
        env.token("fb").await,
        current,
        "the installed binary refreshed"
    );

    // The installed tray app (`tokenwarden` with no command) draws its window and its tray item.
    {
        let session = Session::start().await;
        let mut app = env.spawn_app(&session.app_vars());
        app.wait_api().await;
        let pid = app.pid();
        assert_eq!(
            std::fs::read_link(format!("/proc/{pid}/exe")).ok(),
            Some(PathBuf::from("/usr/bin/tokenwarden-app")),
            "the tray app beside the installed CLI"
        );
        session.tray_item(pid).await;
        wait_until(
            Duration::from_secs(30),
            "the installed app shows its window",
            async || desktop::window_mapped(pid).await == Some(true),
        )
        .await;
        assert_eq!(app.stop().await.code, 0, "SIGTERM is a clean quit");
    }

    // Purged: none of its files left, the user's data and keychain untouched.
    let data_before = list_dir(&env.data_dir);
    run(
        "apt-get",
        &[
            "-o",
            "DPkg::Lock::Timeout=300",
            "remove",
            "--purge",
            "-y",
            "tokenwarden",
        ],
    );
    let left: Vec<&String> = shipped.iter().filter(|p| Path::new(p).exists()).collect();
    assert!(left.is_empty(), "purge left {left:?}");
    assert!(
        !Path::new("/usr/lib/tokenwarden").exists(),
        "its own folder is gone"
    );
    assert_eq!(
        list_dir(&env.data_dir),
        data_before,
        "the user's data dir is untouched"
    );
    env.bin = None;
    assert_eq!(
        env.token("fb").await,
        current,
        "the keychain still holds the token"
    );
}

fn list_dir(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// `make install` from the build at hand (PREFIX=/usr, staged under DESTDIR) puts the
/// packages' files in place, and `make uninstall` takes every one away again.
#[test]
fn make_install_and_uninstall_stage_the_same_files() {
    let stage = tempfile::tempdir().expect("temp dir");
    let destdir = stage.path().to_str().unwrap();
    let script = repo().join("packaging/install.sh");
    let out = Command::new(&script)
        .args(["install", destdir, "/usr"])
        .env("TW_BIN_DIR", repo().join("target/debug"))
        .output()
        .expect("install.sh");
    assert!(
        out.status.success(),
        "install: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in EXPECTED {
        let path = stage.path().join(want.trim_start_matches('/'));
        assert!(path.exists(), "{want} staged");
    }
    let unit = std::fs::read_to_string(
        stage
            .path()
            .join("usr/lib/systemd/user/tokenwarden.service"),
    )
    .unwrap();
    assert!(
        unit.contains("ExecStart=/usr/bin/tokenwarden serve"),
        "{unit}"
    );
    let out = Command::new(&script)
        .args(["uninstall", destdir, "/usr"])
        .output()
        .expect("install.sh");
    assert!(
        out.status.success(),
        "uninstall: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let left: Vec<PathBuf> = walk(stage.path());
    assert!(left.is_empty(), "uninstall left files: {left:?}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
