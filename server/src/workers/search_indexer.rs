//! The search indexer: order events re-index the products whose stock they
//! moved, so a SKU that sells out leaves the in-stock filter (and one that
//! comes back returns) within a bus round trip, in every process.
//!
//! Which group depends on where the index lives:
//! - Embedded Tantivy: every process has its own index, and a consumer
//!   group hands each event to ONE of its consumers. A shared group would
//!   update one process's index and leave the others stale, so each process
//!   runs its own group, `search-indexer-<uuid>`, starting at the moment its
//!   index was rebuilt from PostgreSQL (events before that are in the
//!   rebuild already; a few seconds of overlap only re-index twice).
//! - Meilisearch: one index shared by every process, so one shared group
//!   (`search-indexer`) re-indexes each product once, from where it left off.
//!
//! Sources: `order.placed` (its items' products: units went into the order)
//! and `order.cancelled` (units came back; the payload has only the order
//! id, so the products are read from the order). Seller stock and product
//! edits are not events yet (inventory's and catalog's paths re-index in
//! their own process and bump `products.updated_at`); `search_sync`'s
//! `updated_at` poll still carries those to other processes.
//!
//! Idempotent without dedup rows: re-indexing reads the products' current
//! state, so doing it twice is only wasted work.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use shop::events::{Event, EventBus, Topic};
use uuid::Uuid;

use super::consumer::{Consumer, Handler, Settings};

/// The shared group's name, and the per-process groups' prefix.
pub const GROUP: &str = "search-indexer";

pub struct Indexer(pub shop::Shop);

impl Handler for Indexer {
    async fn handle(&self, event: &Event) -> shop::Result<()> {
        let products = match event.event_type.as_str() {
            "order.placed" => placed_products(event)?,
            "order.cancelled" => self.0.orders().product_ids(event.aggregate_id).await?,
            _ => return Ok(()),
        };
        if products.is_empty() {
            return Ok(());
        }
        self.0.search().reindex(&products).await
    }
}

fn placed_products(event: &Event) -> shop::Result<Vec<Uuid>> {
    let items = event.payload.get("items").and_then(|i| i.as_array()).ok_or_else(|| {
        shop::Error::internal(format!("order.placed {} has no items", event.id))
    })?;
    let mut ids: Vec<Uuid> = items
        .iter()
        .filter_map(|item| item.get("product_id")?.as_str()?.parse().ok())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// The consumer this process runs: its own group from `index_built_at` when
/// the index is in this process, else the shared group.
pub fn consumer(bus: Arc<dyn EventBus>, shop: shop::Shop, index_built_at: DateTime<Utc>, settings: Settings) -> Consumer<Indexer> {
    if shop.search.process_local() {
        let group = format!("{GROUP}-{}", Uuid::now_v7().simple());
        Consumer::new(bus, Topic::Orders, group, Indexer(shop), settings).starting_at(index_built_at)
    } else {
        Consumer::new(bus, Topic::Orders, GROUP, Indexer(shop), settings)
    }
}
