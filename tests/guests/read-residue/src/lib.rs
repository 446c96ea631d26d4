//! Test fixture `read-residue`: looks for what an earlier task left in the
//! sandbox's memory, then leaves some of its own.
//!
//! Two buffers live in the plugin's linear memory: `IMAGE`, initialised data
//! that comes from the component's memory image, and `ZEROED`, which starts as
//! zeros. A task first counts the host pages of each that differ from their
//! initial contents, then writes its marker into every other page of both:
//! 1,024 disjoint dirty runs, more than a memory reset takes in one pass of
//! its page scan (256), and more dirty pages than the pool keeps resident
//! (4 MiB), so that both resuming the scan and decommitting the rest are
//! used. Every task runs in a fresh instance, so every count must be 0. The
//! counts after its own writes show the counting works.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, Ordering};

/// The host page size the sandbox resets memory in.
const PAGE: usize = 4096;
/// Pages in each buffer (4 MiB).
const PAGES: usize = 1024;
/// What every byte of `IMAGE` starts as.
const INITIAL: u8 = 0xA5;

static IMAGE: [AtomicU8; PAGES * PAGE] = [const { AtomicU8::new(INITIAL) }; PAGES * PAGE];
static ZEROED: [AtomicU8; PAGES * PAGE] = [const { AtomicU8::new(0) }; PAGES * PAGE];

/// Pages of `buffer` holding any byte other than `initial`.
fn changed_pages(buffer: &[AtomicU8], initial: u8) -> usize {
    buffer
        .chunks(PAGE)
        .filter(|page| {
            page.iter()
                .any(|byte| byte.load(Ordering::Relaxed) != initial)
        })
        .count()
}

/// Writes `marker` into one byte of every other page of `buffer`, each at
/// a different offset.
fn mark(buffer: &[AtomicU8], marker: u8) {
    for (index, page) in buffer.chunks(PAGE).enumerate().step_by(2) {
        page[(index * 61) % PAGE].store(marker, Ordering::Relaxed);
    }
}

flowmesh_guest_support::fixture! {
    name: "read-residue",
    description: "Looks for what an earlier task left in the sandbox's memory.",
    spec: {
        /// The byte this task writes (not 0 and not 0xA5, so its writes show).
        marker: u8,
    },
    output: BTreeMap<&'static str, usize>,
    execute: |spec| {
        if spec.marker == 0 || spec.marker == INITIAL {
            return Err(TaskError::failed("marker: use a byte other than 0 and 0xA5"));
        }
        let mut found = BTreeMap::new();
        found.insert("image_pages_changed_before", changed_pages(&IMAGE, INITIAL));
        found.insert("zeroed_pages_changed_before", changed_pages(&ZEROED, 0));
        mark(&IMAGE, spec.marker);
        mark(&ZEROED, spec.marker);
        found.insert("image_pages_changed_after", changed_pages(&IMAGE, INITIAL));
        found.insert("zeroed_pages_changed_after", changed_pages(&ZEROED, 0));
        Ok(found)
    }
}
