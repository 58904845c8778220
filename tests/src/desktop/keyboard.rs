//! The keyboard in the real window: [`Driver`] key presses and typing as WebDriver key actions,
//! and moving the focus with Tab and Shift+Tab.

use super::Driver;

impl Driver {
    /// Presses and releases `key` on whatever has the keyboard focus, as a user would
    /// (WebDriver key actions, not a script).
    pub async fn press(&self, key: fantoccini::key::Key) {
        use fantoccini::actions::{InputSource, KeyAction, KeyActions};
        let value: char = key.into();
        let actions = KeyActions::new("keyboard".into())
            .then(KeyAction::Down { value })
            .then(KeyAction::Up { value });
        self.guard("key press", self.client.perform_actions(actions))
            .await
            .unwrap_or_else(|e| panic!("press {key:?}: {e}"));
    }

    /// Types `text` into whatever has the keyboard focus.
    pub async fn type_text(&self, text: &str) {
        use fantoccini::actions::{InputSource, KeyAction, KeyActions};
        let mut actions = KeyActions::new("keyboard".into());
        for value in text.chars() {
            actions = actions
                .then(KeyAction::Down { value })
                .then(KeyAction::Up { value });
        }
        self.guard("typing", self.client.perform_actions(actions))
            .await
            .unwrap_or_else(|e| panic!("type {} characters: {e}", text.len()));
    }

    /// What has the keyboard focus: its `data-testid`, else its id, else its tag name
    /// (`BODY` when nothing does), with the account of the card it sits in, if any.
    pub async fn focused(&self) -> (String, Option<String>) {
        let v = self
            .execute(
                "const e = document.activeElement; if (!e) return ['BODY', null];\
                 const row = e.closest('[data-account]');\
                 return [e.getAttribute('data-testid') || e.id || e.tagName,\
                         row ? row.getAttribute('data-account') : null];",
            )
            .await;
        (
            v[0].as_str().unwrap_or_default().to_owned(),
            v[1].as_str().map(str::to_owned),
        )
    }

    /// Shift+Tab: the focus moves back.
    pub async fn press_shift_tab(&self) {
        use fantoccini::actions::{InputSource, KeyAction, KeyActions};
        use fantoccini::key::Key;
        let actions = KeyActions::new("keyboard".into())
            .then(KeyAction::Down {
                value: Key::Shift.into(),
            })
            .then(KeyAction::Down {
                value: Key::Tab.into(),
            })
            .then(KeyAction::Up {
                value: Key::Tab.into(),
            })
            .then(KeyAction::Up {
                value: Key::Shift.into(),
            });
        self.guard("shift+tab", self.client.perform_actions(actions))
            .await
            .unwrap_or_else(|e| panic!("press shift+tab: {e}"));
    }

    /// Presses Tab until the focus is on `testid` (in `account`'s card when given): at most
    /// `limit` presses. Returns the stops on the way, to show the order.
    pub async fn tab_to(&self, testid: &str, account: Option<&str>, limit: usize) -> Vec<String> {
        self.move_focus_to(testid, account, limit, false).await
    }

    /// [`Driver::tab_to`] with Shift+Tab.
    pub async fn tab_back_to(&self, testid: &str, limit: usize) -> Vec<String> {
        self.move_focus_to(testid, None, limit, true).await
    }

    async fn move_focus_to(
        &self,
        testid: &str,
        account: Option<&str>,
        limit: usize,
        back: bool,
    ) -> Vec<String> {
        let mut stops = Vec::new();
        for _ in 0..limit {
            if back {
                self.press_shift_tab().await;
            } else {
                self.press(fantoccini::key::Key::Tab).await;
            }
            let (id, row) = self.focused().await;
            stops.push(match &row {
                Some(r) => format!("{r}/{id}"),
                None => id.clone(),
            });
            if id == testid && (account.is_none() || row.as_deref() == account) {
                return stops;
            }
        }
        panic!("{testid} ({account:?}) is not reached with {limit} Tabs; stops: {stops:?}");
    }
}
