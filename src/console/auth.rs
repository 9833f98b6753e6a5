//! Operator sign-in: argon2id password hashes, sessions and their CSRF tokens.
//!
//! In: the configured operators, each sign-in attempt (name, password, peer) and each
//! request's session cookie. Out: a session token to set as an HttpOnly, SameSite=Strict
//! cookie (Secure over HTTPS), the operator a cookie signs in, and the CSRF token each of
//! that session's forms must carry.
//!
//! Contracts:
//! - A password is checked against its argon2id hash only; a name that is not configured
//!   costs the same hash check, so the time taken does not say which names exist.
//! - Failed sign-ins are counted per name and per peer address ([`Throttle`]); over the
//!   limit, sign-in is refused without checking the password until the block ends.
//! - A session ends after `idle` without a request, after `max` in all, or at sign-out.
//!   Sessions live in memory: a restart signs everyone out.
//! - Tokens are 256 random bits from the operating system, compared in constant time.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine as _;

use super::config::ConsoleConfig;
use crate::serve::throttle::{Key, Throttle};

/// Most sessions open at once; the oldest goes when a new one would pass it.
const MAX_SESSIONS: usize = 1_000;

/// An argon2id hash of `password` in the PHC string format, with a fresh salt
/// (m = 19 MiB, t = 2, p = 1: OWASP's first recommendation).
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

fn hasher() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Whether `password` matches the PHC string `hash` (false for a hash that cannot be read).
pub fn verify_password(hash: &str, password: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => hasher()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// 256 random bits, URL-safe base64.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Equality of two tokens in time that depends on their length only.
pub fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// A signed-in operator's session.
#[derive(Debug, Clone)]
pub struct Session {
    pub operator: String,
    pub csrf: String,
    started: Instant,
    last_seen: Instant,
}

/// Why a sign-in was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignInRefused {
    /// Wrong name or password.
    Wrong,
    /// Too many failures: try again after this long.
    Throttled(Duration),
}

/// The operators, their sessions and the failure counts.
#[derive(Debug)]
pub struct Auth {
    /// Operators who sign in with a password: name → argon2id hash.
    operators: HashMap<String, String>,
    /// Every operator's name (those of OpenID Connect too).
    names: Vec<String>,
    /// A hash checked for names that are not configured, so they take as long.
    decoy: String,
    sessions: Mutex<HashMap<String, Session>>,
    throttle: Throttle,
    idle: Duration,
    max: Duration,
}

impl Auth {
    pub fn new(config: &ConsoleConfig) -> Auth {
        let operators = config
            .operators
            .iter()
            .filter_map(|o| Some((o.name.clone(), o.password_hash.clone()?)))
            .collect();
        let names = config.operators.iter().map(|o| o.name.clone()).collect();
        Auth {
            operators,
            names,
            decoy: hash_password(&random_token()).unwrap_or_default(),
            sessions: Mutex::new(HashMap::new()),
            throttle: Throttle::new(
                config.login_failures,
                Duration::from_secs(config.login_failure_window_seconds),
            ),
            idle: Duration::from_secs(config.session_idle_minutes.saturating_mul(60)),
            max: Duration::from_secs(config.session_max_hours.saturating_mul(3600)),
        }
    }

    /// Checks a sign-in; on success opens a session and returns its token.
    pub fn sign_in(
        &self,
        name: &str,
        password: &str,
        peer: Option<IpAddr>,
        now: Instant,
    ) -> Result<(String, Session), SignInRefused> {
        let mut keys = vec![Key::client(name)];
        keys.extend(peer.map(Key::Peer));
        if let Some(wait) = self.throttle.blocked(&keys, now) {
            return Err(SignInRefused::Throttled(wait));
        }
        let ok = match self.operators.get(name) {
            Some(hash) => verify_password(hash, password),
            None => {
                let _ = verify_password(&self.decoy, password);
                false
            }
        };
        if !ok {
            return Err(match self.throttle.failed(&keys, now) {
                Some(wait) => SignInRefused::Throttled(wait),
                None => SignInRefused::Wrong,
            });
        }
        self.throttle.succeeded(&Key::client(name));
        Ok(self.open(name, now))
    }

    /// The configured operator an identity provider's name is (ignoring case), if any.
    pub fn operator_named(&self, name: &str) -> Option<&str> {
        self.names
            .iter()
            .find(|n| n.eq_ignore_ascii_case(name.trim()))
            .map(String::as_str)
    }

