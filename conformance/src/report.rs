//! The output both modes share: one line per case, then the summary line.

/// A check's outcome: `Err` says what the peer did instead.
pub type Check = Result<(), String>;

/// `got == want`, or says what differed.
pub fn equal<T: PartialEq + std::fmt::Debug>(what: &str, got: T, want: T) -> Check {
    if got == want { Ok(()) } else { Err(format!("{what}: expected {want:?}, got {got:?}")) }
}

/// How one case ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The peer did what the spec says.
    Pass,
    /// It did not; the text says what it did instead.
    Fail(String),
    /// The case could not run here; the text says why.
    Skip(String),
}

impl From<Check> for Verdict {
    fn from(check: Check) -> Self {
        match check {
            Ok(()) => Verdict::Pass,
            Err(why) => Verdict::Fail(why),
        }
    }
}

/// Counts verdicts as they are printed.
#[derive(Debug, Default)]
pub struct Report {
    passed: usize,
    failed: usize,
    skipped: usize,
}

impl Report {
    /// Prints `PASS name`, `FAIL name: why` or `SKIP name: why`, and counts it.
    pub fn record(&mut self, name: &str, verdict: &Verdict) {
        match verdict {
            Verdict::Pass => {
                self.passed += 1;
                println!("PASS {name}");
            }
            Verdict::Fail(why) => {
                self.failed += 1;
                println!("FAIL {name}: {}", one_line(why));
            }
            Verdict::Skip(why) => {
                self.skipped += 1;
                println!("SKIP {name}: {}", one_line(why));
            }
        }
    }

    /// Prints `N passed, N failed, N skipped` and returns whether nothing failed.
    pub fn finish(&self) -> bool {
        println!("{} passed, {} failed, {} skipped", self.passed, self.failed, self.skipped);
        self.failed == 0
    }
}

/// A reason on one output line, so that every line is one case.
fn one_line(text: &str) -> String {
    text.replace(['\r', '\n'], " ")
}
