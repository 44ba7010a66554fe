//! Logs and traces.
//!
//! Logs: JSON lines by default (one object per event with the `trace_id`, `span_id` and
//! `request_id` of the request it belongs to, the fields of its innermost span under `span`
//! and of every enclosing span under `spans`), human-readable when a terminal asks. Written to
//! stdout by a background thread so a slow terminal or pipe does not stall request handling.
//!
//! Traces: OpenTelemetry, through `tracing` spans (tracing-opentelemetry). The edge reads W3C
//! Trace Context (`traceparent`, `tracestate`) or starts a trace; remote calls and forwarded
//! routes carry it on. Spans go out with OTLP over HTTP when `telemetry.otlp_endpoint` is set;
//! otherwise nothing is sampled and a span costs its ids only.

use std::io::IsTerminal;
use std::sync::OnceLock;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use serde::{Deserialize, Serialize};
use tracing::dispatcher::WeakDispatch;
use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;

use crate::call::{BoxFuture, CallInfo, CallLayer, Locality, Next, Outcome};
pub use crate::context::Trace;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Pretty on a terminal, JSON otherwise.
    #[default]
    Auto,
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Pretty,
}

/// Libraries whose info lines repeat what Cleave says once (each migration step, the HTTP
/// server's workers and its own "listening"): warnings only, unless the filter names them.
const QUIET: [&str; 2] = ["sea_orm_migration", "actix_server"];

/// Checks a `log.level` value: it parses as an `EnvFilter`, and a directive without `=` is a
/// level (`EnvFilter` would take `verbose` for a target name and log nothing else).
///
/// # Errors
/// What is wrong, for the configuration error.
pub fn check_filter(filter: &str) -> Result<(), String> {
    const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
    EnvFilter::try_new(filter).map_err(|e| e.to_string())?;
    for directive in filter.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        if !directive.contains(['=', '[']) && !LEVELS.contains(&directive.to_lowercase().as_str()) {
            return Err(format!(
                "{directive:?} is not a level; use one of {} or target=level, e.g. info,cleave_kernel=debug",
                LEVELS.join(", ")
            ));
        }
    }
    Ok(())
}

/// Parses an `EnvFilter` directive string, quieting [`QUIET`] unless it names them.
///
/// # Errors
/// What does not parse.
pub fn parse_filter(filter: &str) -> Result<EnvFilter, String> {
    let mut parsed = EnvFilter::try_new(filter).map_err(|e| e.to_string())?;
    for target in QUIET.iter().filter(|t| !filter.contains(*t)) {
        let directive = format!("{target}=warn")
            .parse()
            .map_err(|e: tracing_subscriber::filter::ParseError| e.to_string())?;
        parsed = parsed.add_directive(directive);
    }
    Ok(parsed)
}

/// Where and how traces go (`[telemetry]`).
#[derive(Debug, Clone, PartialEq)]
pub struct TraceSettings {
    /// The OTLP/HTTP endpoint (`http://collector:4318`); `None`: traces are not exported.
    pub otlp_endpoint: Option<String>,
    /// Share of the traces started here that are exported.
    pub sampling_ratio: f64,
    /// The service name of this process's spans.
    pub service_name: String,
}

/// Keeps logs and traces going; dropping it flushes the queued log lines and the spans not
/// yet exported (off the async runtime's threads: the exporter blocks).
pub struct TelemetryGuard {
    _log: WorkerGuard,
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            // The batch exporter's blocking HTTP client must not run on a runtime thread.
            let _ = std::thread::spawn(move || {
                let _ = provider.force_flush();
                let _ = provider.shutdown();
            })
            .join();
        }
    }
}

/// Whether spans are exported (`telemetry.otlp_endpoint` set): request spans then get their
/// route as name.
static EXPORTING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether this process exports spans.
pub fn exporting() -> bool {
    EXPORTING.load(std::sync::atomic::Ordering::Relaxed)
}

/// Whether each request gets a span of its own: when spans are exported, and for pretty
/// logs (whose lines show the request id through the span). JSON lines carry the request,
/// trace and span ids at their top level from the request scope, so there the span would only
/// repeat them, at a tenth of a catalog read's instructions.
static REQUEST_SPANS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Whether requests get spans (see [`REQUEST_SPANS`]).
pub fn request_spans() -> bool {
    REQUEST_SPANS.load(std::sync::atomic::Ordering::Relaxed)
}

/// The dispatcher installed by [`init`], for the log layer to read span ids with.
static DISPATCH: OnceLock<WeakDispatch> = OnceLock::new();

