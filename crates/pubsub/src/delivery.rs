//! Delivery policies: how SNS retries a failed delivery, phase by phase.
//!
//! Every policy has four phases after the first attempt fails: immediate retries (no delay),
//! pre-backoff retries (the minimum delay apart), backoff retries (growing from the minimum to
//! the maximum delay by the backoff function), and post-backoff retries (the maximum delay
//! apart). Sink subscriptions (queues, streams, functions: what SNS calls managed endpoints)
//! always use SNS's managed-endpoint policy; HTTP subscriptions use the topic's or their own
//! `DeliveryPolicy`, three retries 20 seconds apart by default. SNS adds jitter to its waits;
//! these do not, so tests on a manual clock see exact times.

use std::time::Duration;

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::service::invalid;

/// The longest a custom (HTTP) policy may retry for in all, in seconds.
pub const MAX_POLICY_SECONDS: u64 = 3600;

/// The most retries an HTTP policy may make.
pub const MAX_HTTP_RETRIES: u32 = 100;

/// How the backoff phase's waits grow from the minimum to the maximum delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackoffFunction {
    /// Evenly spaced.
    Linear,
    /// Growing by a growing step (quadratic).
    Arithmetic,
    /// By a constant ratio, reaching the maximum at the last backoff retry.
    Geometric,
    /// Doubling from the minimum, capped at the maximum.
    Exponential,
}

impl BackoffFunction {
    fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "linear" => Some(Self::Linear),
            "arithmetic" => Some(Self::Arithmetic),
            "geometric" => Some(Self::Geometric),
            "exponential" => Some(Self::Exponential),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Linear => "linear",
            Self::Arithmetic => "arithmetic",
            Self::Geometric => "geometric",
            Self::Exponential => "exponential",
        }
    }
}

/// A retry policy: SNS's `healthyRetryPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt, across all four phases.
    pub num_retries: u32,
    /// Retries with no delay.
    pub num_no_delay_retries: u32,
    /// Retries `min_delay` apart, before the backoff.
    pub num_min_delay_retries: u32,
    /// Retries `max_delay` apart, after the backoff.
    pub num_max_delay_retries: u32,
    /// The shortest wait, in seconds.
    pub min_delay: u32,
    /// The longest wait, in seconds.
    pub max_delay: u32,
    /// How the backoff phase's waits grow.
    pub backoff: BackoffFunction,
}

impl RetryPolicy {
    /// SNS's policy for managed endpoints (SQS, Lambda, and here every sink): 3 immediate
    /// retries, 2 one second apart, 10 backing off from 1 to 20 seconds, then 100,000 twenty
    /// seconds apart; 100,015 attempts over about 23 days.
    pub const MANAGED: Self = Self {
        // SNS's phases add up to the attempts, the first one included: 3 + 2 + 10 + 100,000.
        num_retries: 100_014,
        num_no_delay_retries: 3,
        num_min_delay_retries: 2,
        num_max_delay_retries: 99_999,
        min_delay: 1,
        max_delay: 20,
        backoff: BackoffFunction::Exponential,
    };

    /// SNS's default for HTTP endpoints: three retries, 20 seconds apart.
    pub const HTTP_DEFAULT: Self = Self {
        num_retries: 3,
        num_no_delay_retries: 0,
        num_min_delay_retries: 0,
        num_max_delay_retries: 0,
        min_delay: 20,
        max_delay: 20,
        backoff: BackoffFunction::Linear,
    };

    /// Attempts in all: the first and every retry.
    pub fn max_attempts(&self) -> u32 {
        self.num_retries.saturating_add(1)
    }

    fn backoff_retries(&self) -> u32 {
        self.num_retries
            .saturating_sub(self.num_no_delay_retries)
            .saturating_sub(self.num_min_delay_retries)
            .saturating_sub(self.num_max_delay_retries)
    }

