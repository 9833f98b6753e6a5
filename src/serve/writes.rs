//! Writes carried out together: the operations of a `/Bulk` request go into as few runs as
//! their order allows, each run one plan, one journal and one commit of the directory's
//! batched writes ([`rules::write`]).
//!
//! In: operations in request order (each a create or a change of a User, or the reason it
//! could not be read), the credential's scope, and `failOnErrors`. Out: one answer per
//! operation carried out, in order, each what the same write alone would have answered.
//!
//! Each operation is checked (scope, If-Match, immutables, validation, uniqueness) against
//! the directory as it is, then joins the pending run. The pending run is committed first
//! when the next operation
//! - touches an account, userName or externalId a pending operation touches (so two writes
//!   of one account behave as if one came after the other),
//! - is of another organisation (a run belongs to one),
//! - names a `bulkId:` a pending create defines (its portal ID is minted by the commit), or
//! - could be one error too many: with `failOnErrors = n`, an operation goes into the pending
//!   run only while the errors so far plus the pending operations (each of which may still
//!   fail in the directory) stay below `n`. So an operation after the `n`th error is never
//!   carried out, counting errors in operation order as when each was its own run.
//!
//! A Bulk request of creates and changes of distinct Users, without `bulkId:` references
//! or `failOnErrors`, is so one run: `runs` lists it once (its source
//! `SCIM POST /v2/Bulk by …`, each line the operation's request) and `revert` undoes all of it.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use axum::http::StatusCode;
use serde_json::Value;

use super::rules::{self, Written};
use super::scope::Scope;
use super::users::{self, Prepared, ReadAhead, Update};
use super::{ScimError, ServerState, Shared};
use crate::model::{Keys, Provenance};
use crate::scim::NHS_USER;

/// How a change replaces the User.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum How {
    Replace,
    Patch,
}

/// The User a change is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Target {
    Id(String),
    /// `bulkId:X`: the User an earlier operation of the same request created.
    BulkId(String),
}

/// One write, as read from its request.
#[derive(Debug, Clone)]
pub(super) enum Write {
    Create(Value),
    Change {
        target: Target,
        how: How,
        data: Value,
        if_match: Option<String>,
    },
}

/// One operation: the write (or why it could not be read), the `bulkId` it defines, and the
/// request it is (`POST /v2/Users`), which the run records for its line.
#[derive(Debug)]
pub(super) struct Op {
    pub(super) write: Result<Write, ScimError>,
    pub(super) bulk_id: Option<String>,
    pub(super) request: String,
}

/// What an operation was answered.
pub(super) type Answer = Result<(StatusCode, Value), ScimError>;

/// Carries out `ops` in order (see the module's contract) under the service's write lock;
/// the run's source is `source` (each line's entry the operation's request). With
/// `fail_on > 0`, stops after that many errors. Out: the answers of the operations carried
/// out, in order.
pub(super) async fn carry_out(
    s: &Shared,
    scope: &Scope,
    base: &str,
    source: &Provenance,
    ops: Vec<Op>,
    fail_on: u64,
) -> Vec<Answer> {
    let _guard = s.writes.lock().await;
    carry_out_locked(s, scope, base, source, ops, fail_on).await
}

/// Most writes of single requests committed together.
pub(super) const MAX_GROUP: usize = 5000;

/// A write of a single request, waiting for the next commit.
struct Queued {
    op: Op,
    scope: Scope,
    base: String,
    source: Provenance,
    reply: tokio::sync::oneshot::Sender<Answer>,
}

/// Writes of single requests waiting for the next commit, in the order they came.
#[derive(Default)]
pub(super) struct Queue(std::sync::Mutex<VecDeque<Queued>>);

impl Queue {
    fn push(&self, q: Queued) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push_back(q);
    }

    /// The first `most` queued writes.
    fn take(&self, most: usize) -> Vec<Queued> {
        let mut queue = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = queue.len().min(most);
        queue.drain(..n).collect()
    }
}

