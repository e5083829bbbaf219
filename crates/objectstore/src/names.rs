//! S3's rules for bucket names, keys, user metadata and tags.

use std::collections::BTreeMap;

use crate::error::{Error, Result};

/// The longest key, in UTF-8 bytes.
pub const MAX_KEY_BYTES: usize = 1024;
/// The most user metadata, counted as the UTF-8 bytes of every key and value.
pub const MAX_METADATA_BYTES: usize = 2048;
/// The most tags on one object.
pub const MAX_TAGS: usize = 10;

/// Checks a general purpose bucket name against S3's rules: 3-63 characters of lowercase
/// letters, digits, dots and hyphens; a letter or digit first and last; no two adjacent dots;
/// not shaped like an IP address; none of the reserved prefixes and suffixes.
pub fn validate_bucket_name(name: &str) -> Result<()> {
    let fail = |reason| {
        Err(Error::InvalidBucketName {
            bucket: name.to_owned(),
            reason,
        })
    };
    if !(3..=63).contains(&name.len()) {
        return fail("bucket names must be between 3 and 63 characters long");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        return fail(
            "bucket names can consist only of lowercase letters, numbers, dots and hyphens",
        );
    }
    let edge = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = name.as_bytes();
    if !edge(bytes[0]) || !edge(bytes[bytes.len() - 1]) {
        return fail("bucket names must begin and end with a letter or number");
    }
    if name.contains("..") {
        return fail("bucket names must not contain two adjacent periods");
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return fail("bucket names must not be formatted as an IP address");
    }
    for prefix in ["xn--", "sthree-", "amzn-s3-demo-"] {
        if name.starts_with(prefix) {
            return fail("bucket names must not start with a reserved prefix");
        }
    }
    for suffix in ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"] {
        if name.ends_with(suffix) {
            return fail("bucket names must not end with a reserved suffix");
        }
    }
    Ok(())
}

/// Keys are 1 to 1024 bytes of UTF-8; any character is allowed, `/` is only a convention.
pub(crate) fn validate_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(Error::invalid(
            "Key",
            "Key must not be empty (1 to 1024 bytes)",
        ));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(Error::KeyTooLong { length: key.len() });
    }
    Ok(())
}

/// User metadata (`x-amz-meta-*`): at most 2 KB, counted as S3 counts it (the UTF-8 bytes of
/// every key and value); keys are non-empty and, as HTTP headers, printable ASCII.
pub(crate) fn validate_metadata(metadata: &BTreeMap<String, String>) -> Result<()> {
    let size: usize = metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
    if size > MAX_METADATA_BYTES {
        return Err(Error::MetadataTooLarge {
            size,
            limit: MAX_METADATA_BYTES,
        });
    }
    for key in metadata.keys() {
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::invalid(
                "Metadata",
                format!("metadata key {key:?} must be non-empty printable ASCII without spaces"),
            ));
        }
    }
    Ok(())
}

/// Object tags: at most 10; keys 1-128 and values 0-256 Unicode characters.
pub(crate) fn validate_tags(tags: &BTreeMap<String, String>) -> Result<()> {
    if tags.len() > MAX_TAGS {
        return Err(Error::InvalidTag {
            message: format!("Object tags cannot be greater than {MAX_TAGS}"),
        });
    }
    for (key, value) in tags {
        let key_chars = key.chars().count();
        if key_chars == 0 || key_chars > 128 {
            return Err(Error::InvalidTag {
                message: format!(
                    "The TagKey you have provided is invalid: {key:?} (1 to 128 characters)"
                ),
            });
        }
        if value.chars().count() > 256 {
            return Err(Error::InvalidTag {
                message: format!(
                    "The TagValue you have provided is invalid: {value:?} (at most 256 characters)"
                ),
            });
        }
    }
    Ok(())
}

/// A version id as this crate makes them (32 lowercase hex digits) or `null`.
pub(crate) fn validate_version_id(version_id: &str) -> Result<()> {
    let ours = version_id.len() == 32
        && version_id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if ours || version_id == "null" {
        Ok(())
    } else {
        Err(Error::invalid("VersionId", "Invalid version id specified"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_follow_s3_rules() {
        for good in ["abc", "my-bucket.logs", "a1b2", &"a".repeat(63)] {
            assert!(validate_bucket_name(good).is_ok(), "{good}");
        }
        for bad in [
            "ab",
            &"a".repeat(64),
            "My-Bucket",
            "-abc",
            "abc-",
            "a..b",
            "192.168.5.4",
            "xn--abc",
            "abc-s3alias",
            "a_b",
            "abc.mrap",
        ] {
            let err = validate_bucket_name(bad).unwrap_err();
            assert_eq!(err.code(), "InvalidBucketName", "{bad}");
        }
    }

    #[test]
    fn keys_are_one_to_1024_bytes() {
        assert!(validate_key("a//b").is_ok());
        assert!(validate_key(&"é".repeat(512)).is_ok());
        assert!(matches!(
            validate_key(&"é".repeat(513)),
            Err(Error::KeyTooLong { length: 1026 })
        ));
        assert!(validate_key("").is_err());
    }

    #[test]
    fn metadata_counts_keys_and_values() {
        let mut m = BTreeMap::new();
        m.insert("k".repeat(24), "v".repeat(2024));
        assert!(validate_metadata(&m).is_ok());
        m.insert("x".into(), String::new());
        assert!(matches!(
            validate_metadata(&m),
            Err(Error::MetadataTooLarge { size: 2049, .. })
        ));
    }
}
