//! SCIM writes through `push-connector serve` go through the rules a file row goes through:
//! every value a file row would have refused is refused (400 `invalidValue`, with the same
//! reason `push-connector validate` prints for that value in a CSV row: a contact address,
//! a malformed externalId, a formula, a bad organisation code, a landline or a drama number
//! as mobile, an unknown clinical role) and nothing is stored; what is stored is the validator's normalised value; every write is a run that
//! `runs` lists and `revert RUN` undoes; and an organisation that does not allow creates
//! refuses a POST as it refuses a file row.

// Test code: a failure is a panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use push_connector::model::Field;
use push_connector::scim::{NHS_USER, PATCH_OP};
use push_connector::validate::phone::{PhoneKind, normalise};

const TOKEN: &str = "rules-test-token";
/// A mobile number as a person might type it (the rules write it in one canonical form).
const TYPED_MOBILE: &str = "07911 123457";

/// The configuration of the test: the sample clinical roles (so "Wizard" is unknown), and
/// `extra` (organisations' settings).
fn write_config(dir: &Path, extra: &str) {
    let roles = common::root().join("samples/codes/clinical-roles.txt");
    std::fs::write(
        dir.join("c.toml"),
        format!(
            "[validation]\nclinical_roles = \"{}\"\n{extra}\n",
            roles.display()
        ),
    )
    .unwrap();
}

fn serve(dir: &Path) -> common::Serve {
    common::start_serve(
        dir,
        Some("c.toml"),
        "127.0.0.1:0",
        &[
            ("PUSH_CONNECTOR__SERVE__TOKEN", TOKEN),
            ("PUSH_CONNECTOR__SERVE__TOKEN_ORGANISATIONS", "[\"*\"]"),
        ],
    )
}

fn http() -> reqwest::Client {
    common::http(Duration::from_secs(20), false)
}

/// One valid person, as the new-format row's cells (by field).
fn valid_row() -> Vec<(Field, &'static str)> {
    vec![
        (Field::ExternalSyncId, "RXX0901"),
        (Field::FirstName, "Zoe"),
        (Field::LastName, "Quinn"),
        (Field::Email, "zoe.quinn@nhs.net"),
        (Field::JobTitle, "Staff Nurse"),
        (Field::Organisation, "RXX"),
        (Field::MobilePhone, TYPED_MOBILE),
        (Field::ClinicalRole, "Nurse"),
    ]
}

/// The SCIM User of a row.
fn user_of(row: &[(Field, &str)]) -> Value {
    let get = |f: Field| row.iter().find(|(g, _)| *g == f).map(|(_, v)| *v);
    let mut user = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", NHS_USER],
        "userName": get(Field::Email),
        "externalId": get(Field::ExternalSyncId),
        "name": {"givenName": get(Field::FirstName), "familyName": get(Field::LastName)},
        "title": get(Field::JobTitle),
        "phoneNumbers": [{"type": "mobile", "value": get(Field::MobilePhone)}],
        NHS_USER: {
            "organisation": get(Field::Organisation),
            "clinicalRoles": get(Field::ClinicalRole).map(|r| vec![r]),
        },
    });
    if let Some(o) = user.as_object_mut() {
        o.retain(|_, v| !v.is_null());
    }
    user
}

