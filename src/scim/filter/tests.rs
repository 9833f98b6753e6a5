use super::*;
use serde_json::json;

fn user() -> Value {
    json!({
        "userName": "anne.lee@nhs.net",
        "externalId": "P1",
        "emails": [{"value": "anne.lee@nhs.net", "type": "work"}],
        super::super::NHS_USER: {"organisation": "RXX", "workAreas": ["CCU"]}
    })
}

#[test]
fn filters_the_connector_sends_match() {
    let u = user();
    for f in [
        "externalId eq \"P1\"",
        "userName eq \"Anne.Lee@nhs.net\"",
        "emails eq \"anne.lee@nhs.net\"",
        "emails.value eq \"anne.lee@nhs.net\"",
        "emails[type eq \"work\" and value co \"lee\"]",
        "urn:ietf:params:scim:schemas:extension:nhs:2.0:User:organisation eq \"RXX\" and externalId eq \"P1\"",
        "urn:ietf:params:scim:schemas:extension:nhs:2.0:User:workAreas eq \"ccu\"",
        "not (externalId eq \"P2\") or userName pr",
    ] {
        assert!(Filter::parse(f).expect(f).matches(&u), "{f}");
    }
    for f in ["externalId eq \"p1\"", "userName sw \"bob\"", "title pr"] {
        assert!(!Filter::parse(f).expect(f).matches(&u), "{f}");
    }
}

#[test]
fn bad_filters_are_errors() {
    for f in [
        "",
        "userName",
        "userName zz \"x\"",
        "(userName eq \"x\"",
        "a eq \"x",
    ] {
        assert!(Filter::parse(f).is_err(), "{f}");
    }
}

fn nested(open: &str, close: &str, n: usize) -> String {
    format!("{}userName pr{}", open.repeat(n), close.repeat(n))
}

#[test]
fn filters_beyond_the_limits_are_refused_with_the_limit() {
    let limits = Limits::default();
    let deep = [
        nested("(", ")", 3000),
        nested("not ", "", 10_000),
        nested("emails[", "]", 3000),
        nested("not (", ")", 2000),
    ];
    for f in &deep {
        let err = Filter::parse_within(
            f,
            &Limits {
                length: 1 << 20,
                ..limits
            },
        )
        .unwrap_err();
        assert!(err.0.contains("nested deeper than 16"), "{err}");
    }
    let wide = vec!["userName eq \"a\""; 12_000].join(" or ");
    let err = Filter::parse_within(
        &wide,
        &Limits {
            length: 1 << 20,
            ..limits
        },
    )
    .unwrap_err();
    assert!(err.0.contains("more than 64 comparisons"), "{err}");
    let err = Filter::parse(&wide).unwrap_err();
    assert!(err.0.contains("at most 4096"), "{err}");
    // At the limits, the filter is accepted and evaluates.
    let u = user();
    assert!(Filter::parse(&nested("(", ")", 16)).unwrap().matches(&u));
    assert!(Filter::parse(&nested("(", ")", 17)).is_err());
    let at = vec!["userName eq \"x\""; 63].join(" or ") + " or userName pr";
    assert!(Filter::parse(&at).unwrap().matches(&u));
    assert!(Filter::parse(&(at + " or title pr")).is_err());
}

/// Filter-shaped text: tokens of the grammar, joined at random.
fn filter_text() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let token = prop_oneof![
        Just("("),
        Just(")"),
        Just("["),
        Just("]"),
        Just("not "),
        Just(" and "),
        Just(" or "),
        Just("userName"),
        Just("emails"),
        Just(" eq "),
        Just(" co "),
        Just(" pr"),
        Just("\"a\""),
        Just("\"\\"),
        Just("12"),
        Just("true"),
    ];
    proptest::collection::vec(token, 0..120).prop_map(|t| t.concat())
}

proptest::proptest! {
    #[test]
    fn any_filter_text_parses_or_is_refused_and_never_panics(text in filter_text()) {
        let limits = Limits { length: 1 << 16, depth: 8, terms: 16 };
        if let Ok(f) = Filter::parse_within(&text, &limits) {
            let _ = f.matches(&user());
        }
    }
}

#[test]
fn an_and_chain_names_its_equalities() {
    let f = Filter::parse("userName eq \"a\" and externalId eq \"b\"").unwrap();
    assert_eq!(f.required_eq("externalid"), Some("b"));
    assert_eq!(f.required_eq("title"), None);
}
