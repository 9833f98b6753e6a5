//! `/Bulk` (RFC 7644 §3.7) for the SCIM backend: creates and updates sent in requests within
//! the portal's `maxOperations` and `maxPayloadSize`, up to `concurrency` requests in flight.
//!
//! In: accounts to create, or updates (ID and compare-and-set changes). Out: one outcome per
//! operation, in order. The same look-ups come first as for one-by-one writes (a create's
//! ExternalSyncID; an update's current User, its ETag and the check of what it still holds),
//! then each operation's answer is that row's outcome:
//! - 201 / 200 / 204: done;
//! - 412 on an update (the User changed between the read and the write): the one-by-one
//!   update, which reads again and either applies the change or says what changed;
//! - 409 on a create: the one-by-one create, which finds the account if it is this one;
//! - another 4xx: that row is refused, with the portal's detail;
//! - no answer (operation missing, 5xx, 429, the whole request refused or too large): the
//!   one-by-one write, which looks up first, so nothing is done twice.
//!
//! 401/403 and exhausted retries of the request itself stop the run, as for every request.

use std::collections::HashMap;

use futures_util::stream::{self, StreamExt as _};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::{
    Account, BULK_CHUNK, BULK_MIN, Change, DirectoryError, Failure, OpOutcome, ScimDirectory,
    encode, needed_changes, refused_change,
};
use crate::model::PortalId;
use crate::scim::BULK_REQUEST;

/// What one operation of a Bulk response said.
struct Answer {
    status: Option<u16>,
    location: Option<String>,
    detail: String,
}

impl Answer {
    fn of(op: &Value) -> Answer {
        Answer {
            status: op["status"]
                .as_str()
                .or(op["status"]["code"].as_str())
                .and_then(|s| s.parse().ok())
                .or_else(|| op["status"].as_u64().and_then(|s| u16::try_from(s).ok())),
            location: op["location"].as_str().map(str::to_owned),
            detail: op["response"]["detail"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        }
    }
}

impl ScimDirectory {
    /// Creates through `/Bulk`; see the module's contract.
    pub(super) async fn bulk_creates(
        &self,
        accounts: &[&Account],
    ) -> Result<Vec<OpOutcome>, DirectoryError> {
        // Look-ups first, so a retried run does not create twice.
        let found = self.existing_many(accounts).await?;
        let operations: Vec<(String, Value)> = accounts
            .iter()
            .enumerate()
            .filter(|(i, _)| found[*i].is_none())
            .map(|(i, a)| {
                let id = format!("c{i}");
                let op = json!({"method": "POST", "path": "/Users", "bulkId": id,
                                "data": Self::create_body(a)});
                (id, op)
            })
            .collect();
        let mut answers = self.send(operations).await?;
        let mut out = Vec::with_capacity(accounts.len());
        for (i, (account, found)) in accounts.iter().zip(found).enumerate() {
            if let Some(f) = found {
                out.push(f);
                continue;
            }
            let answer = answers.remove(&format!("c{i}"));
            let id = answer
                .as_ref()
                .and_then(|a| a.location.as_deref())
                .and_then(|l| l.trim_end_matches('/').rsplit('/').next())
                .filter(|id| !id.is_empty());
            let outcome = match (answer.as_ref().and_then(|a| a.status), id) {
                (Some(201), Some(id)) => {
                    let mut created = (*account).clone();
                    created.id = PortalId::new_unchecked(id);
                    created.set(crate::model::Field::Id, Some(id));
                    OpOutcome::Created(created)
                }
                (Some(s), _) if is_refusal(s) && s != 409 => OpOutcome::Failed(format!(
                    "the portal refused the account ({s}): {}",
                    answer.map(|a| a.detail).unwrap_or_default()
                )),
                _ => self.create(account).await?,
            };
            out.push(outcome);
        }
        Ok(out)
    }

    /// Compare-and-set updates through `/Bulk`; see the module's contract.
    pub(super) async fn bulk_updates(
        &self,
        updates: &[(&PortalId, &[Change])],
    ) -> Result<Vec<OpOutcome>, DirectoryError> {
        // Each User as it is now: what is still to change, under which version.
        let ids: Vec<&PortalId> = updates.iter().map(|(id, _)| *id).collect();
        let users = self.users_by_id(&ids).await?;
        let read: Vec<Result<Value, OpOutcome>> = updates
            .iter()
            .zip(users)
            .map(|((id, changes), user)| {
                let Some((user, etag)) = user else {
                    return Ok(Err(super::gone(id)));
                };
                Ok::<_, DirectoryError>(match needed_changes(id, &user, changes)? {
                    Ok(needed) => {
                        let (method, body) = self.change_request(&user, &needed);
                        let path = format!("/Users/{}", encode(id.as_str()));
                        let mut op = json!({"method": method.as_str(), "path": path,
                                            "data": body});
                        if let Some(tag) = etag.filter(|_| self.caps.etag) {
                            op["version"] = json!(tag);
                        }
                        Ok(op)
                    }
                    Err(outcome) => Err(outcome),
                })
            })
            .collect::<Result<_, _>>()?;
        let operations: Vec<(String, Value)> = read
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.as_ref().ok().map(|op| (i, op)))
            .map(|(i, op)| {
                let id = format!("u{i}");
                let mut op = op.clone();
                op["bulkId"] = json!(id);
                (id, op)
            })
            .collect();
        let mut answers = self.send(operations).await?;
        let mut out = Vec::with_capacity(updates.len());
        for (i, ((id, changes), read)) in updates.iter().zip(read).enumerate() {
            if let Err(outcome) = read {
                out.push(outcome);
                continue;
            }
            let answer = answers.remove(&format!("u{i}"));
            let outcome = match answer.as_ref().and_then(|a| a.status) {
                Some(200 | 204) => OpOutcome::Updated,
                Some(404) => super::gone(id),
                Some(s) if is_refusal(s) && s != 412 => refused_change(
                    StatusCode::from_u16(s).unwrap_or(StatusCode::BAD_REQUEST),
                    &answer.map(|a| a.detail).unwrap_or_default(),
                ),
                // 412: changed since it was read; no clear answer: not known to be done.
                _ => self.update(id, changes).await?,
            };
            out.push(outcome);
        }
        Ok(out)
    }

