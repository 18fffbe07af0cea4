//! Filtering a rendered text exposition (OpenMetrics / Prometheus text) by
//! one label, so a caller sees only the series it may see.
//!
//! [`retain_by_label`] keeps a sample only when it carries `label` and
//! `keep` accepts the label's value; a family's `# HELP`, `# TYPE` and
//! `# UNIT` lines are kept only when one of its samples is. Samples
//! without the label are dropped: a caller with a narrow scope sees no
//! process-wide totals, which would tell it about traffic it may not see.
//! Label values are read with the format's escapes (`\\`, `\"`, `\n`).

/// `text` with only the samples whose `label` value `keep` accepts.
pub fn retain_by_label(text: &str, label: &str, keep: impl Fn(&str) -> bool) -> String {
    let mut out = String::with_capacity(text.len() / 4);
    let mut family = "";
    let mut pending = String::new();
    let mut flushed = false;
    for line in text.lines() {
        if line == "# EOF" {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        if let Some(meta) = line.strip_prefix("# ") {
            let name = meta.split(' ').nth(1).unwrap_or("");
            if name != family {
                family = name;
                pending.clear();
                flushed = false;
            }
            if flushed {
                out.push_str(line);
                out.push('\n');
            } else {
                pending.push_str(line);
                pending.push('\n');
            }
            continue;
        }
        if line.is_empty() {
            continue;
        }
        let visible = label_value(line, label).is_some_and(|v| keep(&v));
        if visible {
            if !flushed {
                out.push_str(&pending);
                pending.clear();
                flushed = true;
            }
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The unescaped value of `label` in a sample line, if it has one.
fn label_value(line: &str, label: &str) -> Option<String> {
    let open = line.find(['{', ' '])?;
    if line.as_bytes().get(open) != Some(&b'{') {
        return None;
    }
    let mut rest = &line[open + 1..];
    loop {
        rest = rest.trim_start_matches([',', ' ']);
        if rest.starts_with('}') || rest.is_empty() {
            return None;
        }
        let eq = rest.find('=')?;
        let name = rest[..eq].trim();
        rest = rest[eq + 1..].strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                '"' => break i,
                c => value.push(c),
            }
        };
        if name == label {
            return Some(value);
        }
        rest = &rest[end + 1..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP calls Calls.\n# TYPE calls counter\n\
calls_total{cluster=\"a\",service=\"x\"} 1\n\
calls_total{service=\"y\",cluster=\"b\"} 2\n\
# HELP stored Spans stored.\n# TYPE stored counter\nstored_total 9\n\
# HELP odd Odd values.\n# TYPE odd gauge\n\
odd{cluster=\"a\\\"b\",x=\"}\"} 3\n\
odd{x=\"cluster=\\\"a\\\"\"} 4\n# EOF\n";

    #[test]
    fn only_series_in_scope_are_kept_with_their_metadata() {
        let kept = retain_by_label(TEXT, "cluster", |c| c == "a");
        assert_eq!(
            kept,
            "# HELP calls Calls.\n# TYPE calls counter\n\
calls_total{cluster=\"a\",service=\"x\"} 1\n# EOF\n"
        );
    }

    #[test]
    fn escaped_values_are_read_whole() {
        let kept = retain_by_label(TEXT, "cluster", |c| c == "a\"b");
        assert!(
            kept.contains("odd{cluster=\"a\\\"b\",x=\"}\"} 3\n"),
            "{kept}"
        );
        assert!(kept.contains("# TYPE odd gauge\n"), "{kept}");
        // A label value that looks like the label is not the label.
        assert!(!kept.contains("} 4"), "{kept}");
        assert!(!kept.contains("calls"), "{kept}");
    }

    #[test]
    fn unlabelled_series_are_hidden_and_garbage_is_dropped() {
        let kept = retain_by_label("stored_total 9\nx{cluster=\"a\nx{=\n{\n", "cluster", |_| {
            true
        });
        assert_eq!(kept, "");
    }
}
