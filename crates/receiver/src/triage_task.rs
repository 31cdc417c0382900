//! The background task of the running receiver that keeps triage moving: SLA checks, the
//! overdue gauge, daily review sampling, the monitors, and webhook delivery.

use std::sync::Arc;
use std::time::Duration;

use closedloop_delivery::backoff::Backoff;
use closedloop_store::records::Notification;
use closedloop_store::{Connection, StoreConfig};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use crate::export::Stop;
use crate::pipeline::Shared;
use crate::store::writer::unix_now_s;
use closedloop_commands::review::{self, ReviewConfig};
use closedloop_commands::triage as store;
use closedloop_engine::monitors::Monitors;
use closedloop_engine::triage::{NotifyConfig, TriageConfig};

/// The most notifications read from the queue at once.
const DELIVERY_BATCH: usize = 32;

/// The task's connection, moved to a blocking thread for each use and back, so the store
/// never runs on the async reactor. Opened (again) when needed.
struct Db {
    config: Arc<StoreConfig>,
    conn: Option<Connection>,
}

impl Drop for Db {
    /// Closes the connection off the async runtime the task ends on.
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            conn.close_in_background();
        }
    }
}

impl Db {
    async fn run<T: Send + 'static, E: std::fmt::Display>(
        &mut self,
        work: impl FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
    ) -> Result<T, String> {
        let conn = self.conn.take();
        let config = Arc::clone(&self.config);
        let joined = tokio::task::spawn_blocking(move || {
            let mut conn = match conn {
                Some(conn) => conn,
                None => match crate::direct::connect(&config) {
                    Ok(conn) => conn,
                    Err(error) => return (None, Err(error.to_string())),
                },
            };
            let result = work(&mut conn).map_err(|error| error.to_string());
            (Some(conn), result)
        })
        .await;
        match joined {
            Ok((conn, result)) => {
                self.conn = conn;
                result
            }
            Err(error) => Err(error.to_string()),
        }
    }
}

/// The outcome of one delivery pass.
enum Delivery {
    /// The queue is empty.
    Done,
    /// The webhook failed; retry later.
    Retry,
}

/// Runs until `stop` says drain: every `triage.check_interval_secs` an SLA check (and review
/// sampling of completed days), and delivery of queued notifications whenever the writer
/// queues some or a retry is due.
pub(crate) async fn background(
    store: StoreConfig,
    triage: TriageConfig,
    notify: NotifyConfig,
    review: ReviewConfig,
    new_monitors: Option<Box<dyn Fn() -> Monitors + Send>>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<Stop>,
) {
    let retention = store.content_retention;
    let mut db = Db {
        config: Arc::new(store),
        conn: None,
    };
    let client = match &notify.webhook_url {
        Some(_) => match reqwest::Client::builder()
            .timeout(Duration::from_millis(notify.timeout_millis.max(1)))
            .build()
        {
            Ok(client) => Some(client),
            Err(error) => {
                error!(%error, "Cannot build the webhook client; notifications stay queued.");
                None
            }
        },
        None => None,
    };
    let interval = Duration::from_secs(triage.check_interval_secs.max(1));
    let lease = lease_secs(Duration::from_millis(notify.timeout_millis.max(1)));
    let backoff = Backoff::new(notify.initial_backoff_millis, notify.max_backoff_secs);
    let mut next_check = Instant::now();
    let mut retry_at: Option<Instant> = None;
    let mut failures: u32 = 0;
    let mut monitors: Option<Monitors> = None;
    loop {
        if *stop.borrow() == Stop::Drain {
            break;
        }
        let now = Instant::now();
        if now >= next_check {
            next_check = now + interval;
            let breach = notify.webhook_url.is_some() && notify.on_sla_breach;
            let review = review.clone();
            let checked = db
                .run(move |conn| {
                    let now_s = unix_now_s();
                    let sla = store::check_sla(conn, now_s, breach)?;
                    let sampled = review::auto_sample(conn, &review, retention, now_s)?;
                    Ok::<_, crate::store::StoreError>((sla, sampled))
                })
                .await;
            match checked {
                Ok(((overdue, queued), sampled)) => {
                    shared.triage.set_overdue(overdue);
                    if queued > 0 {
                        info!(breaches = queued, "SLA breaches queued for notification.");
                    }
                    for done in sampled {
                        let day = &done.day;
                        if let Some(size) = done.sampled {
                            info!(%day, sampled = size, "Review sample drawn.");
                        }
                        if let Some(deleted) = done.content_deleted {
                            info!(%day, deleted, "Content no sample or record needs deleted.");
                        }
                    }
                }
                Err(error) => warn!(%error, "Triage check failed."),
            }
            // Built again after a failed check: its first check replays the store quietly.
            if monitors.is_none() {
                monitors = new_monitors.as_ref().map(|new| new());
            }
            if let Some(running) = monitors.take() {
                let checked = db
                    .run(move |conn| {
                        let mut running = running;
                        let outcome = running.check(conn, unix_now_s());
                        Ok::<_, crate::store::StoreError>((running, outcome))
                    })
                    .await;
                match checked {
                    Ok((running, outcome)) => {
                        monitors = Some(running);
                        match outcome {
                            Ok(outcome) if outcome.fired + outcome.resolved > 0 => {
                                shared.triage.wake.notify_one();
                            }
                            Ok(_) => {}
                            Err(error) => warn!(%error, "Monitor check failed."),
                        }
                    }
                    Err(error) => warn!(%error, "Monitor check failed."),
                }
            }
        }
        if let (Some(client), Some(url)) = (&client, &notify.webhook_url) {
            if retry_at.is_none_or(|at| now >= at) {
                match deliver(&mut db, client, url, lease).await {
                    Delivery::Done => {
                        failures = 0;
                        retry_at = None;
                    }
                    Delivery::Retry => {
                        failures = failures.saturating_add(1);
                        let delay = backoff.delay(failures);
                        retry_at = Some(Instant::now() + delay);
                    }
                }
            }
        }
        let wake_at = retry_at.map_or(next_check, |at| at.min(next_check));
        tokio::select! {
            () = tokio::time::sleep_until(wake_at) => {}
            () = shared.triage.wake.notified() => {}
            _ = stop.changed() => {}
        }
    }
    debug!("Triage task stopped.");
}

