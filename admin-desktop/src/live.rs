//! A flash sale's live figures, read on the Rust side: a browser
//! `EventSource` cannot send the bearer token, and the token never reaches
//! the page anyway. `follow` reads `GET …/flash-sales/{id}/live` (Server-Sent
//! Events), hands each sample to a sink (the page's Tauri channel), and when
//! the stream drops or goes quiet reconnects with `Last-Event-ID`, so the
//! shop resumes exactly after the last sample seen.

use std::time::Duration;

use model::desktop::LiveMsg;
use model::flash::{FlashLive, FlashSaleStatus};
use reqwest::{StatusCode, Url};

/// The shop sends a keep-alive comment every 15 s: silence past this means
/// the connection is dead even if no error says so.
pub const QUIET: Duration = Duration::from_secs(20);
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: String,
    pub data: String,
}

/// The text/event-stream format, fed in chunks that may split anywhere
/// (even inside a UTF-8 character).
#[derive(Default)]
pub struct SseParser {
    pending: Vec<u8>,
    id: Option<String>,
    event: Option<String>,
    data: Vec<String>,
}

impl SseParser {
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        self.pending.extend_from_slice(chunk);
        let mut out = Vec::new();
        while let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
            let mut line: Vec<u8> = self.pending.drain(..=end).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8_lossy(&line);
            if line.is_empty() {
                if !self.data.is_empty() {
                    out.push(SseEvent {
                        id: self.id.clone(),
                        event: self.event.take().unwrap_or_else(|| "message".to_owned()),
                        data: std::mem::take(&mut self.data).join("\n"),
                    });
                }
                self.event = None;
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (&*line, ""),
            };
            match field {
                "id" => self.id = Some(value.to_owned()),
                "event" => self.event = Some(value.to_owned()),
                "data" => self.data.push(value.to_owned()),
                _ => {}
            }
        }
        out
    }
}

/// Why a watch stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// The page went away (the sink refused a message).
    Closed,
    SignedOut,
    Ended,
}

/// Follows the stream until the sale ends, the session ends, or the sink
/// refuses a message. `quiet` is how long silence is tolerated.
pub async fn follow(
    http: &reqwest::Client,
    url: Url,
    token: &str,
    mut last_id: Option<String>,
    quiet: Duration,
    sink: impl Fn(LiveMsg) -> bool,
) -> Stopped {
    let mut attempt = 0u32;
    let mut backoff = FIRST_BACKOFF;
    loop {
        let mut request = http.get(url.clone()).bearer_auth(token).header("accept", "text/event-stream");
        if let Some(id) = &last_id {
            request = request.header("last-event-id", id);
        }
        let error = match request.send().await {
            Ok(response) if response.status() == StatusCode::UNAUTHORIZED => {
                sink(LiveMsg::SignedOut);
                return Stopped::SignedOut;
            }
            Ok(response) if response.status() == StatusCode::NOT_FOUND => {
                sink(LiveMsg::Ended { reason: "The sale no longer exists.".into() });
                return Stopped::Ended;
            }
            Ok(response) if response.status().is_success() => {
                let mut response = response;
                let mut parser = SseParser::default();
                loop {
                    let chunk = match tokio::time::timeout(quiet, response.chunk()).await {
                        Err(_) => break format!("no word from the shop for {} s", quiet.as_secs()),
                        Ok(Err(e)) => break format!("the stream broke: {e}"),
                        Ok(Ok(None)) => break "the shop closed the stream".to_owned(),
                        Ok(Ok(Some(chunk))) => chunk,
                    };
                    for event in parser.push(&chunk) {
                        if event.event != "figures" {
                            continue;
                        }
                        let Ok(figures) = serde_json::from_str::<FlashLive>(&event.data) else {
                            tracing::warn!(data = %event.data, "a live sample did not parse");
                            continue;
                        };
                        let id = event.id.clone().unwrap_or_default();
                        last_id = event.id;
                        (attempt, backoff) = (0, FIRST_BACKOFF);
                        let over = matches!(figures.status, FlashSaleStatus::Ended | FlashSaleStatus::Cancelled);
                        let status = figures.status;
                        if !sink(LiveMsg::Figures { id, figures }) {
                            return Stopped::Closed;
                        }
                        if over {
                            sink(LiveMsg::Ended { reason: format!("The sale is {}.", status.as_str()) });
                            return Stopped::Ended;
                        }
                    }
                }
            }
            Ok(response) => format!("the shop answered {}", response.status()),
            Err(e) => format!("the shop cannot be reached: {e}"),
        };
        attempt += 1;
        if !sink(LiveMsg::Reconnecting { attempt, error }) {
            return Stopped::Closed;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_survive_any_chunking() {
        let stream = "id: 1-0\r\nevent: figures\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\n: keep-alive\n\nid: 2-0\nevent: figures\ndata: ü\n\n";
        let whole = SseParser::default().push(stream.as_bytes());
        assert_eq!(
            whole,
            vec![
                SseEvent { id: Some("1-0".into()), event: "figures".into(), data: "{\"a\":\n1}".into() },
                SseEvent { id: Some("2-0".into()), event: "figures".into(), data: "ü".into() },
            ]
        );
        // Every split point, a byte at a time included (ü is two bytes).
        for size in 1..stream.len() {
            let mut parser = SseParser::default();
            let got: Vec<SseEvent> = stream.as_bytes().chunks(size).flat_map(|c| parser.push(c)).collect();
            assert_eq!(got, whole, "chunks of {size}");
        }
    }
}
