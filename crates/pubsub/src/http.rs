//! Delivery to HTTP endpoints: a small HTTP/1.1 client over tokio's TCP (plain `http://` only),
//! posting what SNS posts, with its `x-amz-sns-*` headers.
//!
//! A message meant for an HTTP endpoint carries its headers as message attributes whose names
//! start with `x-amz-sns-`; the sink sends them as headers and the body as the request body.

use std::time::Duration;

use async_trait::async_trait;
use cloudlet_core::{AttributeValue, DeliveryError, Message, SharedClock, Sink, Timestamp};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The prefix of the attributes that travel as HTTP headers.
pub(crate) const HEADER_PREFIX: &str = "x-amz-sns-";

/// How long a delivery may take before it counts as failed (and is retried). A real socket's
/// deadline, on tokio's timer: it bounds I/O, not the service's logical time.
const TIMEOUT: Duration = Duration::from_secs(15);

/// An `http://host:port/path` endpoint, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    host: String,
    port: u16,
    path: String,
}

impl Endpoint {
    /// Parses an endpoint URL; `None` unless it is `http://` with a host.
    pub(crate) fn parse(url: &str) -> Option<Self> {
        let rest = url.strip_prefix("http://")?;
        let (authority, path) = match rest.find('/') {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, "/"),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) => (host, port.parse().ok()?),
            None => (authority, 80),
        };
        if host.is_empty()
            || !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-".contains(&b))
        {
            return None;
        }
        Some(Self {
            host: host.to_owned(),
            port,
            path: path.to_owned(),
        })
    }
}

/// Posts each message to an HTTP endpoint: a 2xx answer is delivered; 429, 5xx, a timeout or
/// a failed connection is retried; any other answer is a permanent failure.
pub(crate) struct HttpSink {
    endpoint: Endpoint,
    /// The `Content-Type` of each POST (the delivery policy's `headerContentType`).
    content_type: String,
    /// At most this many POSTs a second, on the service clock (`maxReceivesPerSecond`).
    throttle: Option<Throttle>,
}

struct Throttle {
    clock: SharedClock,
    gap: Duration,
    /// When the next POST may go.
    next: tokio::sync::Mutex<Timestamp>,
}

impl std::fmt::Debug for HttpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSink")
            .field("endpoint", &self.endpoint)
            .field("content_type", &self.content_type)
            .field("throttle", &self.throttle.as_ref().map(|t| t.gap))
            .finish()
    }
}

impl HttpSink {
    pub(crate) fn new(
        endpoint: Endpoint,
        content_type: Option<String>,
        throttle: Option<(SharedClock, u32)>,
    ) -> Self {
        Self {
            endpoint,
            content_type: content_type.unwrap_or_else(|| "text/plain; charset=UTF-8".to_owned()),
            throttle: throttle.map(|(clock, rate)| Throttle {
                clock,
                gap: Duration::from_secs(1) / rate.max(1),
                next: tokio::sync::Mutex::new(Timestamp::EPOCH),
            }),
        }
    }

    /// Waits for the throttle's next slot, if any, and takes it.
    async fn slot(&self) {
        let Some(throttle) = &self.throttle else {
            return;
        };
        let mut next = throttle.next.lock().await;
        let now = throttle.clock.now();
        // Never more than one gap away, should the clock have gone back.
        let slot = (*next).min(now.saturating_add(throttle.gap));
        if slot > now {
            throttle.clock.sleep_until(slot).await;
        }
        *next = slot.max(now).saturating_add(throttle.gap);
    }

    async fn post(&self, message: &Message) -> std::io::Result<u16> {
        let mut request = format!(
            "POST {} HTTP/1.1\r\nHost: {}:{}\r\nContent-Type: {}\r\nUser-Agent: Amazon Simple Notification Service Agent\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.endpoint.path,
            self.endpoint.host,
            self.endpoint.port,
            self.content_type,
            message.body.len()
        );
        for (name, attribute) in &message.attributes {
            if let (true, AttributeValue::String(value)) =
                (name.starts_with(HEADER_PREFIX), &attribute.value)
                && !value.contains(['\r', '\n'])
            {
                request.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        request.push_str("\r\n");
        let mut stream =
            TcpStream::connect((self.endpoint.host.as_str(), self.endpoint.port)).await?;
        stream.write_all(request.as_bytes()).await?;
        stream.write_all(&message.body).await?;
        stream.flush().await?;
        // The status line is all we need: `HTTP/1.1 200 OK`.
        let mut head = Vec::with_capacity(64);
        let mut byte = [0u8; 1];
        while head.len() < 1024 && !head.ends_with(b"\r\n") {
            if stream.read(&mut byte).await? == 0 {
                break;
            }
            head.push(byte[0]);
        }
        let line = String::from_utf8_lossy(&head);
        line.split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {line:?}")))
    }
}

#[async_trait]
impl Sink for HttpSink {
    async fn deliver(&self, message: Message) -> Result<(), DeliveryError> {
        self.slot().await;
        let Ok(answer) = tokio::time::timeout(TIMEOUT, self.post(&message)).await else {
            return Err(DeliveryError::unavailable(
                "the endpoint did not answer in time",
            ));
        };
        match answer {
            Ok(code) if (200..300).contains(&code) => Ok(()),
            Ok(code) if code == 429 || code >= 500 => Err(DeliveryError::unavailable(format!(
                "the endpoint answered {code}"
            ))),
            Ok(code) => Err(DeliveryError::rejected(format!(
                "the endpoint answered {code}"
            ))),
            Err(error) => Err(DeliveryError::unavailable(error.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse() {
        assert_eq!(
            Endpoint::parse("http://127.0.0.1:8080/hook?a=1"),
            Some(Endpoint {
                host: "127.0.0.1".into(),
                port: 8080,
                path: "/hook?a=1".into()
            })
        );
        assert_eq!(
            Endpoint::parse("http://example.com").map(|e| e.port),
            Some(80)
        );
        for bad in [
            "https://example.com/",
            "ftp://x",
            "http://",
            "http://a b/",
            "http://h:99999/",
        ] {
            assert_eq!(Endpoint::parse(bad), None, "{bad}");
        }
    }
}
