//! Limits on a config file's size and nesting, checked on the text before the YAML parser
//! sees it: libyaml's work grows with the square of the nesting, so a 200 KB file nested
//! 100,000 deep would take seconds to refuse, and a deeper one minutes.
//!
//! The nesting is measured as block indentation levels plus the `- ` and `? ` markers that
//! open a nested sequence or key on one line, plus open flow collections (`[`, `{`). Block
//! scalars (`|`, `>`) and quoted strings are skipped. The count can only overestimate, and a
//! real config nests about ten deep.

/// Largest config file accepted.
pub const MAX_BYTES: usize = 4 << 20;
/// Deepest nesting of mappings and sequences accepted.
pub const MAX_DEPTH: usize = 64;

/// Refuses a config whose size or nesting is over the limits, naming the line.
pub fn check(text: &str) -> Result<(), String> {
    if text.len() > MAX_BYTES {
        return Err(format!(
            "the file is {} bytes, over the limit of {MAX_BYTES}",
            text.len()
        ));
    }
    let mut indents: Vec<usize> = Vec::new();
    let mut flow = 0usize;
    // A block scalar's header indentation: its content lines are text, not structure.
    let mut block_scalar: Option<usize> = None;
    for (number, line) in text.lines().enumerate() {
        let trimmed = line.trim_start_matches(' ');
        let indent = line.len() - trimmed.len();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if let Some(header) = block_scalar {
            if indent > header {
                continue;
            }
            block_scalar = None;
        }
        if flow == 0 {
            while indents.last().is_some_and(|&top| top > indent) {
                indents.pop();
            }
            if indents.last().is_none_or(|&top| top < indent) {
                indents.push(indent);
            }
        }
        let mut rest = trimmed;
        let mut markers = 0;
        while let Some(after) = rest.strip_prefix("- ").or_else(|| rest.strip_prefix("? ")) {
            markers += 1;
            rest = after.trim_start_matches(' ');
        }
        let (deepest_flow, ends_in_block_scalar) = scan_flow(rest, &mut flow);
        let depth = indents.len() + markers + deepest_flow;
        if depth > MAX_DEPTH {
            return Err(format!(
                "line {}: nested more than {MAX_DEPTH} levels deep",
                number + 1
            ));
        }
        if ends_in_block_scalar {
            block_scalar = Some(indent);
        }
    }
    Ok(())
}

/// Follows flow brackets through one line (outside quotes and comments), updating the open
/// count; returns the deepest count on the line and whether the line opens a block scalar.
fn scan_flow(line: &str, open: &mut usize) -> (usize, bool) {
    let mut deepest = *open;
    let mut quote: Option<char> = None;
    let mut previous = ' ';
    // Whether a bracket here would start a flow collection: at a value's start, or inside one.
    let mut at_value_start = true;
    let mut chars = line.chars().peekable();
    let mut last_significant = ' ';
    while let Some(c) = chars.next() {
        match quote {
            Some('"') if c == '\\' => {
                chars.next();
            }
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '#' if previous == ' ' => break,
                '"' | '\'' if at_value_start || *open > 0 => quote = Some(c),
                '[' | '{' if at_value_start || *open > 0 => {
                    *open += 1;
                    deepest = deepest.max(*open);
                }
                ']' | '}' if *open > 0 => *open -= 1,
                ':' if chars.peek().is_none_or(|n| *n == ' ') => at_value_start = true,
                ',' if *open > 0 => at_value_start = true,
                ' ' => {}
                _ => at_value_start = false,
            },
        }
        if c != ' ' {
            last_significant = c;
        }
        previous = c;
    }
    let block_scalar = quote.is_none()
        && *open == 0
        && matches!(last_significant, '|' | '>' | '-' | '+' | '0'..='9')
        && line
            .trim_end()
            .rsplit([' ', ':'])
            .next()
            .is_some_and(|header| {
                header.starts_with(['|', '>'])
                    && header[1..]
                        .chars()
                        .all(|c| matches!(c, '-' | '+' | '0'..='9'))
            });
    (deepest, block_scalar)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_configs_pass() {
        let configs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
        for entry in std::fs::read_dir(configs).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "yaml") {
                continue; // the demo's issue store lives beside its config
            }
            let text = std::fs::read_to_string(&path).unwrap();
            check(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
        let text = "monitors:\n  - name: a\n    grants:\n      aws: [\"sqs:Get*\", {a: [1, 2]}]\n    note: |\n      [[[[[[ text, not structure\n          {{{{{{\n    url: http://x/[a\n";
        check(text).unwrap();
    }

    #[test]
    fn deep_nesting_is_refused_quickly() {
        let cases = [
            "[".repeat(1_000_000),
            "{a: ".repeat(100_000),
            "- ".repeat(100_000) + "x",
            (0..1_000)
                .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
                .collect::<String>(),
        ];
        for text in cases {
            let started = std::time::Instant::now();
            let refused = check(&text).unwrap_err();
            assert!(refused.contains("nested more than 64"), "{refused}");
            assert!(started.elapsed() < std::time::Duration::from_secs(1));
        }
        assert!(
            check(&"a".repeat(MAX_BYTES + 1))
                .unwrap_err()
                .contains("over the limit")
        );
    }
}
