//! The answer a TokenBoy client reads, shared by the router and the fast path so that both
//! send the same bytes.

use crate::engine::TokenView;

/// What a TokenBoy client reads: TokenBoy answers with the provider's own JSON, so a
/// token's client reads `access_token` and a jsapi ticket's client reads `ticket` (after
/// `errcode` 0, as WeChat's getticket answers).
#[derive(serde::Serialize)]
pub(crate) struct TokenBoyAnswer<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    errcode: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    errmsg: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    access_token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ticket: Option<&'a str>,
    expires_in: u64,
}

impl<'a> TokenBoyAnswer<'a> {
    pub(crate) fn of(token: &'a TokenView) -> Self {
        let ticket = token.token_type.ends_with("ticket");
        let value = token.access_token.expose();
        Self {
            errcode: ticket.then_some(0),
            errmsg: ticket.then_some("ok"),
            access_token: (!ticket).then_some(value),
            ticket: ticket.then_some(value),
            expires_in: token.expires_in,
        }
    }
}
