//! Keeps this gateway's Postgres shard map in step with the replicated
//! one: registers the `--store` shards when the cluster has none yet (as
//! epoch 0, by the leader), and opens shards other gateways added.

use std::{sync::Arc, time::Duration};

use control_plane::ControlPlane;
use control_state::{Command, Shard};
use store::{StoreOptions, shard::ShardedStore};

/// Keeps the Postgres shard map in step with the replicated one: registers
/// this gateway's `--store` shards when the cluster has none yet (as epoch
/// 0, by the leader), and opens shards other gateways added.
pub async fn follow_shards(
    plane: Arc<ControlPlane>,
    sharded: Arc<ShardedStore>,
    urls: Vec<String>,
    opts: StoreOptions,
    cancel: tokio_util::sync::CancellationToken,
) {
    let mut states = plane.subscribe();
    let mut warned = false;
    loop {
        let state = states.borrow_and_update().clone();
        match &state.shard_map {
            None if plane.is_leader() => {
                let shards = urls
                    .iter()
                    .enumerate()
                    .filter_map(|(i, url)| {
                        Some((u32::try_from(i).ok()?, Shard { url: url.clone() }))
                    })
                    .collect();
                let add = Command::AddShards {
                    shards,
                    start_unix_nano: 0,
                };
                match plane.write(add).await {
                    Ok(applied) => {
                        tracing::info!(?applied, "registered the store shards with the cluster")
                    }
                    Err(error) => tracing::warn!(%error, "cannot register the store shards yet"),
                }
            }
            None => {}
            Some(map) if *map != sharded.map() => {
                let mut opened = Vec::new();
                let mut ok = true;
                for (id, shard) in &state.shards {
                    if sharded.has_shard(*id) {
                        if !warned && urls.get(*id as usize).is_some_and(|u| *u != shard.url) {
                            tracing::warn!(
                                shard = id,
                                "this gateway's --store differs from the cluster's shard map; the cluster's wins"
                            );
                            warned = true;
                        }
                        continue;
                    }
                    match store::open_shard(*id as usize, &shard.url, &opts).await {
                        Ok(s) => opened.push((*id, s)),
                        Err(error) => {
                            tracing::warn!(shard = id, %error, "cannot open a shard the cluster added; retrying");
                            ok = false;
                        }
                    }
                }
                if ok {
                    match sharded.update(map.clone(), opened) {
                        Ok(()) => tracing::info!(
                            epochs = map.epochs().len(),
                            shards = ?map.all_shards(),
                            "the store follows the cluster's shard map"
                        ),
                        Err(error) => {
                            tracing::error!(%error, "cannot apply the cluster's shard map")
                        }
                    }
                }
            }
            Some(_) => {}
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            changed = states.changed() => if changed.is_err() { return },
            // Retry what failed (registration before a leader existed, a
            // shard that would not open).
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}
