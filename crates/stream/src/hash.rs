//! The 128-bit hash key space: partition keys hashed with MD5 as Kinesis hashes them, and the
//! uniform ranges Kinesis gives a stream's shards.

use md5::{Digest, Md5};

/// The hash key of `partition_key`: its UTF-8 bytes' MD5, read as a big-endian 128-bit
/// integer.
pub fn hash_key(partition_key: &str) -> u128 {
    u128::from_be_bytes(Md5::digest(partition_key.as_bytes()).into())
}

/// `floor(2^128 / n)`, the width Kinesis gives each of `n` uniform shards (`n` ≥ 1).
fn width(n: u128) -> u128 {
    let q = u128::MAX / n;
    if u128::MAX % n + 1 == n { q + 1 } else { q }
}

/// The start of shard `i` of `n` uniform shards; shard `i` ends where shard `i + 1` starts,
/// the last at `2^128 - 1`.
pub(crate) fn uniform_start(i: u128, n: u128) -> u128 {
    if n <= 1 { 0 } else { i * width(n) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_ranges_match_kinesis() {
        assert_eq!(
            uniform_start(1, 2),
            170_141_183_460_469_231_731_687_303_715_884_105_728
        );
        assert_eq!(
            uniform_start(1, 3),
            113_427_455_640_312_821_154_458_202_477_256_070_485
        );
        assert_eq!(
            uniform_start(2, 3),
            226_854_911_280_625_642_308_916_404_954_512_140_970
        );
        assert_eq!(uniform_start(0, 1), 0);
    }
}
