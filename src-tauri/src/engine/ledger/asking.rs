//! Ask first (`[api] ask_first`): before a program not yet known takes an account's token,
//! the user is asked (in the tray app's window) and the request waits for the answer, up to
//! `[api] ask_timeout`, then is refused. Known are the programs `[api.allow]` names, those
//! the user allowed "always" (per executable and account, in the history database, until
//! revoked), and a process allowed "once" or denied (while it runs, by pid and executable).
//! Where nobody answers (`serve`), an unknown program is refused at once.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::engine::names::{AccountName, Deadline};
use crate::engine::system::processes::Process;

/// Asks waiting at once; past this, new ones are refused (a loop of new processes must not
/// pile up prompts).
const MAX_PENDING: usize = 64;
/// Processes remembered as allowed once or denied; past this the memory starts over.
const MAX_THIS_RUN: usize = 10_000;

/// A request held until the user answers.
#[derive(Clone, Debug, Serialize)]
pub struct Ask {
    pub id: u64,
    pub account: AccountName,
    /// The program asking (for our own CLI, the program that ran it).
    pub program: Process,
    pub asked_at: Deadline,
    /// Refused unless answered by then.
    pub expires_at: Deadline,
    /// "Always" needs the executable's path, which the kernel did not give for this one.
    pub can_remember: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    /// This process, while it runs.
    Once,
    /// This executable, until revoked.
    Always,
    Deny,
}

/// A program allowed "always" for an account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Approval {
    pub exe: String,
    pub account: AccountName,
    pub since: Deadline,
}

/// Why a program did not get a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    Denied,
    NoAnswer { seconds: u64 },
    NobodyToAsk,
    TooManyAsks,
}

/// (pid, executable, account): a pid alone could be reused by another program.
type ThisProcess = (u32, Option<String>, AccountName);

struct Pending {
    ask: Ask,
    /// The processes waiting on it (several of one program join one ask).
    waiters: Vec<(Option<u32>, oneshot::Sender<bool>)>,
}

#[derive(Default)]
pub struct Asks {
    /// Executable → accounts it may take without asking.
    always: RwLock<HashMap<String, HashSet<AccountName>>>,
    /// A process and account → allowed once (true) or denied (false).
    this_run: RwLock<HashMap<ThisProcess, bool>>,
    pending: Mutex<Vec<Pending>>,
    next_id: AtomicU64,
    /// A front end shows asks and answers them (the tray app).
    answered: AtomicBool,
}

impl Asks {
    pub fn new(approvals: Vec<Approval>) -> Self {
        let asks = Self::default();
        for a in approvals {
            asks.remember(&a.exe, &a.account);
        }
        asks
    }

    pub fn answered_here(&self) {
        self.answered.store(true, Ordering::Relaxed);
    }

    pub fn has_answerer(&self) -> bool {
        self.answered.load(Ordering::Relaxed)
    }

    pub fn remember(&self, exe: &str, account: &AccountName) {
        self.always
            .write()
            .expect("poisoned")
            .entry(exe.to_owned())
            .or_default()
            .insert(account.clone());
    }

    /// Forgets "always" and what this run remembers of the executable for the account.
    pub fn forget(&self, exe: &str, account: &AccountName) {
        if let Some(accounts) = self.always.write().expect("poisoned").get_mut(exe) {
            accounts.remove(account);
        }
        self.this_run
            .write()
            .expect("poisoned")
            .retain(|(_, e, a), _| !(e.as_deref() == Some(exe) && a == account));
    }

    /// What is known of `program` and `account` without asking: allowed, denied, or nothing.
    pub fn known(&self, account: &AccountName, program: &Process) -> Option<bool> {
        if let Some(exe) = &program.exe {
            let always = self.always.read().expect("poisoned");
            if always.get(exe).is_some_and(|a| a.contains(account)) {
                return Some(true);
            }
        }
        let pid = program.pid?;
        self.this_run
            .read()
            .expect("poisoned")
            .get(&(pid, program.exe.clone(), account.clone()))
            .copied()
    }

    /// Joins the ask already pending for this program and account, or opens one. Returns
    /// its id, whether it is new, when it expires, and the answer to wait for.
    pub fn enqueue(
        &self,
        account: &AccountName,
        program: &Process,
        expires_at: Deadline,
    ) -> Result<(Ask, bool, oneshot::Receiver<bool>), Refusal> {
        let (tx, rx) = oneshot::channel();
        let mut pending = self.pending.lock().expect("poisoned");
        let same = |p: &&mut Pending| {
            p.ask.account == *account
                && match &program.exe {
                    Some(exe) => p.ask.program.exe.as_ref() == Some(exe),
                    None => p.ask.program.pid == program.pid,
                }
        };
        if let Some(p) = pending.iter_mut().find(|p| same(p)) {
            p.waiters.push((program.pid, tx));
            return Ok((p.ask.clone(), false, rx));
        }
        if pending.len() >= MAX_PENDING {
            return Err(Refusal::TooManyAsks);
        }
        let ask = Ask {
            id: self.next_id.fetch_add(1, Ordering::Relaxed) + 1,
            account: account.clone(),
            program: program.clone(),
            asked_at: Deadline::after(crate::engine::clock::now(), std::time::Duration::ZERO),
            expires_at,
            can_remember: program.exe.is_some(),
        };
        pending.push(Pending {
            ask: ask.clone(),
            waiters: vec![(program.pid, tx)],
        });
        Ok((ask, true, rx))
    }