/// Installs the global subscriber: the log filter, the OpenTelemetry layer and the log
/// writer. Keep the returned guard alive until exit.
///
/// `filter` is an `EnvFilter` directive such as `info` or `info,cleave_kernel=debug`;
/// `RUST_LOG`, when set, wins.
///
/// # Errors
/// When the filter does not parse, the exporter cannot be built, or a subscriber is already
/// installed.
pub fn init(
    format: LogFormat,
    filter: &str,
    traces: &TraceSettings,
) -> Result<TelemetryGuard, String> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(from_env) if !from_env.is_empty() => parse_filter(&from_env),
        _ => check_filter(filter).and_then(|()| parse_filter(filter)),
    }
    .map_err(|e| format!("log.level does not parse: {e}"))?;
    let pretty = match format {
        LogFormat::Json => false,
        LogFormat::Pretty => true,
        LogFormat::Auto => std::io::stdout().is_terminal(),
    };
    let exporting = traces.otlp_endpoint.is_some();
    // Without an exporter there is no OpenTelemetry layer at all: trace ids are made and
    // carried by the request scope ([`Trace`]), which costs a random number.
    let provider = exporting.then(|| tracer_provider(traces)).transpose()?;
    let otel = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("cleave"))
            .with_location(false)
            .with_threads(false)
            .with_level(false)
            .with_target(false)
            .with_tracked_inactivity(false)
            .with_context_activation(false)
    });
    let (writer, log_guard) = NonBlockingBuilder::default()
        .lossy(false)
        .finish(std::io::stdout());
    let registry = tracing_subscriber::registry().with(filter).with(otel);
    let dispatch = if pretty {
        tracing::Dispatch::new(
            registry.with(
                tracing_subscriber::fmt::layer()
                    .with_target(false)
                    .with_writer(writer),
            ),
        )
    } else {
        tracing::Dispatch::new(registry.with(json_lines(writer)))
    };
    let _ = DISPATCH.set(dispatch.downgrade());
    tracing::dispatcher::set_global_default(dispatch).map_err(|e| e.to_string())?;
    EXPORTING.store(exporting, std::sync::atomic::Ordering::Relaxed);
    REQUEST_SPANS.store(exporting || pretty, std::sync::atomic::Ordering::Relaxed);
    Ok(TelemetryGuard {
        _log: log_guard,
        provider,
    })
}

/// The tracer provider: sampling at `sampling_ratio` (a caller's decision kept) with an OTLP
/// exporter.
fn tracer_provider(traces: &TraceSettings) -> Result<SdkTracerProvider, String> {
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(traces.service_name.clone())
        .build();
    let builder = SdkTracerProvider::builder().with_resource(resource);
    let Some(endpoint) = &traces.otlp_endpoint else {
        return Err("telemetry.otlp_endpoint is not set".into());
    };
    use opentelemetry_otlp::WithExportConfig;
    let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
    // The blocking HTTP client must be built off the async runtime's threads.
    let exporter = std::thread::spawn(move || {
        opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(url)
            .with_timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| format!("telemetry.otlp_endpoint: cannot build the OTLP exporter: {e}"))
    })
    .join()
    .map_err(|_| "telemetry.otlp_endpoint: building the OTLP exporter panicked".to_owned())??;
    Ok(builder
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            traces.sampling_ratio,
        ))))
        .with_batch_exporter(exporter)
        .build())
}

/// The JSON log layer: level, time, target, the event's fields at the top, the trace, span
/// and request ids, the innermost span (`span`) and every enclosing one (`spans`).
fn json_lines<S, W>(writer: W) -> json_subscriber::JsonLayer<S, W>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + 'static,
{
    let mut layer = json_subscriber::JsonLayer::new(writer);
    layer
        .with_timer("timestamp", tracing_subscriber::fmt::time::SystemTime)
        .with_level("level")
        .with_target("target")
        .with_flattened_event()
        .with_current_span("span")
        .with_span_list("spans");
    layer.add_multiple_dynamic_fields(|event, ctx, writer| {
        if let Some(id) = crate::context::current_request_id() {
            let _ = writer.write_field("request_id", id.as_str());
        }
        if let Some(Trace {
            ids: Some((trace_id, span_id)),
            ..
        }) = crate::context::current_trace()
        {
            let _ = writer.write_field("trace_id", format!("{trace_id:032x}"));
            let _ = writer.write_field("span_id", format!("{span_id:016x}"));
            return;
        }
        let Some(span) = ctx.event_span(event) else {
            return;
        };
        let Some(dispatch) = DISPATCH.get().and_then(WeakDispatch::upgrade) else {
            return;
        };
        if let Some(cx) = tracing_opentelemetry::get_otel_context(&span.id(), &dispatch) {
            let otel = cx.span();
            let ids = otel.span_context();
            if ids.is_valid() {
                let _ = writer.write_field("trace_id", ids.trace_id().to_string());
                let _ = writer.write_field("span_id", ids.span_id().to_string());
            }
        }
    });
    layer
}

