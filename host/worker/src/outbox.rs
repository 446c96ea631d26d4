//! The outbox: what the attempts produce for the server — logs, progress
//! and outcomes — waiting to be delivered.
//!
//! Nothing sends from here: the exchange loop ([`crate::exchange`]) takes
//! what is waiting and delivers it with its next claim, so a busy worker
//! makes one round trip per batch. Items leave in the order they came, and
//! one delivery is in flight at a time, so a task's events always reach the
//! server before its completion. A delivery that fails on the way is put
//! back in front, to go again.
//!
//! A completion stays *unanswered* from the moment its attempt ends until
//! the server's verdict on it arrives. Its lease is still the worker's: the
//! heartbeat renews it ([`Outbox::unanswered_leases`]), so a completion
//! that waits behind a slow server never loses its task.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

use flowmesh_types::TaskEvent;
use flowmesh_types::api::{Completion, Lease, TaskEvents};
use tokio::sync::Notify;

/// Most items in one delivery.
const MAX_ITEMS: usize = 1000;

/// Most bytes (estimated) in one delivery: well under the server's request
/// limit, however large the outputs.
const MAX_BYTES: usize = 8 << 20;

/// One thing to deliver (kept with an estimate of its size on the wire).
#[derive(Debug, Clone)]
enum Item {
    Event(Lease, TaskEvent),
    Complete(Completion),
}

/// Items taken out together, to go in one request.
#[derive(Debug, Default)]
pub(crate) struct Delivery {
    items: Vec<(Item, usize)>,
}

impl Delivery {
    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The events, grouped by task in order, and the completions.
    pub(crate) fn contents(&self) -> (Vec<TaskEvents>, Vec<Completion>) {
        let mut events: Vec<TaskEvents> = Vec::new();
        let mut completions = Vec::new();
        for (item, _) in &self.items {
            match item {
                Item::Event(lease, event) => match events.last_mut() {
                    Some(last)
                        if last.task_id == lease.task_id
                            && last.lease_token == lease.lease_token =>
                    {
                        last.events.push(event.clone())
                    }
                    _ => events.push(TaskEvents {
                        task_id: lease.task_id.clone(),
                        lease_token: lease.lease_token.clone(),
                        events: vec![event.clone()],
                    }),
                },
                Item::Complete(completion) => completions.push(completion.clone()),
            }
        }
        (events, completions)
    }
}

#[derive(Default)]
struct State {
    items: VecDeque<(Item, usize)>,
    /// Task id → lease token of the completions the server has not answered.
    unanswered: HashMap<String, String>,
}

/// See the module documentation.
#[derive(Default)]
pub(crate) struct Outbox {
    state: Mutex<State>,
    /// Something was added.
    pub(crate) added: Notify,
}

impl Outbox {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds an event of the attempt holding `lease`.
    pub(crate) fn event(&self, lease: &Lease, event: TaskEvent) {
        let size = 128 + event_size(&event);
        self.lock()
            .items
            .push_back((Item::Event(lease.clone(), event), size));
        self.added.notify_one();
    }

    /// Adds the outcome of an attempt; `output_bytes` is the size of its
    /// output as JSON text.
    pub(crate) fn complete(&self, completion: Completion, output_bytes: usize) {
        let size = 256
            + output_bytes
            + completion
                .error
                .as_ref()
                .map_or(0, |error| error.message.len());
        let mut state = self.lock();
        state
            .unanswered
            .insert(completion.task_id.clone(), completion.lease_token.clone());
        state.items.push_back((Item::Complete(completion), size));
        drop(state);
        self.added.notify_one();
    }

    /// Whether nothing waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.lock().items.is_empty()
    }

    /// Takes the oldest items, as many as fit in one request.
    pub(crate) fn take(&self) -> Delivery {
        let mut state = self.lock();
        let mut items = Vec::new();
        let mut bytes = 0;
        while let Some((_, size)) = state.items.front() {
            if !items.is_empty() && (items.len() >= MAX_ITEMS || bytes + size > MAX_BYTES) {
                break;
            }
            bytes += size;
            items.extend(state.items.pop_front());
        }
        Delivery { items }
    }

    /// Puts a delivery that did not go through back in front of what came
    /// since, to go again.
    pub(crate) fn put_back(&self, delivery: Delivery) {
        let mut state = self.lock();
        for item in delivery.items.into_iter().rev() {
            state.items.push_front(item);
        }
        drop(state);
        self.added.notify_one();
    }

    /// The server answered the completions of `delivery` (or they will never
    /// be answered: the registration they were made under is gone).
    pub(crate) fn answered(&self, delivery: &Delivery) {
        let mut state = self.lock();
        for (item, _) in &delivery.items {
            if let Item::Complete(completion) = item {
                state.unanswered.remove(&completion.task_id);
            }
        }
    }

    /// Drops everything waiting: the registration it was made under is gone,
    /// and with it every lease.
    pub(crate) fn clear(&self) {
        let mut state = self.lock();
        state.items.clear();
        state.unanswered.clear();
    }

    /// The leases of the completions not answered yet.
    pub(crate) fn unanswered_leases(&self) -> Vec<Lease> {
        self.lock()
            .unanswered
            .iter()
            .map(|(task_id, lease_token)| Lease {
                task_id: task_id.clone(),
                lease_token: lease_token.clone(),
            })
            .collect()
    }
}

fn event_size(event: &TaskEvent) -> usize {
    match event {
        TaskEvent::Log { message, .. } => message.len(),
        TaskEvent::Progress { message, .. } => message.as_ref().map_or(0, String::len),
    }
}

#[cfg(test)]
mod tests {
    use flowmesh_types::api::{Completion, Lease};

    use super::*;

    fn completion(id: &str) -> Completion {
        Completion {
            task_id: id.into(),
            lease_token: format!("lease-{id}"),
            plugin: None,
            elapsed_ms: 1,
            output: Some(serde_json::json!({"ok": true})),
            error: None,
        }
    }

    fn lease(id: &str) -> Lease {
        Lease {
            task_id: id.into(),
            lease_token: format!("lease-{id}"),
        }
    }

    #[test]
    fn events_go_before_the_completion_and_a_failed_delivery_goes_again_first() {
        let outbox = Outbox::default();
        outbox.event(
            &lease("a"),
            TaskEvent::Progress {
                fraction: 0.5,
                message: None,
            },
        );
        outbox.complete(completion("a"), 10);
        let first = outbox.take();
        outbox.complete(completion("b"), 10);
        outbox.put_back(first);
        let again = outbox.take();
        let (events, completions) = again.contents();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].task_id, "a");
        let ids: Vec<_> = completions.iter().map(|c| c.task_id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        assert!(outbox.is_empty());
    }

    #[test]
    fn a_completion_is_unanswered_until_its_verdict() {
        let outbox = Outbox::default();
        outbox.complete(completion("a"), 10);
        let delivery = outbox.take();
        assert_eq!(outbox.unanswered_leases(), vec![lease("a")]);
        outbox.answered(&delivery);
        assert!(outbox.unanswered_leases().is_empty());
    }

    #[test]
    fn a_delivery_stays_under_the_byte_budget_but_takes_at_least_one_item() {
        let outbox = Outbox::default();
        outbox.complete(completion("big"), MAX_BYTES * 2);
        outbox.complete(completion("small"), 10);
        assert_eq!(outbox.take().items.len(), 1, "the big one alone");
        assert_eq!(outbox.take().items.len(), 1, "then the small one");
    }
}
