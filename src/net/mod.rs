//! What the service needs to talk to other servers, whatever the protocol.

pub mod tls;
