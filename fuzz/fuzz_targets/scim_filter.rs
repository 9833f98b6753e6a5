//! Any text as a SCIM filter: parsing answers with a filter or an error within the limits,
//! and a parsed filter evaluates against a User, never panicking or overflowing the stack.
#![no_main]

use libfuzzer_sys::fuzz_target;
use push_connector::scim::filter::{Filter, Limits};
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let user = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "id": "u1",
        "externalId": "P100",
        "userName": "anne.lee@nhs.net",
        "name": {"givenName": "Anne", "familyName": "Lee", "honorificPrefix": "Dr"},
        "active": true,
        "emails": [
            {"value": "anne.lee@nhs.net", "type": "work", "primary": true},
            {"value": "a.lee@nhs.net", "type": "other"}
        ],
        "phoneNumbers": [{"value": "+447700900123", "type": "mobile"}],
        "urn:ietf:params:scim:schemas:extension:nhs:2.0:User": {
            "organisation": "RXX", "workAreas": ["CCU", "ICU"], "status": "Active"
        },
        "meta": {"resourceType": "User", "version": "W/\"0123\""}
    });
    // Wide limits as well as the defaults, so deeper trees are exercised too.
    for limits in [Limits::default(), Limits { length: 1 << 16, depth: 64, terms: 512 }] {
        if let Ok(f) = Filter::parse_within(text, &limits) {
            let _ = f.matches(&user);
            let _ = f.required_eq("userName");
        }
    }
});
