//! `tokenwarden git-credential`: the real `git` clones and pushes over smart HTTP from a
//! `git http-backend` that lets in only the provider's current token, with Tokenwarden as its
//! credential helper, configured the way the README says. A token the host refuses is
//! reported by git's `erase` (one refresh), and the next git command gets the new one.

use std::path::{Path, PathBuf};
use std::process::Output as ProcessOutput;

use tokenwarden_e2e::fakes::git::GitServer;
use tokenwarden_e2e::fakes::oauth::OAuthFake;
use tokenwarden_e2e::harness::{bin_path, free_port, LegacyAccount};
use tokenwarden_e2e::{Env, Serve};

struct Forge {
    fake: OAuthFake,
    env: Env,
    serve: Serve,
    server: GitServer,
    /// HOME and GIT_CONFIG_GLOBAL of every git command, and the clones.
    home: tempfile::TempDir,
    _repos: tempfile::TempDir,
}

/// Account `fb` with `git_hosts` naming the git server; a bare repository `origin.git` with
/// one commit; the engine running.
async fn forge(extra: &str) -> Forge {
    let repos = tempfile::tempdir().expect("repos dir");
    let server = GitServer::start(repos.path()).await;
    let (fake, env, _access) = LegacyAccount::new(|c| c.expires_in(3600))
        .extra(&format!("git_hosts = [\"{}\"]\n{extra}", server.host()))
        .connected(3600)
        .await;
    server.trust(fake.token_check());
    let home = tempfile::tempdir().expect("home");
    // The README's line, for this host.
    let helper = format!("!'{}' git-credential", bin_path().display());
    std::fs::write(
        home.path().join(".gitconfig"),
        format!(
            "[user]\n\tname = Test\n\temail = test@example.com\n[init]\n\tdefaultBranch = main\n[credential \"http://{}\"]\n\thelper = \"{}\"\n",
            server.host(),
            helper.replace('\\', "\\\\").replace('"', "\\\"")
        ),
    )
    .expect("write .gitconfig");
    let mut serve = env.spawn_serve();
    serve.wait_ready().await;
    let forge = Forge {
        fake,
        serve,
        env,
        server,
        home,
        _repos: repos,
    };
    let bare = forge.server.root().join("origin.git");
    forge
        .git(
            forge.home.path(),
            &["init", "--bare", bare.to_str().unwrap()],
        )
        .ok();
    let seed = forge.home.path().join("seed");
    forge
        .git(forge.home.path(), &["init", seed.to_str().unwrap()])
        .ok();
    std::fs::write(seed.join("README"), "first\n").unwrap();
    forge.git(&seed, &["add", "README"]).ok();
    forge.git(&seed, &["commit", "-m", "first"]).ok();
    forge
        .git(&seed, &["push", bare.to_str().unwrap(), "main"])
        .ok();
    forge
}

struct Git(ProcessOutput, String);

impl Git {
    fn ok(&self) -> &Self {
        assert!(
            self.0.status.success(),
            "{} failed:\n{}",
            self.1,
            self.text()
        );
        self
    }
    fn text(&self) -> String {
        format!(
            "{}{}",
            String::from_utf8_lossy(&self.0.stdout),
            String::from_utf8_lossy(&self.0.stderr)
        )
    }
}