/// Request headers trace context is read from: actix's (REST) or `http`'s (gRPC).
pub trait RequestHeaders {
    /// The value of header `key`, if it is text.
    fn header(&self, key: &str) -> Option<&str>;
    /// Every header name.
    fn names(&self) -> Vec<&str>;
}

impl RequestHeaders for actix_web::http::header::HeaderMap {
    fn header(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(|v| v.to_str().ok())
    }

    fn names(&self) -> Vec<&str> {
        self.keys()
            .map(actix_web::http::header::HeaderName::as_str)
            .collect()
    }
}

impl RequestHeaders for hyper::HeaderMap {
    fn header(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(|v| v.to_str().ok())
    }

    fn names(&self) -> Vec<&str> {
        self.keys().map(hyper::header::HeaderName::as_str).collect()
    }
}

/// Reads W3C Trace Context from request headers.
struct Incoming<'a, H: ?Sized>(&'a H);

impl<H: RequestHeaders + ?Sized> Extractor for Incoming<'_, H> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.header(key)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.names()
    }
}

/// Writes W3C Trace Context into outgoing (reqwest) request headers.
struct ReqwestHeaders<'a>(&'a mut reqwest::header::HeaderMap);

impl Injector for ReqwestHeaders<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            reqwest::header::HeaderName::from_bytes(key.as_bytes()),
            reqwest::header::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// Starts the trace of a request whose span is `span`: with an exporter, the span continues
/// the caller's `traceparent` (or starts a trace) in OpenTelemetry; without one, the caller's
/// trace id is kept (or one made) with a new span id, and nothing is sampled.
pub fn continue_trace<H: RequestHeaders + ?Sized>(span: &tracing::Span, headers: &H) -> Trace {
    if !exporting() {
        let trace_id = headers
            .header("traceparent")
            .and_then(parse_trace_id)
            .unwrap_or_else(|| fastrand::u128(1..));
        return Trace {
            sampled: false,
            ids: Some((trace_id, fastrand::u64(1..))),
        };
    }
    if headers.header("traceparent").is_some() {
        let parent = TraceContextPropagator::new().extract(&Incoming(headers));
        let _ = span.set_parent(parent);
    }
    Trace {
        sampled: span.context().span().span_context().is_sampled(),
        ids: None,
    }
}

/// The trace id of a W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`), if valid and not
/// all zeros.
fn parse_trace_id(traceparent: &str) -> Option<u128> {
    // Read by position, byte by byte: every request another process sends carries one (a
    // split iterator and `from_str_radix` cost a catalog read about 4% of its instructions).
    let b = traceparent.trim().as_bytes();
    let dash = |at: usize| b.get(at).is_none_or(|c| *c == b'-');
    if b.len() < 52 || !dash(2) || !dash(35) || !dash(52) || b.starts_with(b"ff") {
        return None;
    }
    let hex = |digits: &[u8]| {
        digits.iter().try_fold(0u128, |n, c| {
            Some(n << 4 | u128::from(char::from(*c).to_digit(16)?))
        })
    };
    hex(&b[..2])?;
    hex(&b[36..52])?;
    hex(&b[3..35]).filter(|id| *id != 0)
}

/// Adds the trace context of the current span (`traceparent`, `tracestate`) to the headers
/// of a request going to another process.
pub fn inject_current(headers: &mut reqwest::header::HeaderMap) {
    if exporting() {
        let cx = tracing::Span::current().context();
        if cx.span().span_context().is_valid() {
            TraceContextPropagator::new().inject_context(&cx, &mut ReqwestHeaders(headers));
        }
    } else if let Some(traceparent) = current_traceparent()
        && let Ok(value) = reqwest::header::HeaderValue::from_str(&traceparent)
    {
        headers.insert("traceparent", value);
    }
}

