//! Chinese, Japanese and Korean text for full-text search. PostgreSQL has no parser for
//! them (a run of Han characters is one "word", or nothing under the C locale), so each
//! run is indexed as its characters and their overlapping bigrams, written as ASCII tokens
//! (`cjk` + the code points in hex) that index the same under any locale. A query's CJK
//! runs become phrases of the same bigrams: "数据库" finds "数据库连接" and not "数据 … 库".

/// CJK ideographs, kana and hangul (what has no word separators).
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF      // hiragana, katakana
        | 0x3400..=0x4DBF    // CJK extension A
        | 0x4E00..=0x9FFF    // CJK unified ideographs
        | 0xAC00..=0xD7AF    // hangul syllables
        | 0xF900..=0xFAFF    // compatibility ideographs
        | 0x20000..=0x2FA1F) // extensions B–F, compatibility supplement
}

fn unigram(c: char) -> String {
    format!("cjk{:x}", c as u32)
}

fn bigram(a: char, b: char) -> String {
    format!("cjk{:x}x{:x}", a as u32, b as u32)
}

/// The runs of CJK characters in `text`.
fn runs(text: &str) -> Vec<Vec<char>> {
    let mut runs = Vec::new();
    let mut run = Vec::new();
    for c in text.chars() {
        if is_cjk(c) {
            run.push(c);
        } else if !run.is_empty() {
            runs.push(std::mem::take(&mut run));
        }
    }
    if !run.is_empty() {
        runs.push(run);
    }
    runs
}

/// What `search_extra` holds for these texts: every CJK character and bigram as a token.
pub fn index_tokens(texts: &[&str]) -> String {
    let mut tokens = Vec::new();
    for text in texts {
        for run in runs(text) {
            tokens.extend(run.iter().map(|c| unigram(*c)));
            tokens.extend(run.windows(2).map(|w| bigram(w[0], w[1])));
        }
    }
    tokens.join(" ")
}

/// A query split into its other words (for the language's parser) and a `simple`
/// tsquery over its CJK runs (each run a phrase of its bigrams, or its one character);
/// `None` when it has no CJK.
pub fn split_query(query: &str) -> (String, Option<String>) {
    let rest: String = query
        .chars()
        .map(|c| if is_cjk(c) { ' ' } else { c })
        .collect();
    let phrases: Vec<String> = runs(query)
        .into_iter()
        .map(|run| {
            if run.len() == 1 {
                unigram(run[0])
            } else {
                let grams: Vec<String> = run.windows(2).map(|w| bigram(w[0], w[1])).collect();
                format!("({})", grams.join(" <-> "))
            }
        })
        .collect();
    let cjk = (!phrases.is_empty()).then(|| phrases.join(" & "));
    (rest.split_whitespace().collect::<Vec<_>>().join(" "), cjk)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_become_characters_and_bigrams() {
        assert_eq!(
            index_tokens(&["ab 数据库 x", "库"]),
            "cjk6570 cjk636e cjk5e93 cjk6570x636e cjk636ex5e93 cjk5e93"
        );
        assert_eq!(index_tokens(&["plain english"]), "");
    }

    #[test]
    fn queries_keep_their_words_and_phrase_their_runs() {
        assert_eq!(
            split_query("postgres 数据库 连"),
            (
                "postgres".to_string(),
                Some("(cjk6570x636e <-> cjk636ex5e93) & cjk8fde".to_string())
            )
        );
        assert_eq!(
            split_query("hello world"),
            ("hello world".to_string(), None)
        );
    }
}
