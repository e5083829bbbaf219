//! Names and ids as SQS validates them.

use crate::{Error, Result};

/// The longest queue name, `.fifo` included.
pub const MAX_QUEUE_NAME: usize = 80;
/// The longest batch entry id.
pub const MAX_BATCH_ENTRY_ID: usize = 80;
/// The longest message attribute name.
pub const MAX_ATTRIBUTE_NAME: usize = 256;

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// Checks a queue name: 1-80 characters of letters, digits, `-` and `_`; a FIFO queue's name
/// ends in `.fifo` (counted in the 80).
///
/// # Errors
/// [`Error::InvalidParameterValue`] naming `QueueName`.
pub fn validate_queue_name(name: &str, fifo: bool) -> Result<()> {
    let stem = if fifo {
        name.strip_suffix(".fifo").ok_or_else(|| {
            Error::invalid(
                "QueueName",
                format!("the name of a FIFO queue must end with `.fifo`: `{name}`"),
            )
        })?
    } else {
        name
    };
    if stem.is_empty() || name.len() > MAX_QUEUE_NAME || !stem.chars().all(is_word) {
        return Err(Error::invalid(
            "QueueName",
            format!(
                "`{name}`: can only include alphanumeric characters, hyphens, or underscores, 1 to {MAX_QUEUE_NAME} in length{}",
                if fifo { ", ending in .fifo" } else { "" }
            ),
        ));
    }
    Ok(())
}

/// Checks a batch entry id: 1-80 characters of letters, digits, `-` and `_`.
///
/// # Errors
/// [`Error::InvalidBatchEntryId`].
pub fn validate_batch_entry_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > MAX_BATCH_ENTRY_ID || !id.chars().all(is_word) {
        return Err(Error::InvalidBatchEntryId { id: id.to_owned() });
    }
    Ok(())
}

/// Checks a message attribute name: up to 256 characters of letters, digits, `_`, `-` and `.`;
/// no leading or trailing period, no two periods in a row, no `AWS.` or `Amazon.` prefix.
///
/// # Errors
/// [`Error::InvalidParameterValue`] naming `MessageAttribute.Name`.
pub fn validate_attribute_name(name: &str) -> Result<()> {
    let lower = name.to_ascii_lowercase();
    let bad = |reason: &str| {
        Err(Error::invalid(
            "MessageAttribute.Name",
            format!("`{name}`: {reason}"),
        ))
    };
    if name.is_empty() || name.len() > MAX_ATTRIBUTE_NAME {
        return bad("must be 1 to 256 characters");
    }
    if !name.chars().all(|c| is_word(c) || c == '.') {
        return bad("can contain only A-Z, a-z, 0-9, underscore, hyphen and period");
    }
    if name.starts_with('.') || name.ends_with('.') || name.contains("..") {
        return bad("cannot start or end with a period or hold two periods in a row");
    }
    if lower.starts_with("aws.") || lower.starts_with("amazon.") {
        return bad("the prefixes AWS. and Amazon. are reserved");
    }
    Ok(())
}
