//! Reading `/proc` to tell whether a recorded process is still the one we started
//! (pid reuse), which processes are left in a process group, and which descend from
//! a run's supervisor.

use std::fs;

/// The fields of `/proc/<pid>/stat` the executor needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcStat {
    /// `R`, `S`, `Z` (zombie: exited, not yet reaped) ...
    pub state: char,
    pub ppid: i32,
    pub pgrp: i32,
    /// Clock ticks after boot when the process started (field 22).
    pub start_time: u64,
}

/// Parses a stat line. The command name (field 2) is in parentheses and may itself
/// contain spaces and `)`, so the fields are counted from the last `)`.
pub(crate) fn parse_stat(text: &str) -> Option<ProcStat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: [0] = field 3 (state), [1] = field 4 (ppid), [2] = field 5 (pgrp),
    // [19] = field 22.
    Some(ProcStat {
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        pgrp: fields.get(2)?.parse().ok()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}

pub(crate) fn read_stat(pid: i32) -> Option<ProcStat> {
    parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Every process visible in `/proc` with its stat.
fn all_processes() -> Vec<(i32, ProcStat)> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| Some((pid, read_stat(pid)?)))
        .collect()
}

/// Pids of live (non-zombie) processes in process group `pgid`.
pub(crate) fn live_group_members(pgid: i32) -> Vec<i32> {
    all_processes()
        .into_iter()
        .filter(|(_, s)| s.pgrp == pgid && s.state != 'Z')
        .map(|(pid, _)| pid)
        .collect()
}

/// Pids of live (non-zombie) processes descending from `root`, in any session or group.
pub(crate) fn live_descendants(root: i32) -> Vec<i32> {
    descendants(root, &all_processes())
}

/// Pure part of [`live_descendants`]: walks parent links down from `root`. Zombies are
/// left out (they have ended; their children were already re-parented).
pub(crate) fn descendants(root: i32, processes: &[(i32, ProcStat)]) -> Vec<i32> {
    let mut found = Vec::new();
    let mut parents = vec![root];
    while let Some(parent) = parents.pop() {
        for (pid, stat) in processes {
            if stat.ppid == parent && *pid != root && !found.contains(pid) {
                found.push(*pid);
                parents.push(*pid);
            }
        }
    }
    found.retain(|pid| processes.iter().any(|(p, s)| p == pid && s.state != 'Z'));
    found.sort_unstable();
    found
}

/// This boot's id, so a record from before a reboot is never matched to a new process.
pub(crate) fn boot_id() -> String {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_with_spaces_and_parens() {
        let line = "1234 (my (weird) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 200";
        assert_eq!(
            parse_stat(line),
            Some(ProcStat {
                state: 'S',
                ppid: 1,
                pgrp: 1234,
                start_time: 987654
            })
        );
        assert_eq!(parse_stat("12 (x) S 1"), None);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn descendants_follow_parent_links_in_any_group_and_skip_zombies() {
        let p = |ppid, pgrp, state| ProcStat {
            state,
            ppid,
            pgrp,
            start_time: 1,
        };
        let table = [
            (1, p(0, 1, 'S')),
            (10, p(1, 10, 'S')),  // the root
            (11, p(10, 10, 'S')), // child
            (12, p(11, 12, 'S')), // grandchild that called setsid
            (13, p(12, 12, 'Z')), // ended, not yet reaped
            (14, p(10, 10, 'R')), // re-parented orphan
            (20, p(1, 20, 'S')),  // unrelated
            (21, p(20, 10, 'S')), // in the root's group but not its descendant
        ];
        assert_eq!(descendants(10, &table), [11, 12, 14]);
        assert_eq!(descendants(14, &table), Vec::<i32>::new());
    }

    #[test]
    fn reads_own_process() {
        let me = std::process::id() as i32;
        let stat = read_stat(me).unwrap();
        assert_ne!(stat.state, 'Z');
        assert_eq!(stat.ppid, nix::unistd::getppid().as_raw());
        assert!(stat.start_time > 0);
        assert!(live_group_members(stat.pgrp).contains(&me));
        assert!(!boot_id().is_empty());
    }
}