/// The trace id of the request whose span is `span` and whose scope kept `trace` (hex), or
/// empty outside a trace.
pub fn trace_id_of(span: &tracing::Span, trace: Option<Trace>) -> String {
    if let Some(Trace {
        ids: Some((trace_id, _)),
        ..
    }) = trace
    {
        return format!("{trace_id:032x}");
    }
    let cx = span.context();
    let ids = cx.span().span_context().clone();
    if ids.is_valid() {
        ids.trace_id().to_string()
    } else {
        String::new()
    }
}

/// The current trace context as a `traceparent` value, to send with a call or store with
/// what is handled later (an event in the outbox); `None` outside a trace.
pub fn current_traceparent() -> Option<String> {
    if !exporting() {
        let (trace_id, span_id) = crate::context::current_trace()?.ids?;
        // By hand: `format!` with `{:032x}` was a tenth of a remote call's own work.
        let mut value = String::with_capacity(55);
        value.push_str("00-");
        push_hex(&mut value, trace_id, 32);
        value.push('-');
        push_hex(&mut value, u128::from(span_id), 16);
        value.push_str("-00");
        return Some(value);
    }
    let cx = tracing::Span::current().context();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = std::collections::HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    carrier.remove("traceparent")
}

/// The last `digits` hex digits of `value`, in lower case, with leading zeros.
fn push_hex(out: &mut String, value: u128, digits: u32) {
    for shift in (0..digits).rev() {
        let nibble = (value >> (shift * 4)) & 0xf;
        out.push(char::from_digit(u32::try_from(nibble).unwrap_or(0), 16).unwrap_or('0'));
    }
}

/// Links `span` (an event handler's) to the trace that produced the event, from its stored
/// `traceparent`.
pub fn link_to(span: &tracing::Span, traceparent: &str) {
    let mut carrier = std::collections::HashMap::new();
    carrier.insert("traceparent".to_owned(), traceparent.to_owned());
    let cx = TraceContextPropagator::new().extract(&carrier);
    let producer = cx.span().span_context().clone();
    if producer.is_valid() {
        span.add_link(producer);
    }
}

/// The call layer giving the module calls of sampled traces their spans, local and remote.
#[derive(Debug, Default, Clone, Copy)]
pub struct CallTracing;

impl CallLayer for CallTracing {
    fn around<'a>(&'a self, call: &'a CallInfo<'a>, next: Next<'a>) -> BoxFuture<'a, Outcome> {
        // A span nobody will see costs the same as one that is exported: unsampled calls
        // (every call when nothing is exported) go without. Their context still travels:
        // the request's span is the parent the callee sees.
        if !crate::context::current_trace().is_some_and(|t| t.sampled) {
            return next.run();
        }
        let span = tracing::info_span!(
            "module_call",
            otel.name = call.op.id,
            otel.kind = if call.locality == Locality::Remote {
                "client"
            } else {
                "internal"
            },
            otel.status_code = tracing::field::Empty,
            caller = call.caller,
            callee = call.callee,
            operation = call.op.id,
            placement = call.locality.as_str(),
            outcome = tracing::field::Empty,
        );
        Box::pin(tracing::Instrument::instrument(
            async move {
                let outcome = next.run().await;
                let current = tracing::Span::current();
                match &outcome {
                    Outcome::Ok => {
                        current.record("outcome", "ok");
                    }
                    Outcome::Failed { code, status } => {
                        current.record("outcome", *code);
                        if *status >= 500 {
                            current.record("otel.status_code", "ERROR");
                        }
                    }
                    Outcome::Refused { .. } => {
                        current.record("outcome", "refused");
                        current.record("otel.status_code", "ERROR");
                    }
                }
                outcome
            },
            span,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::{parse_trace_id, push_hex};

    #[test]
    fn ids_are_written_as_fixed_width_lower_case_hex() {
        for (value, digits, expected) in [
            (
                0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736,
                32,
                "4bf92f3577b34da6a3ce929d0e0e4736",
            ),
            (0x00f0_67aa_0ba9_02b7, 16, "00f067aa0ba902b7"),
            (1, 16, "0000000000000001"),
            (u128::MAX, 32, "ffffffffffffffffffffffffffffffff"),
        ] {
            let mut out = String::new();
            push_hex(&mut out, value, digits);
            assert_eq!(out, expected);
        }
    }

    #[test]
    fn a_traceparent_gives_its_trace_id_unless_malformed() {
        for good in [
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7 ",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future",
        ] {
            assert_eq!(
                parse_trace_id(good),
                Some(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736),
                "{good}"
            );
        }
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e47zz-00f067aa0ba902b7-01",
            "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7x01",
            "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "garbage",
        ] {
            assert_eq!(parse_trace_id(bad), None, "{bad}");
        }
    }
}
