//! The examples as programs: find the binary `cargo test` built, run it
//! (in a network namespace if asked), wait for the lines it prints.
#![allow(dead_code)]

use super::{skip, within};
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// Seconds an example may take to print a line we wait for, or to exit.
pub const PATIENCE: u64 = 60;

/// The built example `name`, or `None` after a visible skip.
pub fn example_bin(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().expect("path of this test binary");
    // target/<profile>/deps/<this test> -> target/<profile>/examples/<name>
    let path = exe.parent()?.parent()?.join("examples").join(name);
    if path.is_file() {
        Some(path)
    } else {
        skip(&format!(
            "example {name} not built at {} (run cargo test --workspace)",
            path.display()
        ));
        None
    }
}

/// Sends each line `out` prints, with `prefix`, until EOF.
fn forward_lines<R>(out: R, prefix: &'static str, tx: mpsc::UnboundedSender<String>)
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut rd = BufReader::new(out).lines();
        while let Ok(Some(line)) = rd.next_line().await {
            if tx.send(format!("{prefix}{line}")).is_err() {
                break;
            }
        }
    });
}

/// A running example: its process and the lines it printed so far.
pub struct Example {
    name: String,
    child: Child,
    lines: mpsc::UnboundedReceiver<String>,
    log: Vec<String>,
}

impl Example {
    /// Starts example `name` with `args`, or `None` (skipped) if it is not
    /// built. The process is killed when the value drops.
    pub fn spawn(name: &str, args: &[String]) -> Option<Example> {
        Self::spawn_in(None, name, args)
    }

    /// [`spawn`](Self::spawn) inside network namespace `netns` (through
    /// `ip netns exec`) when given.
    pub fn spawn_in(netns: Option<&str>, name: &str, args: &[String]) -> Option<Example> {
        let bin = example_bin(name)?;
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(&bin);
                c
            }
            None => Command::new(&bin),
        };
        let mut child = cmd
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        let (tx, lines) = mpsc::unbounded_channel();
        forward_lines(child.stdout.take().expect("piped stdout"), "", tx.clone());
        forward_lines(child.stderr.take().expect("piped stderr"), "stderr: ", tx);
        Some(Example {
            name: format!("{name} {}", args.join(" ")),
            child,
            lines,
            log: Vec::new(),
        })
    }

    /// Waits for a printed line containing `needle`; returns it. Panics,
    /// showing what was printed, if the example exits or takes too long.
    pub async fn wait_for(&mut self, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(PATIENCE);
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) => {
                    self.log.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Ok(None) => panic!(
                    "{}: exited ({:?}) before printing {needle:?}; printed:\n{}",
                    self.name,
                    self.child.try_wait(),
                    self.log.join("\n")
                ),
                Err(_) => panic!(
                    "{}: no line with {needle:?} after {PATIENCE} s; printed:\n{}",
                    self.name,
                    self.log.join("\n")
                ),
            }
        }
    }

    /// Waits for the example to exit; returns its status and everything
    /// it printed.
    pub async fn finish(mut self) -> (ExitStatus, String) {
        let status = within(
            PATIENCE,
            &format!("{} to exit", self.name),
            self.child.wait(),
        )
        .await
        .expect("waiting for the example");
        // The reader task ends at EOF, which follows the exit.
        while let Ok(Some(line)) =
            tokio::time::timeout(Duration::from_secs(PATIENCE), self.lines.recv()).await
        {
            self.log.push(line);
        }
        (status, self.log.join("\n"))
    }
}

/// Owned arguments from string slices.
pub fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}