/// The write of a single request (a POST, PUT or PATCH of a User), committed with the
/// writes of other requests queued meanwhile (group commit): it waits for the service's
/// write lock, and whoever takes the lock carries out every queued write (up to
/// [`MAX_GROUP`]) in as few runs as [`carry_out`] would make of a Bulk request of them
/// (grouped by credential; a run of one organisation, two writes of one account in two
/// runs, one after the other), then answers each once its run is committed. So a write is
/// durable before its answer, and a write alone is one run as before. The commit goes on
/// in a task of its own, so a client that hangs up does not stop it for the others.
pub(super) async fn single(
    s: &Shared,
    scope: &Scope,
    base: &str,
    source: &Provenance,
    write: Write,
) -> Answer {
    let (reply, answer) = tokio::sync::oneshot::channel();
    s.queue.push(Queued {
        op: Op {
            write: Ok(write),
            bulk_id: None,
            request: source.name.clone(),
        },
        scope: scope.clone(),
        base: base.to_owned(),
        source: source.clone(),
        reply,
    });
    let shared = s.clone();
    let committing = tokio::spawn(async move {
        let _guard = shared.writes.lock().await;
        commit_queued(&shared).await;
    });
    // The task answers every write it takes; a write another task took is answered by it.
    let _ = committing.await;
    answer.await.unwrap_or_else(|_| {
        Err(ScimError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            "the write was not carried out",
        ))
    })
}

/// Carries out the queued writes (the caller holds the write lock): one [`carry_out`] per
/// credential and base URL, each write's answer sent to its request.
async fn commit_queued(s: &Shared) {
    let mut queued = s.queue.take(MAX_GROUP);
    while !queued.is_empty() {
        let first = &queued[0];
        let (scope, base, sender) = (
            first.scope.clone(),
            first.base.clone(),
            first.source.sender.clone(),
        );
        let (group, rest): (Vec<Queued>, Vec<Queued>) = queued
            .into_iter()
            .partition(|q| q.scope == scope && q.base == base && q.source.sender == sender);
        queued = rest;
        let name = if group.iter().all(|q| q.source.name == group[0].source.name) {
            group[0].source.name.clone()
        } else {
            format!("{} requests", group.len())
        };
        let source = Provenance {
            name,
            ..group[0].source.clone()
        };
        let (ops, replies): (Vec<Op>, Vec<_>) = group.into_iter().map(|q| (q.op, q.reply)).unzip();
        let answers = carry_out_locked(s, &scope, &base, &source, ops, 0).await;
        let mut answers = answers.into_iter();
        for reply in replies {
            let answer = answers.next().unwrap_or_else(|| {
                Err(ScimError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    None,
                    "the write gave no answer",
                ))
            });
            // A client that hung up is not waiting for its answer: its write stands.
            let _ = reply.send(answer);
        }
    }
}

/// [`carry_out`], under the write lock the caller holds.
async fn carry_out_locked(
    s: &Shared,
    scope: &Scope,
    base: &str,
    source: &Provenance,
    ops: Vec<Op>,
    fail_on: u64,
) -> Vec<Answer> {
    // One look-up for every account the operations name; a failed one only costs speed.
    let ahead = ReadAhead::read(s, keys_of(&ops)).await.unwrap_or_default();
    let mut batch = Batch {
        s,
        scope,
        base,
        source,
        fail_on,
        answers: (0..ops.len()).map(|_| None).collect(),
        errors: 0,
        ids: HashMap::new(),
        pending: Pending::default(),
        ahead,
    };
    for (i, op) in ops.into_iter().enumerate() {
        if !batch.next(i, op).await {
            break;
        }
    }
    batch.commit().await;
    batch.answers.into_iter().map_while(|a| a).collect()
}