    /// The wait after the `failed`-th failed attempt (from 1), before the retry it leads to.
    pub fn delay(&self, failed: u32) -> Duration {
        let retry = failed.max(1);
        let (min, max) = (f64::from(self.min_delay), f64::from(self.max_delay));
        let no_delay = self.num_no_delay_retries;
        let pre = no_delay.saturating_add(self.num_min_delay_retries);
        let backoff = self.backoff_retries();
        let seconds = if retry <= no_delay {
            0.0
        } else if retry <= pre {
            min
        } else if retry <= pre.saturating_add(backoff) {
            // From just above the minimum to the maximum at the phase's last retry.
            let step = retry - pre;
            let t = f64::from(step) / f64::from(backoff);
            match self.backoff {
                BackoffFunction::Linear => min + (max - min) * t,
                BackoffFunction::Arithmetic => min + (max - min) * t * t,
                BackoffFunction::Geometric => min * (max / min.max(1.0)).powf(t),
                BackoffFunction::Exponential => {
                    (min * 2f64.powi(i32::try_from(step - 1).unwrap_or(i32::MAX))).min(max)
                }
            }
        } else {
            max
        };
        Duration::from_secs_f64(seconds.clamp(0.0, max.max(min)))
    }

    /// Every wait of the policy added up, in seconds.
    fn total_seconds(&self) -> f64 {
        (1..=self.num_retries)
            .map(|n| self.delay(n).as_secs_f64())
            .sum()
    }

    /// The policy as SNS writes it in `EffectiveDeliveryPolicy`.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "minDelayTarget": self.min_delay,
            "maxDelayTarget": self.max_delay,
            "numRetries": self.num_retries,
            "numMaxDelayRetries": self.num_max_delay_retries,
            "numNoDelayRetries": self.num_no_delay_retries,
            "numMinDelayRetries": self.num_min_delay_retries,
            "backoffFunction": self.backoff.name(),
        })
    }

    /// Parses a `healthyRetryPolicy` object; fields left out take the HTTP defaults.
    fn parse(value: &Value, at: &str) -> Result<Self> {
        let object = object(value, at)?;
        let mut policy = Self::HTTP_DEFAULT;
        let mut min_given = false;
        let mut max_given = false;
        for (key, field) in object {
            let number = || count(field, &format!("{at}.{key}"));
            match key.as_str() {
                "minDelayTarget" => {
                    policy.min_delay = number()?;
                    min_given = true;
                }
                "maxDelayTarget" => {
                    policy.max_delay = number()?;
                    max_given = true;
                }
                "numRetries" => policy.num_retries = number()?,
                "numNoDelayRetries" => policy.num_no_delay_retries = number()?,
                "numMinDelayRetries" => policy.num_min_delay_retries = number()?,
                "numMaxDelayRetries" => policy.num_max_delay_retries = number()?,
                "backoffFunction" => {
                    policy.backoff = field
                        .as_str()
                        .and_then(BackoffFunction::parse)
                        .ok_or_else(|| {
                            bad(format!(
                                "{at}.backoffFunction must be one of linear, arithmetic, geometric, exponential"
                            ))
                        })?;
                }
                other => {
                    return Err(bad(format!(
                        "{at}.{other} is not a field of a retry policy"
                    )));
                }
            }
        }
        // One bound given alone moves the other with it.
        if min_given && !max_given {
            policy.max_delay = policy.max_delay.max(policy.min_delay);
        }
        if max_given && !min_given {
            policy.min_delay = policy.min_delay.min(policy.max_delay);
        }
        if policy.num_retries > MAX_HTTP_RETRIES {
            return Err(bad(format!(
                "{at}.numRetries is {}; it must be between 0 and {MAX_HTTP_RETRIES}",
                policy.num_retries
            )));
        }
        if policy.min_delay < 1 || policy.min_delay > policy.max_delay {
            return Err(bad(format!(
                "{at}.minDelayTarget is {}; it must be at least 1 and at most maxDelayTarget ({})",
                policy.min_delay, policy.max_delay
            )));
        }
        if u64::from(policy.max_delay) > MAX_POLICY_SECONDS {
            return Err(bad(format!(
                "{at}.maxDelayTarget is {}; it must be at most {MAX_POLICY_SECONDS}",
                policy.max_delay
            )));
        }
        let phases = u64::from(policy.num_no_delay_retries)
            + u64::from(policy.num_min_delay_retries)
            + u64::from(policy.num_max_delay_retries);
        if phases > u64::from(policy.num_retries) {
            return Err(bad(format!(
                "{at}: numNoDelayRetries + numMinDelayRetries + numMaxDelayRetries is {phases}; it must not exceed numRetries ({})",
                policy.num_retries
            )));
        }
        let total = policy.total_seconds();
        if total > MAX_POLICY_SECONDS as f64 {
            return Err(bad(format!(
                "{at}: the policy retries for {total:.0} seconds in all; at most {MAX_POLICY_SECONDS} are allowed"
            )));
        }
        Ok(policy)
    }
}

