//! Bounded copies of the names clients choose (services, operations,
//! policies), for what stitching keeps in memory.

/// Longest service, operation or policy name a note keeps, bytes (cut at a
/// character boundary). The queues and caches of stitching are bounded in
/// notes and spans; this bounds their bytes too, whatever a client names
/// its spans (the overload test found 200,000 queued notes of 1 kB
/// operation names holding a quarter of a GiB). The stored span keeps its
/// full name; only the trace summary's root name is cut.
pub const MAX_NOTE_NAME_BYTES: usize = 256;

pub fn capped(s: &str) -> String {
    if s.len() <= MAX_NOTE_NAME_BYTES {
        return s.to_owned();
    }
    let mut end = MAX_NOTE_NAME_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace_state::Note;

    #[test]
    fn notes_keep_at_most_256_bytes_of_a_name() {
        let mut span = store::testsuite::SpanBuilder::new(1, 1, "svc").build();
        span.name = "é".repeat(300); // 600 bytes, 2 per char
        let note = Note::of(&span);
        assert_eq!(note.name.len(), MAX_NOTE_NAME_BYTES);
        assert!(note.name.chars().all(|c| c == 'é'));
        span.name = "short".into();
        assert_eq!(Note::of(&span).name, "short");
    }
}
