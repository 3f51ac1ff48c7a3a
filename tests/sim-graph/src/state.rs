//! State shared by every request: the directory, issued tokens, throttle buckets, delta-link
//! generation. Each lives behind its own lock, taken only inside synchronous code, so no lock is
//! ever held across an `.await`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use serde_json::Value;
use sim_common::Faults;

use crate::auth::Tokens;
use crate::config::SimConfig;
use crate::directory::Directory;
use crate::ids::{IdCodec, ns};
use crate::throttle::Throttle;

/// How issued delta links currently fail once invalidated.
#[derive(Debug, Clone)]
pub(crate) struct DeltaControl {
    /// Links issued in an older epoch are dead.
    pub(crate) epoch: u32,
    /// The status and error code a dead link answers with: 410 Gone + `Location`
    /// (delta-query-overview.md, "Synchronization reset"), or "a 40X-series error with error
    /// codes such as syncStateNotFound" ("Token duration").
    pub(crate) status: u16,
    pub(crate) code: String,
}

pub(crate) struct Shared {
    pub(crate) config: SimConfig,
    pub(crate) faults: Faults,
    pub(crate) started: Instant,
    codec: IdCodec,
    dir: RwLock<Directory>,
    tokens: Mutex<Tokens>,
    throttle: Mutex<Throttle>,
    delta: Mutex<DeltaControl>,
    counter: AtomicU64,
    /// Graph calls answered so far (top-level and `$batch` inner), the replication clock.
    calls: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    pub(crate) fn new(config: SimConfig, dir: Directory) -> Self {
        let started = Instant::now();
        let faults = Faults::new();
        faults.set_latency(config.latency);
        let throttle = Throttle::new(config.throttle, config.users, &config.limits, started);
        Self {
            config,
            faults,
            started,
            codec: dir.codec.clone(),
            dir: RwLock::new(dir),
            tokens: Mutex::new(Tokens::default()),
            throttle: Mutex::new(throttle),
            delta: Mutex::new(DeltaControl {
                epoch: 0,
                status: 400,
                code: "syncStateNotFound".to_owned(),
            }),
            counter: AtomicU64::new(0),
            calls: AtomicU64::new(0),
        }
    }

    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Directory> {
        self.dir.read().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, Directory> {
        self.dir.write().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn tokens(&self) -> MutexGuard<'_, Tokens> {
        lock(&self.tokens)
    }

    pub(crate) fn throttle(&self) -> MutexGuard<'_, Throttle> {
        lock(&self.throttle)
    }

    pub(crate) fn delta_control(&self) -> DeltaControl {
        lock(&self.delta).clone()
    }

    pub(crate) fn invalidate_delta_links(&self, status: u16, code: &str) {
        let mut control = lock(&self.delta);
        control.epoch += 1;
        control.status = status;
        control.code = code.to_owned();
    }

    /// Milliseconds since the simulator started (delta links record when they were issued).
    pub(crate) fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Counts one Graph call (the replication clock, `SimConfig::replication_lag`).
    pub(crate) fn count_call(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }

    /// The number of the call being answered.
    pub(crate) fn call(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Marks `written` as not yet visible to the next `replication_lag` calls.
    pub(crate) fn lag(
        &self,
        dir: &mut crate::directory::Directory,
        written: crate::directory::Written,
    ) {
        let lag = u64::from(self.config.replication_lag);
        if lag > 0 {
            dir.lag(written, self.call() + lag + 1);
        }
    }

    /// A fresh, deterministic sequence number (request ids, batch shuffles).
    pub(crate) fn next_counter(&self) -> u64 {
        self.counter.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub(crate) fn request_id(&self) -> String {
        let n = self.next_counter();
        self.codec.format(ns::REQUEST, n)
    }

    /// `innerError.date` format (`2025-02-13T10:17:05`, json-batching.md).
    pub(crate) fn date(&self) -> String {
        let f = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
        time::OffsetDateTime::now_utc()
            .format(&f)
            .unwrap_or_default()
    }

    /// Runs `f` on the directory for tests that inspect state.
    pub(crate) fn inspect<T>(&self, f: impl FnOnce(&Directory) -> T) -> T {
        f(&self.read())
    }

    pub(crate) fn mutate<T>(&self, f: impl FnOnce(&mut Directory) -> T) -> T {
        f(&mut self.write())
    }
}

/// A JSON value's string field, or "".
pub(crate) fn str_field<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or_default()
}