/// The keys the operations name as sent: the IDs of changes, the userNames and
/// (organisation, externalId) of creates, lower-cased (a key the rules normalise otherwise
/// is looked up on its own).
fn keys_of(ops: &[Op]) -> Keys {
    let mut keys = Keys::default();
    for op in ops {
        match &op.write {
            Ok(Write::Create(data)) => {
                if let Some(email) = data["userName"].as_str() {
                    keys.emails.push(email.trim().to_lowercase());
                }
                let organisation = data[NHS_USER]["organisation"].as_str();
                if let (Some(o), Some(e)) = (organisation, data["externalId"].as_str()) {
                    keys.external
                        .push((o.trim().to_ascii_uppercase(), e.trim().to_lowercase()));
                }
            }
            Ok(Write::Change {
                target: Target::Id(id),
                ..
            }) => keys.ids.push(id.clone()),
            _ => {}
        }
    }
    keys
}

/// Operations checked and waiting for their commit.
#[derive(Default)]
struct Pending {
    organisation: Option<String>,
    /// (operation index, the `bulkId` it defines, its request, the checked write).
    ops: Vec<(usize, Option<String>, String, Prepared)>,
    keys: HashSet<String>,
    bulk_ids: HashSet<String>,
}

impl Pending {
    /// Whether `p` cannot go into the same run as the pending operations.
    fn clashes(&self, p: &Prepared) -> bool {
        self.organisation
            .as_ref()
            .is_some_and(|o| *o != p.organisation)
            || p.keys.iter().any(|k| self.keys.contains(k))
    }
}

/// The state of one [`carry_out`].
struct Batch<'a> {
    s: &'a Shared,
    scope: &'a Scope,
    base: &'a str,
    source: &'a Provenance,
    fail_on: u64,
    answers: Vec<Option<Answer>>,
    errors: u64,
    /// Portal IDs of the Users created so far, by `bulkId`.
    ids: HashMap<String, String>,
    pending: Pending,
    /// The accounts the operations name, as read before the first commit.
    ahead: ReadAhead,
}

