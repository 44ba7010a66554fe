//! The marks a call between Cleave processes carries in one header (`x-cleave-call`).

/// Header saying what a request between Cleave processes is (see [`CallMarks`]), e.g.
/// `op=payment.charge` or `op=catalog.get_product; safe; forwarded`: one header for the three
/// marks, fewer for the callee's HTTP parser to take apart, and read only where a mark decides
/// something (docs/BENCHMARKS.md, "A hop's marks in one header").
pub const CALL_HEADER: &str = "x-cleave-call";

/// What [`CALL_HEADER`] says of a request: the contract operation it calls (`op=<module>.
/// <operation>`, when it calls one), whether it is safe to repeat (`safe`), and whether a
/// process forwards it on behalf of a client (`forwarded`: the certificate of its connection
/// then proves the hop, not the caller).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallMarks<'a> {
    /// The operation called, e.g. `payment.charge`.
    pub operation: Option<&'a str>,
    /// Whether the request may be repeated (read-only, idempotent, or keyed and carrying its
    /// key or reference).
    pub safe: bool,
    /// Whether the request is forwarded for a client.
    pub forwarded: bool,
}

impl<'a> CallMarks<'a> {
    /// Reads a [`CALL_HEADER`] value; what it does not know it passes over.
    pub fn parse(value: &'a str) -> Self {
        let mut marks = Self::default();
        // By bytes: `str::split` with a char pattern costs several times as much here.
        let mut rest = value;
        while !rest.is_empty() {
            let (item, after) =
                rest.split_at(rest.bytes().position(|b| b == b';').unwrap_or(rest.len()));
            rest = after.get(1..).unwrap_or("");
            match item.trim_ascii() {
                "safe" => marks.safe = true,
                "forwarded" => marks.forwarded = true,
                item => {
                    if let Some(op) = item.strip_prefix("op=").filter(|op| !op.is_empty()) {
                        marks.operation = Some(op);
                    }
                }
            }
        }
        marks
    }

    /// The marks of a received request's headers (none without [`CALL_HEADER`]).
    pub fn of(headers: &actix_web::http::header::HeaderMap) -> CallMarks<'_> {
        // A name built once: a lookup by `&str` parses the name on every request.
        const H_CALL: actix_web::http::header::HeaderName =
            actix_web::http::header::HeaderName::from_static(CALL_HEADER);
        headers
            .get(H_CALL)
            .and_then(|v| v.to_str().ok())
            .map(CallMarks::parse)
            .unwrap_or_default()
    }

    /// The [`CALL_HEADER`] value; `None` when there is nothing to say.
    pub fn render(&self) -> Option<String> {
        let mut value = self
            .operation
            .map(|op| format!("op={op}"))
            .unwrap_or_default();
        for (set, flag) in [(self.safe, "safe"), (self.forwarded, "forwarded")] {
            if set {
                if !value.is_empty() {
                    value.push_str("; ");
                }
                value.push_str(flag);
            }
        }
        (!value.is_empty()).then_some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_marks_read_what_they_know_and_pass_over_the_rest() {
        let marks = CallMarks::parse("op=payment.charge;safe ; later-mark; forwarded");
        assert_eq!(
            marks,
            CallMarks {
                operation: Some("payment.charge"),
                safe: true,
                forwarded: true,
            }
        );
        assert_eq!(CallMarks::parse("op=; true"), CallMarks::default());
        assert_eq!(CallMarks::default().render(), None, "nothing to say");
        let forwarded = CallMarks {
            forwarded: true,
            ..CallMarks::default()
        };
        assert_eq!(forwarded.render().as_deref(), Some("forwarded"));
        assert_eq!(CallMarks::parse("forwarded"), forwarded);
    }
}
