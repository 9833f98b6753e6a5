//! The console's link to the deployment: one thread of its own that opens the deployment
//! (as a CLI verb does) and carries out what the pages ask, so the pages call the same
//! operations as the verbs without those operations having to be shareable across threads.
//!
//! In: jobs, each a closure given the deployment. Out: each job's answer. Jobs run
//! concurrently on that one thread; an approval waiting for an organisation's lock (the
//! nightly run holds it) holds up the other pages until it has the lock.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use tokio::sync::{mpsc, oneshot};

use crate::config::Config;
use crate::deployment::Deployment;

/// A job: given the deployment, a future to run on the worker's thread.
type Job = Box<dyn FnOnce(Rc<Deployment<'static>>) -> Pin<Box<dyn Future<Output = ()>>> + Send>;

/// The worker has stopped (its thread ended, or could not open the deployment).
#[derive(Debug, thiserror::Error)]
#[error("the console's worker is not running: {0}")]
pub struct WorkerGone(pub String);

/// The handle pages use to reach the worker.
#[derive(Clone)]
pub struct Worker {
    jobs: mpsc::UnboundedSender<Job>,
}

impl Worker {
    /// Starts the thread and opens the deployment on it.
    pub async fn start(config: &'static Config) -> Result<Worker, WorkerGone> {
        let (jobs, mut queue) = mpsc::unbounded_channel::<Job>();
        let (opened, is_open) = oneshot::channel::<Result<(), String>>();
        std::thread::Builder::new()
            .name("console".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = opened.send(Err(e.to_string()));
                        return;
                    }
                };
                let local = tokio::task::LocalSet::new();
                local.block_on(&rt, async move {
                    let deployment = match Deployment::open(config).await {
                        Ok(d) => Rc::new(d),
                        Err(e) => {
                            let _ = opened.send(Err(e.to_string()));
                            return;
                        }
                    };
                    let _ = opened.send(Ok(()));
                    while let Some(job) = queue.recv().await {
                        tokio::task::spawn_local(job(deployment.clone()));
                    }
                });
            })
            .map_err(|e| WorkerGone(e.to_string()))?;
        match is_open.await {
            Ok(Ok(())) => Ok(Worker { jobs }),
            Ok(Err(e)) => Err(WorkerGone(e)),
            Err(_) => Err(WorkerGone("its thread ended".into())),
        }
    }

    /// Runs `f` on the worker and waits for its answer.
    pub async fn call<T, F, Fut>(&self, f: F) -> Result<T, WorkerGone>
    where
        T: Send + 'static,
        F: FnOnce(Rc<Deployment<'static>>) -> Fut + Send + 'static,
        Fut: Future<Output = T> + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |d| {
            Box::pin(async move {
                let _ = tx.send(f(d).await);
            })
        });
        self.jobs
            .send(job)
            .map_err(|_| WorkerGone("its thread ended".into()))?;
        rx.await
            .map_err(|_| WorkerGone("a job ended without an answer".into()))
    }
}
