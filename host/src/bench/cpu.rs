//! What a phase cost in CPU, not in wall time: on a shared VM the wall
//! clock of a phase moves with the host's load (the guest's `steal` time:
//! runnable, but not run), while the CPU time the process spent per
//! request moves with the code. Read from `/proc` (Linux); elsewhere the
//! figures are absent.

/// The name of the bench servers' runtime threads (their workers and
/// blocking threads), so that their CPU can be told from the load
/// generator's; at most 15 bytes, as Linux keeps a thread's name.
pub const SERVER_THREADS: &str = "weft-server";

/// Threads of the server that are not its runtime's: sqlx's SQLite
/// connection threads (`sqlx-sqlite-worker-N`, cut to 15 bytes).
const SQLITE_THREADS: &str = "sqlx-sqlite-wor";

/// CPU counters at the start of a phase.
pub struct CpuMeter {
    process: Option<u64>,
    server: Option<u64>,
    machine: Option<(u64, u64)>,
}

/// What a phase took, in CPU.
pub struct CpuUse {
    /// User and system time of this process, in microseconds.
    process_us: Option<u64>,
    /// Of that, the server's threads (runtime and SQLite connections),
    /// counting only threads alive at the end.
    server_us: Option<u64>,
    /// The share of the machine's time stolen by the hypervisor, in %.
    steal_pct: Option<f64>,
}

/// Clock ticks per second of `/proc`'s counters (`sysconf(_SC_CLK_TCK)`,
/// 100 on every Linux this runs on).
const TICKS: u64 = 100;

/// utime + stime of this process, in ticks.
fn process_ticks() -> Option<u64> {
    ticks_of(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

/// utime + stime, in ticks, of this process's threads named `SERVER_THREADS`
/// or `SQLITE_THREADS`.
fn server_ticks() -> Option<u64> {
    let mut sum = 0;
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let path = task.path();
        let Ok(comm) = std::fs::read_to_string(path.join("comm")) else {
            continue;
        };
        let comm = comm.trim_end();
        if !(comm.starts_with(SERVER_THREADS) || comm.starts_with(SQLITE_THREADS)) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(path.join("stat")) else {
            continue;
        };
        sum += ticks_of(&stat).unwrap_or(0);
    }
    Some(sum)
}

/// utime + stime of a `stat` line (a process's or a thread's).
fn ticks_of(stat: &str) -> Option<u64> {
    // The fields after the command name, which is in parentheses and may
    // hold spaces: state is field 3, utime 14, stime 15.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split(' ').collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// (steal, all) ticks of the machine, from the `cpu` line of `/proc/stat`.
fn machine_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest counts are
    // already in user).
    let all: u64 = values.iter().take(8).sum();
    Some((*values.get(7)?, all))
}

impl CpuMeter {
    pub fn start() -> Self {
        Self {
            process: process_ticks(),
            server: server_ticks(),
            machine: machine_ticks(),
        }
    }

    pub fn stop(&self) -> CpuUse {
        let since = |start: Option<u64>, now: Option<u64>| {
            Some(now?.saturating_sub(start?) * 1_000_000 / TICKS)
        };
        let process_us = since(self.process, process_ticks());
        let server_us = since(self.server, server_ticks());
        let steal_pct = match (self.machine, machine_ticks()) {
            (Some((s0, a0)), Some((s1, a1))) if a1 > a0 => {
                Some(s1.saturating_sub(s0) as f64 * 100.0 / (a1 - a0) as f64)
            }
            _ => None,
        };
        CpuUse {
            process_us,
            server_us,
            steal_pct,
        }
    }
}

impl CpuUse {
    /// CPU microseconds of this process per unit of work, as text.
    pub fn per(&self, units: usize) -> String {
        per_unit(self.process_us, units)
    }

    /// CPU microseconds of the server's threads per unit of work, as text.
    pub fn server_per(&self, units: usize) -> String {
        per_unit(self.server_us, units)
    }

    /// The steal share, as text.
    pub fn steal(&self) -> String {
        self.steal_pct
            .map_or_else(|| "-".into(), |s| format!("{s:.0}"))
    }
}

fn per_unit(us: Option<u64>, units: usize) -> String {
    match us {
        Some(us) if units > 0 => format!("{:.0}", us as f64 / units as f64),
        _ => "-".into(),
    }
}
