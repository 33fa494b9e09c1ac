//! The buffer factory handed to the core: every connection's buffers are a
//! pair of rings whose application halves wait here, keyed by [`ConnId`],
//! until the driver wraps them in a [`Shared`](crate::shared::Shared).

use crate::ring::{recv_ring, send_ring, RecvReader, SendWriter};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tcp_stack::{BufferFactory, ConnId, RecvBuffer, SendBuffer};

/// Application halves not yet claimed by the driver.
#[derive(Default)]
pub(crate) struct Pending {
    halves: HashMap<ConnId, (SendWriter, RecvReader)>,
}

/// Shared between the factory (inside the core) and the driver. Only
/// connection creation and teardown lock it, never the data path.
#[derive(Clone, Default)]
pub(crate) struct Halves(Arc<Mutex<Pending>>);

impl Halves {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        // A panic while holding this lock leaves the map consistent.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Claims the application halves of `conn`.
    pub(crate) fn take(&self, conn: ConnId) -> Option<(SendWriter, RecvReader)> {
        self.lock().halves.remove(&conn)
    }

    /// Drops halves of connections that ended before anyone claimed them.
    pub(crate) fn retain(&self, mut keep: impl FnMut(ConnId) -> bool) {
        self.lock().halves.retain(|id, _| keep(*id));
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().halves.len()
    }
}

/// The [`BufferFactory`] installed in every stack this crate drives.
pub(crate) struct RingFactory {
    pub(crate) halves: Halves,
}

impl BufferFactory for RingFactory {
    fn buffers(
        &mut self,
        conn: ConnId,
        send: usize,
        recv: usize,
    ) -> (Box<dyn SendBuffer>, Box<dyn RecvBuffer>) {
        let mut pending = self.halves.lock();
        let (app_send, core_send) = send_ring(send.max(1));
        let (core_recv, app_recv) = recv_ring(recv.max(1));
        pending.halves.insert(conn, (app_send, app_recv));
        (Box::new(core_send), Box::new(core_recv))
    }
}
