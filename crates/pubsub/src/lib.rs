//! cloudlet-pubsub: SNS semantics as a library, over cloudlet's storage and clock.
//!
//! So far: [`FilterPolicy`], subscription filter policies in AWS's JSON syntax, validated as
//! SNS validates them and matched against message attributes or a JSON message body; and
//! [`PolicySet`], a topic's policies indexed by their exact-match keys, so publishing to 1,000
//! subscriptions does not evaluate 1,000 policies.
//!
//! ```
//! use std::collections::BTreeMap;
//! use cloudlet_core::MessageAttribute;
//! use cloudlet_pubsub::{FilterPolicy, FilterPolicyScope};
//!
//! let policy = FilterPolicy::parse(
//!     r#"{"store": ["example_corp"], "price": [{"numeric": [">", 0, "<=", 100]}]}"#,
//!     FilterPolicyScope::MessageAttributes,
//! )?;
//! let attributes = BTreeMap::from([
//!     ("store".to_owned(), MessageAttribute::string("example_corp")),
//!     ("price".to_owned(), MessageAttribute::number("99.5")),
//! ]);
//! assert!(policy.matches_attributes(&attributes));
//! # Ok::<(), cloudlet_pubsub::Error>(())
//! ```
//!
//! # Status against SNS
//!
//! | feature | status |
//! |---|---|
//! | filter policies: exact strings, numbers, booleans and null; `prefix`, `suffix`, `equals-ignore-case`, `anything-but` (values, numbers, `prefix`), `numeric` comparisons and ranges, `exists`, `cidr`, `$or`, nested keys (MessageBody scope); validation with SNS's messages (5 keys, 150 combinations, operator shapes) | yes |
//! | matching compiled per topic ([`PolicySet`]): sub-linear in the number of exact-match policies | yes |
//! | topics, subscriptions, publish, delivery | not yet |

mod error;
pub mod filter;

pub use error::{Error, Result};
pub use filter::{FilterPolicy, FilterPolicyScope, PolicySet};
