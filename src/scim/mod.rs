//! SCIM 2.0 (RFC 7643 / RFC 7644) as the connector speaks it: the User representation of an
//! [`Account`], filters, PATCH, and the discovery documents.
//!
//! In: accounts, or SCIM JSON from a client or a portal. Out: SCIM JSON, or the account it
//! describes. Shared by the SCIM directory backend (`directory::scim`, a client) and
//! `push-connector serve` (the `serve` module, a service provider over the embedded directory).
//!
//! Mapping: `userName` = primary address, `externalId` = ExternalSyncID, `name.givenName` /
//! `familyName` / `honorificPrefix` = FirstName / LastName / Title, `displayName`,
//! `title` = JobTitle, `phoneNumbers` typed `work` / `mobile` / `fax` / `pager`, `active` =
//! status is Active or Pending; everything NHS-specific in the extension [`NHS_USER`].

pub mod filter;
pub mod patch;
pub mod schema;

use serde_json::{Map, Value, json};

use crate::model::{Account, Status};
use crate::model::{Email, Field, OdsCode, PortalId};

/// The core User schema (RFC 7643 §4.1).
pub const CORE_USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// The NHS extension of User: organisation, unit, clinical codes, work areas, notes, status.
pub const NHS_USER: &str = "urn:ietf:params:scim:schemas:extension:nhs:2.0:User";
pub const LIST_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
pub const BULK_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
pub const BULK_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:BulkResponse";

/// Phone fields and the `phoneNumbers` type each is written with.
pub const PHONES: [(Field, &str); 4] = [
    (Field::OfficePhone, "work"),
    (Field::MobilePhone, "mobile"),
    (Field::Fax, "fax"),
    (Field::Pager, "pager"),
];

/// Multi-valued extension attributes and their fields.
pub const CODED: [(Field, &str); 3] = [
    (Field::ClinicalRole, "clinicalRoles"),
    (Field::ClinicalSpeciality, "clinicalSpecialities"),
    (Field::WorkArea, "workAreas"),
];

/// A SCIM document that does not describe an account.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct InvalidUser {
    /// RFC 7644 §3.12 `scimType` (`invalidValue`, `invalidSyntax`, `mutability`…).
    pub scim_type: &'static str,
    pub detail: String,
}

fn invalid(detail: impl Into<String>) -> InvalidUser {
    InvalidUser {
        scim_type: "invalidValue",
        detail: detail.into(),
    }
}

/// The SCIM User of an account, without `meta` (see [`with_meta`]).
pub fn user_json(account: &Account) -> Value {
    let mut user = Map::new();
    user.insert("schemas".into(), json!([CORE_USER, NHS_USER]));
    user.insert("id".into(), json!(account.id.as_str()));
    if let Some(e) = account.external_sync_id() {
        user.insert("externalId".into(), json!(e));
    }
    user.insert(
        "userName".into(),
        json!(account.email().unwrap_or(account.id.as_str())),
    );
    let mut name = Map::new();
    for (field, key) in [
        (Field::FirstName, "givenName"),
        (Field::LastName, "familyName"),
        (Field::Title, "honorificPrefix"),
    ] {
        if let Some(v) = account.get(field) {
            name.insert(key.into(), json!(v));
        }
    }
    if !name.is_empty() {
        user.insert("name".into(), Value::Object(name));
    }
    if let Some(v) = account.get(Field::DisplayName) {
        user.insert("displayName".into(), json!(v));
    }
    if let Some(v) = account.get(Field::JobTitle) {
        user.insert("title".into(), json!(v));
    }
    user.insert("active".into(), json!(account.status.is_live()));
    let mut emails: Vec<Value> = account
        .email()
        .map(|e| json!({"value": e, "type": "work", "primary": true}))
        .into_iter()
        .collect();
    emails.extend(
        account
            .secondary
            .iter()
            .map(|e| json!({"value": e.as_str(), "type": "other"})),
    );
    if !emails.is_empty() {
        user.insert("emails".into(), Value::Array(emails));
    }
    let phones: Vec<Value> = PHONES
        .iter()
        .filter_map(|(field, kind)| {
            account
                .get(*field)
                .map(|v| json!({"value": v, "type": kind}))
        })
        .collect();
    if !phones.is_empty() {
        user.insert("phoneNumbers".into(), Value::Array(phones));
    }
    let mut ext = Map::new();
    ext.insert("organisation".into(), json!(account.organisation()));
    if let Some(v) = account.get(Field::OrganisationUnit) {
        ext.insert("organisationUnit".into(), json!(v));
    }
    for (field, key) in CODED {
        if let Some(v) = account.get(field) {
            ext.insert(key.into(), json!(split_codes(v)));
        }
    }
    if let Some(v) = account.get(Field::Notes) {
        ext.insert("notes".into(), json!(v));
    }
    ext.insert("status".into(), json!(account.status.as_str()));
    user.insert(NHS_USER.into(), Value::Object(ext));
    Value::Object(user)
}

