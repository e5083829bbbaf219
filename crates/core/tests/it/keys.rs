//! Tuple encoding: round trips, and byte order equals tuple order (proptest), with decimals
//! ordered numerically.

use std::cmp::Ordering;

use cloudlet_core::keys::{self, Decimal, Element, Tuple, TupleReader};
use proptest::prelude::*;

fn encode(elements: &[Element]) -> Vec<u8> {
    elements
        .iter()
        .fold(Tuple::new(), |t, e| t.element(e))
        .build()
        .to_vec()
}

/// Decimals built from an i128 mantissa and a scale, so the test knows their true order.
fn exact_decimal() -> impl Strategy<Value = (i128, u32)> {
    (-(10i128.pow(20))..10i128.pow(20), 0u32..10)
}

fn decimal_text((mantissa, scale): (i128, u32)) -> String {
    let negative = mantissa < 0;
    let digits = mantissa.unsigned_abs().to_string();
    let digits = format!("{digits:0>width$}", width = scale as usize + 1);
    let (int, frac) = digits.split_at(digits.len() - scale as usize);
    let sign = if negative { "-" } else { "" };
    if frac.is_empty() {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    }
}

/// Compares m1/10^s1 with m2/10^s2 exactly.
fn cmp_exact((m1, s1): (i128, u32), (m2, s2): (i128, u32)) -> Ordering {
    let scale = s1.max(s2);
    (m1 * 10i128.pow(scale - s1)).cmp(&(m2 * 10i128.pow(scale - s2)))
}

fn element() -> impl Strategy<Value = Element> {
    prop_oneof![
        prop::collection::vec(prop::sample::select(vec![0u8, 1, 0x7F, 0xFE, 0xFF]), 0..6)
            .prop_map(|b| Element::Bytes(b.into())),
        "[a\\x00\\x01é\u{10000}]{0,5}".prop_map(Element::String),
        exact_decimal().prop_map(|d| Element::Decimal(Decimal::parse(&decimal_text(d)).unwrap())),
        any::<i64>().prop_map(Element::I64),
        any::<u64>().prop_map(Element::U64),
    ]
}

proptest! {
    #[test]
    fn tuples_round_trip(tuple in prop::collection::vec(element(), 0..5)) {
        prop_assert_eq!(keys::decode(&encode(&tuple)).unwrap(), tuple);
    }

    #[test]
    fn byte_order_equals_tuple_order(a in prop::collection::vec(element(), 0..4), b in prop::collection::vec(element(), 0..4)) {
        prop_assert_eq!(encode(&a).cmp(&encode(&b)), a.cmp(&b));
    }

    #[test]
    fn decimal_order_is_numeric(a in exact_decimal(), b in exact_decimal()) {
        let (da, db) = (Decimal::parse(&decimal_text(a)).unwrap(), Decimal::parse(&decimal_text(b)).unwrap());
        prop_assert_eq!(da.cmp(&db), cmp_exact(a, b));
        let (ea, eb) = (Tuple::new().decimal(&da).build(), Tuple::new().decimal(&db).build());
        prop_assert_eq!(ea.cmp(&eb), cmp_exact(a, b));
        // Display gives the canonical text, which parses back to the same number.
        prop_assert_eq!(Decimal::parse(&da.to_string()).unwrap(), da);
    }

    #[test]
    fn decimal_arithmetic_is_exact(a in exact_decimal(), b in exact_decimal()) {
        let (da, db) = (Decimal::parse(&decimal_text(a)).unwrap(), Decimal::parse(&decimal_text(b)).unwrap());
        let scale = a.1.max(b.1);
        let (ma, mb) = (a.0 * 10i128.pow(scale - a.1), b.0 * 10i128.pow(scale - b.1));
        let sum = Decimal::parse(&decimal_text((ma + mb, scale))).unwrap();
        let difference = Decimal::parse(&decimal_text((ma - mb, scale))).unwrap();
        prop_assert_eq!(da.plus(&db), sum);
        prop_assert_eq!(da.minus(&db), difference);
        prop_assert_eq!(da.negated().negated(), da);
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..40)) {
        let _ = keys::decode(&bytes);
    }

    #[test]
    fn parsing_arbitrary_text_never_panics(text in "[-+0-9.eE]{0,12}|\\PC{0,12}") {
        let _ = Decimal::parse(&text);
    }

    #[test]
    fn a_tuple_is_a_prefix_of_its_extensions(a in prop::collection::vec(element(), 0..3), b in prop::collection::vec(element(), 1..3)) {
        let long: Vec<Element> = a.iter().chain(b.iter()).cloned().collect();
        prop_assert!(encode(&long).starts_with(&encode(&a)));
    }
}

#[test]
fn decimals_normalize_like_dynamodb() {
    let canon = |s: &str| Decimal::parse(s).unwrap().to_string();
    assert_eq!(canon("1.50"), "1.5");
    assert_eq!(canon("0001.500e1"), "15");
    assert_eq!(canon("-0.0"), "0");
    assert_eq!(canon("+7"), "7");
    assert_eq!(canon(".5"), "0.5");
    assert_eq!(canon("5."), "5");
    assert_eq!(canon("1E+3"), "1000");
    assert_eq!(canon("123e-5"), "0.00123");
    assert_eq!(
        Decimal::parse("9.9999999999999999999999999999999999999E+125")
            .unwrap()
            .significant_digits(),
        38
    );
    assert_eq!(Decimal::parse("1E-130").unwrap().exponent(), -129);
    for bad in [
        "", "-", ".", "e5", "1e", "1e+", "1.2.3", "abc", "1 ", "--1", "1e5.5", "0x10",
    ] {
        assert!(Decimal::parse(bad).is_err(), "{bad:?} should be rejected");
    }
    assert!(Decimal::parse("1e40000").is_err());
    assert!(Decimal::parse("1e-99999999999999999999").is_err());
}

#[test]
fn extreme_decimals_order_correctly() {
    let sorted = [
        "-9.9999999999999999999999999999999999999E+125",
        "-1",
        "-0.5",
        "-1E-130",
        "0",
        "1E-130",
        "0.1",
        "0.12",
        "0.123",
        "0.13",
        "1",
        "10",
        "11",
        "9.9999999999999999999999999999999999999E+125",
    ];
    let encoded: Vec<_> = sorted
        .iter()
        .map(|s| {
            Tuple::new()
                .decimal(&Decimal::parse(s).unwrap())
                .u64(0)
                .build()
        })
        .collect();
    for pair in encoded.windows(2) {
        assert!(pair[0] < pair[1], "{pair:?}");
    }
}

#[test]
fn reader_reads_typed_elements_and_rejects_wrong_types() {
    let key = Tuple::new()
        .str("queue")
        .u64(7)
        .i64(-3)
        .bytes(b"\x00x")
        .build();
    let mut r = TupleReader::new(&key);
    assert_eq!(r.str().unwrap(), "queue");
    assert!(r.str().is_err(), "a u64 is not a string");
    assert_eq!(r.u64().unwrap(), 7);
    assert_eq!(r.i64().unwrap(), -3);
    assert_eq!(r.bytes().unwrap().as_ref(), b"\x00x");
    assert!(r.is_empty());
    assert!(r.u64().is_err());
    // String prefixes bound prefix scans.
    let prefix = Tuple::new().str("queue").u64(7).build();
    assert!(key.starts_with(&prefix));
    let open = Tuple::new().str_prefix("que").build();
    assert!(key.starts_with(&open));
}
