//! Expression parsing: no input panics; printing and parsing round-trips.

use cloudlet_kv::expr::{parse_condition, parse_projection, parse_update};
use proptest::prelude::*;

proptest! {
    #[test]
    fn parsing_arbitrary_text_never_panics(text in "\\PC{0,80}") {
        let _ = parse_condition("ConditionExpression", &text);
        let _ = parse_update(&text);
        let _ = parse_projection(&text);
    }

    #[test]
    fn parsing_expression_like_text_never_panics(
        tokens in prop::collection::vec(prop::sample::select(vec![
            "a", "#n", ":v", "(", ")", "[", "]", "0", "7", ".", ",", "=", "<>", "<", "<=", ">", ">=",
            "+", "-", "AND", "OR", "NOT", "BETWEEN", "IN", "SET", "REMOVE", "ADD", "DELETE",
            "size", "begins_with", "contains", "attribute_exists", "attribute_type",
            "if_not_exists", "list_append", "status",
        ]), 0..24)
    ) {
        let text = tokens.join(" ");
        let _ = parse_condition("ConditionExpression", &text);
        let _ = parse_update(&text);
        let _ = parse_projection(&text);
    }
}
