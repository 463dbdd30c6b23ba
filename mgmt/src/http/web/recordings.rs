//! `GET /recordings/{id}`: a recording (WAV) for a signed-in user who may
//! see its conversation (the desk's visibility rule, [`super::scope`]), with
//! HTTP range requests so a browser's audio element can seek
//! (docs/API.md). Every answer but a 404 is audited by the recordings
//! service.

use super::WebState;
use super::scope::{self, Viewer};
use crate::http::auth::CurrentUser;
use crate::http::html::WebError;
use crate::services::recordings::RecordingError;
use crate::services::users::auth::Actor;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;

/// A satisfiable byte range (inclusive), or why not.
#[derive(Debug, PartialEq, Eq)]
enum Range {
    Whole,
    Part(u64, u64),
    Unsatisfiable,
}

/// Reads a `Range` header against a file of `len` bytes (RFC 9110 14.1.2):
/// one `bytes=` range; anything this does not understand (several ranges,
/// other units, garbage) is ignored and the whole file is sent.
fn range(h: Option<&HeaderValue>, len: u64) -> Range {
    let Some(spec) = h
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().strip_prefix("bytes="))
    else {
        return Range::Whole;
    };
    if spec.contains(',') {
        return Range::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Range::Whole;
    };
    let (a, b) = (a.trim(), b.trim());
    let parse = |s: &str| s.parse::<u64>().ok();
    match (a.is_empty(), b.is_empty()) {
        // bytes=-N: the last N bytes
        (true, false) => match parse(b) {
            Some(0) => Range::Unsatisfiable,
            Some(n) if len > 0 => Range::Part(len.saturating_sub(n), len - 1),
            Some(_) => Range::Unsatisfiable,
            None => Range::Whole,
        },
        // bytes=N-
        (false, true) => match parse(a) {
            Some(s) if s < len => Range::Part(s, len - 1),
            Some(_) => Range::Unsatisfiable,
            None => Range::Whole,
        },
        (false, false) => match (parse(a), parse(b)) {
            (Some(s), Some(e)) if s <= e && s < len => Range::Part(s, e.min(len - 1)),
            (Some(s), Some(e)) if s <= e => Range::Unsatisfiable,
            _ => Range::Whole,
        },
        (true, true) => Range::Whole,
    }
}

pub async fn serve(
    State(st): State<Arc<WebState>>,
    user: CurrentUser,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let conversation = st.recordings.conversation(&id).await.map_err(web_error)?;
    let u = user.user.clone();
    let may_see = st
        .routing
        .query(move |r| {
            let r = r.map(|(r, _)| r);
            let viewer = Viewer::new(&u, r);
            let vis = match (r, conversation) {
                (Some(r), Some(c)) => scope::visibility(r, &c),
                _ => None,
            };
            viewer.can_see(vis.as_ref())
        })
        .await?;
    let by = Actor::User(user.user.clone());
    let rec = st
        .recordings
        .open(&by, &id, may_see)
        .await
        .map_err(web_error)?;
    let len = rec.bytes;
    let etag = format!("\"{}\"", rec.sha256);
    let (status, from, to) = match range(headers.get(header::RANGE), len) {
        Range::Whole => (StatusCode::OK, 0, len.saturating_sub(1)),
        Range::Part(a, b) => (StatusCode::PARTIAL_CONTENT, a, b),
        Range::Unsatisfiable => {
            return Ok((
                StatusCode::RANGE_NOT_SATISFIABLE,
                [
                    (header::CONTENT_RANGE, format!("bytes */{len}")),
                    (header::ACCEPT_RANGES, "bytes".to_string()),
                ],
            )
                .into_response());
        }
    };
    let n = if len == 0 { 0 } else { to - from + 1 };
    let path = rec.path.clone();
    let body = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
        let mut f = std::fs::File::open(&path)?;
        f.seek(SeekFrom::Start(from))?;
        // Bounded: a stored recording is at most MAX_RECORDING_BYTES.
        let mut buf = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
        f.take(n).read_to_end(&mut buf)?;
        Ok(buf)
    })
    .await
    .map_err(|_| WebError::Internal)?
    .map_err(|e| {
        tracing::error!(recording = %rec.id, error = %e, "could not read a stored recording");
        WebError::Internal
    })?;
    let mut resp = (status, Body::from(body)).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("audio/wav"));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=3600"),
    );
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {from}-{to}/{len}"))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    Ok(resp)
}

fn web_error(e: RecordingError) -> WebError {
    match e {
        RecordingError::NotFound(_) => WebError::NotFound,
        RecordingError::Denied(m) => WebError::Forbidden(m),
        RecordingError::NotYet(m) => WebError::Conflict(format!(
            "recording {m} has not reached mgmt yet: its appliance uploads it when it is online"
        )),
        other => {
            tracing::error!(error = %other, "recording error in a web handler");
            WebError::Internal
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str, len: u64) -> Range {
        range(
            Some(&HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static(""))),
            len,
        )
    }

    #[test]
    fn ranges() {
        assert_eq!(range(None, 100), Range::Whole);
        assert_eq!(r("bytes=0-9", 100), Range::Part(0, 9));
        assert_eq!(r("bytes=90-", 100), Range::Part(90, 99));
        assert_eq!(r("bytes=-10", 100), Range::Part(90, 99));
        assert_eq!(r("bytes=-1000", 100), Range::Part(0, 99));
        assert_eq!(r("bytes=50-1000", 100), Range::Part(50, 99));
        assert_eq!(r("bytes=100-", 100), Range::Unsatisfiable);
        assert_eq!(r("bytes=100-200", 100), Range::Unsatisfiable);
        assert_eq!(r("bytes=-0", 100), Range::Unsatisfiable);
        assert_eq!(r("bytes=0-", 0), Range::Unsatisfiable);
        // Not understood: the whole file.
        assert_eq!(r("bytes=0-1,5-6", 100), Range::Whole);
        assert_eq!(r("items=0-1", 100), Range::Whole);
        assert_eq!(r("bytes=9-1", 100), Range::Whole);
        assert_eq!(r("bytes=x-y", 100), Range::Whole);
        assert_eq!(r("bytes=18446744073709551615-", 100), Range::Unsatisfiable);
    }
}
