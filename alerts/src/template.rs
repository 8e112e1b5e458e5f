//! Annotation templates: `{{ $value }}`, `{{ $threshold }}`, `{{ $rule }}`
//! and `{{ $labels.NAME }}` (an instance label such as `queue`, `task` or
//! `worker`, or one of the rule's labels) are replaced; everything else is
//! kept as written. Deliberately tiny: no conditionals, no functions.

use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq)]
enum Part {
    Text(String),
    Value,
    Threshold,
    Rule,
    Label(String),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    pub source: String,
    parts: Vec<Part>,
}

/// What a template is rendered against.
pub struct Context<'a> {
    pub rule: &'a str,
    pub value: Option<f64>,
    pub threshold: f64,
    pub labels: &'a BTreeMap<String, String>,
}

impl Template {
    pub fn parse(source: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = source;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_owned()));
            }
            let after = &rest[open + 2..];
            let close = after
                .find("}}")
                .ok_or_else(|| format!("unclosed `{{{{` in template `{source}`"))?;
            let var = after[..close].trim();
            parts.push(match var {
                "$value" => Part::Value,
                "$threshold" => Part::Threshold,
                "$rule" => Part::Rule,
                v => match v.strip_prefix("$labels.") {
                    Some(name) if !name.is_empty() => Part::Label(name.to_owned()),
                    _ => {
                        return Err(format!(
                            "unknown template variable `{var}` (known: $value, $threshold, \
                             $rule, $labels.NAME)"
                        ))
                    }
                },
            });
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Template {
            source: source.to_owned(),
            parts,
        })
    }

    pub fn render(&self, cx: &Context) -> String {
        let mut out = String::with_capacity(self.source.len() + 16);
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Value => out.push_str(&cx.value.map(format_value).unwrap_or_default()),
                Part::Threshold => out.push_str(&format_value(cx.threshold)),
                Part::Rule => out.push_str(cx.rule),
                // A label the instance does not have renders empty, as in
                // Prometheus.
                Part::Label(name) => {
                    out.push_str(cx.labels.get(name).map(String::as_str).unwrap_or(""))
                }
            }
        }
        out
    }
}

/// Integers without a fraction, others with up to three decimals.
pub fn format_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_value_threshold_and_labels() {
        let t = Template::parse(
            "{{ $labels.queue }} has {{$value}} (> {{ $threshold }}) [{{ $rule }}]",
        )
        .unwrap();
        let labels = BTreeMap::from([("queue".to_string(), "default".to_string())]);
        let cx = Context {
            rule: "Backlog",
            value: Some(1234.0),
            threshold: 0.125,
            labels: &labels,
        };
        assert_eq!(t.render(&cx), "default has 1234 (> 0.125) [Backlog]");
    }

    #[test]
    fn unknown_variables_and_unclosed_braces_are_errors() {
        assert!(Template::parse("{{ $valeu }}")
            .unwrap_err()
            .contains("$valeu"));
        assert!(Template::parse("{{ $value")
            .unwrap_err()
            .contains("unclosed"));
        assert_eq!(
            Template::parse("plain").unwrap().render(&Context {
                rule: "r",
                value: None,
                threshold: 1.0,
                labels: &BTreeMap::new()
            }),
            "plain"
        );
    }
}
