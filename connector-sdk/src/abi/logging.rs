//! Plugin-side log forwarding.
//!
//! A cdylib has its own copy of `std` and `tracing`: without help, its events go to no
//! subscriber and its panics print from an unnamed thread. On the first `open` the SDK installs,
//! in the plugin's copy, a subscriber that forwards each event to the host services of the
//! connector instance it happened in (found through the `connector` span the glue wraps every
//! call in), and a panic hook that reports panics the same way.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, Once, Weak};

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context as LayerContext, Layer};
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;

use super::plugin::PluginServices;
use crate::services::{HostServices, LogLevel, LogRecord};

static INSTALL: Once = Once::new();
static MAX_LEVEL: AtomicU8 = AtomicU8::new(3);

/// Instance id → its host services. Weak, so a closed instance does not keep the host alive.
static INSTANCES: Mutex<Option<HashMap<u64, Weak<PluginServices>>>> = Mutex::new(None);
/// Where events outside any connector span (and panics) go: the latest opened instance.
static FALLBACK: Mutex<Option<Weak<PluginServices>>> = Mutex::new(None);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Registers an opened instance and installs the forwarding subscriber once.
pub(crate) fn register(services: Arc<PluginServices>, max_level: u8) {
    MAX_LEVEL.store(max_level.clamp(1, 5), Ordering::Relaxed);
    {
        let mut map = lock(&INSTANCES);
        let map = map.get_or_insert_with(HashMap::new);
        map.retain(|_, w| w.strong_count() > 0);
        map.insert(services.instance, Arc::downgrade(&services));
    }
    *lock(&FALLBACK) = Some(Arc::downgrade(&services));
    INSTALL.call_once(|| {
        let subscriber = tracing_subscriber::registry().with(Forward);
        // Fails only if the plugin already installed its own subscriber; then we leave it be.
        let _ = tracing::subscriber::set_global_default(subscriber);
        std::panic::set_hook(Box::new(|info| {
            let location = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            let message = super::plugin::panic_message(info.payload());
            if let Some(services) = fallback() {
                services.log(LogRecord {
                    level: LogLevel::Error,
                    target: "panic".to_owned(),
                    message: format!("connector panicked{location}: {message}"),
                    fields: Map::new(),
                });
            }
        }));
    });
}

fn fallback() -> Option<Arc<PluginServices>> {
    lock(&FALLBACK).as_ref().and_then(Weak::upgrade)
}

fn instance(id: u64) -> Option<Arc<PluginServices>> {
    lock(&INSTANCES)
        .as_ref()
        .and_then(|m| m.get(&id))
        .and_then(Weak::upgrade)
}

fn level_number(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 1,
        Level::WARN => 2,
        Level::INFO => 3,
        Level::DEBUG => 4,
        Level::TRACE => 5,
    }
}

struct InstanceId(u64);

struct Forward;

impl<S> Layer<S> for Forward
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn enabled(&self, metadata: &Metadata<'_>, _ctx: LayerContext<'_, S>) -> bool {
        metadata.is_span() || level_number(metadata.level()) <= MAX_LEVEL.load(Ordering::Relaxed)
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: LayerContext<'_, S>) {
        let mut finder = InstanceFinder(None);
        attrs.record(&mut finder);
        if let (Some(instance), Some(span)) = (finder.0, ctx.span(id)) {
            span.extensions_mut().insert(InstanceId(instance));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: LayerContext<'_, S>) {
        let mut target_instance = None;
        let mut span_names = String::new();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(InstanceId(id)) = span.extensions().get::<InstanceId>() {
                    target_instance = Some(*id);
                } else {
                    if !span_names.is_empty() {
                        span_names.push(':');
                    }
                    let _ = write!(span_names, "{}", span.name());
                }
            }
        }
        let services = target_instance.and_then(instance).or_else(fallback);
        let Some(services) = services else { return };
        let mut visitor = JsonVisitor::default();
        event.record(&mut visitor);
        if !span_names.is_empty() {
            visitor
                .fields
                .insert("spans".to_owned(), Value::String(span_names));
        }
        let level = match *event.metadata().level() {
            Level::ERROR => LogLevel::Error,
            Level::WARN => LogLevel::Warn,
            Level::INFO => LogLevel::Info,
            Level::DEBUG => LogLevel::Debug,
            Level::TRACE => LogLevel::Trace,
        };
        services.log(LogRecord {
            level,
            target: event.metadata().target().to_owned(),
            message: visitor.message,
            fields: visitor.fields,
        });
    }
}

struct InstanceFinder(Option<u64>);

impl Visit for InstanceFinder {
    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "idhost_instance" {
            self.0 = Some(value);
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        if field.name() == "idhost_instance" {
            self.0 = u64::try_from(value).ok();
        }
    }
    fn record_debug(&mut self, _field: &Field, _value: &dyn std::fmt::Debug) {}
}

#[derive(Default)]
struct JsonVisitor {
    message: String,
    fields: Map<String, Value>,
}

impl Visit for JsonVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_owned();
        } else {
            self.fields
                .insert(field.name().to_owned(), Value::String(value.to_owned()));
        }
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.fields
            .insert(field.name().to_owned(), Value::Bool(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.fields
            .insert(field.name().to_owned(), Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.fields
            .insert(field.name().to_owned(), Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.fields
            .insert(field.name().to_owned(), Value::from(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.fields
                .insert(field.name().to_owned(), Value::String(format!("{value:?}")));
        }
    }
}
