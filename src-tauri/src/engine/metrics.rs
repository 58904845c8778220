//! Counters for `/metrics`: refreshes by account and outcome, refresh latency, API requests
//! by route and status, and seconds until each token expires (set when scraped). The
//! registry lives in the engine so that every refresh is counted, whoever started it;
//! encoding to text is the API's business.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefreshLabels {
    pub account: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AccountLabels {
    pub account: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StoreLabels {
    /// The shared store's URL as the config has it (never with a password).
    pub url: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// One of the API's fixed route patterns.
    pub route: &'static str,
    pub status: u16,
}

fn latency_histogram() -> Histogram {
    // 5 ms … ~20 s: token endpoints answer in tens of ms to a few seconds.
    Histogram::new(exponential_buckets(0.005, 2.0, 13))
}

pub struct Metrics {
    pub registry: Registry,
    pub refreshes: Family<RefreshLabels, Counter>,
    pub refresh_seconds: Family<AccountLabels, Histogram, fn() -> Histogram>,
    pub api_requests: Family<RequestLabels, Counter>,
    pub expiry_seconds: Family<AccountLabels, Gauge<f64, AtomicU64>>,
    /// How long after its deadline a scheduled refresh reached its provider (the queue and
    /// the per-host limit included).
    pub lateness_seconds: Histogram,
    /// Writes of secrets to the store (keychain items or sealed rows) by this engine.
    pub secret_writes: Counter,
    /// From a provider's answer arriving to its new token set being durable: the window in
    /// which a crash loses a rotated refresh token.
    pub answer_durable_seconds: Histogram,
    /// Today's WeChat token fetches against the account's appid allowance, and the allowance.
    pub wechat_fetches: Family<AccountLabels, Gauge>,
    /// Seconds until the refresh token stops working, where that is known.
    pub refresh_token_expiry_seconds: Family<AccountLabels, Gauge<f64, AtomicU64>>,
    pub wechat_fetch_limit: Family<AccountLabels, Gauge>,
    /// 1 while this host hears the fleet's Redis, 0 while it does not (a fleet only).
    pub shared_store_up: Family<StoreLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let refreshes = Family::<RefreshLabels, Counter>::default();
        let refresh_seconds =
            Family::<AccountLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram as fn() -> Histogram,
            );
        let api_requests = Family::<RequestLabels, Counter>::default();
        let expiry_seconds = Family::<AccountLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "tokenwarden_refreshes",
            "Refresh attempts by account and outcome",
            refreshes.clone(),
        );
        registry.register(
            "tokenwarden_refresh_duration_seconds",
            "Time a refresh took at the provider",
            refresh_seconds.clone(),
        );
        registry.register(
            "tokenwarden_api_requests",
            "Local API requests by route and status",
            api_requests.clone(),
        );
        registry.register(
            "tokenwarden_token_expiry_seconds",
            "Seconds until the current token expires (0 when none or expired)",
            expiry_seconds.clone(),
        );
        // 1 ms … ~33 s.
        let lateness_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        registry.register(
            "tokenwarden_refresh_lateness_seconds",
            "Time from a scheduled refresh's deadline until its request went to the provider",
            lateness_seconds.clone(),
        );
        let secret_writes = Counter::default();
        registry.register(
            "tokenwarden_secret_writes",
            "Secrets written to the store (keychain items or sealed rows)",
            secret_writes.clone(),
        );
        // 0.1 ms … ~6.5 s: an fsync'd local write takes well under 10 ms, a keychain write
        // tens of ms to seconds.
        let answer_durable_seconds = Histogram::new(exponential_buckets(0.0001, 2.0, 17));
        registry.register(
            "tokenwarden_answer_durable_seconds",
            "Time from a provider's answer arriving to its new token set being durable (the window in which a crash loses it)",
            answer_durable_seconds.clone(),
        );
        let refresh_token_expiry_seconds =
            Family::<AccountLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "tokenwarden_refresh_token_expiry_seconds",
            "Seconds until the refresh token stops working and the account must be reconnected (only where known)",
            refresh_token_expiry_seconds.clone(),
        );
        let wechat_fetches = Family::<AccountLabels, Gauge>::default();
        registry.register(
            "tokenwarden_wechat_fetches_today",
            "WeChat token fetches today (Beijing time) against the account's appid allowance",
            wechat_fetches.clone(),
        );
        let wechat_fetch_limit = Family::<AccountLabels, Gauge>::default();
        registry.register(
            "tokenwarden_wechat_fetch_limit",
            "WeChat's daily allowance of token fetches for the account's appid",
            wechat_fetch_limit.clone(),
        );
        let shared_store_up = Family::<StoreLabels, Gauge>::default();
        registry.register(
            "tokenwarden_shared_store_up",
            "1 while this host hears the Redis its fleet shares ([store] kind = \"redis\"), else 0",
            shared_store_up.clone(),
        );
        Self {
            registry,
            shared_store_up,
            refreshes,
            refresh_seconds,
            api_requests,
            expiry_seconds,
            lateness_seconds,
            secret_writes,
            answer_durable_seconds,
            wechat_fetches,
            wechat_fetch_limit,
            refresh_token_expiry_seconds,
        }
    }
}

impl Metrics {
    pub fn refresh(&self, account: &str, outcome: &str, seconds: f64) {
        self.refreshes
            .get_or_create(&RefreshLabels {
                account: account.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
        self.refresh_seconds
            .get_or_create(&AccountLabels {
                account: account.to_owned(),
            })
            .observe(seconds);
    }

    pub fn api_request(&self, route: &'static str, status: u16) {
        self.api_requests
            .get_or_create(&RequestLabels { route, status })
            .inc();
    }
}
