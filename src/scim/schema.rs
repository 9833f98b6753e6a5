//! The discovery documents `push-connector serve` publishes (RFC 7643 §5–7):
//! ServiceProviderConfig, the User schema (the core attributes the directory holds) and the
//! NHS extension (with `canonicalValues` from the configured code lists), and ResourceTypes.
//!
//! In: the base URL and code lists. Out: JSON documents.

use serde_json::{Value, json};

use super::{CORE_USER, NHS_USER};

/// Largest number of results one page returns, and of operations one Bulk request may hold.
pub const MAX_RESULTS: usize = 1000;
pub const MAX_OPERATIONS: usize = 1000;

/// The code lists published as `canonicalValues` (empty: any value).
#[derive(Debug, Clone, Default)]
pub struct CodeLists {
    pub titles: Vec<String>,
    pub clinical_roles: Vec<String>,
    pub clinical_specialities: Vec<String>,
    pub work_areas: Vec<String>,
}

impl CodeLists {
    /// Reads the lists of a `[validation]` section (one value a line, `#` comments).
    pub fn from_config(v: &crate::config::ValidationConfig) -> std::io::Result<CodeLists> {
        let read = |p: &Option<std::path::PathBuf>| -> std::io::Result<Vec<String>> {
            let Some(p) = p else { return Ok(Vec::new()) };
            let text = std::fs::read_to_string(p)?;
            Ok(text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_owned)
                .collect())
        };
        Ok(CodeLists {
            titles: read(&v.titles)?,
            clinical_roles: read(&v.clinical_roles)?,
            clinical_specialities: read(&v.clinical_specialities)?,
            work_areas: read(&v.work_areas)?,
        })
    }
}

/// The ServiceProviderConfig; `max_payload` is the body limit, in bytes.
pub fn service_provider_config(base: &str, max_payload: usize) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "documentationUri": "https://www.rfc-editor.org/rfc/rfc7644",
        "patch": {"supported": true},
        "bulk": {"supported": true, "maxOperations": MAX_OPERATIONS, "maxPayloadSize": max_payload},
        "filter": {"supported": true, "maxResults": MAX_RESULTS},
        "changePassword": {"supported": false},
        "sort": {"supported": true},
        "etag": {"supported": true},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "Authentication with a bearer token (RFC 6750)",
            "specUri": "https://www.rfc-editor.org/rfc/rfc6750",
            "primary": true
        }],
        "meta": {"resourceType": "ServiceProviderConfig", "location": format!("{base}/ServiceProviderConfig")}
    })
}

struct A {
    name: &'static str,
    kind: &'static str,
    multi: bool,
    required: bool,
    mutability: &'static str,
    case_exact: bool,
    uniqueness: &'static str,
    description: &'static str,
    canonical: Vec<String>,
    sub: Vec<Value>,
}

impl A {
    fn new(name: &'static str, description: &'static str) -> A {
        A {
            name,
            kind: "string",
            multi: false,
            required: false,
            mutability: "readWrite",
            case_exact: false,
            uniqueness: "none",
            description,
            canonical: Vec::new(),
            sub: Vec::new(),
        }
    }

    fn build(self) -> Value {
        let mut v = json!({
            "name": self.name,
            "type": self.kind,
            "multiValued": self.multi,
            "description": self.description,
            "required": self.required,
            "caseExact": self.case_exact,
            "mutability": self.mutability,
            "returned": "default",
            "uniqueness": self.uniqueness,
        });
        if let Value::Object(m) = &mut v {
            if !self.canonical.is_empty() {
                m.insert("canonicalValues".into(), json!(self.canonical));
            }
            if !self.sub.is_empty() {
                m.insert("subAttributes".into(), Value::Array(self.sub));
            }
        }
        v
    }
}

fn user_schema(base: &str, codes: &CodeLists) -> Value {
    let mut user_name = A::new("userName", "The primary e-mail address.");
    user_name.required = true;
    user_name.uniqueness = "server";
    let mut external = A::new("externalId", "The organisation's ExternalSyncID.");
    external.case_exact = true;
    // Every account has one (a file row without it is refused, and so is a User), and it is
    // never overwritten: a blank one is filled in once, then it must match.
    external.required = true;
    external.mutability = "immutable";
    let mut given = A::new("givenName", "First name.");
    given.required = true;
    let mut family = A::new("familyName", "Last name.");
    family.required = true;
    let mut prefix = A::new("honorificPrefix", "Title (Dr, Mrs…).");
    prefix.canonical = codes.titles.clone();
    let mut name = A::new("name", "The person's name.");
    name.kind = "complex";
    name.required = true;
    name.sub = vec![given.build(), family.build(), prefix.build()];
    let mut active = A::new("active", "Whether the account is Active or Pending.");
    active.kind = "boolean";
    active.mutability = "readOnly";
    let email_sub = |readonly: bool| {
        let mut value = A::new("value", "The address.");
        let mut kind = A::new("type", "work (primary) or other (secondary).");
        kind.canonical = vec!["work".into(), "other".into()];
        let mut primary = A::new("primary", "The primary address.");
        primary.kind = "boolean";
        if readonly {
            for a in [&mut value, &mut kind, &mut primary] {
                a.mutability = "readOnly";
            }
        }
        vec![value.build(), kind.build(), primary.build()]
    };
    let mut emails = A::new(
        "emails",
        "Addresses: the primary (= userName) and the secondary ones. Read-only: change userName.",
    );
    emails.kind = "complex";
    emails.multi = true;
    emails.mutability = "readOnly";
    emails.sub = email_sub(true);
    let mut phone_value = A::new("value", "The number.");
    phone_value.required = true;
    let mut phone_type = A::new("type", "work, mobile, fax or pager.");
    phone_type.canonical = ["work", "mobile", "fax", "pager"]
        .map(String::from)
        .to_vec();
    phone_type.required = true;
    let mut phones = A::new("phoneNumbers", "Office, mobile, fax and pager numbers.");
    phones.kind = "complex";
    phones.multi = true;
    phones.sub = vec![phone_value.build(), phone_type.build()];
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
        "id": CORE_USER,
        "name": "User",
        "description": "A portal account",
        "attributes": [
            user_name.build(),
            external.build(),
            name.build(),
            A::new("displayName", "The name shown in the address book.").build(),
            A::new("title", "Job title.").build(),
            active.build(),
            emails.build(),
            phones.build(),
        ],
        "meta": {"resourceType": "Schema", "location": format!("{base}/Schemas/{CORE_USER}")}
    })
}