/// What an HTTP subscription's deliveries follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HttpPolicy {
    pub(crate) retry: RetryPolicy,
    /// Deliveries per second at most, if limited.
    pub(crate) max_receives_per_second: Option<u32>,
    /// The Content-Type of the POST.
    pub(crate) content_type: Option<String>,
}

impl Default for HttpPolicy {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::HTTP_DEFAULT,
            max_receives_per_second: None,
            content_type: None,
        }
    }
}

impl HttpPolicy {
    /// The policy an HTTP subscription follows: its own `DeliveryPolicy` unless the topic
    /// disables overrides, each part falling back to the topic's defaults and then SNS's.
    pub(crate) fn effective(topic: Option<&str>, subscription: Option<&str>) -> Result<Self> {
        let topic = topic
            .map(TopicPolicy::parse)
            .transpose()?
            .unwrap_or_default();
        let parts = match subscription {
            Some(text) if !topic.disable_overrides => {
                Parts::parse_subscription(text)?.or(topic.defaults)
            }
            _ => topic.defaults,
        };
        Ok(Self {
            retry: parts.retry.unwrap_or(RetryPolicy::HTTP_DEFAULT),
            max_receives_per_second: parts.max_receives_per_second,
            content_type: parts.content_type,
        })
    }

    /// As SNS shows it in a subscription's `EffectiveDeliveryPolicy`.
    pub(crate) fn to_json(&self) -> Value {
        let mut out = serde_json::json!({
            "healthyRetryPolicy": self.retry.to_json(),
            "sicklyRetryPolicy": null,
            "throttlePolicy": null,
            "guaranteed": false,
        });
        if let Some(rate) = self.max_receives_per_second {
            out["throttlePolicy"] = serde_json::json!({"maxReceivesPerSecond": rate});
        }
        if let Some(content_type) = &self.content_type {
            out["requestPolicy"] = serde_json::json!({"headerContentType": content_type});
        }
        out
    }
}

/// The parts a subscription's `DeliveryPolicy` sets, or a topic's `http` defaults.
#[derive(Debug, Default)]
struct Parts {
    retry: Option<RetryPolicy>,
    max_receives_per_second: Option<u32>,
    content_type: Option<String>,
}

