//! Accounts to and from SCIM JSON for the SCIM backend: the User of a new account, the
//! account of a User, and the PATCH (or PUT) body that makes a set of changes.

use reqwest::Method;
use serde_json::{Value, json};

use super::ScimDirectory;
use crate::directory::{Account, Change, Status};
use crate::model::{Field, PortalId};
use crate::scim::{
    CODED, NHS_USER, PATCH_OP, PHONES, account_from_user, get_ci, status_of, user_json,
};

impl ScimDirectory {
    /// The SCIM body of a new account: only attributes the portal's schemas list.
    pub fn create_body(account: &Account) -> Value {
        let mut user = user_json(account);
        if let Value::Object(m) = &mut user {
            m.remove("id");
            m.remove("active");
            if let Some(Value::Object(ext)) = m.get_mut(NHS_USER) {
                ext.remove("status");
            }
        }
        user
    }

    /// The request that makes `needed` of `user`: PATCH, or PUT of the whole User when the
    /// portal does not offer PATCH.
    pub(super) fn change_request(&self, user: &Value, needed: &[&Change]) -> (Method, Value) {
        if self.caps.patch {
            return (Method::PATCH, patch_body(user, needed));
        }
        let mut target = account_of(user).unwrap_or_else(|| {
            Account::new(
                PortalId::new_unchecked(""),
                Status::Active,
                &crate::model::OdsCode::new_unchecked(""),
            )
        });
        for c in needed {
            target.set(c.field, c.after.as_deref());
        }
        let mut body = user_json(&target);
        if let Value::Object(m) = &mut body {
            m.remove("active");
            m.remove("meta");
        }
        (Method::PUT, body)
    }
}

/// Applies to a User every change, as PATCH operations on the attributes they touch.
pub(super) fn patch_body(user: &Value, changes: &[&Change]) -> Value {
    let mut ops = Vec::new();
    let mut phones_changed = false;
    let mut target = account_of(user).unwrap_or_else(|| {
        Account::new(
            PortalId::new_unchecked(""),
            Status::Active,
            &crate::model::OdsCode::new_unchecked(""),
        )
    });
    for c in changes {
        target.set(c.field, c.after.as_deref());
        let path: Option<String> = match c.field {
            Field::FirstName => Some("name.givenName".into()),
            Field::LastName => Some("name.familyName".into()),
            Field::Title => Some("name.honorificPrefix".into()),
            Field::DisplayName => Some("displayName".into()),
            Field::JobTitle => Some("title".into()),
            Field::ExternalSyncId => Some("externalId".into()),
            Field::Email => Some("userName".into()),
            Field::Notes => Some(format!("{NHS_USER}:notes")),
            Field::OrganisationUnit => Some(format!("{NHS_USER}:organisationUnit")),
            Field::OfficePhone | Field::MobilePhone | Field::Fax | Field::Pager => {
                phones_changed = true;
                None
            }
            f => CODED
                .iter()
                .find(|(field, _)| *field == f)
                .map(|(_, name)| format!("{NHS_USER}:{name}")),
        };
        let Some(path) = path else { continue };
        let value = match (&c.after, c.field.is_multi_valued()) {
            (None, _) => None,
            (Some(v), true) => Some(json!(
                v.split(';')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
            )),
            (Some(v), false) => Some(json!(v)),
        };
        ops.push(match value {
            Some(v) => json!({"op": "replace", "path": path, "value": v}),
            None => json!({"op": "remove", "path": path}),
        });
    }
    if phones_changed {
        // The whole list: kinds the connector does not know are kept as they are.
        let mut phones: Vec<Value> = user["phoneNumbers"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|p| {
                let kind = p["type"].as_str().unwrap_or("work");
                !PHONES.iter().any(|(_, k)| k.eq_ignore_ascii_case(kind))
            })
            .collect();
        for (field, kind) in PHONES {
            if let Some(v) = target.get(field) {
                phones.push(json!({"value": v, "type": kind}));
            }
        }
        ops.push(if phones.is_empty() {
            json!({"op": "remove", "path": "phoneNumbers"})
        } else {
            json!({"op": "replace", "path": "phoneNumbers", "value": phones})
        });
    }
    json!({"schemas": [PATCH_OP], "Operations": ops})
}

/// The account of a portal User; `None` when it lacks what an account needs.
pub(super) fn account_of(user: &Value) -> Option<Account> {
    let id = user["id"].as_str()?;
    let status = status_of(user).unwrap_or(if user["active"].as_bool().unwrap_or(true) {
        Status::Active
    } else {
        Status::Disabled
    });
    let mut user = user.clone();
    if let Value::Object(m) = &mut user {
        let ext = m.entry(NHS_USER.to_owned()).or_insert_with(|| json!({}));
        if let Value::Object(e) = ext
            && get_ci(e, "organisation").is_none()
        {
            e.insert("organisation".into(), json!(""));
        }
        if get_ci(m, "userName").is_none() {
            m.insert("userName".into(), json!(""));
        }
    }
    let mut account = account_from_user(&user, PortalId::new_unchecked(id), status).ok();
    if let Some(a) = &mut account
        && a.email().is_some_and(str::is_empty)
    {
        a.set(Field::Email, None);
    }
    account
}

pub(super) fn resources(list: &Value) -> Vec<Value> {
    list["Resources"].as_array().cloned().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patch_touches_only_what_changed() {
        let mut a = Account::new(
            PortalId::new_unchecked("u1"),
            Status::Active,
            &crate::model::OdsCode::new_unchecked("RXX"),
        );
        a.set(Field::Email, Some("a@nhs.net"));
        a.set(Field::FirstName, Some("A"));
        a.set(Field::LastName, Some("B"));
        a.set(Field::OfficePhone, Some("+441134960000"));
        let user = user_json(&a);
        let changes = [
            Change {
                field: Field::MobilePhone,
                before: None,
                after: Some("+447700900000".into()),
            },
            Change {
                field: Field::WorkArea,
                before: None,
                after: Some("CCU;ICU".into()),
            },
            Change {
                field: Field::Title,
                before: None,
                after: None,
            },
        ];
        let refs: Vec<&Change> = changes.iter().collect();
        let body = patch_body(&user, &refs);
        let ops = body["Operations"].as_array().unwrap();
        assert_eq!(ops.len(), 3, "{body}");
        assert_eq!(ops[0]["path"], format!("{NHS_USER}:workAreas"));
        assert_eq!(ops[0]["value"], json!(["CCU", "ICU"]));
        assert_eq!(ops[1]["op"], "remove");
        assert_eq!(ops[2]["value"].as_array().unwrap().len(), 2);
        let mut patched = user.clone();
        crate::scim::patch::apply(&mut patched, &body).unwrap();
        let back = account_of(&patched).unwrap();
        assert_eq!(back.get(Field::MobilePhone), Some("+447700900000"));
        assert_eq!(back.get(Field::OfficePhone), Some("+441134960000"));
        assert_eq!(back.get(Field::WorkArea), Some("CCU;ICU"));
    }
}