fn nhs_schema(base: &str, codes: &CodeLists) -> Value {
    let mut organisation = A::new(
        "organisation",
        "ODS code of the organisation. Set on create; people move by transfer in the portal.",
    );
    organisation.required = true;
    organisation.mutability = "immutable";
    let mut unit = A::new(
        "organisationUnit",
        "ODS code of the organisation unit. Set on create.",
    );
    unit.mutability = "immutable";
    let coded = |name, description, list: &Vec<String>| {
        let mut a = A::new(name, description);
        a.multi = true;
        a.canonical = list.clone();
        a.build()
    };
    let mut status = A::new("status", "Portal-owned status; never changed over SCIM.");
    status.mutability = "readOnly";
    status.canonical = crate::model::Status::ALL
        .iter()
        .map(|s| s.as_str().to_owned())
        .collect();
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
        "id": NHS_USER,
        "name": "NhsUser",
        "description": "NHS staff directory attributes",
        "attributes": [
            organisation.build(),
            unit.build(),
            coded("clinicalRoles", "Clinical roles.", &codes.clinical_roles),
            coded("clinicalSpecialities", "Clinical specialities.", &codes.clinical_specialities),
            coded("workAreas", "Work areas.", &codes.work_areas),
            A::new("notes", "Free-text notes.").build(),
            status.build(),
        ],
        "meta": {"resourceType": "Schema", "location": format!("{base}/Schemas/{NHS_USER}")}
    })
}

/// Every schema served, in a stable order.
pub fn schemas(base: &str, codes: &CodeLists) -> Vec<Value> {
    vec![user_schema(base, codes), nhs_schema(base, codes)]
}

pub fn user_resource_type(base: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
        "id": "User",
        "name": "User",
        "endpoint": "/Users",
        "description": "Portal accounts",
        "schema": CORE_USER,
        "schemaExtensions": [{"schema": NHS_USER, "required": true}],
        "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/User")}
    })
}

/// A ListResponse of all items.
pub fn list(items: Vec<Value>) -> Value {
    json!({
        "schemas": [super::LIST_RESPONSE],
        "totalResults": items.len(),
        "startIndex": 1,
        "itemsPerPage": items.len(),
        "Resources": items,
    })
}

/// Fills the code lists the configuration leaves unset with those the portal publishes as
/// `canonicalValues` (a list in `[validation]` always wins; an empty published list means
/// "any value").
pub fn fill_rules(
    rules: &mut crate::validate::Rules,
    config: &crate::config::ValidationConfig,
    published: &CodeLists,
) {
    use crate::validate::CodeList;
    if config.titles.is_none() && !published.titles.is_empty() {
        rules.titles = CodeList::new(published.titles.iter().cloned());
    }
    for (configured, slot, list) in [
        (
            &config.clinical_roles,
            &mut rules.clinical_roles,
            &published.clinical_roles,
        ),
        (
            &config.clinical_specialities,
            &mut rules.clinical_specialities,
            &published.clinical_specialities,
        ),
        (
            &config.work_areas,
            &mut rules.work_areas,
            &published.work_areas,
        ),
    ] {
        if configured.is_none() && !list.is_empty() {
            *slot = Some(CodeList::new(list.iter().cloned()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_lists_fill_only_what_the_config_leaves_unset() {
        let mut rules = crate::validate::Rules::default();
        let config = crate::config::ValidationConfig {
            work_areas: Some("/configured".into()),
            ..Default::default()
        };
        let published = CodeLists {
            clinical_roles: vec!["Nurse".into()],
            work_areas: vec!["Acute".into()],
            ..Default::default()
        };
        fill_rules(&mut rules, &config, &published);
        let roles = rules.clinical_roles.expect("filled");
        assert_eq!(roles.canonical("nurse"), Some("Nurse"));
        assert!(rules.work_areas.is_none(), "the configured list wins");
        assert_eq!(
            rules.titles.canonical("dr"),
            Some("Dr"),
            "built-in titles kept"
        );
        let schemas = schemas("http://x/v2", &published);
        assert_eq!(
            schemas[1]["attributes"][2]["canonicalValues"],
            serde_json::json!(["Nurse"])
        );
    }
}