impl Parts {
    /// Reads the part a subscription's policy calls `part` (a topic's adds `default`);
    /// false for a name that is no part.
    fn read(&mut self, part: &str, field: &Value, at: &str) -> Result<bool> {
        match part {
            "healthyRetryPolicy" => self.retry = Some(RetryPolicy::parse(field, at)?),
            "throttlePolicy" => self.max_receives_per_second = throttle(field, at)?,
            "requestPolicy" => self.content_type = request(field, at)?,
            "sicklyRetryPolicy" => {}
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Each part of `self`, else of `fallback`.
    fn or(self, fallback: Self) -> Self {
        Self {
            retry: self.retry.or(fallback.retry),
            max_receives_per_second: self
                .max_receives_per_second
                .or(fallback.max_receives_per_second),
            content_type: self.content_type.or(fallback.content_type),
        }
    }

    /// A subscription's `DeliveryPolicy`.
    fn parse_subscription(text: &str) -> Result<Self> {
        let value = json(text)?;
        let mut out = Self::default();
        for (key, field) in object(&value, "DeliveryPolicy")? {
            if key != "guaranteed" && !out.read(key, field, key)? {
                return Err(bad(format!("{key} is not a field of a delivery policy")));
            }
        }
        Ok(out)
    }
}

/// A topic's `DeliveryPolicy` (its `http` part; other protocols' policies cannot change).
#[derive(Debug, Default)]
struct TopicPolicy {
    defaults: Parts,
    disable_overrides: bool,
}

impl TopicPolicy {
    fn parse(text: &str) -> Result<Self> {
        let value = json(text)?;
        let mut out = Self::default();
        for (key, field) in object(&value, "DeliveryPolicy")? {
            if key != "http" {
                return Err(bad(format!(
                    "{key}: only the http delivery policy of a topic can be set"
                )));
            }
            for (key, field) in object(field, "http")? {
                if key == "disableSubscriptionOverrides" {
                    out.disable_overrides = field.as_bool().ok_or_else(|| {
                        bad("http.disableSubscriptionOverrides must be true or false")
                    })?;
                    continue;
                }
                // `defaultHealthyRetryPolicy` is the subscription's `healthyRetryPolicy`.
                let part = key.strip_prefix("default").map(|rest| {
                    let mut chars = rest.chars();
                    chars.next().map_or_else(String::new, |first| {
                        first.to_ascii_lowercase().to_string() + chars.as_str()
                    })
                });
                let read = match part {
                    Some(part) => out.defaults.read(&part, field, &format!("http.{key}"))?,
                    None => false,
                };
                if !read {
                    return Err(bad(format!(
                        "http.{key} is not a field of a topic's delivery policy"
                    )));
                }
            }
        }
        Ok(out)
    }
}

/// Checks a topic's `DeliveryPolicy` attribute.
pub(crate) fn check_topic_policy(text: &str) -> Result<()> {
    TopicPolicy::parse(text).map(|_| ())
}

/// Checks a subscription's `DeliveryPolicy` attribute.
pub(crate) fn check_subscription_policy(text: &str) -> Result<()> {
    Parts::parse_subscription(text).map(|_| ())
}

fn bad(message: impl std::fmt::Display) -> Error {
    invalid("DeliveryPolicy", message)
}

fn json(text: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| bad(format!("not valid JSON ({e})")))
}

fn object<'a>(value: &'a Value, at: &str) -> Result<&'a Map<String, Value>> {
    value
        .as_object()
        .ok_or_else(|| bad(format!("{at} must be a JSON object")))
}

fn count(value: &Value, at: &str) -> Result<u32> {
    value
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| bad(format!("{at} must be a whole number, zero or more")))
}

fn throttle(value: &Value, at: &str) -> Result<Option<u32>> {
    if value.is_null() {
        return Ok(None);
    }
    let object = object(value, at)?;
    match object.get("maxReceivesPerSecond") {
        None => Ok(None),
        Some(rate) => {
            let rate = count(rate, &format!("{at}.maxReceivesPerSecond"))?;
            if rate < 1 {
                return Err(bad(format!("{at}.maxReceivesPerSecond must be at least 1")));
            }
            Ok(Some(rate))
        }
    }
}

/// The content types SNS lets an HTTP delivery declare.
const CONTENT_TYPES: &[&str] = &["text/plain", "application/json", "application/xml"];

