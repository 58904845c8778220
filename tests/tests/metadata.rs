//! `[metadata]`: Google's own auth library (google-auth, unchanged) takes an account's token
//! from Tokenwarden's GCE-style metadata server and sees it refreshed; the server answers only
//! its service-account paths, only with `Metadata-Flavor: Google`, never a forwarded request,
//! and never a process of another user.

use std::process::Stdio;

use serde_json::Value;
use tokenwarden_e2e::fakes::oauth::OAuthFake;
use tokenwarden_e2e::harness::{free_port, LegacyAccount};
use tokenwarden_e2e::local::running_as_root;
use tokenwarden_e2e::python::{python, script};
use tokenwarden_e2e::{Env, Serve};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const TOKEN_PATH: &str = "/computeMetadata/v1/instance/service-accounts/default/token";

/// Account `fb` connected, `[metadata]` serving it on a port of its own, the engine running.
async fn metadata_server(extra: &str) -> (OAuthFake, Env, Serve, String) {
    let (fake, env, _token) = LegacyAccount::new(|c| c.expires_in(3600))
        .connected(3600)
        .await;
    let listen = format!("127.0.0.1:{}", free_port());
    let config = std::fs::read_to_string(&env.config_path).unwrap();
    env.write_config(&format!(
        "{config}\n[metadata]\nlisten = \"{listen}\"\naccount = \"fb\"\n{extra}\n"
    ));
    let mut serve = env.spawn_serve();
    serve.wait_ready().await;
    (fake, env, serve, listen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_auth_gets_the_accounts_token_and_then_the_refreshed_one() {
    let (fake, env, serve, listen) = metadata_server("email = \"me@example.com\"").await;
    let home = tempfile::tempdir().unwrap();
    let mut client = tokio::process::Command::new(python())
        .arg(script("metadata/google_auth_client.py"))
        .env("GCE_METADATA_HOST", &listen)
        .env("GCE_METADATA_IP", &listen)
        .env("HOME", home.path())
        .env("CLOUDSDK_CONFIG", home.path())
        .env_remove("GOOGLE_APPLICATION_CREDENTIALS")
        .env_remove("GOOGLE_CLOUD_PROJECT")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the google-auth client");
    let mut ask = client.stdin.take().unwrap();
    let mut answers = BufReader::new(client.stdout.take().unwrap()).lines();
    let mut next = async || -> Value {
        ask.write_all(b"refresh\n").await.unwrap();
        let line = tokio::time::timeout(std::time::Duration::from_secs(30), answers.next_line())
            .await
            .expect("google-auth answers within 30 s")
            .unwrap()
            .expect("a line from google-auth (its stderr says why not)");
        serde_json::from_str(&line).unwrap()
    };
    let first = next().await;
    let current = fake.lock().current_access_token().unwrap();
    assert_eq!(
        first["kind"], "google.auth.compute_engine.credentials.Credentials",
        "{first}"
    );
    assert_eq!(first["token"], current.as_str());
    assert_eq!(first["email"], "me@example.com");
    env.run(&["refresh", "fb"], None).await.ok();
    let refreshed = fake.lock().current_access_token().unwrap();
    assert_ne!(refreshed, current);
    let second = next().await;
    assert_eq!(
        second["token"],
        refreshed.as_str(),
        "google-auth sees the new token"
    );
    let logged = serve.stop().await.stderr;
    for token in [&current, &refreshed] {
        assert!(
            !logged.contains(token.as_str()),
            "serve logged a token:\n{logged}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_service_account_paths_with_the_header_and_no_forwarding() {
    let (fake, _env, _serve, listen) = metadata_server("").await;
    let http = reqwest::Client::new();
    let get = |path: &str, headers: &[(&str, &str)]| {
        let mut request = http.get(format!("http://{listen}{path}"));
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        async move {
            let r = request.send().await.unwrap();
            let flavor = r.headers().get("metadata-flavor").cloned();
            (r.status().as_u16(), flavor, r.text().await.unwrap())
        }
    };
    let google = [("Metadata-Flavor", "Google")];
    let (status, flavor, body) = get(TOKEN_PATH, &google).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(flavor.unwrap(), "Google");
    let token: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        token["access_token"],
        fake.lock().current_access_token().unwrap().as_str()
    );
    assert_eq!(token["token_type"], "Bearer");
    let left = token["expires_in"].as_u64().unwrap();
    assert!((3000..=3600).contains(&left), "{token}");
    let (status, _, email) = get(
        "/computeMetadata/v1/instance/service-accounts/default/email",
        &google,
    )
    .await;
    assert_eq!((status, email.as_str()), (200, "fb@tokenwarden.invalid"));
    for (path, headers, expected) in [
        (TOKEN_PATH, &[][..], 403),
        (TOKEN_PATH, &[("Metadata-Flavor", "google")][..], 403),
        (
            TOKEN_PATH,
            &[
                ("Metadata-Flavor", "Google"),
                ("X-Forwarded-For", "10.0.0.1"),
            ][..],
            403,
        ),
        ("/computeMetadata/v1/project/project-id", &google[..], 404),
        (
            "/computeMetadata/v1/instance/service-accounts/someone@example.com/token",
            &google[..],
            404,
        ),
        ("/v1/accounts", &google[..], 404),
    ] {
        let (status, _, body) = get(path, headers).await;
        assert_eq!(status, expected, "{path} {headers:?}: {body}");
        assert!(!body.contains("access_token"), "{path}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_user_gets_no_token() {
    if !running_as_root() {
        eprintln!("SKIPPED: acting as another user (nobody) needs root");
        return;
    }
    let (fake, _env, _serve, listen) = metadata_server("").await;
    let url = format!("http://{listen}{TOKEN_PATH}");
    let out = tokio::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .args([
            "curl",
            "-sS",
            "-H",
            "Metadata-Flavor: Google",
            "-w",
            "\n%{http_code}",
            &url,
        ])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.ends_with("\n403"), "nobody is refused: {text}");
    let token = fake.lock().current_access_token().unwrap();
    assert!(!text.contains(&token), "{text}");
    // The same request as ourselves is answered: the refusal is about the user.
    let mine = tokio::process::Command::new("curl")
        .args([
            "-sS",
            "-H",
            "Metadata-Flavor: Google",
            "-w",
            "\n%{http_code}",
            &url,
        ])
        .output()
        .await
        .unwrap();
    let mine = String::from_utf8_lossy(&mine.stdout);
    assert!(mine.ends_with("\n200") && mine.contains(&token), "{mine}");
}
