//! What the fleet benchmark measures of this process: peak RSS, CPU time (the whole process
//! and the controllers' threads), and the heap the controllers' threads hold (the process
//! also holds the fakes, so RSS alone overstates the controllers).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// Name of the controllers' runtime threads.
pub const CONTROLLER_THREAD: &str = "amlops-ctl";

thread_local! {
    static ON_CONTROLLER_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// Marks the calling thread as one of the controllers' (a runtime's `on_thread_start`).
pub fn controller_thread_started() {
    ON_CONTROLLER_THREAD.with(|c| c.set(true));
}

/// Bytes allocated on the controllers' threads and not yet freed there, and their peak.
static CONTROLLER_LIVE: AtomicI64 = AtomicI64::new(0);
static CONTROLLER_PEAK: AtomicI64 = AtomicI64::new(0);

/// The system allocator, counting what the controllers' threads hold. Memory handed between
/// the controllers and the fakes would be miscounted; they only talk over sockets.
pub struct CountingAllocator;

fn count(delta: i64) {
    // `try_with`: a thread's locals may already be gone while it exits.
    if ON_CONTROLLER_THREAD.try_with(Cell::get).unwrap_or(false) {
        let now = CONTROLLER_LIVE.fetch_add(delta, Ordering::Relaxed) + delta;
        CONTROLLER_PEAK.fetch_max(now, Ordering::Relaxed);
    }
}

// SAFETY: every call is passed to `System` unchanged; the counting has no effect on memory.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            count(layout.size() as i64);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            count(layout.size() as i64);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        count(-(layout.size() as i64));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            count(new_size as i64 - layout.size() as i64);
        }
        p
    }
}

/// A snapshot of what the process has used so far.
pub struct Usage {
    pub peak_rss_kib: u64,
    pub cpu: Duration,
    pub controller_cpu: Duration,
    pub controller_heap: i64,
    pub controller_peak_heap: i64,
}

impl Usage {
    pub fn now() -> Self {
        Usage {
            peak_rss_kib: peak_rss_kib(),
            cpu: process_cpu(),
            controller_cpu: threads_cpu(CONTROLLER_THREAD),
            controller_heap: CONTROLLER_LIVE.load(Ordering::Relaxed),
            controller_peak_heap: CONTROLLER_PEAK.load(Ordering::Relaxed),
        }
    }
}

/// VmHWM of /proc/self/status.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn process_cpu() -> Duration {
    // SAFETY: getrusage only writes the struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// User + system time of the live threads whose name starts with `prefix` (fields 14 and 15
/// of /proc/self/task/*/stat, in clock ticks).
fn threads_cpu(prefix: &str) -> Duration {
    // SAFETY: sysconf reads a constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    let total: u64 = tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("stat")).ok())
        .filter_map(|stat| {
            let (head, rest) = stat.rsplit_once(')')?;
            if !head.split_once('(')?.1.starts_with(prefix) {
                return None;
            }
            // `rest` starts at field 3 (state): utime is field 14, stime 15.
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: u64 = fields.get(11)?.parse().ok()?;
            let stime: u64 = fields.get(12)?.parse().ok()?;
            Some(utime + stime)
        })
        .sum();
    Duration::from_secs_f64(total as f64 / ticks)
}
