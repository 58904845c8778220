//! The engine's side of ask first: may this program take this token, the asks waiting, the
//! user's answers and the approvals kept.

use super::asking::{Answer, Approval, Ask, Refusal};
use crate::engine::names::{AccountName, Deadline};
use crate::engine::system::processes::Process;
use crate::engine::{Engine, EngineError, EngineEvent};

impl Engine {
    /// Whether `[api] ask_first` is on: only then must a request know its caller before
    /// it is answered.
    pub fn asks_first(&self) -> bool {
        let config = self.shared.config.read().expect("poisoned");
        config.api.asking.ask_first
    }

    /// Whether `caller` may take `account`'s token without waiting: ask first is off, or the
    /// program is known and allowed. The API's fast path answers only then.
    pub fn approved_at_hand(&self, account: &AccountName, caller: &Process) -> bool {
        // On every fast-path request: with ask first off (the default), one read of a flag,
        // no clone of the config's `Arc` (whose count every request would fight over).
        if !self.asks_first() {
            return true;
        }
        let config = self.config();
        let asking = &config.api.asking;
        let program = caller.program();
        asking.allows(program.exe.as_deref(), account)
            || self.shared.asks.known(account, &program) == Some(true)
    }

    /// Lets `caller` take `account`'s token, asking the user first where `[api] ask_first`
    /// says so and the program is not known: the call waits for the answer.
    pub async fn may_take(
        &self,
        account: &AccountName,
        caller: &Process,
    ) -> Result<(), EngineError> {
        let config = self.config();
        let asking = &config.api.asking;
        if !asking.ask_first {
            return Ok(());
        }
        let program = caller.program();
        if asking.allows(program.exe.as_deref(), account) {
            return Ok(());
        }
        let asks = &self.shared.asks;
        let refuse = |why| not_approved(account, &program, why);
        match asks.known(account, &program) {
            Some(true) => return Ok(()),
            Some(false) => return Err(refuse(Refusal::Denied)),
            None if !asks.has_answerer() => return Err(refuse(Refusal::NobodyToAsk)),
            None => {}
        }
        let expires_at = Deadline::after(crate::engine::clock::now(), asking.timeout);
        let (ask, new, answer) = asks
            .enqueue(account, &program, expires_at)
            .map_err(refuse)?;
        if new {
            tracing::info!(account = %account, program = ?program.exe, "asking the user");
            self.emit(EngineEvent::AskStarted {
                account: account.clone(),
                id: ask.id,
            });
        }
        let left = ask.expires_at.remaining(crate::engine::clock::now());
        match tokio::time::timeout(left, answer).await {
            Ok(Ok(true)) => Ok(()),
            Ok(_) => Err(refuse(Refusal::Denied)),
            Err(_) => {
                if asks.expire(ask.id).is_some() {
                    self.emit(EngineEvent::AskEnded {
                        account: account.clone(),
                        id: ask.id,
                    });
                }
                Err(refuse(Refusal::NoAnswer {
                    seconds: asking.timeout.as_secs(),
                }))
            }
        }
    }

    /// A front end shows asks and answers them (the tray app); without one, unknown
    /// programs are refused at once.
    pub fn answer_asks_here(&self) {
        self.shared.asks.answered_here();
    }

    /// The asks waiting for an answer, oldest first.
    pub fn asks(&self) -> Vec<Ask> {
        self.shared.asks.pending()
    }

    /// The user's answer to ask `id`. "Always" is saved before the waiting request goes on.
    pub async fn answer(&self, id: u64, answer: Answer) -> Result<(), EngineError> {
        let gone = || {
            EngineError::Io(
                "that request is no longer waiting: it was answered or its time ran out".into(),
            )
        };
        let ask = self
            .asks()
            .into_iter()
            .find(|a| a.id == id)
            .ok_or_else(gone)?;
        if answer == Answer::Always {
            let exe = ask.program.exe.clone().ok_or_else(|| {
                EngineError::usage(
                    &ask.account,
                    "this program's executable is not known, so it cannot be allowed always; allow it once",
                )
            })?;
            let (shared, account) = (self.shared.clone(), ask.account.clone());
            let now = Deadline::after(crate::engine::clock::now(), std::time::Duration::ZERO);
            tokio::task::spawn_blocking(move || shared.history.approve(&exe, &account, now))
                .await
                .map_err(|e| EngineError::Io(format!("history task: {e}")))??;
            if let Some(exe) = &ask.program.exe {
                self.shared.asks.remember(exe, &ask.account);
            }
        }
        let settled = self.shared.asks.settle(id, answer).ok_or_else(gone)?;
        tracing::info!(account = %settled.account, program = ?settled.program.exe, ?answer, "answered");
        self.emit(EngineEvent::AskEnded {
            account: settled.account,
            id,
        });
        Ok(())
    }

    /// The programs allowed "always", oldest first.
    pub async fn approvals(&self) -> Result<Vec<Approval>, EngineError> {
        let shared = self.shared.clone();
        Ok(
            tokio::task::spawn_blocking(move || shared.history.approvals())
                .await
                .map_err(|e| EngineError::Io(format!("history task: {e}")))??,
        )
    }

    /// Revokes an "always": the program is asked again next time.
    pub async fn revoke_approval(
        &self,
        exe: &str,
        account: &AccountName,
    ) -> Result<(), EngineError> {
        let (shared, owned, name) = (self.shared.clone(), exe.to_owned(), account.clone());
        let removed = tokio::task::spawn_blocking(move || shared.history.revoke(&owned, &name))
            .await
            .map_err(|e| EngineError::Io(format!("history task: {e}")))??;
        self.shared.asks.forget(exe, account);
        if !removed {
            return Err(EngineError::usage(
                account,
                format!("`{exe}` was not allowed always for this account"),
            ));
        }
        Ok(())
    }

    /// Turns `[api] ask_first` on or off in the config file (comments kept) and reloads it.
    pub async fn set_ask_first(&self, on: bool) -> Result<(), EngineError> {
        crate::engine::config::edit::set_ask_first(&self.config().path, on)?;
        self.reload_config().await.map(drop)
    }
}

fn not_approved(account: &AccountName, program: &Process, why: Refusal) -> EngineError {
    let name = match (&program.command, &program.exe) {
        (Some(command), Some(exe)) => format!("{command} ({exe})"),
        (None, Some(exe)) => exe.clone(),
        (Some(command), None) => command.clone(),
        (None, None) => "a program Tokenwarden could not identify".to_owned(),
    };
    let why = match why {
        Refusal::Denied => "the user denied it".to_owned(),
        Refusal::NoAnswer { seconds } => {
            format!("the user did not answer within {seconds} s ([api] ask_timeout)")
        }
        Refusal::NobodyToAsk => match &program.exe {
            Some(exe) => format!(
                "[api] ask_first is on and no one is asked here (no tray app): allow it with `\"{exe}\" = [\"{account}\"]` under [api.allow]"
            ),
            None => "[api] ask_first is on, no one is asked here (no tray app), and the program's executable is not known, so [api.allow] cannot name it".to_owned(),
        },
        Refusal::TooManyAsks => "too many programs are waiting for an answer already".to_owned(),
    };
    EngineError::NotApproved {
        account: account.clone(),
        message: format!("{name} may not take this token: {why}"),
    }
}