fn request(value: &Value, at: &str) -> Result<Option<String>> {
    if value.is_null() {
        return Ok(None);
    }
    let object = object(value, at)?;
    let Some(content_type) = object.get("headerContentType") else {
        return Ok(None);
    };
    let text = content_type
        .as_str()
        .ok_or_else(|| bad(format!("{at}.headerContentType must be a string")))?;
    let media = text.split(';').next().unwrap_or_default().trim();
    if !CONTENT_TYPES.iter().any(|t| t.eq_ignore_ascii_case(media)) || text.contains(['\r', '\n']) {
        return Err(bad(format!(
            "{at}.headerContentType '{text}' is not supported; use text/plain, application/json or application/xml"
        )));
    }
    Ok(Some(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(policy: &RetryPolicy) -> Vec<u64> {
        (1..=policy.num_retries.min(20))
            .map(|n| policy.delay(n).as_secs())
            .collect()
    }

    #[test]
    fn the_managed_policy_follows_sns_table() {
        let p = RetryPolicy::MANAGED;
        assert_eq!(p.max_attempts(), 100_015);
        assert_eq!(p.backoff_retries(), 10);
        // 3 immediate, 2 at 1 s, 10 backing off from 1 s to 20 s, then 20 s.
        assert_eq!(
            secs(&p),
            [
                0, 0, 0, 1, 1, 1, 2, 4, 8, 16, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20
            ]
        );
        assert_eq!(p.delay(100_014), Duration::from_secs(20));
    }

    #[test]
    fn http_policies_parse_with_defaults_and_limits() {
        let default = HttpPolicy::effective(None, None).unwrap();
        assert_eq!(default.retry, RetryPolicy::HTTP_DEFAULT);
        assert_eq!(secs(&default.retry), [20, 20, 20]);
        let five = HttpPolicy::effective(None, Some(r#"{"healthyRetryPolicy":{"numRetries":5}}"#))
            .unwrap();
        assert_eq!(five.retry.max_attempts(), 6);
        let phased = HttpPolicy::effective(
            None,
            Some(
                r#"{"healthyRetryPolicy":{"minDelayTarget":1,"maxDelayTarget":60,"numRetries":10,
                    "numNoDelayRetries":2,"numMinDelayRetries":1,"numMaxDelayRetries":2,
                    "backoffFunction":"linear"},
                   "throttlePolicy":{"maxReceivesPerSecond":5},
                   "requestPolicy":{"headerContentType":"application/json"}}"#,
            ),
        )
        .unwrap();
        assert_eq!(secs(&phased.retry), [0, 0, 1, 12, 24, 36, 48, 60, 60, 60]);
        assert_eq!(phased.max_receives_per_second, Some(5));
        assert_eq!(phased.content_type.as_deref(), Some("application/json"));
        for (policy, names) in [
            (r#"{"healthyRetryPolicy":{"numRetries":101}}"#, "numRetries"),
            (
                r#"{"healthyRetryPolicy":{"minDelayTarget":0}}"#,
                "minDelayTarget",
            ),
            (
                r#"{"healthyRetryPolicy":{"minDelayTarget":30,"maxDelayTarget":20}}"#,
                "minDelayTarget",
            ),
            (
                r#"{"healthyRetryPolicy":{"maxDelayTarget":3601}}"#,
                "maxDelayTarget",
            ),
            (
                r#"{"healthyRetryPolicy":{"numRetries":2,"numNoDelayRetries":3}}"#,
                "must not exceed numRetries",
            ),
            (
                r#"{"healthyRetryPolicy":{"numRetries":100,"minDelayTarget":60,"maxDelayTarget":60}}"#,
                "3600",
            ),
            (
                r#"{"healthyRetryPolicy":{"backoffFunction":"random"}}"#,
                "backoffFunction",
            ),
            (
                r#"{"throttlePolicy":{"maxReceivesPerSecond":0}}"#,
                "maxReceivesPerSecond",
            ),
            (
                r#"{"requestPolicy":{"headerContentType":"image/png"}}"#,
                "headerContentType",
            ),
            (r#"{"retries":1}"#, "retries"),
            ("not json", "JSON"),
        ] {
            let err = HttpPolicy::effective(None, Some(policy)).unwrap_err();
            assert!(err.to_string().contains(names), "{policy}: {err}");
        }
    }

    #[test]
    fn a_topic_policy_is_the_default_and_can_forbid_overrides() {
        let topic = r#"{"http":{"defaultHealthyRetryPolicy":{"numRetries":7,"minDelayTarget":5,"maxDelayTarget":5},
                        "defaultRequestPolicy":{"headerContentType":"text/plain; charset=UTF-8"}}}"#;
        let own = r#"{"healthyRetryPolicy":{"numRetries":1}}"#;
        let from_topic = HttpPolicy::effective(Some(topic), None).unwrap();
        assert_eq!(from_topic.retry.num_retries, 7);
        assert_eq!(
            from_topic.content_type.as_deref(),
            Some("text/plain; charset=UTF-8")
        );
        let overridden = HttpPolicy::effective(Some(topic), Some(own)).unwrap();
        assert_eq!(overridden.retry.num_retries, 1);
        assert_eq!(
            overridden.content_type.as_deref(),
            Some("text/plain; charset=UTF-8")
        );
        let locked = r#"{"http":{"defaultHealthyRetryPolicy":{"numRetries":7},"disableSubscriptionOverrides":true}}"#;
        assert_eq!(
            HttpPolicy::effective(Some(locked), Some(own))
                .unwrap()
                .retry
                .num_retries,
            7
        );
        assert!(check_topic_policy(r#"{"sqs":{}}"#).is_err());
    }
}
