//! Messages encode for storage and decode back exactly; damaged records are reported.

use cloudlet_core::{Bytes, Error, Message, MessageAttribute};
use proptest::prelude::*;

fn attribute() -> impl Strategy<Value = MessageAttribute> {
    let custom = prop::option::of("[a-z]{1,8}");
    prop_oneof![
        (".{0,10}", custom.clone()).prop_map(|(s, c)| MessageAttribute {
            custom_type: c,
            ..MessageAttribute::string(s)
        }),
        ("-?[0-9]{1,5}(\\.[0-9]{1,3})?", custom.clone()).prop_map(|(n, c)| MessageAttribute {
            custom_type: c,
            ..MessageAttribute::number(n)
        }),
        (prop::collection::vec(any::<u8>(), 0..10), custom).prop_map(|(b, c)| MessageAttribute {
            custom_type: c,
            ..MessageAttribute::binary(b)
        }),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    (
        prop::collection::vec(any::<u8>(), 0..64),
        prop::collection::btree_map("[A-Za-z.]{1,8}", attribute(), 0..10),
        prop::option::of("[a-z0-9]{1,8}"),
        prop::option::of("[a-z0-9]{1,8}"),
    )
        .prop_map(|(body, attributes, group_id, dedup_id)| Message {
            body: Bytes::from(body),
            attributes,
            group_id,
            dedup_id,
        })
}

proptest! {
    #[test]
    fn messages_round_trip(m in message()) {
        prop_assert_eq!(Message::decode(m.encode()).unwrap(), m);
    }

    #[test]
    fn truncated_or_arbitrary_records_are_errors_not_panics(m in message(), cut in any::<prop::sample::Index>(), junk in prop::collection::vec(any::<u8>(), 0..64)) {
        let encoded = m.encode();
        let at = cut.index(encoded.len());
        let truncated = matches!(Message::decode(encoded.slice(..at)), Err(Error::Corrupt { .. }));
        prop_assert!(truncated);
        let _ = Message::decode(Bytes::from(junk));
    }
}

#[test]
fn data_types_are_spelled_as_aws_spells_them() {
    assert_eq!(MessageAttribute::string("x").data_type(), "String");
    assert_eq!(
        MessageAttribute::number("1.5")
            .with_custom_type("float")
            .data_type(),
        "Number.float"
    );
    assert_eq!(
        MessageAttribute::binary(vec![1u8])
            .with_custom_type("gif")
            .data_type(),
        "Binary.gif"
    );
    let m = Message::new("hi")
        .with_group_id("g")
        .with_dedup_id("d")
        .with_attribute("a", MessageAttribute::string("v"));
    assert_eq!(m.group_id.as_deref(), Some("g"));
    assert_eq!(m.attributes.len(), 1);
}
