//! A secret setting: read from the file or the environment, never shown.

use std::fmt;

use secrecy::SecretString;
use serde::Deserialize;

/// A secret that never shows in logs or debug output.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub SecretString);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}