impl Batch<'_> {
    /// Whether `failOnErrors` is reached.
    fn failed_enough(&self) -> bool {
        self.fail_on > 0 && self.errors >= self.fail_on
    }

    fn answer(&mut self, i: usize, answer: Answer) {
        if answer.is_err() {
            self.errors += 1;
        }
        if let Some(slot) = self.answers.get_mut(i) {
            *slot = Some(answer);
        }
    }

    /// Takes operation `i`: answers it at once when it fails its checks, else adds it to the
    /// pending run (committing that first when it must). False once `failOnErrors` stops
    /// the request before it.
    async fn next(&mut self, i: usize, op: Op) -> bool {
        let pending = self.pending.ops.len() as u64;
        if self.fail_on > 0 && self.errors + pending >= self.fail_on {
            self.commit().await;
        }
        if self.failed_enough() {
            return false;
        }
        let write = match op.write {
            Ok(w) => w,
            Err(e) => {
                self.answer(i, Err(e));
                return true;
            }
        };
        if let Write::Change {
            target: Target::BulkId(b),
            ..
        } = &write
            && self.pending.bulk_ids.contains(b)
        {
            self.commit().await;
        }
        let mut prepared = self.prepare(&write).await;
        if let Ok(p) = &prepared
            && self.pending.clashes(p)
        {
            self.commit().await;
            if self.failed_enough() {
                return false;
            }
            prepared = self.prepare(&write).await;
        }
        match prepared {
            Err(e) => self.answer(i, Err(e)),
            Ok(p) => {
                self.pending
                    .organisation
                    .get_or_insert_with(|| p.organisation.clone());
                self.pending.keys.extend(p.keys.iter().cloned());
                if let Some(b) = &op.bulk_id {
                    self.pending.bulk_ids.insert(b.clone());
                }
                self.pending.ops.push((i, op.bulk_id, op.request, p));
            }
        }
        true
    }

    /// Checks a write against the directory as it is now.
    async fn prepare(&self, write: &Write) -> Result<Prepared, ScimError> {
        let state: &ServerState = self.s;
        match write {
            Write::Create(data) => {
                users::prepare_create(state, &self.ahead, self.scope, data).await
            }
            Write::Change {
                target,
                how,
                data,
                if_match,
            } => {
                let id = match target {
                    Target::Id(id) => id.clone(),
                    Target::BulkId(b) => self.ids.get(b).cloned().ok_or_else(|| {
                        ScimError::new(
                            StatusCode::CONFLICT,
                            Some("invalidValue"),
                            format!("unknown bulkId {b}"),
                        )
                    })?,
                };
                let how = match how {
                    How::Replace => Update::Replace(data),
                    How::Patch => Update::Patch(data),
                };
                users::prepare_update(
                    state,
                    &self.ahead,
                    self.scope,
                    &id,
                    how,
                    if_match.as_deref(),
                )
                .await
            }
        }
    }

    /// Commits the pending operations as one run and answers each.
    async fn commit(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        let Some(organisation) = pending.organisation else {
            return;
        };
        let written = self.write(&organisation, &pending.ops).await;
        // The commit changed the directory: what was read ahead is stale.
        self.ahead = ReadAhead::default();
        let after = self.read_after(&pending.ops, &written).await;
        for (n, (i, bulk_id, _, p)) in pending.ops.into_iter().enumerate() {
            let answer = match written.as_ref().map(|w| w.get(n)) {
                Ok(Some(Ok(w))) => {
                    let current = p.current;
                    let answer =
                        users::finish(self.s, &after, self.scope, current, w.clone(), self.base)
                            .await;
                    if let (Some(b), Ok((_, user))) = (&bulk_id, &answer)
                        && let Some(id) = user["id"].as_str()
                    {
                        self.ids.insert(b.clone(), id.to_owned());
                    }
                    answer
                }
                Ok(Some(Err(e))) => Err(e.clone()),
                Ok(None) => Err(ScimError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    None,
                    "the run gave no answer for this operation",
                )),
                Err(e) => Err(e.clone()),
            };
            self.answer(i, answer);
        }
    }

    /// The accounts a commit created or changed, in one look-up (none when it failed: each
    /// is then looked up on its own).
    async fn read_after(
        &self,
        ops: &[(usize, Option<String>, String, Prepared)],
        written: &Result<Vec<Result<Written, ScimError>>, ScimError>,
    ) -> ReadAhead {
        let Ok(written) = written else {
            return ReadAhead::default();
        };
        let mut keys = Keys::default();
        for ((_, _, _, p), w) in ops.iter().zip(written) {
            match (w, &p.current) {
                (Ok(Written::Created(id)), _) => keys.ids.push(id.to_string()),
                (Ok(Written::Updated), Some(current)) => {
                    keys.ids.extend(current["id"].as_str().map(str::to_owned));
                }
                _ => {}
            }
        }
        if keys.ids.is_empty() {
            return ReadAhead::default();
        }
        ReadAhead::read(self.s, keys).await.unwrap_or_default()
    }

    /// One run of `ops` (all of `organisation`): the organisations and units its creates
    /// name are kept first, each row's line is its operation's position after
    /// [`rules::LINE`] (the first operation has the line a one-row file's row has), and the
    /// run's source names each line's request when it is not the run's own.
    async fn write(
        &self,
        organisation: &str,
        ops: &[(usize, Option<String>, String, Prepared)],
    ) -> Result<Vec<Result<Written, ScimError>>, ScimError> {
        let creates: Vec<&Prepared> = ops
            .iter()
            .map(|(_, _, _, p)| p)
            .filter(|p| p.current.is_none())
            .collect();
        if !creates.is_empty() {
            let units: BTreeSet<&str> = creates
                .iter()
                .flat_map(|p| p.units.iter().map(String::as_str))
                .collect();
            let units: Vec<&str> = units.into_iter().collect();
            self.s
                .directory
                .add_organisation(organisation, &units)
                .await?;
        }
        let mut entries = BTreeMap::new();
        let rows = ops
            .iter()
            .map(|(i, _, request, p)| {
                let line = rules::LINE + *i as u64;
                if *request != self.source.name {
                    entries.insert(line, request.clone());
                }
                let mut row = p.row.clone();
                row.line = line;
                row
            })
            .collect();
        let source = Provenance {
            entries,
            ..self.source.clone()
        };
        rules::write(self.s, organisation, rows, &source).await
    }
}
