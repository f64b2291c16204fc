//! `@mentions` as the reference reads them (`@([A-Za-z][\w-]{0,31})`, lowercased): in task
//! comments (the lead rule), group memory (`@all`) and chat notices.

/// The handles of a text, lowercased, in order.
pub fn extract(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '@' || !chars.peek().is_some_and(char::is_ascii_alphabetic) {
            continue;
        }
        let mut handle = String::new();
        while let Some(&next) = chars.peek() {
            let word = next.is_alphanumeric() || next == '_' || next == '-';
            if !word || handle.chars().count() == 32 {
                break;
            }
            handle.extend(next.to_lowercase());
            chars.next();
        }
        found.push(handle);
    }
    found
}

/// Does `mention` name this agent: `lead` for a lead, else its whole name or its first
/// word (case-insensitive)?
pub fn names(mention: &str, agent_name: &str, is_lead: bool) -> bool {
    if mention == "lead" {
        return is_lead;
    }
    let name = agent_name.trim().to_lowercase();
    let first = name.split_whitespace().next().unwrap_or_default();
    !name.is_empty() && (mention == name || mention == first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_follow_the_reference_pattern() {
        assert_eq!(
            extract("hi @All and @bob-2, not @9x or a@, mail a@b"),
            ["all", "bob-2", "b"]
        );
        assert_eq!(extract("@Jürgen!"), ["jürgen"]);
        let long = format!("@{}", "a".repeat(40));
        assert_eq!(extract(&long)[0].len(), 32);
        assert!(extract("@ nothing @1x").is_empty());
    }

    #[test]
    fn mentions_name_agents_by_name_first_word_or_lead() {
        assert!(names("ada", "Ada Lovelace", false));
        assert!(names("ada lovelace", "Ada Lovelace", false));
        assert!(names("lead", "Anyone", true));
        assert!(!names("lead", "Anyone", false));
        assert!(!names("bob", "Ada", false));
    }
}
