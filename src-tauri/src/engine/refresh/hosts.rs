//! Refreshes in flight at once against one provider host: a fleet of accounts on one token
//! endpoint (ten thousand `http` accounts, or every WeChat appid of a team) must not open
//! ten thousand connections to it at once. One semaphore per host, made on first use.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Default)]
pub(crate) struct HostLimits {
    /// Per host: the limit its semaphore was made with, and the semaphore.
    gates: Mutex<HashMap<String, (usize, Arc<Semaphore>)>>,
}

impl HostLimits {
    /// Waits for a turn at `host`, at most `limit` at once. A changed limit (a config
    /// reload) takes effect for the next callers; those already in keep their turn.
    pub async fn turn(&self, host: &str, limit: usize) -> Option<OwnedSemaphorePermit> {
        let gate = {
            let mut gates = self.gates.lock().expect("poisoned");
            match gates.get(host) {
                Some((made_with, gate)) if *made_with == limit => gate.clone(),
                _ => {
                    let gate = Arc::new(Semaphore::new(limit));
                    gates.insert(host.to_owned(), (limit, gate.clone()));
                    gate
                }
            }
        };
        gate.acquire_owned().await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_host_lets_in_at_most_its_limit_and_other_hosts_are_not_held_up() {
        let limits = HostLimits::default();
        let a1 = limits.turn("a:443", 2).await.unwrap();
        let _a2 = limits.turn("a:443", 2).await.unwrap();
        let third = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            limits.turn("a:443", 2),
        );
        assert!(
            third.await.is_err(),
            "a third turn at a full host must wait"
        );
        assert!(limits.turn("b:443", 2).await.is_some());
        drop(a1);
        assert!(limits.turn("a:443", 2).await.is_some());
    }
}
