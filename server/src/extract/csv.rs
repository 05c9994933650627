//! A small RFC 4180 record reader: quoted fields, doubled quotes, CRLF or LF line ends. Enough
//! for monitor exports, and it reports the line of each record so errors can point at it.

/// Iterates over `(line number, fields)`; a record with an unterminated quote yields an error.
pub fn records(text: &str) -> impl Iterator<Item = (usize, Result<Vec<String>, String>)> + '_ {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut rest = text;
    let mut line = 1usize;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let start_line = line;
        let mut fields = Vec::new();
        let mut field = String::new();
        let mut in_quotes = false;
        let mut chars = rest.char_indices().peekable();
        let mut consumed = rest.len();
        while let Some((index, c)) = chars.next() {
            match (in_quotes, c) {
                (true, '"') if chars.peek().is_some_and(|(_, next)| *next == '"') => {
                    field.push('"');
                    chars.next();
                }
                (true, '"') => in_quotes = false,
                (true, '\n') => {
                    line += 1;
                    field.push('\n');
                }
                (true, c) => field.push(c),
                (false, '"') if field.is_empty() => in_quotes = true,
                (false, ',') => fields.push(std::mem::take(&mut field)),
                (false, '\r') if chars.peek().is_some_and(|(_, next)| *next == '\n') => {}
                (false, '\n') => {
                    consumed = index + 1;
                    break;
                }
                (false, c) => field.push(c),
            }
        }
        rest = &rest[consumed..];
        line += 1;
        if in_quotes {
            return Some((start_line, Err("a quoted field is never closed".to_owned())));
        }
        fields.push(field);
        Some((start_line, Ok(fields)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_fields_with_commas_and_quotes_are_read() {
        let parsed: Vec<_> = records("a,\"b,c\",\"d\"\"e\"\n1,2,3").collect();
        assert_eq!(
            parsed[0],
            (1, Ok(vec!["a".into(), "b,c".into(), "d\"e".into()]))
        );
        assert_eq!(parsed[1], (2, Ok(vec!["1".into(), "2".into(), "3".into()])));
    }

    #[test]
    fn unterminated_quote_is_an_error() {
        let parsed: Vec<_> = records("a,\"b\n").collect();
        assert!(parsed[0].1.is_err());
    }
}
