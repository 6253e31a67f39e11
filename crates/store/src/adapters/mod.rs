//! Fencing for resources that know nothing of tokens: the token travels in
//! the resource's own data (a file name, a column) and the comparison is made
//! by the resource's own atomic operation (a rename plus "highest wins" on
//! read; one conditional SQL statement).

pub mod files;
#[cfg(feature = "postgres")]
pub mod postgres;
