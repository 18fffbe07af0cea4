//! The state machine: [`ControlState`] in memory, snapshots on disk.
//!
//! Applied state is not written per entry: after a restart openraft replays
//! the committed log after the last snapshot (`read_committed` says how
//! far), so the log and `snapshot.json` together are the durable state.
//! Every change is published on a `watch` channel (latest wins, never
//! queues) for the gateway's followers of the state: the agents' Control
//! streams, the store's shard map, the lease keeper.

use std::{
    io::{self, Cursor},
    path::{Path, PathBuf},
    sync::Arc,
};

use openraft::{
    Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, Snapshot, SnapshotMeta,
    StorageError, StorageIOError, StoredMembership, storage::RaftStateMachine,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, watch};

use control_state::{Applied, ControlState};

use super::{Member, NodeId, TypeConfig, fsio};

/// What a snapshot holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct SmData {
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, Member>,
    state: ControlState,
}

/// The snapshot file: its metadata and the encoded [`SmData`].
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, Member>,
    data: Vec<u8>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    data: SmData,
    snapshot: Option<StoredSnapshot>,
    snapshots_built: u64,
}

/// The state machine. Clones share it (the snapshot builder is a clone).
#[derive(Debug, Clone)]
pub struct StateMachine {
    inner: Arc<Mutex<Inner>>,
    publish: Arc<watch::Sender<Arc<ControlState>>>,
}

fn snap_err(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::write_snapshot(None, &e).into()
}

impl StateMachine {
    /// Opens the state machine under `dir`, starting from the snapshot on
    /// disk if there is one.
    pub fn open(dir: &Path) -> io::Result<Self> {
        fsio::create_private_dir(dir)?;
        let (data, snapshot) = match fsio::read_optional(&dir.join("snapshot.json"))? {
            Some(bytes) => {
                let snap: StoredSnapshot =
                    serde_json::from_slice(&bytes).map_err(io::Error::other)?;
                let data: SmData = serde_json::from_slice(&snap.data).map_err(io::Error::other)?;
                (data, Some(snap))
            }
            None => (SmData::default(), None),
        };
        let (publish, _) = watch::channel(Arc::new(data.state.clone()));
        Ok(Self {
            inner: Arc::new(Mutex::new(Inner {
                dir: dir.to_owned(),
                data,
                snapshot,
                snapshots_built: 0,
            })),
            publish: Arc::new(publish),
        })
    }

    /// Every applied change of the control state.
    pub fn subscribe(&self) -> watch::Receiver<Arc<ControlState>> {
        self.publish.subscribe()
    }

    fn publish(&self, state: &ControlState) {
        self.publish.send_replace(Arc::new(state.clone()));
    }

    async fn persist(dir: PathBuf, snap: StoredSnapshot) -> Result<(), StorageError<NodeId>> {
        let bytes = serde_json::to_vec(&snap).map_err(snap_err)?;
        telemetry::run_blocking(move || fsio::write_atomic(&dir.join("snapshot.json"), &bytes))
            .await
            .map_err(snap_err)?
            .map_err(snap_err)
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let (snap, dir) = {
            let mut inner = self.inner.lock().await;
            inner.snapshots_built += 1;
            let data = serde_json::to_vec(&inner.data).map_err(snap_err)?;
            let last = inner.data.last_applied;
            let snapshot_id = match last {
                Some(l) => format!("{}-{}-{}", l.leader_id, l.index, inner.snapshots_built),
                None => format!("none-{}", inner.snapshots_built),
            };
            let meta = SnapshotMeta {
                last_log_id: last,
                last_membership: inner.data.membership.clone(),
                snapshot_id,
            };
            let snap = StoredSnapshot { meta, data };
            inner.snapshot = Some(snap.clone());
            (snap, inner.dir.clone())
        };
        Self::persist(dir, snap.clone()).await?;
        Ok(Snapshot {
            meta: snap.meta,
            snapshot: Box::new(Cursor::new(snap.data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, Member>), StorageError<NodeId>>
    {
        let inner = self.inner.lock().await;
        Ok((inner.data.last_applied, inner.data.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut inner = self.inner.lock().await;
        let mut answers = Vec::new();
        for entry in entries {
            inner.data.last_applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => answers.push(Applied::Unchanged),
                EntryPayload::Normal(command) => answers.push(inner.data.state.apply(command)),
                EntryPayload::Membership(m) => {
                    let members = m.nodes().map(|(id, n)| (*id, n.clone())).collect();
                    inner.data.state.set_members(members);
                    inner.data.membership = StoredMembership::new(Some(entry.log_id), m);
                    answers.push(Applied::Done);
                }
            }
        }
        self.publish(&inner.data.state);
        Ok(answers)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, Member>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let bytes = snapshot.into_inner();
        let data: SmData = serde_json::from_slice(&bytes).map_err(|e| {
            StorageError::from(StorageIOError::read_snapshot(Some(meta.signature()), &e))
        })?;
        let snap = StoredSnapshot {
            meta: meta.clone(),
            data: bytes,
        };
        let dir = self.inner.lock().await.dir.clone();
        // On disk first: a crash after this leaves the new snapshot to
        // restart from.
        Self::persist(dir, snap.clone()).await?;
        let mut inner = self.inner.lock().await;
        inner.data = data;
        inner.snapshot = Some(snap);
        self.publish(&inner.data.state);
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        let inner = self.inner.lock().await;
        Ok(inner.snapshot.as_ref().map(|s| Snapshot {
            meta: s.meta.clone(),
            snapshot: Box::new(Cursor::new(s.data.clone())),
        }))
    }
}