    /// Sends operations in `/Bulk` requests within the portal's limits, `concurrency` at a
    /// time; the answers by `bulkId`. Operations left unanswered are the caller's to redo.
    async fn send(
        &self,
        operations: Vec<(String, Value)>,
    ) -> Result<HashMap<String, Answer>, DirectoryError> {
        let max_ops = per_request(
            operations.len(),
            self.concurrency,
            self.caps.bulk_max_operations,
        );
        let batches = batches(operations, max_ops, self.caps.bulk_max_payload);
        let responses: Vec<Option<Value>> = stream::iter(batches)
            .map(|batch| async move {
                let body = json!({"schemas": [BULK_REQUEST], "Operations": batch});
                match self.call(Method::POST, "/Bulk", Some(&body), None).await {
                    Ok((_, response, _)) => Ok(Some(response)),
                    Err(Failure::Row(status, detail)) => {
                        tracing::warn!(%status, detail, "a Bulk request was refused; one by one");
                        Ok(None)
                    }
                    Err(f) => Err(f.into_error()),
                }
            })
            .buffered(self.concurrency)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()?;
        let mut answers = HashMap::new();
        for response in responses.into_iter().flatten() {
            for op in response["Operations"].as_array().into_iter().flatten() {
                if let Some(b) = op["bulkId"].as_str() {
                    answers.insert(b.to_owned(), Answer::of(op));
                }
            }
        }
        Ok(answers)
    }
}

/// Operations per `/Bulk` request: spread over the `concurrency` requests in flight (so
/// each connection carries one), at least [`BULK_MIN`] (fewer, larger requests are fewer
/// commits) and at most the portal's `maxOperations` and [`BULK_CHUNK`].
fn per_request(operations: usize, concurrency: usize, max_operations: usize) -> usize {
    operations
        .div_ceil(concurrency.max(1))
        .clamp(BULK_MIN, BULK_CHUNK)
        .min(max_operations.max(1))
}

/// A 4xx that refuses the operation itself (not 429, which asks to come back later).
fn is_refusal(status: u16) -> bool {
    (400..500).contains(&status) && status != 429
}

/// Operations grouped into requests of at most `max_ops` operations and, when `max_payload`
/// is above 0, at most that many bytes. An operation too large for any request is left out
/// (no answer: the caller writes it on its own).
fn batches(
    operations: Vec<(String, Value)>,
    max_ops: usize,
    max_payload: usize,
) -> Vec<Vec<Value>> {
    let envelope = json!({"schemas": [BULK_REQUEST], "Operations": []})
        .to_string()
        .len();
    let mut out: Vec<Vec<Value>> = Vec::new();
    let mut current: Vec<Value> = Vec::new();
    let mut size = envelope;
    for (_, op) in operations {
        let len = op.to_string().len() + 1;
        if max_payload > 0 && envelope + len > max_payload {
            continue;
        }
        if !current.is_empty()
            && (current.len() >= max_ops || (max_payload > 0 && size + len > max_payload))
        {
            out.push(std::mem::take(&mut current));
            size = envelope;
        }
        size += len;
        current.push(op);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(i: usize, filler: usize) -> (String, Value) {
        (
            format!("u{i}"),
            json!({"method": "PATCH", "path": format!("/Users/{i}"), "bulkId": format!("u{i}"),
                   "data": "x".repeat(filler)}),
        )
    }

    #[test]
    fn requests_are_spread_over_the_connections_within_the_limits() {
        assert_eq!(per_request(5000, 8, 1000), 625);
        assert_eq!(per_request(5000, 1, 1000), BULK_CHUNK.min(1000));
        assert_eq!(per_request(5000, 8, 100), 100);
        assert_eq!(per_request(40, 8, 1000), BULK_MIN);
        assert_eq!(per_request(40, 8, 2), 2);
        assert_eq!(per_request(10, 8, 0), 1);
    }

    #[test]
    fn batches_keep_to_the_operation_and_payload_limits() {
        let ops: Vec<_> = (0..10).map(|i| op(i, 10)).collect();
        let sizes: Vec<usize> = batches(ops, 4, 0).iter().map(Vec::len).collect();
        assert_eq!(sizes, [4, 4, 2]);

        let ops: Vec<_> = (0..10).map(|i| op(i, 100)).collect();
        let one = ops[0].1.to_string().len();
        let limit = 200 + 3 * one;
        let got = batches(ops, 100, limit);
        assert_eq!(got.iter().map(Vec::len).sum::<usize>(), 10);
        for b in &got {
            let body = json!({"schemas": [BULK_REQUEST], "Operations": b}).to_string();
            assert!(body.len() <= limit, "{} > {limit}", body.len());
        }
        assert!(got.len() >= 4, "{}", got.len());

        // Too large for any request: left out, for the caller to send on its own.
        let mut ops: Vec<_> = (0..3).map(|i| op(i, 10)).collect();
        ops.push(op(3, 5000));
        let got = batches(ops, 100, 1000);
        assert_eq!(got.iter().map(Vec::len).sum::<usize>(), 3);
    }
}
