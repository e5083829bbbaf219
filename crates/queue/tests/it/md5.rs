//! MD5 digests against values from an independent implementation of SQS's algorithm.

use std::collections::BTreeMap;

use cloudlet_core::MessageAttribute;
use cloudlet_queue::md5::{md5_of_attributes, md5_of_body};

#[test]
fn body_digests() {
    assert_eq!(md5_of_body(b"hello"), "5d41402abc4b2a76b9719d911017c592");
    assert_eq!(
        md5_of_body("héllo ✓".as_bytes()),
        "21b1ae5bc147bb564254200a4731e337"
    );
}

#[test]
fn attribute_digests() {
    let mut one = BTreeMap::new();
    one.insert("City".to_owned(), MessageAttribute::string("Any City"));
    assert_eq!(
        md5_of_attributes(&one).unwrap(),
        "0c32cb5c844c01fbd5b6b434b52cf670"
    );

    let mut mixed = one.clone();
    mixed.insert("Population".to_owned(), MessageAttribute::number("1250800"));
    mixed.insert(
        "Blob".to_owned(),
        MessageAttribute::binary(vec![0u8, 1, 2, 255]),
    );
    mixed.insert(
        "Custom".to_owned(),
        MessageAttribute::string("v").with_custom_type("custom"),
    );
    assert_eq!(
        md5_of_attributes(&mixed).unwrap(),
        "cf21d6e7da867cfd60e3eb0d3a36440c"
    );

    let mut float = BTreeMap::new();
    float.insert(
        "price".to_owned(),
        MessageAttribute::number("12.50").with_custom_type("float"),
    );
    assert_eq!(
        md5_of_attributes(&float).unwrap(),
        "575e0b7ba6e5e29952ea82a59f4d459d"
    );

    assert_eq!(md5_of_attributes(&BTreeMap::new()), None);
}