/// The weak ETag of a representation (RFC 7644 §3.14): a digest of the account's SCIM form, so
/// it changes exactly when the account does.
pub fn version_of(user: &Value) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(user.to_string().as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("W/\"{hex}\"")
}

/// Adds `meta` (resource type, location, version) to a User.
pub fn with_meta(mut user: Value, base: &str) -> Value {
    let version = version_of(&user);
    let id = user.get("id").and_then(Value::as_str).unwrap_or_default();
    let location = format!("{base}/Users/{id}");
    if let Value::Object(map) = &mut user {
        map.insert(
            "meta".into(),
            json!({"resourceType": "User", "location": location, "version": version}),
        );
    }
    user
}

fn split_codes(v: &str) -> Vec<&str> {
    v.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// Looks a key up case-insensitively (SCIM attribute names are case-insensitive).
pub fn get_ci<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    map.get(key).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

fn text(map: &Map<String, Value>, key: &str) -> Result<Option<String>, InvalidUser> {
    match get_ci(map, key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_owned()).filter(|s| !s.is_empty())),
        Some(other) => Err(invalid(format!("{key} must be a string, not {other}"))),
    }
}

/// The account a SCIM User describes. `id` and `status` come from the caller (the portal's
/// own, or the one being replaced); unknown attributes are ignored, as RFC 7644 §3.3 allows.
pub fn account_from_user(
    user: &Value,
    id: PortalId,
    status: Status,
) -> Result<Account, InvalidUser> {
    let map = user
        .as_object()
        .ok_or_else(|| invalid("a User must be a JSON object"))?;
    let empty = Map::new();
    let ext = match get_ci(map, NHS_USER) {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(e)) => e,
        Some(_) => return Err(invalid(format!("{NHS_USER} must be an object"))),
    };
    let organisation = text(ext, "organisation")?
        .ok_or_else(|| invalid(format!("{NHS_USER}:organisation is required")))?;
    let mut account = Account::new(id, status, &OdsCode::new_unchecked(organisation));
    let user_name = text(map, "userName")?.ok_or_else(|| invalid("userName is required"))?;
    account.set(Field::Email, Some(&user_name.to_lowercase()));
    account.set(Field::ExternalSyncId, text(map, "externalId")?.as_deref());
    match get_ci(map, "name") {
        None | Some(Value::Null) => {}
        Some(Value::Object(name)) => {
            for (field, key) in [
                (Field::FirstName, "givenName"),
                (Field::LastName, "familyName"),
                (Field::Title, "honorificPrefix"),
            ] {
                account.set(field, text(name, key)?.as_deref());
            }
        }
        Some(_) => return Err(invalid("name must be an object")),
    }
    account.set(Field::DisplayName, text(map, "displayName")?.as_deref());
    account.set(Field::JobTitle, text(map, "title")?.as_deref());
    if let Some(phones) = get_ci(map, "phoneNumbers").filter(|v| !v.is_null()) {
        let phones = phones
            .as_array()
            .ok_or_else(|| invalid("phoneNumbers must be a list"))?;
        for phone in phones {
            let phone = phone
                .as_object()
                .ok_or_else(|| invalid("each phoneNumbers entry must be an object"))?;
            let kind = text(phone, "type")?.unwrap_or_else(|| "work".to_owned());
            let Some((field, _)) = PHONES.iter().find(|(_, k)| k.eq_ignore_ascii_case(&kind))
            else {
                return Err(invalid(format!(
                    "phoneNumbers type \"{kind}\" is not one of work, mobile, fax, pager"
                )));
            };
            account.set(*field, text(phone, "value")?.as_deref());
        }
    }
    if let Some(emails) = get_ci(map, "emails").filter(|v| !v.is_null()) {
        let emails = emails
            .as_array()
            .ok_or_else(|| invalid("emails must be a list"))?;
        for email in emails {
            let value = email
                .as_object()
                .map(|e| text(e, "value"))
                .transpose()?
                .flatten();
            if let Some(v) = value
                && !v.eq_ignore_ascii_case(&user_name)
            {
                account
                    .secondary
                    .push(Email::new_unchecked(v.to_lowercase()));
            }
        }
        account.secondary.sort();
        account.secondary.dedup();
    }
    account.set(
        Field::OrganisationUnit,
        text(ext, "organisationUnit")?.as_deref(),
    );
    account.set(Field::Notes, text(ext, "notes")?.as_deref());
    for (field, key) in CODED {
        match get_ci(ext, key) {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                let mut values = Vec::new();
                for item in items {
                    let v = item
                        .as_str()
                        .ok_or_else(|| invalid(format!("{key} values must be strings")))?;
                    if v.contains(';') {
                        return Err(invalid(format!("{key} value \"{v}\" contains ';'")));
                    }
                    if !v.trim().is_empty() {
                        values.push(v.trim());
                    }
                }
                account.set(field, Some(&values.join(";")));
            }
            Some(Value::String(v)) => account.set(field, Some(v.trim())),
            Some(_) => return Err(invalid(format!("{key} must be a list of strings"))),
        }
    }
    Ok(account)
}

