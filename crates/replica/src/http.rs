//! Layer 7: the HTTP face of a replica: its routes and the right each needs
//! ([`routes::ROUTES`]), client protection, the lock API, the console, the
//! admin endpoints and the peer RPC server. The only layer that knows HTTP
//! status codes and error bodies.

pub mod console;
pub mod error_codes;
pub mod limits;
pub mod locks;
pub mod ready;
pub mod routes;
