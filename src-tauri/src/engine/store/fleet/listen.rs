//! Hears the other hosts' writes on the fleet's channel, on a thread of its own (a
//! subscribed connection can do nothing else). After a gap (Redis restarted, the network
//! away) it says so, because messages published meanwhile are lost: the engine then
//! re-reads every account.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;

use super::link::Link;
use crate::engine::names::AccountName;

/// How often a quiet subscription looks at whether the fleet was dropped.
const TICK: Duration = Duration::from_millis(500);
const RETRY: Duration = Duration::from_secs(1);
/// Quiet ticks between pings of the subscription (5 s).
const PING_EVERY: u32 = 10;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Heard {
    /// Another host wrote this account's token set.
    Changed(AccountName),
    /// The subscription is back after a gap: anything may have changed.
    Resubscribed,
}

/// What a write publishes: the entry written and who wrote it.
pub(super) fn message(entry: &str, me: &str) -> String {
    format!("{entry}\t{me}")
}

fn heard(payload: &str, me: &str) -> Option<Heard> {
    let (entry, writer) = payload.split_once('\t')?;
    if writer == me {
        return None;
    }
    let name = entry.strip_prefix("tokens:")?;
    name.parse().ok().map(Heard::Changed)
}

/// What the subscription shares with the coordinator: what it heard, whether it is up,
/// and when to stop.
pub(super) struct Hearing {
    pub heard: broadcast::Sender<Heard>,
    /// Whether the subscription is up (for `/metrics`).
    pub subscribed: AtomicBool,
    pub stop: AtomicBool,
}

impl Hearing {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            heard: broadcast::channel(4096).0,
            subscribed: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        })
    }
}

/// Hears on `link`'s channel until told to stop or `hearing` is dropped.
pub(super) fn start(link: &Arc<Link>, hearing: &Arc<Hearing>) {
    let (link, weak) = (link.clone(), Arc::downgrade(hearing));
    let spawned = std::thread::Builder::new()
        .name("fleet-listen".into())
        .spawn(move || {
            let mut first = true;
            loop {
                let Some(hearing) = weak.upgrade() else { return };
                if hearing.stop.load(Ordering::SeqCst) {
                    return;
                }
                match subscribe(&link, &hearing, &mut first) {
                    Ok(()) => return,
                    Err(e) => {
                        tracing::warn!(error = %link.fail(&e), "not hearing the other hosts; subscribing again");
                    }
                }
                drop(hearing);
                std::thread::sleep(RETRY);
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the thread that hears the other hosts");
    }
}

/// Subscribes and forwards messages until the fleet stops (`Ok`) or the connection fails.
fn subscribe(link: &Link, fleet: &Hearing, first: &mut bool) -> redis::RedisResult<()> {
    let stop = &fleet.stop;
    let mut conn = link
        .client
        .get_connection_with_timeout(super::link::CONNECT_TIMEOUT)?;
    let mut pubsub = conn.as_pubsub();
    pubsub.subscribe(link.channel())?;
    pubsub.set_read_timeout(Some(TICK))?;
    fleet.subscribed.store(true, Ordering::SeqCst);
    if !std::mem::take(first) {
        let _ = fleet.heard.send(Heard::Resubscribed);
    }
    let mut quiet = 0;
    while !stop.load(Ordering::SeqCst) {
        // A peer that vanished without closing (a network gone) shows only by not answering.
        if quiet >= PING_EVERY {
            quiet = 0;
            if let Err(e) = pubsub.ping::<()>() {
                fleet.subscribed.store(false, Ordering::SeqCst);
                return Err(e);
            }
        }
        match pubsub.get_message() {
            Ok(msg) => {
                let payload: String = msg.get_payload().unwrap_or_default();
                if let Some(h) = heard(&payload, &link.me) {
                    let _ = fleet.heard.send(h);
                }
            }
            Err(e) if e.is_timeout() => quiet += 1,
            Err(e) => {
                fleet.subscribed.store(false, Ordering::SeqCst);
                return Err(e);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_hears_others_token_writes_only() {
        let me = "a/1/00000001";
        let m = message("tokens:wx", "b/2/00000002");
        assert_eq!(heard(&m, me), Some(Heard::Changed("wx".parse().unwrap())));
        assert_eq!(heard(&message("tokens:wx", me), me), None);
        assert_eq!(heard(&message("client-secret:wx", "b"), me), None);
        assert_eq!(heard("garbage", me), None);
        assert_eq!(heard("tokens:bad name\tb", me), None);
    }
}
