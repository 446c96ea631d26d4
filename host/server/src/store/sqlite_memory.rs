//! Where SQLite gets its memory: from mimalloc, the allocator the `flowmesh`
//! binary gives Rust, not from the C library's `malloc`.
//!
//! SQLite allocates on every statement it runs: the values sqlx copies out
//! of each row, the text it binds, the sorters of `ORDER BY` and window
//! functions, pages it reads past its cache. With glibc's `malloc` (and
//! SQLite's own statistics mutex around every call) that was a fifth of the
//! writer thread's time in a drain of the queue: `_int_malloc`,
//! `malloc_consolidate`, `unlink_chunk`, `pthread_mutex_lock`. SQLite is
//! built without those statistics (`SQLITE_DEFAULT_MEMSTATUS=0`,
//! `.cargo/config.toml`), and [`install`] hands it mimalloc's functions
//! before the first connection opens.
//!
//! SQLite takes its allocator once per process, before it initialises
//! itself (`sqlite3_config(SQLITE_CONFIG_MALLOC)`), and that call is not
//! thread-safe. The rule that follows: nothing in a process opens SQLite
//! before its first store has opened (test helpers that read a store's
//! file directly open it after the store). A process where SQLite was
//! initialised first, and finished initialising, keeps the C library's
//! allocator, which is only slower.

use std::ffi::{c_int, c_void};
use std::sync::Once;

use libmimalloc_sys as mi;
use libsqlite3_sys as ffi;

/// Gives SQLite mimalloc's functions, once per process, and initialises
/// SQLite with them. Call before opening a SQLite connection.
pub(super) fn install() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // SQLite copies the methods; they only need to live for the call.
        let methods = ffi::sqlite3_mem_methods {
            xMalloc: Some(malloc),
            xFree: Some(free),
            xRealloc: Some(realloc),
            xSize: Some(size),
            xRoundup: Some(roundup),
            xInit: Some(init),
            xShutdown: Some(shutdown),
            pAppData: std::ptr::null_mut(),
        };
        // SAFETY: `sqlite3_config` must run before SQLite initialises and
        // while no other thread calls SQLite. The `Once` runs it before
        // this process's first store opens, and by the rule above nothing
        // opens SQLite before that. If SQLite is already initialised, the
        // call changes nothing and returns `SQLITE_MISUSE`. The functions
        // given are thread-safe, as SQLite requires of them.
        #[allow(unsafe_code)]
        let configured = unsafe {
            ffi::sqlite3_config(
                ffi::SQLITE_CONFIG_MALLOC,
                &methods as *const ffi::sqlite3_mem_methods,
            )
        };
        if configured != ffi::SQLITE_OK {
            tracing::debug!(
                code = configured,
                "SQLite was initialised before the store: it keeps the C library's allocator"
            );
            return;
        }
        // SAFETY: initialising is thread-safe; doing it here, under the
        // `Once`, means no connection can initialise SQLite half-configured.
        #[allow(unsafe_code)]
        let initialised = unsafe { ffi::sqlite3_initialize() };
        if initialised != ffi::SQLITE_OK {
            tracing::warn!(code = initialised, "SQLite did not initialise");
        }
    });
}

// SQLite asks only for positive sizes (xMalloc, xRealloc) and frees only
// what these functions gave it; mimalloc aligns every block to at least
// 8 bytes, as SQLite needs.

#[allow(unsafe_code)]
unsafe extern "C" fn malloc(bytes: c_int) -> *mut c_void {
    // SAFETY: any size may be asked of `mi_malloc`; a negative one is
    // refused here.
    match usize::try_from(bytes) {
        Ok(bytes) => unsafe { mi::mi_malloc(bytes) },
        Err(_) => std::ptr::null_mut(),
    }
}

#[allow(unsafe_code)]
unsafe extern "C" fn free(block: *mut c_void) {
    // SAFETY: SQLite frees only blocks `malloc` or `realloc` gave it (or
    // null).
    unsafe { mi::mi_free(block) }
}

#[allow(unsafe_code)]
unsafe extern "C" fn realloc(block: *mut c_void, bytes: c_int) -> *mut c_void {
    // SAFETY: as for `malloc` and `free`.
    match usize::try_from(bytes) {
        Ok(bytes) => unsafe { mi::mi_realloc(block, bytes) },
        Err(_) => std::ptr::null_mut(),
    }
}

#[allow(unsafe_code)]
unsafe extern "C" fn size(block: *mut c_void) -> c_int {
    // SAFETY: SQLite asks the size of its own live blocks only.
    let bytes = unsafe { mi::mi_usable_size(block) };
    c_int::try_from(bytes).unwrap_or(c_int::MAX)
}

#[allow(unsafe_code)]
unsafe extern "C" fn roundup(bytes: c_int) -> c_int {
    // SAFETY: `mi_good_size` only computes.
    let good = unsafe { mi::mi_good_size(usize::try_from(bytes).unwrap_or(0)) };
    c_int::try_from(good).unwrap_or(bytes)
}

#[allow(unsafe_code)]
unsafe extern "C" fn init(_: *mut c_void) -> c_int {
    ffi::SQLITE_OK
}

#[allow(unsafe_code)]
unsafe extern "C" fn shutdown(_: *mut c_void) {}

#[cfg(test)]
mod tests {
    #[test]
    fn sqlite_runs_on_the_installed_allocator() {
        super::install();
        // SAFETY: plain calls into an initialised SQLite.
        #[allow(unsafe_code)]
        unsafe {
            let block = libsqlite3_sys::sqlite3_malloc(100);
            assert!(!block.is_null());
            // The block is mimalloc's: nothing in this test binary opens
            // SQLite other than through a store, which installs first.
            assert!(libmimalloc_sys::mi_is_in_heap_region(block));
            // mimalloc's usable size for 100 bytes is its size class, 104
            // or more; SQLite reports what xSize says.
            let size = libsqlite3_sys::sqlite3_msize(block);
            assert!(size >= 100, "{size}");
            let grown = libsqlite3_sys::sqlite3_realloc(block, 10_000);
            assert!(!grown.is_null());
            assert!(libsqlite3_sys::sqlite3_msize(grown) >= 10_000);
            libsqlite3_sys::sqlite3_free(grown);
        }
    }
}
