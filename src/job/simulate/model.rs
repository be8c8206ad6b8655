//! The simulator's model of one machine's data in a job's target — enough to count
//! bytes, not to hold them.
//!
//! A machine of `size` bytes (as stored: compressed and sealed) changes a share `change`
//! of its data a day: each day's point brings `size × change` new bytes (the first,
//! `size`), and of the bytes a day brought, a share `change` is overwritten every day
//! after (spread evenly over the data). So of *cohort* `b` (the bytes day `b` brought),
//! the point of day `p ≥ b` holds `new(b) × (1 − change)^(p − b)`; and since what a later
//! point holds of a cohort is inside what an earlier one holds, the target needs of
//! cohort `b` what its *earliest* kept point at or after `b` holds.
//!
//! What the target stores of a cohort only grows with copies and only shrinks when
//! prune runs (to what the kept points need). Packs are not modelled: prune is taken to
//! free every unused byte (`repack_below = 1`); a lower threshold keeps some unused
//! bytes in packs it leaves whole, which the simulator does not count.

/// One machine's cohorts in the target.
#[derive(Clone, Debug)]
pub struct MachineModel {
    pub size: f64,
    pub change: f64,
    /// Bytes the target stores of each cohort (by day), and the day they were written.
    stored: Vec<f64>,
    written_on: Vec<usize>,
}

impl MachineModel {
    pub fn new(size: u64, change: f64, days: usize) -> MachineModel {
        MachineModel {
            size: size as f64,
            change: change.clamp(0.0, 1.0),
            stored: vec![0.0; days + 1],
            written_on: vec![0; days + 1],
        }
    }

    /// The bytes day `b` brought.
    fn new_bytes(&self, b: usize) -> f64 {
        match b {
            0 => self.size,
            _ => self.size * self.change,
        }
    }

    /// What the point of day `p` holds of cohort `b` (`b ≤ p`).
    fn held(&self, b: usize, p: usize) -> f64 {
        self.new_bytes(b) * (1.0 - self.change).powi((p - b) as i32)
    }

    /// The point of day `p` copied on day `today`: returns the bytes written (what the
    /// target lacked of it).
    pub fn copy(&mut self, p: usize, today: usize) -> f64 {
        let mut written = 0.0;
        for b in 0..=p.min(self.stored.len() - 1) {
            let need = self.held(b, p);
            if need > self.stored[b] {
                written += need - self.stored[b];
                self.stored[b] = need;
                self.written_on[b] = today;
            }
        }
        written
    }

    /// The bytes the points `kept` (days, any order) need together.
    pub fn needed(&self, kept: &[usize]) -> f64 {
        self.need_by_cohort(kept).iter().sum()
    }

    fn need_by_cohort(&self, kept: &[usize]) -> Vec<f64> {
        let mut sorted = kept.to_vec();
        sorted.sort_unstable();
        let mut out = vec![0.0; self.stored.len()];
        for (b, o) in out.iter_mut().enumerate() {
            // The earliest kept point at or after b holds the most of it.
            let first = sorted.partition_point(|p| *p < b);
            if let Some(p) = sorted.get(first) {
                *o = self.held(b, *p);
            }
        }
        out
    }

    /// Prune on day `today`: the stored bytes shrink to what `kept` needs. Returns the
    /// bytes freed and, of those, byte-days short of `min_days` (deleted early).
    pub fn prune(&mut self, kept: &[usize], today: usize, min_days: usize) -> (f64, f64) {
        let need = self.need_by_cohort(kept);
        let (mut freed, mut early) = (0.0, 0.0);
        for (b, n) in need.into_iter().enumerate() {
            if self.stored[b] > n {
                let f = self.stored[b] - n;
                freed += f;
                let age = today.saturating_sub(self.written_on[b]);
                early += f * min_days.saturating_sub(age) as f64;
                self.stored[b] = n;
            }
        }
        (freed, early)
    }

    pub fn stored(&self) -> f64 {
        self.stored.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every point holds the machine's size; ten days of 10 % change copied daily store
    /// the size plus each day's new bytes; keeping only the newest, prune leaves the size.
    #[test]
    fn bytes_add_up() {
        let mut m = MachineModel::new(1000, 0.1, 30);
        let held: f64 = (0..=10).map(|b| m.held(b, 10)).sum();
        assert!((held - 1000.0).abs() < 1e-6);
        let mut written = 0.0;
        for d in 0..=10 {
            written += m.copy(d, d);
        }
        assert!((written - 2000.0).abs() < 1e-6, "{written}");
        assert!((m.stored() - 2000.0).abs() < 1e-6);
        assert!(
            (m.needed(&[5, 10]) - m.needed(&[10]) - 1000.0 * (1.0 - 0.9f64.powi(5))).abs() < 1e-6
        );
        let (freed, _) = m.prune(&[10], 10, 0);
        assert!((freed - 1000.0).abs() < 1e-6 && (m.stored() - 1000.0).abs() < 1e-6);
    }
}
