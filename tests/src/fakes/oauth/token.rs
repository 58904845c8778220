//! The token endpoint: the queued [`Fault`] answered first (delays, errors, odd bodies), else
//! the grant done on [`State`](super::State), and every request recorded.

use std::time::Instant;

use axum::extract::State as AxState;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{Fault, Shared, TokenRequest};
use crate::fakes::parse_form;

pub(super) async fn token(
    AxState(state): AxState<Shared>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let at = Instant::now();
    let form = parse_form(&body);
    let mut fault = state.lock().expect("fake oauth state").faults.pop_front();
    // Delays before the work, possibly nested.
    loop {
        match fault {
            Some(Fault::Delay(d)) => {
                tokio::time::sleep(d).await;
                fault = None;
            }
            Some(Fault::DelayThen(d, inner)) => {
                tokio::time::sleep(d).await;
                fault = Some(*inner);
            }
            _ => break,
        }
    }
    let (response, answer_after) = {
        let mut st = state.lock().expect("fake oauth state");
        let issued_before = st.issued_refresh_tokens.len();
        let (response, answer_after) = match fault {
            Some(Fault::Status {
                status,
                retry_after,
                body,
            }) => {
                let mut r = (
                    StatusCode::from_u16(status).expect("fault status"),
                    [(header::CONTENT_TYPE, "application/json")],
                    body,
                )
                    .into_response();
                if let Some(secs) = retry_after {
                    r.headers_mut().insert(
                        header::RETRY_AFTER,
                        secs.to_string().parse().expect("header"),
                    );
                }
                (r, None)
            }
            Some(Fault::OAuthError(code)) => (
                st.error(code, form.get("refresh_token").map(String::as_str)),
                None,
            ),
            Some(Fault::ExpiresInAsString) => {
                st.expires_in_as_string = true;
                let r = st.grant(&headers, &form);
                st.expires_in_as_string = false;
                (r, None)
            }
            Some(Fault::AnswerWith(patch)) => {
                st.answer_patch = Some(patch);
                let r = st.grant(&headers, &form);
                st.answer_patch = None;
                (r, None)
            }
            Some(Fault::Redirect(status, url)) => (
                (
                    StatusCode::from_u16(status).expect("redirect status"),
                    [(header::LOCATION, url)],
                )
                    .into_response(),
                None,
            ),
            Some(Fault::HugeBody(size)) => {
                let chunk = bytes_of_filler(64 * 1024);
                let chunks = size.div_ceil(chunk.len());
                let stream = futures_stream(chunk, chunks);
                (
                    (
                        [(header::CONTENT_TYPE, "application/json")],
                        axum::body::Body::from_stream(stream),
                    )
                        .into_response(),
                    None,
                )
            }
            Some(Fault::Trickle(every)) => {
                let first = futures_util::stream::once(async {
                    Ok::<_, std::io::Error>(axum::body::Bytes::from_static(b"{"))
                });
                let rest = futures_util::stream::unfold((), move |()| async move {
                    tokio::time::sleep(every).await;
                    Some((Ok(bytes_of_filler(1)), ()))
                });
                (
                    (
                        [(header::CONTENT_TYPE, "application/json")],
                        axum::body::Body::from_stream(futures_util::StreamExt::chain(first, rest)),
                    )
                        .into_response(),
                    None,
                )
            }
            Some(Fault::DelayAfterIssue(d)) => (st.grant(&headers, &form), Some(d)),
            _ => (st.grant(&headers, &form), None),
        };
        let issued_refresh_token = st.issued_refresh_tokens[issued_before..].last().cloned();
        st.token_requests.push(TokenRequest {
            at,
            grant_type: form.get("grant_type").cloned().unwrap_or_default(),
            refresh_token: form.get("refresh_token").cloned(),
            status: response.status().as_u16(),
            issued_refresh_token,
        });
        (response, answer_after)
    };
    if let Some(d) = answer_after {
        tokio::time::sleep(d).await;
    }
    response
}

fn bytes_of_filler(n: usize) -> axum::body::Bytes {
    axum::body::Bytes::from(vec![b' '; n])
}

/// `count` copies of `chunk`, as a body stream (no Content-Length: the client learns the
/// size only by reading).
fn futures_stream(
    chunk: axum::body::Bytes,
    count: usize,
) -> impl futures_util::Stream<Item = Result<axum::body::Bytes, std::io::Error>> {
    futures_util::stream::iter(std::iter::repeat_n(chunk, count).map(Ok))
}
