//! At most N jobs at once, a bounded queue behind them, and a refusal
//! beyond it: how the search agent keeps a burst of searches from taking
//! the lab server down (`max_search_agents`, docs/architecture.md §5).

use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, Mutex};

/// Counters, for logs and tests.
#[derive(Debug, Default)]
pub struct QueueStats {
    running: AtomicUsize,
    peak_running: AtomicUsize,
    accepted: AtomicU64,
    rejected: AtomicU64,
    finished: AtomicU64,
}

impl QueueStats {
    /// Jobs running now.
    pub fn running(&self) -> usize {
        self.running.load(Ordering::Acquire)
    }
    /// The most jobs that ever ran at the same time.
    pub fn peak_running(&self) -> usize {
        self.peak_running.load(Ordering::Acquire)
    }
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Acquire)
    }
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Acquire)
    }
    pub fn finished(&self) -> u64 {
        self.finished.load(Ordering::Acquire)
    }
}

/// A handle to submit jobs; the workers stop when every handle is gone.
pub struct WorkQueue<J> {
    tx: mpsc::Sender<J>,
    stats: Arc<QueueStats>,
}

impl<J> Clone for WorkQueue<J> {
    fn clone(&self) -> Self {
        WorkQueue { tx: self.tx.clone(), stats: Arc::clone(&self.stats) }
    }
}

impl<J: Send + 'static> WorkQueue<J> {
    /// Starts `workers` tasks (at least one) that run `handle` on each job,
    /// with room for `queue` jobs waiting.
    pub fn start<F, Fut>(workers: usize, queue: usize, handle: F) -> WorkQueue<J>
    where
        F: Fn(J) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send,
    {
        let (tx, rx) = mpsc::channel::<J>(queue.max(1));
        let rx = Arc::new(Mutex::new(rx));
        let stats = Arc::new(QueueStats::default());
        let handle = Arc::new(handle);
        for _ in 0..workers.max(1) {
            let (rx, stats, handle) = (Arc::clone(&rx), Arc::clone(&stats), Arc::clone(&handle));
            tokio::spawn(async move {
                loop {
                    let job = rx.lock().await.recv().await;
                    let Some(job) = job else { return };
                    let now = stats.running.fetch_add(1, Ordering::AcqRel) + 1;
                    stats.peak_running.fetch_max(now, Ordering::AcqRel);
                    handle(job).await;
                    stats.running.fetch_sub(1, Ordering::AcqRel);
                    stats.finished.fetch_add(1, Ordering::AcqRel);
                }
            });
        }
        WorkQueue { tx, stats }
    }

    /// Queues `job`, or gives it back if the queue is full.
    pub fn try_submit(&self, job: J) -> Result<(), J> {
        match self.tx.try_send(job) {
            Ok(()) => {
                self.stats.accepted.fetch_add(1, Ordering::AcqRel);
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(j) | mpsc::error::TrySendError::Closed(j)) => {
                self.stats.rejected.fetch_add(1, Ordering::AcqRel);
                Err(j)
            }
        }
    }

    pub fn stats(&self) -> &Arc<QueueStats> {
        &self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn at_most_n_run_and_the_queue_is_bounded() {
        // Jobs wait for a gate, so all ten arrive while the first ones run.
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let g = Arc::clone(&gate);
        let q = WorkQueue::start(2, 3, move |done: tokio::sync::oneshot::Sender<()>| {
            let g = Arc::clone(&g);
            async move {
                let _permit = g.acquire().await;
                let _ = done.send(());
            }
        });
        let mut waiting = Vec::new();
        let mut refused = 0;
        for i in 0..10 {
            let (tx, rx) = tokio::sync::oneshot::channel();
            match q.try_submit(tx) {
                Ok(()) => waiting.push(rx),
                Err(_) => refused += 1,
            }
            if i < 2 {
                // The first two are taken by the workers before the next.
                let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
                while q.stats().running() < i + 1 {
                    assert!(tokio::time::Instant::now() < deadline, "no worker took job {i}");
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        }
        // Two running, three queued, five refused.
        assert_eq!((waiting.len(), refused), (5, 5));
        gate.add_permits(10);
        for rx in waiting {
            rx.await.unwrap();
        }
        // A job counts as finished just after it answered.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while q.stats().finished() < 5 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert_eq!(q.stats().peak_running(), 2);
        assert_eq!((q.stats().accepted(), q.stats().rejected(), q.stats().finished()), (5, 5, 5));
    }
}
