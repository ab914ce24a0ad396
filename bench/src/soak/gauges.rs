//! What the soak watches over time, and its rule for "grows without bound".
//!
//! A gauge is sampled at a fixed interval. The first fifth of the run is warm-up
//! (connections open, the store fills to its bounds, the allocator finds its working
//! set) and is not judged. The rest is split in thirds: the gauge **fails** when the
//! largest value of the last third is above the largest of the first third by more
//! than 10% plus the gauge's own slack (a few MiB of RSS, a few descriptors: the
//! noise of a steady state). A leak grows with time and so crosses that line; a
//! bounded gauge, however noisy, does not. A gauge with a hard bound (the store's
//! capacity and byte budget) also fails when any sample is above it.

/// One gauge's samples.
pub struct Gauge {
    pub name: &'static str,
    /// How a value is printed.
    pub unit: Unit,
    /// What the last third may add to the first third's peak beyond 10%.
    pub slack: f64,
    /// A bound no sample may pass, if the gauge has one.
    pub bound: Option<f64>,
    pub samples: Vec<f64>,
}

/// How a gauge's value is printed.
#[derive(Clone, Copy)]
pub enum Unit {
    Count,
    Bytes,
}

/// A gauge's verdict: its peaks, its limit, and whether it held.
pub struct Verdict {
    pub first_peak: f64,
    pub last_peak: f64,
    pub limit: f64,
    pub problem: Option<String>,
}

/// The share of the run not judged, at the start.
const WARM_UP: f64 = 0.2;
/// What the last third's peak may add to the first's, beyond the slack.
const GROWTH: f64 = 0.10;

impl Gauge {
    pub fn new(name: &'static str, unit: Unit, slack: f64, bound: Option<f64>) -> Self {
        Self { name, unit, slack, bound, samples: Vec::new() }
    }

    /// Applies the rule; `None` when there are too few samples to judge (fewer than
    /// six after the warm-up).
    pub fn verdict(&self) -> Option<Verdict> {
        let judged: Vec<f64> = self.samples.iter().copied().filter(|v| v.is_finite()).collect();
        let judged = &judged[(judged.len() as f64 * WARM_UP).ceil() as usize..];
        if judged.len() < 6 {
            return None;
        }
        let third = judged.len() / 3;
        let peak = |values: &[f64]| values.iter().copied().fold(f64::MIN, f64::max);
        let (first_peak, last_peak) = (peak(&judged[..third]), peak(&judged[judged.len() - third..]));
        let limit = first_peak * (1.0 + GROWTH) + self.slack;
        let over_bound = self.bound.and_then(|bound| {
            let highest = peak(&self.samples);
            (highest > bound).then(|| format!("{} is above its bound {}", self.show(highest), self.show(bound)))
        });
        let grew = (last_peak > limit).then(|| {
            format!(
                "grew: the last third's peak {} is above the first third's {} + 10% + {}",
                self.show(last_peak),
                self.show(first_peak),
                self.show(self.slack)
            )
        });
        Some(Verdict { first_peak, last_peak, limit, problem: grew.or(over_bound) })
    }

    /// The latest sample, for the progress line.
    pub fn latest(&self) -> String {
        self.samples.last().map_or_else(|| "-".to_owned(), |v| self.show(*v))
    }

    pub fn show(&self, value: f64) -> String {
        match self.unit {
            _ if !value.is_finite() => "?".to_owned(),
            Unit::Count => format!("{value:.0}"),
            Unit::Bytes => format!("{:.1} MiB", value / f64::from(1 << 20)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gauge(samples: impl IntoIterator<Item = f64>) -> Gauge {
        let mut gauge = Gauge::new("g", Unit::Count, 2.0, Some(1000.0));
        gauge.samples = samples.into_iter().collect();
        gauge
    }

    #[test]
    fn a_noisy_plateau_holds_and_a_slow_leak_fails() {
        let plateau = gauge((0..100).map(|i| 500.0 + f64::from(i % 7) * 5.0));
        assert!(plateau.verdict().unwrap().problem.is_none());
        // 1 a sample: warm-up excluded, the last third's peak is ~55% above the first's.
        let leak = gauge((0..100).map(|i| 100.0 + f64::from(i)));
        assert!(leak.verdict().unwrap().problem.unwrap().contains("grew"));
    }

    #[test]
    fn a_sample_above_the_bound_fails_and_a_short_run_is_not_judged() {
        let over = gauge((0..30).map(|i| if i == 3 { 1001.0 } else { 10.0 }));
        assert!(over.verdict().unwrap().problem.unwrap().contains("bound"));
        assert!(gauge([1.0, 2.0, 3.0]).verdict().is_none());
    }
}
