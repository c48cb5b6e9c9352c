//! CPU time and context switches of a process, read from `/proc` (Linux only; elsewhere every
//! reading is `None` and the report shows `-`).
//!
//! The server's CPU per request moves far less than its rate on a shared VM whose speed drifts,
//! so it is the number to compare builds by. It is the sum over the process's threads of
//! `/proc/<pid>/task/<tid>/schedstat` (nanoseconds on the CPU), and context switches the sum of
//! `voluntary_ctxt_switches` + `nonvoluntary_ctxt_switches` in each thread's `status`. A thread
//! that exits inside a measured window takes its share with it; the servers' threads live as
//! long as the process, so that does not happen to them.

use std::time::Duration;

/// Which process to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Process {
    /// The load generator itself.
    This,
    /// Another process on this machine.
    Pid(u32),
}

impl Process {
    fn dir(self) -> String {
        match self {
            Process::This => "/proc/self".to_owned(),
            Process::Pid(pid) => format!("/proc/{pid}"),
        }
    }
}

/// A process's counters at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// CPU time of all its threads.
    pub cpu: Duration,
    /// Context switches of all its threads.
    pub switches: u64,
}

impl Usage {
    /// What was used between `earlier` and `self`.
    pub fn since(self, earlier: Usage) -> Usage {
        Usage {
            cpu: self.cpu.saturating_sub(earlier.cpu),
            switches: self.switches.saturating_sub(earlier.switches),
        }
    }

    /// Adds another window's usage.
    pub fn add(self, other: Usage) -> Usage {
        Usage {
            cpu: self.cpu + other.cpu,
            switches: self.switches + other.switches,
        }
    }
}

/// The counters of `process` now; `None` if `/proc` cannot be read (not Linux, or the process
/// is gone).
pub fn read(process: Process) -> Option<Usage> {
    let mut usage = Usage::default();
    for task in std::fs::read_dir(format!("{}/task", process.dir())).ok()? {
        let dir = task.ok()?.path();
        // A thread that ended between the listing and the read no longer counts.
        if let Ok(text) = std::fs::read_to_string(dir.join("schedstat")) {
            let nanos = text.split_whitespace().next()?.parse::<u64>().ok()?;
            usage.cpu += Duration::from_nanos(nanos);
        }
        if let Ok(text) = std::fs::read_to_string(dir.join("status")) {
            usage.switches += switches(&text);
        }
    }
    Some(usage)
}

/// Voluntary plus involuntary context switches from a `status` file.
fn switches(status: &str) -> u64 {
    status
        .lines()
        .filter_map(|line| {
            line.strip_prefix("voluntary_ctxt_switches:")
                .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
        })
        .filter_map(|v| v.trim().parse::<u64>().ok())
        .sum()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn status_switches_are_summed() {
        let status = "Name:\tkms\nvoluntary_ctxt_switches:\t120\nnonvoluntary_ctxt_switches:\t7\n";
        assert_eq!(switches(status), 127);
        assert_eq!(switches("Name: x\n"), 0);
    }

    #[test]
    fn this_process_is_readable_on_linux() {
        if cfg!(target_os = "linux") {
            let before = read(Process::This).unwrap();
            let mut x = 0u64;
            for i in 0..2_000_000u64 {
                x = x.wrapping_mul(31).wrapping_add(i);
            }
            std::hint::black_box(x);
            let used = read(Process::This).unwrap().since(before);
            assert!(used.cpu > Duration::ZERO);
            assert!(read(Process::Pid(u32::MAX)).is_none());
        }
    }
}
