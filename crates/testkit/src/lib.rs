//! Test support shared by cloudlet's crates.
//!
//! [`crash`]: the harness of the SIGKILL crash tests. A test binary runs one of its own
//! ignored tests as a child process that writes durably and prints a line per acknowledged
//! write; the parent kills it at a random moment, and the test then reopens the data and
//! checks that every acknowledged write survived.

pub mod crash {
    //! The SIGKILL harness.

    use std::io::{BufRead, BufReader, Write};
    use std::path::Path;
    use std::process::{Command, Stdio};

    /// The environment variable that replays a run: the seed its first line printed.
    pub const SEED_VAR: &str = "CLOUDLET_CRASH_SEED";

    /// A small deterministic generator, seeded from [`SEED_VAR`] or the time, and printed so a
    /// failure can be replayed.
    #[derive(Debug)]
    pub struct Rng(u64);

    impl Rng {
        /// Seeds from `CLOUDLET_CRASH_SEED` if set, else at random (std's per-process hash
        /// keys, not the clock); prints the seed.
        pub fn from_env(test: &str) -> Self {
            let seed = std::env::var(SEED_VAR)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| {
                    use std::hash::{BuildHasher, Hasher};
                    std::collections::hash_map::RandomState::new()
                        .build_hasher()
                        .finish()
                        | 1
                });
            println!("{test}: seed {seed} (set {SEED_VAR} to replay)");
            Self(seed)
        }

        /// The next number (xorshift64).
        pub fn next_u64(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        /// A number in `low..low + span`.
        pub fn between(&mut self, low: usize, span: usize) -> usize {
            low + (self.next_u64() % span.max(1) as u64) as usize
        }
    }

    /// Runs `rounds` children one after another on the same data directory, each killed after
    /// a random number of acknowledgements in `low..low + span`; `on_line` sees every line of
    /// every child and says whether it is an acknowledgement.
    pub fn run_rounds(
        test: &str,
        rounds: usize,
        (low, span): (usize, usize),
        dir_var: &str,
        dir: &Path,
        mut on_line: impl FnMut(&str) -> bool,
    ) {
        let mut rng = Rng::from_env(test);
        for _ in 0..rounds {
            let kill_after = rng.between(low, span);
            run_child("crash::child_entry", dir_var, dir, kill_after, &mut on_line);
        }
    }

    /// In the child test: the data directory named by `dir_var` and a runtime with two
    /// workers to run the workload on. `None` when the test runs as itself rather than as a
    /// child (it then does nothing).
    ///
    /// # Panics
    /// If the runtime cannot be built.
    pub fn child(dir_var: &str) -> Option<(std::path::PathBuf, tokio::runtime::Runtime)> {
        let dir = std::env::var_os(dir_var)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        Some((dir.into(), runtime))
    }

    /// In the child: prints `line` and flushes at once, so the parent sees every
    /// acknowledgement made before the kill.
    ///
    /// # Panics
    /// If stdout is closed.
    pub fn report(line: &str) {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}").expect("stdout is open");
        out.flush().expect("stdout is open");
    }

    /// Runs the current test binary's ignored test `child_test` as a child process, with
    /// `dir_var` set to `dir`, and hands each line it prints to `on_line`, which says whether
    /// the line is an acknowledgement. After `kill_after` acknowledgements the child is killed
    /// with SIGKILL; lines it printed before the kill landed are handed over too.
    ///
    /// # Panics
    /// If the child cannot be started, or exits by itself before it is killed.
    pub fn run_child(
        child_test: &str,
        dir_var: &str,
        dir: &Path,
        kill_after: usize,
        mut on_line: impl FnMut(&str) -> bool,
    ) {
        let exe = std::env::current_exe().expect("the test binary's path");
        let mut child = Command::new(exe)
            .args([
                child_test,
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(dir_var, dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the child test starts");
        let stdout = child.stdout.take().expect("the child's stdout is piped");
        let mut lines = BufReader::new(stdout).lines();
        let mut acks = 0;
        let mut killed = false;
        for line in lines.by_ref() {
            let Ok(line) = line else { break };
            if on_line(&line) {
                acks += 1;
            }
            if acks >= kill_after {
                child.kill().expect("the child can be killed");
                killed = true;
                break;
            }
        }
        for line in lines.map_while(Result::ok) {
            on_line(&line);
        }
        let status = child.wait().expect("the child is reaped");
        assert!(
            killed,
            "the child exited by itself after {acks} acknowledgements: {status}"
        );
    }
}
