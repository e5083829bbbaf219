//! Delivery to HTTP and HTTPS endpoints: a small HTTP/1.1 client over tokio's TCP, with TLS
//! from rustls for `https://`, posting what SNS posts, with its `x-amz-sns-*` headers.
//!
//! As SNS does, an HTTPS endpoint must present a certificate that chains to a trusted
//! authority and names the endpoint's host: the Mozilla roots (`webpki-roots`, compiled in, so
//! nothing on the machine is consulted) and any the service was given
//! ([`crate::TopicService::with_trusted_certificates`]). A self-signed certificate is refused,
//! and the delivery is retried like any unreachable endpoint.
//!
//! A message meant for an HTTP endpoint carries its headers as message attributes whose names
//! start with `x-amz-sns-`; the sink sends them as headers and the body as the request body.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use async_trait::async_trait;
use cloudlet_core::{AttributeValue, DeliveryError, Message, SharedClock, Sink, Timestamp};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// The prefix of the attributes that travel as HTTP headers.
pub(crate) const HEADER_PREFIX: &str = "x-amz-sns-";

/// How long a delivery may take before it counts as failed (and is retried). A real socket's
/// deadline, on tokio's timer: it bounds I/O, not the service's logical time.
const TIMEOUT: Duration = Duration::from_secs(15);

/// An `http://host:port/path` or `https://host:port/path` endpoint, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// `https://`: the POST goes over TLS.
    tls: bool,
    host: String,
    port: u16,
    path: String,
}

impl Endpoint {
    /// Parses an endpoint URL; `None` unless it is `http://` or `https://` with a host.
    pub(crate) fn parse(url: &str) -> Option<Self> {
        let (tls, rest) = match url.strip_prefix("https://") {
            Some(rest) => (true, rest),
            None => (false, url.strip_prefix("http://")?),
        };
        let (authority, path) = match rest.find('/') {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, "/"),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) => (host, port.parse().ok()?),
            None => (authority, if tls { 443 } else { 80 }),
        };
        if host.is_empty()
            || !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-".contains(&b))
        {
            return None;
        }
        Some(Self {
            tls,
            host: host.to_owned(),
            port,
            path: path.to_owned(),
        })
    }

    /// The subscription protocol the endpoint's scheme goes with.
    pub(crate) fn protocol(&self) -> &'static str {
        if self.tls { "https" } else { "http" }
    }
}

/// The certificate authorities an HTTPS endpoint's certificate must chain to, as a TLS client
/// configuration (or why there is none, which fails each HTTPS delivery).
#[derive(Clone)]
pub(crate) struct TrustedRoots {
    config: Result<Arc<rustls::ClientConfig>, String>,
}

impl std::fmt::Debug for TrustedRoots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TrustedRoots")
    }
}

/// The Mozilla roots alone, built once.
static DEFAULT_ROOTS: LazyLock<TrustedRoots> = LazyLock::new(|| TrustedRoots::with(Vec::new()));

impl Default for TrustedRoots {
    fn default() -> Self {
        DEFAULT_ROOTS.clone()
    }
}

impl TrustedRoots {
    /// The Mozilla roots and `extra`.
    fn with(extra: Vec<CertificateDer<'static>>) -> Self {
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        // Each was checked by `from_pem`, so none is skipped.
        roots.add_parsable_certificates(extra);
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map(|builder| Arc::new(builder.with_root_certificates(roots).with_no_client_auth()))
        .map_err(|e| format!("no TLS client configuration: {e}"));
        Self { config }
    }

    /// The Mozilla roots and the certificates in `pem` (one or more `CERTIFICATE` blocks).
    pub(crate) fn from_pem(pem: &[u8]) -> Result<Self, String> {
        let mut extra = Vec::new();
        for certificate in CertificateDer::pem_slice_iter(pem) {
            let certificate = certificate.map_err(|e| format!("not a PEM certificate: {e}"))?;
            // Parsed now, so a bad certificate is refused here and not silently skipped.
            rustls::RootCertStore::empty()
                .add(certificate.clone())
                .map_err(|e| format!("not a usable root certificate: {e}"))?;
            extra.push(certificate);
        }
        if extra.is_empty() {
            return Err("no PEM CERTIFICATE block found".to_owned());
        }
        Ok(Self::with(extra))
    }
}

/// Posts each message to an HTTP endpoint: a 2xx answer is delivered; 429, 5xx, a timeout or
/// a failed connection is retried; any other answer is a permanent failure.
pub(crate) struct HttpSink {
    endpoint: Endpoint,
    roots: TrustedRoots,
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
        roots: TrustedRoots,
        content_type: Option<String>,
        throttle: Option<(SharedClock, u32)>,
    ) -> Self {
        Self {
            endpoint,
            roots,
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
        let stream = TcpStream::connect((self.endpoint.host.as_str(), self.endpoint.port)).await?;
        if !self.endpoint.tls {
            return exchange(stream, &request, message).await;
        }
        let name = ServerName::try_from(self.endpoint.host.clone())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let config = self.roots.config.clone().map_err(std::io::Error::other)?;
        let stream = TlsConnector::from(config).connect(name, stream).await?;
        exchange(stream, &request, message).await
    }
}

/// Sends the request head and the body, then reads the status of the answer.
async fn exchange(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    request: &str,
    message: &Message,
) -> std::io::Result<u16> {
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
    fn trusted_certificates_must_be_pem_certificates() {
        assert!(TrustedRoots::from_pem(b"").is_err());
        assert!(
            TrustedRoots::from_pem(
                b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
            )
            .is_err()
        );
        assert!(TrustedRoots::default().config.is_ok());
    }

    #[test]
    fn endpoints_parse() {
        assert_eq!(
            Endpoint::parse("http://127.0.0.1/").map(|e| e.protocol()),
            Some("http")
        );
        assert_eq!(
            Endpoint::parse("http://127.0.0.1:8080/hook?a=1"),
            Some(Endpoint {
                tls: false,
                host: "127.0.0.1".into(),
                port: 8080,
                path: "/hook?a=1".into()
            })
        );
        assert_eq!(
            Endpoint::parse("http://example.com").map(|e| e.port),
            Some(80)
        );
        let secure = Endpoint::parse("https://example.com/x").unwrap();
        assert_eq!(
            (secure.tls, secure.port, secure.protocol()),
            (true, 443, "https")
        );
        assert_eq!(
            Endpoint::parse("https://h:8443").map(|e| e.port),
            Some(8443)
        );
        for bad in [
            "https://",
            "HTTPS://example.com/",
            "ftp://x",
            "http://",
            "http://a b/",
            "http://h:99999/",
        ] {
            assert_eq!(Endpoint::parse(bad), None, "{bad}");
        }
    }
}
