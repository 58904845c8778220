//! `tokenwarden kube-credential NAME`: the real `kubectl` runs it as its exec credential
//! plugin (the kubeconfig stanza the README shows) and calls an API server over TLS that lets
//! in only the provider's current token; and the ExecCredential it prints, field by field, in both
//! API versions.

use std::time::Duration;

use serde_json::Value;
use tokenwarden_e2e::fakes::oauth::OAuthFake;
use tokenwarden_e2e::harness::{bin_path, LegacyAccount};
use tokenwarden_e2e::python::script;
use tokenwarden_e2e::wait_until;

/// tests/kube/apiserver.py: HTTPS (client-go runs exec plugins for TLS servers only) with a
/// certificate of its own in `dir`, letting in the tokens the fake provider honours; every
/// request's token is appended to `dir/seen`. Returns its port.
async fn kube_api(dir: &std::path::Path, fake: &OAuthFake) -> (u16, tokio::process::Child) {
    let child = tokio::process::Command::new("python3")
        .arg(script("kube/apiserver.py"))
        .arg("--dir")
        .arg(dir)
        .args(["--check-url", &fake.url("/1/user/-/profile.json")])
        .kill_on_drop(true)
        .spawn()
        .expect("start the API server");
    let port_file = dir.join("port");
    wait_until(
        Duration::from_secs(30),
        "the API server listens",
        async || port_file.exists(),
    )
    .await;
    let port = std::fs::read_to_string(&port_file)
        .unwrap()
        .parse()
        .unwrap();
    (port, child)
}

/// kubectl's own client version, to pick the credential API it understands (v1 from 1.22).
fn kubectl_minor() -> u32 {
    let out = std::process::Command::new("kubectl")
        .args(["version", "--client", "-o", "json"])
        .output()
        .expect("kubectl is installed (make test installs it)");
    let v: Value = serde_json::from_slice(&out.stdout).expect("kubectl version JSON");
    v["clientVersion"]["minor"]
        .as_str()
        .and_then(|m| m.trim_end_matches('+').parse().ok())
        .expect("a minor version")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_calls_the_api_with_the_token_its_exec_plugin_got() {
    let (fake, env, token) = LegacyAccount::new(|c| c.expires_in(3600))
        .connected(3600)
        .await;
    let mut serve = env.spawn_serve();
    serve.wait_ready().await;
    let api_dir = tempfile::tempdir().unwrap();
    let (port, _api) = kube_api(api_dir.path(), &fake).await;
    let version = if kubectl_minor() >= 22 {
        "v1"
    } else {
        "v1beta1"
    };
    let interactive = if version == "v1" {
        "\n      interactiveMode: Never"
    } else {
        ""
    };
    let home = tempfile::tempdir().unwrap();
    let kubeconfig = home.path().join("config");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster:
    server: https://127.0.0.1:{port}
    certificate-authority: {ca}
users:
- name: tokenwarden
  user:
    exec:
      apiVersion: client.authentication.k8s.io/{version}
      command: {bin}
      args: [kube-credential, fb]{interactive}
contexts:
- name: fake
  context:
    cluster: fake
    user: tokenwarden
current-context: fake
",
            bin = bin_path().display(),
            ca = api_dir.path().join("cert.pem").display(),
        ),
    )
    .unwrap();
    let out = tokio::task::block_in_place(|| {
        std::process::Command::new("kubectl")
            .args([
                "--kubeconfig",
                kubeconfig.to_str().unwrap(),
                "get",
                "--raw",
                "/version",
            ])
            .envs(env.vars())
            .env("HOME", home.path())
            .output()
            .expect("run kubectl")
    });
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "kubectl failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("v1.32.0-tokenwarden-test"), "{stdout}");
    let seen = std::fs::read_to_string(api_dir.path().join("seen")).unwrap();
    assert_eq!(
        seen.lines().last(),
        Some(token.as_str()),
        "the API saw the account's current token: {seen}"
    );
    assert!(
        !stderr.contains(&token),
        "kubectl printed the token:\n{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exec_credential_has_the_fields_kubectl_reads_in_both_versions() {
    let (_fake, env, token) = LegacyAccount::new(|c| c.expires_in(3600))
        .connected(3600)
        .await;
    let expires_at = env.account("fb").await["expires_at"].clone();
    for (args, info, version) in [
        (
            vec!["kube-credential", "fb"],
            None,
            "client.authentication.k8s.io/v1",
        ),
        (
            vec!["kube-credential", "fb", "--api-version", "v1beta1"],
            None,
            "client.authentication.k8s.io/v1beta1",
        ),
        (
            vec!["kube-credential", "fb"],
            Some(
                r#"{"apiVersion":"client.authentication.k8s.io/v1beta1","kind":"ExecCredential","spec":{"interactive":false}}"#,
            ),
            "client.authentication.k8s.io/v1beta1",
        ),
    ] {
        let mut cmd = tokio::process::Command::from(env.command(&args));
        if let Some(info) = info {
            cmd.env("KUBERNETES_EXEC_INFO", info);
        }
        let out = cmd.output().await.unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let credential: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
        assert_eq!(credential["apiVersion"], version, "{args:?} {info:?}");
        assert_eq!(credential["kind"], "ExecCredential");
        assert_eq!(credential["status"]["token"], token.as_str());
        assert_eq!(credential["status"]["expirationTimestamp"], expires_at);
        assert_eq!(
            credential["status"].as_object().unwrap().len(),
            2,
            "nothing kubectl does not read: {credential}"
        );
    }
    let wrong = env
        .run(
            &["kube-credential", "fb", "--api-version", "v1alpha1"],
            None,
        )
        .await;
    assert_eq!(wrong.code, 1);
    assert!(
        wrong.stderr.contains("v1alpha1") && wrong.stderr.contains("v1beta1"),
        "{wrong}"
    );
}
