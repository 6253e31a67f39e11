//! Writing to a fenced store while holding a lock.
//!
//! The seed's point (DDIA 8.4.1): a client cannot know that it still holds
//! its lock — it may have been paused since it last checked — so every write
//! must carry the token and the resource must check it. These helpers make
//! that the easy path: they attach *both* the fencing token (which the store
//! compares against its per-key `max_token`) and the signed token (which
//! proves the lock service issued that token for that lock), so that a
//! caller cannot forget one of them.
//!
//! Rejections come back as the store's typed errors:
//! [`StoreError::StaleToken`] (409: a higher token has been accepted for the
//! key, so this client lost the lock) and [`StoreError::BadToken`] (403: the
//! signature does not verify, or it was issued for another lock). Neither
//! changed anything in the store.

use crate::guard::Guard;
use bytes::Bytes;
use fenced_store_client::{Fence, Idem};
use fenced_store_client::{StoreClient, StoreError, WriteOk};

impl Guard {
    /// The proof to present to a resource: this grant's fencing token and its
    /// signed form.
    pub fn fence(&self) -> Fence {
        Fence { token: self.token(), signed: self.signed_token().to_string() }
    }

    /// Writes `value` under `key` in `store`, fenced by this lock.
    ///
    /// This does not consult [`Guard::is_valid`] first: a local check can
    /// only be stale (the process may pause right after it), and the store's
    /// check is the one that counts. Call `is_valid` yourself to skip work
    /// that is probably futile.
    pub async fn put(&self, store: &StoreClient, key: &str, value: impl Into<Bytes>) -> Result<WriteOk, StoreError> {
        let fence = self.fence();
        store.put(key, value, fence.token, &fence.signed, None).await
    }

    /// Like [`Guard::put`], with `(client, request_id)` so that a retry after
    /// a lost reply returns the first result instead of applying twice.
    pub async fn put_idempotent(
        &self,
        store: &StoreClient,
        key: &str,
        value: impl Into<Bytes>,
        idem: &Idem,
    ) -> Result<WriteOk, StoreError> {
        let fence = self.fence();
        store.put(key, value, fence.token, &fence.signed, Some(idem)).await
    }

    /// Deletes `key` in `store`, fenced by this lock. The store keeps the
    /// key's `max_token`, so an older holder cannot resurrect it.
    pub async fn delete(&self, store: &StoreClient, key: &str) -> Result<WriteOk, StoreError> {
        store.delete(key, &self.fence(), None).await
    }
}
