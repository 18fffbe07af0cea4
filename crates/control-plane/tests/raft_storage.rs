//! The control plane's on-disk Raft storage: openraft's own conformance
//! suite, then what the suite cannot see (restart from disk, torn tails,
//! corrupt middles).

use std::io::Write;

use control_plane::raft::{
    Command, NodeId, TypeConfig,
    log_store::{LogStore, LogStoreError},
    state_machine::StateMachine,
};
use control_state::{Applied, Shard};
use openraft::{
    CommittedLeaderId, Entry, EntryPayload, LogId, RaftLogReader, StorageError, Vote,
    storage::{RaftLogStorage, RaftStateMachine},
    testing::{StoreBuilder, Suite},
};
use tempfile::TempDir;

struct OnDisk;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for OnDisk {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError<NodeId>> {
        let io = |e: std::io::Error| StorageError::from(openraft::StorageIOError::read(&e));
        let dir = tempfile::tempdir().map_err(io)?;
        let log =
            LogStore::open(&dir.path().join("raft")).map_err(|e| io(std::io::Error::other(e)))?;
        let sm = StateMachine::open(&dir.path().join("raft")).map_err(io)?;
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite() {
    Suite::test_all(OnDisk).expect("the storage passes openraft's suite");
}

fn entry(term: u64, index: u64, command: Option<Command>) -> Entry<TypeConfig> {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
        payload: command.map_or(EntryPayload::Blank, EntryPayload::Normal),
    }
}

fn add_shard(id: u32) -> Command {
    Command::AddShards {
        shards: [(
            id,
            Shard {
                url: format!("postgres://pg/{id}"),
            },
        )]
        .into(),
        start_unix_nano: u64::from(id) * 1_000,
    }
}

async fn append(log: &mut LogStore, entries: Vec<Entry<TypeConfig>>) {
    // openraft's callback is internal; the blocking-append helper waits for it.
    openraft::storage::RaftLogStorageExt::blocking_append(log, entries)
        .await
        .expect("append");
}

#[tokio::test]
async fn log_vote_and_snapshot_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let raft_dir = dir.path().join("raft");
    {
        let mut log = LogStore::open(&raft_dir).expect("open");
        log.save_vote(&Vote::new(3, 2)).await.expect("vote");
        append(
            &mut log,
            (1..=10)
                .map(|i| entry(3, i, Some(add_shard(i as u32))))
                .collect(),
        )
        .await;
        log.truncate(LogId::new(CommittedLeaderId::new(3, 1), 9))
            .await
            .expect("truncate");
        log.purge(LogId::new(CommittedLeaderId::new(3, 1), 2))
            .await
            .expect("purge");
        log.save_committed(Some(LogId::new(CommittedLeaderId::new(3, 1), 8)))
            .await
            .expect("committed");

        let mut sm = StateMachine::open(&raft_dir).expect("open sm");
        let answers = sm
            .apply((1..=3).map(|i| entry(3, i, Some(add_shard(i as u32)))))
            .await
            .expect("apply");
        assert_eq!(answers, vec![Applied::Done; 3]);
        let mut builder = sm.get_snapshot_builder().await;
        openraft::RaftSnapshotBuilder::build_snapshot(&mut builder)
            .await
            .expect("snapshot");
        // Applied after the snapshot: not durable by itself (the log is).
        sm.apply([entry(3, 4, Some(add_shard(4)))])
            .await
            .expect("apply");
    }
    let mut log = LogStore::open(&raft_dir).expect("reopen");
    assert_eq!(log.read_vote().await.expect("vote"), Some(Vote::new(3, 2)));
    assert_eq!(
        log.read_committed()
            .await
            .expect("committed")
            .map(|c| c.index),
        Some(8)
    );
    let state = log.get_log_state().await.expect("state");
    assert_eq!(state.last_purged_log_id.map(|l| l.index), Some(2));
    assert_eq!(state.last_log_id.map(|l| l.index), Some(8));
    let entries = log.try_get_log_entries(0..100).await.expect("read");
    let indexes: Vec<u64> = entries.iter().map(|e| e.log_id.index).collect();
    assert_eq!(indexes, (3..=8).collect::<Vec<_>>());

    let mut sm = StateMachine::open(&raft_dir).expect("reopen sm");
    let (applied, _) = sm.applied_state().await.expect("applied");
    assert_eq!(
        applied.map(|l| l.index),
        Some(3),
        "restarts from the snapshot"
    );
    let state = sm.subscribe().borrow().clone();
    assert_eq!(state.shards.keys().copied().collect::<Vec<_>>(), [1, 2, 3]);
    assert!(sm.get_current_snapshot().await.expect("snap").is_some());
}