/// What `push-connector validate` says of the row's one problem, in a CSV file.
fn file_verdict(dir: &Path, name: &str, row: &[(Field, &str)]) -> Vec<String> {
    let header: Vec<&str> = Field::ALL.iter().map(|f| f.name()).collect();
    let cells: Vec<String> = Field::ALL
        .iter()
        .map(|f| {
            let v = row.iter().find(|(g, _)| g == f).map_or("", |(_, v)| *v);
            format!("\"{}\"", v.replace('"', "\"\""))
        })
        .collect();
    let path = dir.join(format!("{name}.csv"));
    std::fs::write(
        &path,
        format!("{}\n{}\n", header.join(","), cells.join(",")),
    )
    .unwrap();
    let out = common::run_in(
        dir,
        &["--config", "c.toml", "validate", path.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("    - "))
        .map(str::to_owned)
        .collect()
}

async fn send(
    h: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut r = h.request(method, url).bearer_auth(TOKEN);
    if let Some(b) = body {
        r = r
            .header("content-type", "application/scim+json")
            .body(b.to_string());
    }
    let r = r.send().await.expect("serve answers");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn total(h: &reqwest::Client, url: &str) -> u64 {
    let (status, body) = send(h, reqwest::Method::GET, &format!("{url}/Users"), None).await;
    assert_eq!(status, 200, "{body}");
    body["totalResults"].as_u64().unwrap()
}

fn runs(dir: &Path) -> Vec<Value> {
    let out = common::run_in(dir, &["--config", "c.toml", "runs", "--json"]);
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Each invalid value, with the SCIM attribute that carries it and a PATCH operation that
/// sets it.
fn invalid_values() -> Vec<(Field, &'static str, &'static str, Value)> {
    let nhs = |a: &str| format!("{NHS_USER}:{a}");
    vec![
        (
            Field::Email,
            "evil@gmail.com",
            "userName",
            json!({"op": "replace", "path": "userName", "value": "evil@gmail.com"}),
        ),
        (
            Field::ExternalSyncId,
            "RXX 8888",
            "externalId",
            json!({"op": "replace", "path": "externalId", "value": "RXX 8888"}),
        ),
        (
            Field::FirstName,
            "=HYPERLINK(\"http://x\")",
            "name.givenName",
            json!({"op": "replace", "path": "name.givenName", "value": "=HYPERLINK(\"http://x\")"}),
        ),
        (
            Field::Organisation,
            "rxx!!",
            "urn:ietf:params:scim:schemas:extension:nhs:2.0:User:organisation",
            json!({"op": "replace", "path": nhs("organisation"), "value": "rxx!!"}),
        ),
        (
            Field::MobilePhone,
            "0113 496 0999",
            "phoneNumbers[type eq \"mobile\"]",
            json!({"op": "replace", "path": "phoneNumbers",
                   "value": [{"type": "mobile", "value": "0113 496 0999"}]}),
        ),
        (
            // A range kept for drama: stored as typed before, refused by the rules.
            Field::MobilePhone,
            "07700 900123",
            "phoneNumbers[type eq \"mobile\"]",
            json!({"op": "replace", "path": "phoneNumbers",
                   "value": [{"type": "mobile", "value": "07700 900123"}]}),
        ),
        (
            Field::ClinicalRole,
            "Wizard",
            "urn:ietf:params:scim:schemas:extension:nhs:2.0:User:clinicalRoles",
            json!({"op": "replace", "path": nhs("clinicalRoles"), "value": ["Wizard"]}),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_value_a_file_row_refuses_is_refused_with_the_file_paths_message() {
    let dir = tempfile::tempdir().unwrap();
    common::import_samples(dir.path());
    write_config(dir.path(), "");
    let s = serve(dir.path());
    let h = http();
    let before = total(&h, &s.url).await;

    // An existing User to PATCH (a different person from the POSTed one).
    let mut other = valid_row();
    other[0].1 = "RXX0902";
    other[3].1 = "yan.quill@nhs.net";
    let (status, existing) = send(
        &h,
        reqwest::Method::POST,
        &format!("{}/Users", s.url),
        Some(&user_of(&other)),
    )
    .await;
    assert_eq!(status, 201, "{existing}");
    let existing_url = existing["meta"]["location"].as_str().unwrap().to_owned();

    for (i, (field, value, attribute, op)) in invalid_values().into_iter().enumerate() {
        let mut row = valid_row();
        match row.iter_mut().find(|(f, _)| *f == field) {
            Some(cell) => cell.1 = value,
            None => row.push((field, value)),
        }
        let said = file_verdict(dir.path(), &format!("case{i}"), &row);
        assert_eq!(said.len(), 1, "{value}: the file path says {said:?}");
        let expected = format!("{attribute}: {}", said[0]);

        let (status, body) = send(
            &h,
            reqwest::Method::POST,
            &format!("{}/Users", s.url),
            Some(&user_of(&row)),
        )
        .await;
        assert_eq!(status, 400, "POST {value}: {body}");
        assert_eq!(body["scimType"], "invalidValue", "POST {value}: {body}");
        assert_eq!(body["detail"], expected, "POST {value}");
        assert_eq!(total(&h, &s.url).await, before + 1, "POST {value} stored");

        let patch = json!({"schemas": [PATCH_OP], "Operations": [op]});
        let (status, body) = send(&h, reqwest::Method::PATCH, &existing_url, Some(&patch)).await;
        assert_eq!(status, 400, "PATCH {value}: {body}");
        if matches!(field, Field::Organisation | Field::ExternalSyncId) {
            // Organisation and externalId are immutable: that refusal comes first, whatever
            // the value.
            assert_eq!(body["scimType"], "mutability", "PATCH {value}: {body}");
        } else {
            assert_eq!(body["scimType"], "invalidValue", "PATCH {value}: {body}");
            assert_eq!(body["detail"], expected, "PATCH {value}");
        }
        let (_, now) = send(&h, reqwest::Method::GET, &existing_url, None).await;
        assert_eq!(now, existing, "PATCH {value} changed the User");
    }
    // Only the one valid create was journalled.
    let journalled = runs(dir.path());
    assert_eq!(journalled.len(), 1, "{journalled:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_is_stored_normalised_journalled_and_revertible() {
    let dir = tempfile::tempdir().unwrap();
    common::import_samples(dir.path());
    write_config(dir.path(), "");
    let s = serve(dir.path());
    let h = http();
    let normalised = normalise(TYPED_MOBILE, PhoneKind::Mobile)
        .unwrap()
        .to_string();
    assert_ne!(
        normalised, TYPED_MOBILE,
        "the test needs a value the rules change"
    );

    let (status, created) = send(
        &h,
        reqwest::Method::POST,
        &format!("{}/Users", s.url),
        Some(&user_of(&valid_row())),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let url = created["meta"]["location"].as_str().unwrap().to_owned();
    let (_, stored) = send(&h, reqwest::Method::GET, &url, None).await;
    assert_eq!(
        stored["phoneNumbers"][0]["value"],
        json!(normalised),
        "{stored}"
    );
    assert_eq!(stored["title"], "Staff Nurse");

    let patch = json!({"schemas": [PATCH_OP], "Operations": [
        {"op": "replace", "path": "title", "value": "Ward Manager"}]});
    let (status, updated) = send(&h, reqwest::Method::PATCH, &url, Some(&patch)).await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["title"], "Ward Manager");

    let listed = runs(dir.path());
    assert_eq!(listed.len(), 2, "{listed:#?}");
    let id = created["id"].as_str().unwrap();
    assert_eq!(
        listed[0]["source"], "SCIM POST /v2/Users by the fixed token",
        "{listed:#?}"
    );
    assert_eq!(
        listed[1]["source"],
        json!(format!("SCIM PATCH /v2/Users/{id} by the fixed token")),
        "{listed:#?}"
    );
    for (run, count) in [(&listed[0], "created"), (&listed[1], "updated")] {
        assert_eq!(run["status"], "applied", "{run}");
        assert_eq!(run["organisation"], "RXX", "{run}");
        assert_eq!(run["counts"][count], 1, "{run}");
    }
    // The account's history names the channel, the request and the client of each write.
    let out = common::run_in(dir.path(), &["--config", "c.toml", "history", id, "--json"]);
    assert!(out.status.success(), "{out:?}");
    let history: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(history["account"]["matched_by"], "ID", "{history}");
    let changes = history["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 2, "{history:#}");
    assert_eq!(changes[0]["field"], "created");
    assert_eq!(changes[0]["values"]["JobTitle"], "Staff Nurse");
    assert_eq!(changes[1]["field"], "JobTitle");
    assert_eq!(
        (&changes[1]["before"], &changes[1]["after"]),
        (&json!("Staff Nurse"), &json!("Ward Manager"))
    );
    for (change, request) in [
        (&changes[0], "POST /v2/Users".to_owned()),
        (&changes[1], format!("PATCH /v2/Users/{id}")),
    ] {
        assert_eq!(change["channel"], "scim", "{change}");
        assert_eq!(change["sender"], "the fixed token", "{change}");
        assert_eq!(change["entry"], json!(request), "{change}");
        assert_eq!(change["file"], Value::Null, "{change}");
    }
    assert_eq!(changes[1]["run"], listed[1]["id"]);
    // New accounts' passwords go to the 0600 file, as for every run.
    let passwords = dir.path().join("var/initial-passwords.csv");
    let passwords = if passwords.exists() {
        passwords
    } else {
        std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path().join("initial-passwords.csv")))
            .find(|p| p.exists())
            .expect("a password file")
    };
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&passwords).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(std::fs::read_to_string(&passwords).unwrap().contains(id));

    let run = listed[1]["id"].as_str().unwrap();
    let out = common::run_in(dir.path(), &["--config", "c.toml", "revert", run]);
    assert!(out.status.success(), "{out:?}");
    let (_, reverted) = send(&h, reqwest::Method::GET, &url, None).await;
    assert_eq!(reverted["title"], "Staff Nurse", "{reverted}");
    assert_eq!(runs(dir.path())[1]["status"], "reverted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_organisation_that_does_not_allow_creates_refuses_a_post() {
    let dir = tempfile::tempdir().unwrap();
    common::import_samples(dir.path());
    write_config(
        dir.path(),
        "[[organisation]]\ncode = \"RXX\"\ncreate_accounts = false\n",
    );
    let s = serve(dir.path());
    let h = http();
    let before = total(&h, &s.url).await;
    let (status, body) = send(
        &h,
        reqwest::Method::POST,
        &format!("{}/Users", s.url),
        Some(&user_of(&valid_row())),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["scimType"], "invalidValue", "{body}");
    // The reason a file row with the same values gets from `plan`.
    let header: Vec<&str> = Field::ALL.iter().map(|f| f.name()).collect();
    let row = valid_row();
    let cells: Vec<&str> = Field::ALL
        .iter()
        .map(|f| row.iter().find(|(g, _)| g == f).map_or("", |(_, v)| *v))
        .collect();
    let file = dir.path().join("new.csv");
    std::fs::write(
        &file,
        format!("{}\n{}\n", header.join(","), cells.join(",")),
    )
    .unwrap();
    let out = common::run_in(
        dir.path(),
        &[
            "--config",
            "c.toml",
            "plan",
            "--json",
            file.to_str().unwrap(),
        ],
    );
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("plan --json printed {e}: {out:?}"));
    let file_reason = printed["rows"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["line"] == 2))
        .filter(|r| r["result"] == "Rejected")
        .and_then(|r| r["message"].as_str())
        .unwrap_or_else(|| panic!("plan printed {printed}"));
    assert!(
        file_reason.contains("does not create accounts"),
        "{file_reason}"
    );
    assert_eq!(body["detail"], file_reason);
    assert_eq!(total(&h, &s.url).await, before);
    assert!(runs(dir.path()).is_empty());
    // An update of an existing account is still allowed.
    let (status, found) = send(
        &h,
        reqwest::Method::GET,
        &format!(
            "{}/Users?filter=userName%20eq%20%22anne.lee@nhs.net%22",
            s.url
        ),
        None,
    )
    .await;
    assert_eq!(status, 200, "{found}");
    let url = found["Resources"][0]["meta"]["location"]
        .as_str()
        .unwrap()
        .to_owned();
    let patch = json!({"schemas": [PATCH_OP], "Operations": [
        {"op": "replace", "path": "title", "value": "Ward Manager"}]});
    let (status, body) = send(&h, reqwest::Method::PATCH, &url, Some(&patch)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(runs(dir.path()).len(), 1);
}

/// A User is the whole record: a PATCH `remove` clears the attribute (not "blank means
/// keep", as for a file cell); `externalId` is immutable (400 `mutability`, nothing
/// changed, no run); a User in its organisation itself reads back with the organisation
/// as its `organisationUnit`, and writing that back changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_is_the_whole_record_and_its_keys_are_immutable() {
    let dir = tempfile::tempdir().unwrap();
    common::import_samples(dir.path());
    write_config(dir.path(), "");
    let s = serve(dir.path());
    let h = http();
    let (status, created) = send(
        &h,
        reqwest::Method::POST,
        &format!("{}/Users", s.url),
        Some(&user_of(&valid_row())),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let url = created["meta"]["location"].as_str().unwrap().to_owned();
    assert_eq!(created[NHS_USER]["organisationUnit"], "RXX", "{created}");
    assert_eq!(created["title"], "Staff Nurse", "{created}");

    let patch = |op: Value| json!({"schemas": [PATCH_OP], "Operations": [op]});
    let (status, removed) = send(
        &h,
        reqwest::Method::PATCH,
        &url,
        Some(&patch(json!({"op": "remove", "path": "title"}))),
    )
    .await;
    assert_eq!(status, 200, "{removed}");
    assert!(removed.get("title").is_none(), "{removed}");
    let (_, stored) = send(&h, reqwest::Method::GET, &url, None).await;
    assert!(stored.get("title").is_none(), "{stored}");

    let (status, body) = send(
        &h,
        reqwest::Method::PATCH,
        &url,
        Some(&patch(
            json!({"op": "replace", "path": "externalId", "value": "RXX0999"}),
        )),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["scimType"], "mutability", "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .starts_with("externalId is immutable"),
        "{body}"
    );
    let (_, now) = send(&h, reqwest::Method::GET, &url, None).await;
    assert_eq!(now, stored, "the refused PATCH changed the User");

    // The unit as read back, written back: nothing to change.
    let (status, same) = send(&h, reqwest::Method::PUT, &url, Some(&stored)).await;
    assert_eq!(status, 200, "{same}");
    assert_eq!(same[NHS_USER]["organisationUnit"], "RXX", "{same}");
    // Create, then the remove: two runs (neither the refusal nor the PUT recorded one).
    assert_eq!(runs(dir.path()).len(), 2);

    // The schema says so.
    let (_, schema) = send(
        &h,
        reqwest::Method::GET,
        &format!(
            "{}/Schemas/urn:ietf:params:scim:schemas:core:2.0:User",
            s.url
        ),
        None,
    )
    .await;
    let external = schema["attributes"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["name"] == "externalId"))
        .unwrap_or_else(|| panic!("{schema}"));
    assert_eq!(external["required"], true, "{external}");
    assert_eq!(external["mutability"], "immutable", "{external}");
}
