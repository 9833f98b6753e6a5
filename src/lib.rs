//! push-connector library.
