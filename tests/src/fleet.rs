//! Fleets of `serve` hosts for the fleet tests: each host has its own data dir, API port and
//! keychain service, and only the [`RedisServer`] is shared. [`rotating_fleet`] is where most
//! of them start: legacy-Fitbit accounts (single-use refresh tokens) connected through host 1.

use crate::fakes::oauth::{OAuthConfig, OAuthFake};
use crate::harness::free_port;
use crate::redis::RedisServer;
use crate::{Api, Env, Serve};

/// `[refresh]` lines of every fleet host: quick retries, and refreshes a second apart.
pub const REFRESH: &str = "retry_initial = \"1s\"\nmin_interval = \"1s\"";

pub struct Host {
    /// `h1`, `h2`…: its `[store] host`, which its leases name.
    pub name: String,
    pub env: Env,
    pub serve: Serve,
    pub api: Api,
}

pub async fn start_host(name: String, env: Env) -> Host {
    let label = format!("fleet-{:08x}", rand::random::<u32>());
    let key = env.create_api_key(&label).await;
    let (serve, api) = env.serve_api(&key).await;
    Host {
        name,
        env,
        serve,
        api,
    }
}

pub async fn start_hosts(envs: Vec<Env>) -> Vec<Host> {
    let mut hosts = Vec::new();
    for (i, env) in envs.into_iter().enumerate() {
        hosts.push(start_host(format!("h{}", i + 1), env).await);
    }
    hosts
}

/// What a rotating fleet is made of.
pub struct Rotating {
    /// How many hosts.
    pub hosts: usize,
    /// Legacy-Fitbit accounts, each connected through host 1 before any host starts.
    pub accounts: Vec<&'static str>,
    /// More `[refresh]` lines for every host.
    pub refresh: &'static str,
}

impl Default for Rotating {
    fn default() -> Self {
        Self {
            hosts: 3,
            accounts: vec!["fb"],
            refresh: "",
        }
    }
}

/// A fleet of legacy-Fitbit hosts on `redis` (3 s leases), every account connected through
/// host 1, every host serving the connected token.
pub async fn rotating_fleet(
    redis: &RedisServer,
    shape: Rotating,
    configure: impl FnOnce(OAuthConfig) -> OAuthConfig,
) -> (OAuthFake, Vec<Host>) {
    let redirect = format!("http://127.0.0.1:{}/callback", free_port());
    let fake = OAuthFake::start(configure(OAuthConfig::fitbit_legacy(&redirect))).await;
    let key = redis.new_key().await;
    let accounts: String = shape
        .accounts
        .iter()
        .map(|name| {
            fake.account_toml(
                name,
                "fitbit-legacy",
                &format!("redirect_uri = \"{redirect}\"\nrefresh_before = \"10s\""),
            )
        })
        .collect();
    let refresh = format!("{REFRESH}\n{}", shape.refresh);
    let envs: Vec<Env> = (1..=shape.hosts)
        .map(|i| redis.host(&format!("h{i}"), &key, &refresh, &accounts))
        .collect();
    let secret = fake.lock().config.client_secret.clone();
    for name in &shape.accounts {
        envs[0].set_secret(name, &secret).await;
        envs[0].connect(name).await;
    }
    let hosts = start_hosts(envs).await;
    for h in &hosts {
        for name in &shape.accounts {
            let token = h.api.token(name).await;
            let left = fake.lock().access_token_left(&token);
            assert!(
                left.is_some_and(|left| !left.is_zero()),
                "{} serves the connected token of {name}",
                h.name
            );
        }
    }
    (fake, hosts)
}