/// How long a claimed batch of notifications stays leased to this receiver: long enough to
/// send every one of them at the webhook timeout, so no other receiver sends them meanwhile;
/// if this receiver dies, they are sent by another once the lease ends.
fn lease_secs(timeout: Duration) -> i64 {
    let batch = timeout.saturating_mul(DELIVERY_BATCH as u32);
    batch
        .as_secs()
        .saturating_add(LEASE_MARGIN_SECS)
        .min(i64::MAX as u64) as i64
}

/// Added to a lease beyond the sends it covers.
const LEASE_MARGIN_SECS: u64 = 60;

async fn deliver(db: &mut Db, client: &reqwest::Client, url: &str, lease_secs: i64) -> Delivery {
    loop {
        let batch = match db
            .run(move |conn| {
                let now_s = unix_now_s();
                conn.claim_notifications(now_s, now_s.saturating_add(lease_secs), DELIVERY_BATCH)
            })
            .await
        {
            Ok(batch) => batch,
            Err(error) => {
                warn!(%error, "Cannot read the notification queue.");
                return Delivery::Retry;
            }
        };
        if batch.is_empty() {
            return Delivery::Done;
        }
        let mut unsent: Vec<i64> = batch.iter().map(|notification| notification.id).collect();
        for Notification { id, kind, payload } in batch {
            let sent = client
                .post(url)
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(payload)
                .send()
                .await;
            let delivered = match sent {
                Ok(response) if response.status().is_success() => {
                    debug!(%kind, "Webhook notification delivered.");
                    true
                }
                Ok(response)
                    if response.status().is_client_error()
                        && response.status() != http::StatusCode::TOO_MANY_REQUESTS
                        && response.status() != http::StatusCode::REQUEST_TIMEOUT =>
                {
                    error!(%kind, status = %response.status(), "Webhook refused a notification; dropping it.");
                    true
                }
                Ok(response) => {
                    warn!(%kind, status = %response.status(), "Webhook notification failed; will retry.");
                    false
                }
                Err(error) => {
                    // The webhook URL is a secret; reqwest's error would show it.
                    let error = error.without_url();
                    warn!(%kind, %error, "Webhook notification failed; will retry.");
                    false
                }
            };
            if !delivered {
                release(db, unsent).await;
                return Delivery::Retry;
            }
            unsent.retain(|&unsent| unsent != id);
            if let Err(error) = db.run(move |conn| conn.delete_notification(id)).await {
                warn!(%error, "Cannot delete a delivered notification.");
                release(db, unsent).await;
                return Delivery::Retry;
            }
        }
    }
}

/// Gives up the leases of notifications not sent, so the retry (here or on another
/// receiver) takes them at once. If that fails, their leases expire.
async fn release(db: &mut Db, ids: Vec<i64>) {
    let released = db
        .run(move |conn| ids.iter().try_for_each(|&id| conn.release_notification(id)))
        .await;
    if let Err(error) = released {
        warn!(%error, "Cannot release unsent notifications; they wait for their lease to end.");
    }
}
