//! CPU time and context switches of a process, read from `/proc` (Linux only; elsewhere every
//! reading is `None` and the report shows `-`).
//!
//! The server's CPU per request moves far less than its rate on a shared VM whose speed drifts,
//! so it is the number to compare builds by. It is the sum over the process's threads of
//! `/proc/<pid>/task/<tid>/schedstat` (nanoseconds on the CPU), and context switches the sum of
//! `voluntary_ctxt_switches` + `nonvoluntary_ctxt_switches` in each thread's `status`. A thread
//! that exits inside a measured window would take its share with it (Tokio's blocking-pool
//! threads do, 10 s after their last task: the software root signs with RSA there), so the CPU
//! time of a window is also taken from the process's `/proc/<pid>/stat` (`utime` + `stime`,
//! which keeps the time of exited threads, in 10 ms clock ticks): when it exceeds the
//! per-thread sum by more than two ticks, threads exited and it counts; otherwise the exact
//! per-thread sum does. Context switches of exited threads are still lost.

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
    /// CPU time of the process from `stat` (exited threads included; clock-tick resolution).
    pub process_cpu: Duration,
}

impl Usage {
    /// What was used between `earlier` and `self`.
    pub fn since(self, earlier: Usage) -> Usage {
        let process_cpu = self.process_cpu.saturating_sub(earlier.process_cpu);
        let threads_cpu = self.cpu.saturating_sub(earlier.cpu);
        // Each `stat` reading is off by up to a tick: only a gap of more than two ticks means
        // that threads exited (a short, quiet window keeps the exact per-thread sum).
        let cpu = if process_cpu > threads_cpu + 2 * TICK {
            process_cpu
        } else {
            threads_cpu
        };
        Usage {
            cpu,
            switches: self.switches.saturating_sub(earlier.switches),
            process_cpu,
        }
    }

    /// Adds another window's usage.
    pub fn add(self, other: Usage) -> Usage {
        Usage {
            cpu: self.cpu + other.cpu,
            switches: self.switches + other.switches,
            process_cpu: self.process_cpu + other.process_cpu,
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
    if let Ok(text) = std::fs::read_to_string(format!("{}/stat", process.dir())) {
        usage.process_cpu = process_cpu(&text).unwrap_or_default();
    }
    Some(usage)
}

/// Clock ticks per second of `/proc/<pid>/stat` (`USER_HZ`: 100 on every Linux ABI).
const USER_HZ: u64 = 100;

/// One clock tick.
const TICK: Duration = Duration::from_millis(1000 / USER_HZ);

/// `utime` + `stime` of a process's `stat` line (fields 14 and 15; the command name, field 2,
/// is in parentheses and may hold spaces).
fn process_cpu(stat: &str) -> Option<Duration> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3.
    let utime: u64 = fields.get(14 - 3)?.parse().ok()?;
    let stime: u64 = fields.get(15 - 3)?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 1000 / USER_HZ))
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
    fn process_cpu_is_read_past_the_command_name() {
        let stat = "42 (a b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 1 2 3";
        assert_eq!(process_cpu(stat), Some(Duration::from_secs(3)));
        assert_eq!(process_cpu("42 (x) S 1"), None);
    }

    #[test]
    fn a_window_counts_the_larger_of_the_thread_sum_and_the_process_time() {
        let at = |cpu_ms, process_ms| Usage {
            cpu: Duration::from_millis(cpu_ms),
            switches: 0,
            process_cpu: Duration::from_millis(process_ms),
        };
        // A thread with 900 ms exited inside the window: the thread sum went down.
        assert_eq!(
            at(1100, 2000).since(at(1000, 1000)).cpu,
            Duration::from_millis(1000)
        );
        // No thread exited: the exact sum, not the coarser process time.
        assert_eq!(
            at(2005, 2000).since(at(1000, 1000)).cpu,
            Duration::from_millis(1005)
        );
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
