//! Signed-in browsers of the web console: a random session id (the
//! cookie's value) for the API token it stands for, with the session's CSRF
//! token. Sessions are kept in this server's memory, by a hash of their id,
//! and end after [`IDLE`] unused, when signed out, or when the server
//! restarts. See `console::session` for how pages use them.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use rand::RngCore;

/// A session unused this long ends.
pub const IDLE: Duration = Duration::from_secs(12 * 3600);
/// At most this many sessions are kept; the least recently used go first.
const MAX_SESSIONS: usize = 10_000;

struct Session {
    secret: String,
    csrf: String,
    last_seen: Instant,
}

/// The signed-in browsers of this server.
#[derive(Default)]
pub struct Sessions {
    by_id: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// Opens a session for `secret`: its id (for the cookie).
    pub fn open(&self, secret: String) -> String {
        let id = random_token();
        let mut sessions = self.by_id.lock().unwrap_or_else(PoisonError::into_inner);
        sessions.retain(|_, session| session.last_seen.elapsed() < IDLE);
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, session)| session.last_seen)
                .map(|(id, _)| id.clone())
        {
            sessions.remove(&oldest);
        }
        sessions.insert(
            key(&id),
            Session {
                secret,
                csrf: random_token(),
                last_seen: Instant::now(),
            },
        );
        id
    }

    /// The token secret and CSRF token of session `id`, if it is open.
    pub fn touch(&self, id: &str) -> Option<(String, String)> {
        let mut sessions = self.by_id.lock().unwrap_or_else(PoisonError::into_inner);
        let key = key(id);
        let session = sessions.get_mut(&key)?;
        if session.last_seen.elapsed() >= IDLE {
            sessions.remove(&key);
            return None;
        }
        session.last_seen = Instant::now();
        Some((session.secret.clone(), session.csrf.clone()))
    }

    /// Ends session `id`.
    pub fn close(&self, id: &str) {
        self.by_id
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&key(id));
    }
}

/// Sessions are kept by a hash of their id, so a memory dump of the map
/// does not hand out cookies.
fn key(id: &str) -> String {
    crate::store::token_hash(id)
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_opens_and_closes_and_is_kept_by_hash() {
        let sessions = Sessions::default();
        let id = sessions.open("secret".to_string());
        let (secret, csrf) = sessions.touch(&id).expect("open");
        assert_eq!(secret, "secret");
        assert_eq!(csrf.len(), 64);
        assert!(
            !sessions.by_id.lock().expect("lock").contains_key(&id),
            "the map never holds the cookie's value"
        );
        sessions.close(&id);
        assert!(sessions.touch(&id).is_none());
    }
}