/// The status a User's extension names, if any.
pub fn status_of(user: &Value) -> Option<Status> {
    let ext = user.as_object().and_then(|m| get_ci(m, NHS_USER))?;
    ext.as_object()
        .and_then(|e| get_ci(e, "status"))
        .and_then(Value::as_str)
        .and_then(Status::parse)
}

/// An RFC 7644 §3.12 error body.
pub fn error_body(status: u16, scim_type: Option<&str>, detail: &str) -> Value {
    let mut body = json!({"schemas": [ERROR], "status": status.to_string(), "detail": detail});
    if let (Some(t), Value::Object(map)) = (scim_type, &mut body) {
        map.insert("scimType".into(), json!(t));
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Account {
        let mut a = Account::new(
            PortalId::new_unchecked("u1"),
            Status::Active,
            &OdsCode::new_unchecked("RXX"),
        );
        a.set(Field::ExternalSyncId, Some("P100"));
        a.set(Field::FirstName, Some("Anne"));
        a.set(Field::LastName, Some("Lee"));
        a.set(Field::Title, Some("Dr"));
        a.set(Field::Email, Some("anne.lee@nhs.net"));
        a.set(Field::MobilePhone, Some("+447700900123"));
        a.set(Field::Pager, Some("1234"));
        a.set(Field::WorkArea, Some("CCU;ICU"));
        a.set(Field::OrganisationUnit, Some("RXX01"));
        a
    }

    #[test]
    fn an_account_survives_the_round_trip() {
        let a = sample();
        let user = user_json(&a);
        assert_eq!(user[NHS_USER]["workAreas"], json!(["CCU", "ICU"]));
        assert_eq!(user["userName"], "anne.lee@nhs.net");
        let back = account_from_user(&user, a.id.clone(), a.status).expect("valid");
        assert_eq!(back, a);
        assert_eq!(status_of(&user), Some(Status::Active));
    }

    #[test]
    fn the_version_changes_with_the_account() {
        let mut a = sample();
        let v1 = version_of(&user_json(&a));
        assert_eq!(v1, version_of(&user_json(&a)));
        a.set(Field::JobTitle, Some("Nurse"));
        assert_ne!(v1, version_of(&user_json(&a)));
    }

    #[test]
    fn a_user_without_organisation_is_invalid() {
        let err = account_from_user(
            &json!({"userName": "a@nhs.net"}),
            PortalId::new_unchecked("x"),
            Status::Active,
        )
        .unwrap_err();
        assert!(err.detail.contains("organisation"), "{err}");
    }
}
