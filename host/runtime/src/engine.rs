//! The one wasmtime [`Engine`] of a runtime, and the ticker that drives its
//! epoch-based interruption.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::RuntimeConfig;

/// Builds the engine: pooling allocator, epoch interruption, optional fuel.
pub(crate) fn build_engine(config: &RuntimeConfig) -> wasmtime::Result<Engine> {
    let pool = &config.pool;
    let mut pooling = PoolingAllocationConfig::new();
    pooling
        .total_component_instances(pool.max_instances)
        .total_core_instances(
            pool.max_instances
                .saturating_mul(pool.max_core_instances_per_component),
        )
        .total_memories(
            pool.max_instances
                .saturating_mul(pool.max_memories_per_component),
        )
        .total_tables(
            pool.max_instances
                .saturating_mul(pool.max_tables_per_component),
        )
        .total_stacks(pool.max_instances)
        .max_core_instances_per_component(pool.max_core_instances_per_component)
        .max_memories_per_component(pool.max_memories_per_component)
        .max_tables_per_component(pool.max_tables_per_component)
        .max_memory_size(pool.max_memory_bytes)
        .linear_memory_keep_resident(pool.keep_resident_bytes)
        .table_keep_resident(pool.keep_resident_bytes / 16)
        .async_stack_keep_resident(pool.keep_resident_bytes / 16)
        .pagemap_scan(Enabled::Auto);

    let mut wasm = Config::new();
    wasm.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling))
        .epoch_interruption(true)
        .consume_fuel(config.fuel_metering)
        .max_wasm_stack(config.max_wasm_stack);
    Engine::new(&wasm)
}

/// Increments the engine's epoch every tick until dropped.
///
/// Each task's store checks its deadline and cancellation flag whenever the
/// epoch advances, so a tick bounds how long runaway guest code can outlive
/// its deadline.
pub(crate) struct EpochTicker {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    pub(crate) fn start(engine: Engine, tick: Duration) -> std::io::Result<Self> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("flowmesh-epoch".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(tick) {
                    engine.increment_epoch();
                }
            })?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        // Dropping the sender wakes the ticker, which then exits.
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