impl Forge {
    /// `git args` in `dir`, with the test's global config and Tokenwarden's environment (the
    /// helper inherits it), never prompting.
    fn git(&self, dir: &Path, args: &[&str]) -> Git {
        let out = std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .envs(self.env.vars())
            .env("HOME", self.home.path())
            .env("GIT_CONFIG_GLOBAL", self.home.path().join(".gitconfig"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env_remove("GIT_ASKPASS")
            .env_remove("SSH_ASKPASS")
            .output()
            .expect("run git");
        Git(out, format!("git {}", args.join(" ")))
    }

    fn clone(&self, name: &str) -> PathBuf {
        let dir = self.home.path().join(name);
        self.git(
            self.home.path(),
            &[
                "clone",
                &self.server.url("origin.git"),
                dir.to_str().unwrap(),
            ],
        )
        .ok();
        dir
    }

    fn current(&self) -> String {
        self.fake.lock().current_access_token().expect("a token")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_clones_and_pushes_with_the_current_token() {
    let forge = forge("").await;
    let token = forge.current();
    let work = tokio::task::block_in_place(|| forge.clone("work"));
    assert_eq!(
        std::fs::read_to_string(work.join("README")).unwrap(),
        "first\n"
    );
    let attempts = forge.server.attempts();
    assert_eq!(
        attempts.first(),
        Some(&None),
        "git asks without credentials first: {attempts:?}"
    );
    assert!(
        attempts.contains(&Some(("oauth2".into(), true))),
        "then with the helper's username and an accepted token: {attempts:?}"
    );
    std::fs::write(work.join("README"), "second\n").unwrap();
    let pushed = tokio::task::block_in_place(|| {
        forge.git(&work, &["commit", "-am", "second"]).ok();
        let out = forge.git(&work, &["push", "origin", "main"]);
        out.ok();
        out.text()
    });
    let bare = forge.server.root().join("origin.git");
    let head = tokio::task::block_in_place(|| {
        forge
            .git(&bare, &["log", "--format=%s", "-1", "main"])
            .ok()
            .text()
    });
    assert_eq!(head.trim(), "second", "the push reached the server");
    assert!(
        attempts
            .iter()
            .all(|a| a.as_ref().is_none_or(|(_, ok)| *ok)),
        "no refused password: {attempts:?}"
    );
    // The token is nowhere git keeps things or prints them.
    let config = std::fs::read_to_string(work.join(".git/config")).unwrap();
    for (what, text) in [
        ("push output", &pushed),
        ("the clone's .git/config", &config),
    ] {
        assert!(!text.contains(&token), "{what} holds the token:\n{text}");
    }
    assert_eq!(
        forge.fake.lock().refresh_grants,
        0,
        "a valid token: no refresh"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_is_erased_refreshed_once_and_the_next_command_works() {
    let forge = forge("").await;
    let work = tokio::task::block_in_place(|| forge.clone("work"));
    let old = forge.current();
    forge.fake.kill_access_token();
    let failed = tokio::task::block_in_place(|| forge.git(&work, &["fetch", "origin"]));
    assert!(
        !failed.0.status.success(),
        "the stale token fails this command"
    );
    assert!(
        failed.text().contains("Authentication failed"),
        "{}",
        failed.text()
    );
    assert_eq!(
        forge.fake.lock().refresh_grants,
        1,
        "git's erase reported the refused token: one refresh"
    );
    let new = forge.current();
    assert_ne!(new, old);
    tokio::task::block_in_place(|| {
        forge.git(&work, &["fetch", "origin"]).ok();
    });
    assert_eq!(
        forge.server.attempts().last(),
        Some(&Some(("oauth2".into(), true))),
        "the next command is let in with the new token"
    );
    // An erase of the old token again (another clone that still held it) refreshes nothing.
    let erase = format!(
        "protocol=http\nhost={}\nusername=oauth2\npassword={old}\n\n",
        forge.server.host()
    );
    forge
        .env
        .run(&["git-credential", "erase"], Some(&erase))
        .await
        .ok();
    assert_eq!(
        forge.fake.lock().refresh_grants,
        1,
        "an old token refreshes nothing"
    );
    assert_eq!(forge.current(), new);
    let logged = forge.serve.stop().await.stderr;
    for token in [&old, &new] {
        assert!(
            !logged.contains(token.as_str()),
            "serve logged a token:\n{logged}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_answers_only_its_hosts_with_the_configured_username_and_expiry() {
    let forge = forge("git_username = \"x-access-token\"").await;
    let ask = |host: &str| format!("protocol=http\nhost={host}\n\n");
    let mine = forge
        .env
        .run(&["git-credential", "get"], Some(&ask(&forge.server.host())))
        .await
        .ok();
    let token = forge.current();
    let expected_expiry = {
        let list = forge.env.account("fb").await;
        list["expires_at"].as_str().unwrap().to_owned()
    };
    let lines: Vec<&str> = mine.stdout.lines().collect();
    assert_eq!(lines[0], "username=x-access-token");
    assert_eq!(lines[1], format!("password={token}"));
    let expiry: i64 = lines[2]
        .strip_prefix("password_expiry_utc=")
        .expect("an expiry")
        .parse()
        .unwrap();
    let at = time::OffsetDateTime::from_unix_timestamp(expiry).unwrap();
    assert_eq!(
        at.format(&time::format_description::well_known::Rfc3339)
            .unwrap(),
        expected_expiry
    );
    // Another host, or not https/http: nothing, so that git asks its next helper.
    let other = format!("127.0.0.1:{}", free_port());
    for input in [
        ask(&other),
        format!("protocol=ssh\nhost={}\n\n", forge.server.host()),
    ] {
        let out = forge
            .env
            .run(&["git-credential", "get"], Some(&input))
            .await
            .ok();
        assert_eq!(out.stdout, "", "{input:?}");
    }
    // store has nothing to keep.
    let out = forge
        .env
        .run(
            &["git-credential", "store"],
            Some(&format!(
                "protocol=http\nhost={}\nusername=u\npassword=p\n\n",
                forge.server.host()
            )),
        )
        .await
        .ok();
    assert_eq!(out.stdout, "");
}
