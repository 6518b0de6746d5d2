//! The request handler pool (Kafka's `num.io.threads`): threads that run every piece of request
//! work that may block on a disk, so an async worker never does. Owns the threads and the bounded
//! queue in front of them (`queued.max.requests`); it knows nothing of requests or files.
//!
//! Tokio's workers read and write sockets, decode and encode, answer from memory and wait (parked
//! fetches, rebalances, durable-mode syncs); an append, a read that locates batches in a segment,
//! a checkpoint or a coordinator's write runs here, with its partition's lock held only inside
//! the call. A job that would wait for something other than the disk must not run here: it would
//! hold a thread the disk work needs.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::{Arc, Condvar, Mutex};

use tokio::sync::{Semaphore, oneshot};

type Job = Box<dyn FnOnce() + Send + 'static>;

/// The jobs waiting for a thread. One mutex-protected deque and one condvar: a job wakes at most
/// one sleeping thread, and a thread that finishes a job takes the next one without sleeping.
/// (A shared `mpsc::Receiver` behind a mutex woke two threads per job, the receiver and the next
/// one in line for the mutex: measured, that halved what one connection could send through.)
#[derive(Default)]
struct Queue {
    state: Mutex<QueueState>,
    ready: Condvar,
}

#[derive(Default)]
struct QueueState {
    jobs: VecDeque<Job>,
    /// Threads asleep on `ready`: a push notifies only when one is.
    idle: usize,
    closed: bool,
}

impl Queue {
    fn push(&self, job: Job) -> Result<(), Job> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.closed {
            return Err(job);
        }
        s.jobs.push_back(job);
        let wake = s.idle > 0;
        drop(s);
        if wake {
            self.ready.notify_one();
        }
        Ok(())
    }

    /// The next job, or `None` once the pool is dropped and the queue is empty.
    fn pop(&self) -> Option<Job> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(job) = s.jobs.pop_front() {
                return Some(job);
            }
            if s.closed {
                return None;
            }
            s.idle += 1;
            s = self.ready.wait(s).unwrap_or_else(|e| e.into_inner());
            s.idle -= 1;
        }
    }

    fn close(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).closed = true;
        self.ready.notify_all();
    }
}

pub struct IoPool {
    queue: Arc<Queue>,
    /// One permit per job queued or running: `queued.max.requests` plus the threads.
    slots: Arc<Semaphore>,
}

impl IoPool {
    /// Starts `threads` handler threads (at least one) behind a queue of `queued_max` jobs (at
    /// least one). The threads end when the pool is dropped and its queue has drained.
    pub fn new(threads: usize, queued_max: usize) -> std::io::Result<IoPool> {
        let threads = threads.max(1);
        let queue = Arc::new(Queue::default());
        // Jobs may start background work (a rolled segment's fsync on the blocking pool) and
        // drive a handler's future: the threads live inside the caller's runtime context.
        let runtime = tokio::runtime::Handle::try_current().ok();
        for i in 0..threads {
            let queue = queue.clone();
            let runtime = runtime.clone();
            std::thread::Builder::new().name(format!("fjord-io-{i}")).spawn(move || {
                let _context = runtime.as_ref().map(|r| r.enter());
                while let Some(job) = queue.pop() {
                    job();
                }
            })?;
        }
        Ok(IoPool { queue, slots: Arc::new(Semaphore::new(queued_max.max(1) + threads)) })
    }

    /// Runs `f` on a handler thread and gives its result. When the queue is full the caller waits
    /// (asynchronously) for a slot. A panic in `f` is resumed in the caller, as if it had run
    /// there; the handler thread survives it.
    pub async fn run<T, F>(&self, f: F) -> T
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        // The semaphore is never closed, so acquiring only fails if it were.
        let permit = self.slots.clone().acquire_owned().await.expect("the pool's semaphore is never closed");
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let result = catch_unwind(AssertUnwindSafe(f));
            drop(permit);
            let _ = tx.send(result);
        });
        if let Err(job) = self.queue.push(job) {
            // The pool is closing (only its drop closes it, which `&self` rules out): run it
            // here, as a last resort.
            job();
        }
        match rx.await {
            Ok(Ok(value)) => value,
            Ok(Err(panic)) => resume_unwind(panic),
            Err(_) => panic!("a request handler thread ended without running its job"),
        }
    }
}

impl Drop for IoPool {
    /// The threads finish what is queued and end.
    fn drop(&mut self) {
        self.queue.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn jobs_run_off_the_async_workers_and_return_their_results() {
        let pool = IoPool::new(2, 4).unwrap();
        let name = pool.run(|| std::thread::current().name().map(str::to_string)).await;
        assert!(name.unwrap().starts_with("fjord-io-"));
        assert_eq!(pool.run(|| 6 * 7).await, 42);
    }

    #[tokio::test]
    async fn jobs_can_start_background_work_and_drive_futures() {
        let pool = IoPool::new(1, 1).unwrap();
        let spawned = pool.run(|| tokio::task::spawn_blocking(|| 7)).await;
        assert_eq!(spawned.await.unwrap(), 7);
        let rt = tokio::runtime::Handle::current();
        assert_eq!(pool.run(move || rt.block_on(async { 8 })).await, 8);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_makes_callers_wait_instead_of_growing() {
        // 1 thread + 1 queued: with the thread held, the second job queues and the third caller
        // waits for a slot without its job entering the queue.
        let pool = Arc::new(IoPool::new(1, 1).unwrap());
        let (release, held) = std::sync::mpsc::channel::<()>();
        let held = Arc::new(std::sync::Mutex::new(held));
        let started = Arc::new(AtomicUsize::new(0));
        let mut handles = Vec::new();
        for _ in 0..3 {
            let (pool, held, started) = (pool.clone(), held.clone(), started.clone());
            handles.push(tokio::spawn(async move {
                pool.run(move || {
                    started.fetch_add(1, Ordering::SeqCst);
                    held.lock().unwrap().recv().unwrap();
                })
                .await
            }));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(pool.slots.available_permits(), 0, "thread and queue are full");
        assert_eq!(started.load(Ordering::SeqCst), 1, "one job runs, one waits in the queue");
        for _ in 0..3 {
            release.send(()).unwrap();
        }
        for h in handles {
            h.await.unwrap();
        }
        assert_eq!(started.load(Ordering::SeqCst), 3, "the waiting caller ran once a slot freed");
        assert_eq!(pool.slots.available_permits(), 2, "every slot is given back");
    }

    #[tokio::test]
    async fn a_panicking_job_panics_its_caller_and_the_thread_goes_on() {
        let pool = Arc::new(IoPool::new(1, 1).unwrap());
        let p = pool.clone();
        let caller = tokio::spawn(async move { p.run(|| -> u32 { panic!("job failed") }).await });
        assert!(caller.await.unwrap_err().is_panic());
        assert_eq!(pool.run(|| 1).await, 1, "the only thread still serves");
    }
}