    /// Opens a session for an operator who has proved who they are.
    pub fn open(&self, name: &str, now: Instant) -> (String, Session) {
        let session = Session {
            operator: name.to_owned(),
            csrf: random_token(),
            started: now,
            last_seen: now,
        };
        let token = random_token();
        if let Ok(mut sessions) = self.sessions.lock() {
            sessions.retain(|_, s| self.live(s, now));
            if sessions.len() >= MAX_SESSIONS
                && let Some(oldest) = sessions
                    .iter()
                    .min_by_key(|(_, s)| s.started)
                    .map(|(t, _)| t.clone())
            {
                sessions.remove(&oldest);
            }
            sessions.insert(token.clone(), session.clone());
        }
        (token, session)
    }

    fn live(&self, s: &Session, now: Instant) -> bool {
        now.saturating_duration_since(s.last_seen) < self.idle
            && now.saturating_duration_since(s.started) < self.max
    }

    /// The session of a cookie's token, if it is live (and marks it seen now).
    pub fn session(&self, token: &str, now: Instant) -> Option<Session> {
        let mut sessions = self.sessions.lock().ok()?;
        let key = sessions.keys().find(|k| same_token(k, token)).cloned()?;
        let live = sessions.get(&key).is_some_and(|s| self.live(s, now));
        if !live {
            sessions.remove(&key);
            return None;
        }
        let s = sessions.get_mut(&key)?;
        s.last_seen = now;
        Some(s.clone())
    }

    /// Ends a session.
    pub fn sign_out(&self, token: &str) {
        if let Ok(mut sessions) = self.sessions.lock() {
            sessions.retain(|k, _| !same_token(k, token));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::config::OperatorConfig;

    fn config(failures: u32) -> ConsoleConfig {
        ConsoleConfig {
            operators: vec![OperatorConfig {
                name: "ada".into(),
                password_hash: Some(hash_password("correct horse").unwrap()),
            }],
            login_failures: failures,
            session_idle_minutes: 30,
            session_max_hours: 8,
            ..ConsoleConfig::default()
        }
    }

    #[test]
    fn a_hash_is_argon2id_and_checks_only_its_password() {
        let h = hash_password("s3cret").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify_password(&h, "s3cret"));
        assert!(!verify_password(&h, "s3cret "));
        assert!(!verify_password("not a hash", "s3cret"));
        assert_ne!(h, hash_password("s3cret").unwrap(), "salted");
    }

    #[test]
    fn sign_in_opens_a_session_that_expires_when_idle_and_at_sign_out() {
        let auth = Auth::new(&config(5));
        let t0 = Instant::now();
        assert_eq!(
            auth.sign_in("ada", "wrong", None, t0).unwrap_err(),
            SignInRefused::Wrong
        );
        assert_eq!(
            auth.sign_in("bob", "correct horse", None, t0).unwrap_err(),
            SignInRefused::Wrong
        );
        let (token, s) = auth.sign_in("ada", "correct horse", None, t0).unwrap();
        assert_eq!(s.operator, "ada");
        assert_eq!(token.len(), 43);
        assert!(
            auth.session(&token, t0 + Duration::from_secs(29 * 60))
                .is_some()
        );
        // Seen at 29 minutes: alive until 59.
        assert!(
            auth.session(&token, t0 + Duration::from_secs(58 * 60))
                .is_some()
        );
        assert!(
            auth.session(&token, t0 + Duration::from_secs(120 * 60))
                .is_none()
        );
        let (token, _) = auth.sign_in("ada", "correct horse", None, t0).unwrap();
        auth.sign_out(&token);
        assert!(auth.session(&token, t0).is_none());
        assert!(auth.session("forged", t0).is_none());
    }

    #[test]
    fn a_session_ends_at_its_maximum_however_busy() {
        let auth = Auth::new(&config(5));
        let t0 = Instant::now();
        let (token, _) = auth.sign_in("ada", "correct horse", None, t0).unwrap();
        for m in (20..8 * 60).step_by(20) {
            assert!(
                auth.session(&token, t0 + Duration::from_secs(m * 60))
                    .is_some(),
                "{m}"
            );
        }
        assert!(
            auth.session(&token, t0 + Duration::from_secs(8 * 3600))
                .is_none()
        );
    }

    #[test]
    fn failures_block_the_name_even_with_the_right_password() {
        let auth = Auth::new(&config(3));
        let t0 = Instant::now();
        let peer: IpAddr = "127.0.0.9".parse().unwrap();
        for _ in 0..2 {
            assert_eq!(
                auth.sign_in("ada", "guess", Some(peer), t0).unwrap_err(),
                SignInRefused::Wrong
            );
        }
        assert!(matches!(
            auth.sign_in("ada", "guess", Some(peer), t0),
            Err(SignInRefused::Throttled(_))
        ));
        assert!(matches!(
            auth.sign_in("ada", "correct horse", None, t0),
            Err(SignInRefused::Throttled(_))
        ));
        // After the block, the right password signs in.
        let later = t0 + Duration::from_secs(301);
        assert!(auth.sign_in("ada", "correct horse", None, later).is_ok());
    }
}