    pub fn pending(&self) -> Vec<Ask> {
        self.pending
            .lock()
            .expect("poisoned")
            .iter()
            .map(|p| p.ask.clone())
            .collect()
    }

    /// Settles ask `id` (`None`: it had expired or was answered already). Its waiters get
    /// the answer; "once" and "deny" are remembered for each waiting process.
    pub fn settle(&self, id: u64, answer: Answer) -> Option<Ask> {
        let settled = {
            let mut pending = self.pending.lock().expect("poisoned");
            let at = pending.iter().position(|p| p.ask.id == id)?;
            pending.remove(at)
        };
        let allowed = answer != Answer::Deny;
        if answer != Answer::Always {
            let mut this_run = self.this_run.write().expect("poisoned");
            if this_run.len() >= MAX_THIS_RUN {
                this_run.clear();
            }
            for pid in settled.waiters.iter().filter_map(|(pid, _)| *pid) {
                let key = (
                    pid,
                    settled.ask.program.exe.clone(),
                    settled.ask.account.clone(),
                );
                this_run.insert(key, allowed);
            }
        }
        for (_, waiter) in settled.waiters {
            let _ = waiter.send(allowed);
        }
        Some(settled.ask)
    }

    /// Drops ask `id` unanswered (its time ran out); its waiters are refused.
    pub fn expire(&self, id: u64) -> Option<Ask> {
        let mut pending = self.pending.lock().expect("poisoned");
        let at = pending.iter().position(|p| p.ask.id == id)?;
        Some(pending.remove(at).ask)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn python(pid: u32) -> Process {
        Process {
            pid: Some(pid),
            exe: Some("/usr/bin/python3".into()),
            ..Process::default()
        }
    }

    fn later() -> Deadline {
        Deadline::after(
            crate::engine::clock::now(),
            std::time::Duration::from_secs(60),
        )
    }

    #[tokio::test]
    async fn one_ask_per_program_and_account_and_once_is_for_the_waiting_processes() {
        let asks = Asks::new(Vec::new());
        let fb: AccountName = "fb".parse().unwrap();
        assert_eq!(asks.known(&fb, &python(1)), None);
        let (first, new, rx1) = asks.enqueue(&fb, &python(1), later()).unwrap();
        assert!(new && first.can_remember);
        let (second, new, rx2) = asks.enqueue(&fb, &python(2), later()).unwrap();
        assert!(!new);
        assert_eq!(second.id, first.id);
        asks.settle(first.id, Answer::Once).unwrap();
        assert!(rx1.await.unwrap() && rx2.await.unwrap());
        assert_eq!(asks.known(&fb, &python(1)), Some(true));
        assert_eq!(
            asks.known(&fb, &python(3)),
            None,
            "once is not for a new process"
        );
        assert!(asks.settle(first.id, Answer::Deny).is_none());
        assert!(asks.pending().is_empty());
    }

    #[tokio::test]
    async fn always_is_per_executable_until_forgotten_and_deny_sticks_to_the_process() {
        let asks = Asks::new(Vec::new());
        let fb: AccountName = "fb".parse().unwrap();
        let (ask, _, rx) = asks.enqueue(&fb, &python(1), later()).unwrap();
        asks.settle(ask.id, Answer::Always).unwrap();
        asks.remember("/usr/bin/python3", &fb);
        assert!(rx.await.unwrap());
        assert_eq!(asks.known(&fb, &python(9)), Some(true));
        asks.forget("/usr/bin/python3", &fb);
        assert_eq!(asks.known(&fb, &python(9)), None);
        let (ask, _, rx) = asks.enqueue(&fb, &python(9), later()).unwrap();
        asks.settle(ask.id, Answer::Deny).unwrap();
        assert!(!rx.await.unwrap());
        assert_eq!(asks.known(&fb, &python(9)), Some(false));
        let unknown = Process::default();
        let (ask, _, _rx) = asks.enqueue(&fb, &unknown, later()).unwrap();
        assert!(!ask.can_remember);
        assert!(asks.expire(ask.id).is_some());
    }
}