#[tokio::test]
async fn a_torn_tail_is_cut_off_and_the_log_stays_usable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let raft_dir = dir.path().join("raft");
    {
        let mut log = LogStore::open(&raft_dir).expect("open");
        append(&mut log, (1..=5).map(|i| entry(1, i, None)).collect()).await;
    }
    // A crash mid-write: half a record, then garbage.
    let path = raft_dir.join("log");
    let len = std::fs::metadata(&path).expect("meta").len();
    {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("open log");
        f.write_all(&[200, 0, 0, 0, 1, 2, 3, 4, b'{', b'"'])
            .expect("garbage");
    }
    let mut log = LogStore::open(&raft_dir).expect("reopen");
    assert_eq!(std::fs::metadata(&path).expect("meta").len(), len);
    let state = log.get_log_state().await.expect("state");
    assert_eq!(state.last_log_id.map(|l| l.index), Some(5));
    append(&mut log, vec![entry(1, 6, None)]).await;
    drop(log);
    let mut log = LogStore::open(&raft_dir).expect("reopen again");
    let state = log.get_log_state().await.expect("state");
    assert_eq!(state.last_log_id.map(|l| l.index), Some(6));
}

/// Writes `n` entries; returns the log file's path and each record's
/// start offset (records are `len u32 | crc u32 | body`).
async fn log_with_entries(raft_dir: &std::path::Path, n: u64) -> (std::path::PathBuf, Vec<usize>) {
    {
        let mut log = LogStore::open(raft_dir).expect("open");
        append(
            &mut log,
            (1..=n)
                .map(|i| entry(1, i, Some(add_shard(i as u32))))
                .collect(),
        )
        .await;
    }
    let path = raft_dir.join("log");
    let bytes = std::fs::read(&path).expect("read");
    let mut starts = Vec::new();
    let mut at = 0usize;
    while at + 8 <= bytes.len() {
        starts.push(at);
        let len = u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        at += 8 + len as usize;
    }
    assert_eq!(starts.len() as u64, n);
    (path, starts)
}

#[tokio::test]
async fn a_corrupt_middle_refuses_to_start_with_the_recovery_steps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let raft_dir = dir.path().join("raft");
    let (path, starts) = log_with_entries(&raft_dir, 6).await;
    // A flipped bit in the 3rd entry; entries 4..6 are intact after it.
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[starts[2] + 12] ^= 0x40;
    std::fs::write(&path, &bytes).expect("write");
    let err = LogStore::open(&raft_dir).expect_err("a corrupt middle must not open");
    match &err {
        LogStoreError::CorruptLog {
            path: p,
            offset,
            next_valid,
            ..
        } => {
            assert_eq!(p, &path);
            assert_eq!(*offset, starts[2] as u64);
            assert_eq!(*next_valid, starts[3] as u64);
        }
        other => panic!("expected CorruptLog, got {other:?}"),
    }
    let msg = err.to_string();
    for step in [
        "members remove",
        "--join",
        "snapshot",
        &raft_dir.display().to_string(),
    ] {
        assert!(msg.contains(step), "the message names {step:?}: {msg}");
    }
    // Nothing was cut: the file is as it was, and refused again.
    assert_eq!(std::fs::read(&path).expect("read"), bytes);
    assert!(LogStore::open(&raft_dir).is_err());
}

#[tokio::test]
async fn a_torn_commit_record_with_only_commit_records_after_it_is_a_torn_tail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let raft_dir = dir.path().join("raft");
    let (path, starts) = log_with_entries(&raft_dir, 4).await;
    let end_of_entries = std::fs::metadata(&path).expect("meta").len() as usize;
    {
        // Committed ids are written without a sync of their own: a crash
        // can lose one and keep a later one.
        let mut log = LogStore::open(&raft_dir).expect("reopen");
        for i in [3, 4] {
            log.save_committed(Some(LogId::new(CommittedLeaderId::new(1, 1), i)))
                .await
                .expect("committed");
        }
    }
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[end_of_entries + 12] ^= 0x40;
    std::fs::write(&path, &bytes).expect("write");
    let mut log = LogStore::open(&raft_dir).expect("a torn tail opens");
    let state = log.get_log_state().await.expect("state");
    assert_eq!(
        state.last_log_id.map(|l| l.index),
        Some(4),
        "every entry kept"
    );
    assert_eq!(
        std::fs::metadata(&path).expect("meta").len(),
        end_of_entries as u64
    );
    assert_eq!(starts.len(), 4);
}
