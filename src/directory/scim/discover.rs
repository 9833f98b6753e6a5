//! Discovery for the SCIM backend: what the portal says it supports (ServiceProviderConfig,
//! ResourceTypes, Schemas), read once when the backend is opened, as [`Capabilities`].

use reqwest::Method;

use super::codec::resources;
use super::{PAGE, ScimDirectory};
use crate::directory::DirectoryError;
use crate::scim::schema::CodeLists;
use crate::scim::{CORE_USER, NHS_USER};

/// What the portal said it supports (ServiceProviderConfig, Schemas, ResourceTypes).
#[derive(Debug, Clone, Default)]
pub struct Capabilities {
    pub patch: bool,
    pub etag: bool,
    pub bulk: bool,
    pub bulk_max_operations: usize,
    pub bulk_max_payload: usize,
    pub filter: bool,
    pub max_results: usize,
    /// The User resource type declares the NHS extension.
    pub nhs_extension: bool,
    /// `canonicalValues` of the coded attributes, when published.
    pub codes: CodeLists,
}

impl ScimDirectory {
    pub(super) async fn discover(&self) -> Result<Capabilities, DirectoryError> {
        let spc = self
            .call(Method::GET, "/ServiceProviderConfig", None, None)
            .await
            .map_err(|f| f.into_error())?
            .1;
        let supported = |k: &str| spc[k]["supported"].as_bool().unwrap_or(false);
        let mut caps = Capabilities {
            patch: supported("patch"),
            etag: supported("etag"),
            bulk: supported("bulk"),
            bulk_max_operations: spc["bulk"]["maxOperations"].as_u64().unwrap_or(0) as usize,
            bulk_max_payload: spc["bulk"]["maxPayloadSize"].as_u64().unwrap_or(0) as usize,
            filter: supported("filter"),
            max_results: spc["filter"]["maxResults"].as_u64().unwrap_or(PAGE as u64) as usize,
            ..Capabilities::default()
        };
        if !caps.filter {
            return Err(DirectoryError::Scim(
                "the portal does not support SCIM filters, which look-ups need".into(),
            ));
        }
        if let Ok((_, types, _)) = self.call(Method::GET, "/ResourceTypes", None, None).await {
            caps.nhs_extension = resources(&types).iter().any(|t| {
                t["name"].as_str() == Some("User")
                    && t["schemaExtensions"]
                        .as_array()
                        .is_some_and(|e| e.iter().any(|x| x["schema"].as_str() == Some(NHS_USER)))
            });
        }
        if !caps.nhs_extension {
            return Err(DirectoryError::Scim(format!(
                "the portal's User resource type does not declare the extension {NHS_USER}"
            )));
        }
        if let Ok((_, schemas, _)) = self.call(Method::GET, "/Schemas", None, None).await {
            let canonical = |schema: &str, attr: &str, sub: Option<&str>| -> Vec<String> {
                resources(&schemas)
                    .iter()
                    .filter(|s| s["id"].as_str() == Some(schema))
                    .flat_map(|s| s["attributes"].as_array().cloned().unwrap_or_default())
                    .filter(|a| a["name"].as_str() == Some(attr))
                    .flat_map(|a| match sub {
                        None => vec![a],
                        Some(sub) => a["subAttributes"]
                            .as_array()
                            .cloned()
                            .unwrap_or_default()
                            .into_iter()
                            .filter(|x| x["name"].as_str() == Some(sub))
                            .collect(),
                    })
                    .flat_map(|a| a["canonicalValues"].as_array().cloned().unwrap_or_default())
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            };
            caps.codes = CodeLists {
                titles: canonical(CORE_USER, "name", Some("honorificPrefix")),
                clinical_roles: canonical(NHS_USER, "clinicalRoles", None),
                clinical_specialities: canonical(NHS_USER, "clinicalSpecialities", None),
                work_areas: canonical(NHS_USER, "workAreas", None),
            };
        }
        Ok(caps)
    }
}
