//! A small, strict parser of the Prometheus text exposition format (0.0.4), which also accepts
//! the OpenMetrics spelling that `prometheus-client` writes (`# EOF`, `# UNIT`, counters declared
//! without their `_total` suffix).
//!
//! Strict means: every line is a `# HELP`/`# TYPE`/`# UNIT`/`# EOF`/comment line or a sample
//! `name{label="value",…} value [timestamp]`; names and label names are valid; label values use
//! only the `\\`, `\"`, `\n` escapes; every sample belongs to a family declared by `# TYPE`
//! before it; a family's lines are contiguous; HELP and TYPE appear at most once per family; no
//! series appears twice; counters are never negative; histogram buckets have `le`, are
//! cumulative, end with `+Inf`, and `+Inf` equals `_count`; `_sum` is there; the text ends with a
//! newline and nothing follows `# EOF`.

use std::collections::{BTreeMap, HashSet};

#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

#[derive(Clone, Debug)]
pub struct Family {
    /// The name in `# TYPE` (for OpenMetrics counters, without `_total`).
    pub name: String,
    /// counter, gauge, histogram, summary, untyped, unknown, info, stateset, gaugehistogram.
    pub kind: String,
    pub help: Option<String>,
    pub samples: Vec<Sample>,
}

#[derive(Clone, Debug, Default)]
pub struct Exposition {
    pub families: Vec<Family>,
}

impl Exposition {
    /// Every sample named exactly `name`.
    pub fn samples(&self, name: &str) -> Vec<&Sample> {
        self.families
            .iter()
            .flat_map(|f| &f.samples)
            .filter(|s| s.name == name)
            .collect()
    }

    /// The family a sample named `sample_name` belongs to.
    pub fn family_of(&self, sample_name: &str) -> Option<&Family> {
        self.families
            .iter()
            .find(|f| f.samples.iter().any(|s| s.name == sample_name))
            .or_else(|| {
                self.families
                    .iter()
                    .find(|f| sample_belongs(&f.name, &f.kind, sample_name))
            })
    }

    /// The value of the one sample `name` whose labels include all of `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let found: Vec<&Sample> = self
            .samples(name)
            .into_iter()
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect();
        match found.as_slice() {
            [one] => Some(one.value),
            _ => None,
        }
    }

    /// The sum over every sample `name` whose labels include all of `labels` (0 when none).
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples(name)
            .into_iter()
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
            .sum()
    }
}

const TYPES: &[&str] = &[
    "counter",
    "gauge",
    "histogram",
    "summary",
    "untyped",
    "unknown",
    "info",
    "stateset",
    "gaugehistogram",
];

fn suffixes(kind: &str) -> &'static [&'static str] {
    match kind {
        "counter" => &["", "_total", "_created"],
        "histogram" => &["_bucket", "_sum", "_count", "_created"],
        "gaugehistogram" => &["_bucket", "_gsum", "_gcount"],
        "summary" => &["", "_sum", "_count", "_created"],
        "info" => &["_info"],
        _ => &[""],
    }
}

fn sample_belongs(family: &str, kind: &str, sample: &str) -> bool {
    suffixes(kind)
        .iter()
        .any(|suffix| sample.strip_suffix(suffix) == Some(family))
}

fn valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn parse_value(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => {
            let ok = text
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E'));
            if ok {
                text.parse().ok()
            } else {
                None
            }
        }
    }
}

/// `name{labels} value [timestamp]` → Sample.
fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).unwrap_or(line.len());
    let name = &line[..name_end];
    if !valid_metric_name(name) {
        return Err(format!("invalid metric name {name:?}"));
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(after) = rest.strip_prefix('{') {
        let mut chars = after.char_indices().peekable();
        loop {
            // label name or '}'
            let start = match chars.peek() {
                Some((_, '}')) => {
                    let (i, _) = chars.next().expect("peeked");
                    rest = &after[i + 1..];
                    break;
                }
                Some((i, _)) => *i,
                None => return Err("unterminated label set".into()),
            };
            let mut eq = None;
            for (i, c) in chars.by_ref() {
                if c == '=' {
                    eq = Some(i);
                    break;
                }
            }
            let eq = eq.ok_or("label without `=`")?;
            let lname = &after[start..eq];
            if !valid_label_name(lname) {
                return Err(format!("invalid label name {lname:?}"));
            }
            if chars.next().map(|(_, c)| c) != Some('"') {
                return Err(format!("label {lname} value must be quoted"));
            }
            let mut value = String::new();
            let mut closed = false;
            while let Some((_, c)) = chars.next() {
                match c {
                    '\\' => match chars.next().map(|(_, c)| c) {
                        Some('\\') => value.push('\\'),
                        Some('"') => value.push('"'),
                        Some('n') => value.push('\n'),
                        other => {
                            return Err(format!("invalid escape \\{other:?} in label {lname}"))
                        }
                    },
                    '"' => {
                        closed = true;
                        break;
                    }
                    '\n' => return Err("newline in a label value".into()),
                    c => value.push(c),
                }
            }
            if !closed {
                return Err(format!("unterminated value of label {lname}"));
            }
            if labels.insert(lname.to_string(), value).is_some() {
                return Err(format!("label {lname} given twice"));
            }
            match chars.next().map(|(_, c)| c) {
                Some(',') => continue,
                Some('}') => {
                    let consumed = chars.peek().map_or(after.len(), |(i, _)| *i);
                    rest = &after[consumed..];
                    break;
                }
                other => return Err(format!("expected `,` or `}}` after a label, got {other:?}")),
            }
        }
    }
    let rest = rest
        .strip_prefix(' ')
        .ok_or("expected one space before the value")?;
    let mut parts = rest.split(' ');
    let value_text = parts.next().unwrap_or("");
    let value = parse_value(value_text).ok_or_else(|| format!("invalid value {value_text:?}"))?;
    if let Some(ts) = parts.next() {
        if ts.parse::<f64>().is_err() {
            return Err(format!("invalid timestamp {ts:?}"));
        }
    }
    if parts.next().is_some() {
        return Err("trailing text after the timestamp".into());
    }
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// Parses `text`; the error names the line and what is wrong with it.
pub fn parse(text: &str) -> Result<Exposition, String> {
    if !text.ends_with('\n') {
        return Err("the exposition must end with a newline".into());
    }
    let mut exp = Exposition::default();
    let mut helps: HashSet<String> = HashSet::new();
    let mut closed_families: HashSet<String> = HashSet::new();
    let mut series: HashSet<(String, BTreeMap<String, String>)> = HashSet::new();
    let mut current: Option<usize> = None;
    let mut eof = false;
    for (n, line) in text.lines().enumerate() {
        let at = |msg: String| format!("line {}: {msg}: {line:?}", n + 1);
        if eof {
            return Err(at("text after `# EOF`".into()));
        }
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let words: Vec<&str> = comment.trim_start().splitn(3, ' ').collect();
            match words.first().copied() {
                Some("HELP") | Some("TYPE") | Some("UNIT") => {
                    let name = words
                        .get(1)
                        .copied()
                        .ok_or_else(|| at("no metric name".into()))?;
                    if !valid_metric_name(name) {
                        return Err(at(format!("invalid metric name {name:?}")));
                    }
                    let arg = words.get(2).copied().unwrap_or("");
                    // Metadata starts (or continues) the family `name`.
                    let index = match exp.families.iter().position(|f| f.name == name) {
                        Some(i) if current == Some(i) => i,
                        Some(_) => {
                            return Err(at(format!(
                                "metadata for {name} after its family was closed"
                            )))
                        }
                        None => {
                            if let Some(c) = current {
                                closed_families.insert(exp.families[c].name.clone());
                            }
                            exp.families.push(Family {
                                name: name.to_string(),
                                kind: "untyped".into(),
                                help: None,
                                samples: Vec::new(),
                            });
                            exp.families.len() - 1
                        }
                    };
                    current = Some(index);
                    let family = &mut exp.families[index];
                    match words[0] {
                        "HELP" => {
                            if !helps.insert(name.to_string()) {
                                return Err(at(format!("second HELP for {name}")));
                            }
                            family.help = Some(arg.to_string());
                        }
                        "TYPE" => {
                            if !TYPES.contains(&arg) {
                                return Err(at(format!("unknown type {arg:?}")));
                            }
                            if !family.samples.is_empty() {
                                return Err(at(format!("TYPE for {name} after its samples")));
                            }
                            if family.kind != "untyped" {
                                return Err(at(format!("second TYPE for {name}")));
                            }
                            family.kind = arg.to_string();
                        }
                        _ => {}
                    }
                }
                Some("EOF") if comment.trim() == "EOF" => eof = true,
                _ => {} // a plain comment
            }
            continue;
        }
        let sample = parse_sample(line).map_err(at)?;
        let index = match current {
            Some(c)
                if sample_belongs(&exp.families[c].name, &exp.families[c].kind, &sample.name) =>
            {
                c
            }
            _ => {
                let owner = exp
                    .families
                    .iter()
                    .any(|f| sample_belongs(&f.name, &f.kind, &sample.name));
                return Err(at(if owner {
                    format!("sample {} is not next to its family", sample.name)
                } else {
                    format!("sample {} has no `# TYPE` before it", sample.name)
                }));
            }
        };
        if closed_families.contains(&exp.families[index].name) {
            return Err(at("a family's lines must be contiguous".into()));
        }
        if !series.insert((sample.name.clone(), sample.labels.clone())) {
            return Err(at(format!("series {} given twice", sample.name)));
        }
        if exp.families[index].kind == "counter" && (sample.value.is_nan() || sample.value < 0.0) {
            return Err(at("a counter must be >= 0".into()));
        }
        exp.families[index].samples.push(sample);
    }
    for family in &exp.families {
        if family.kind == "histogram" {
            check_histogram(family)?;
        }
    }
    Ok(exp)
}

fn check_histogram(family: &Family) -> Result<(), String> {
    let name = &family.name;
    let mut groups: BTreeMap<BTreeMap<String, String>, Vec<(f64, f64)>> = BTreeMap::new();
    for s in &family.samples {
        if s.name.ends_with("_bucket") {
            let le = s
                .labels
                .get("le")
                .ok_or_else(|| format!("{name}: a bucket without `le`"))?;
            let bound = parse_value(le).ok_or_else(|| format!("{name}: bad le {le:?}"))?;
            let mut key = s.labels.clone();
            key.remove("le");
            groups.entry(key).or_default().push((bound, s.value));
        }
    }
    for (labels, mut buckets) in groups {
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        if buckets.last().map(|b| b.0) != Some(f64::INFINITY) {
            return Err(format!("{name}{labels:?}: no +Inf bucket"));
        }
        if buckets.windows(2).any(|w| w[1].1 < w[0].1) {
            return Err(format!("{name}{labels:?}: buckets are not cumulative"));
        }
        let find = |suffix: &str| {
            family
                .samples
                .iter()
                .find(|s| s.name == format!("{name}{suffix}") && s.labels == labels)
                .map(|s| s.value)
        };
        let count = find("_count").ok_or_else(|| format!("{name}{labels:?}: no _count"))?;
        find("_sum").ok_or_else(|| format!("{name}{labels:?}: no _sum"))?;
        let inf = buckets.last().expect("checked").1;
        if inf != count {
            return Err(format!(
                "{name}{labels:?}: +Inf bucket {inf} differs from _count {count}"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "# HELP x_total Things.\n# TYPE x_total counter\nx_total{a=\"1\",b=\"q\\\"\"} 3\nx_total{a=\"2\"} 0\n\
# TYPE d histogram\nd_bucket{le=\"0.1\"} 1\nd_bucket{le=\"+Inf\"} 2\nd_sum 0.3\nd_count 2\n\
# TYPE g gauge\ng 1.5e3\n";

    #[test]
    fn accepts_prometheus_and_openmetrics() {
        let e = parse(GOOD).unwrap();
        assert_eq!(e.value("x_total", &[("a", "1")]), Some(3.0));
        assert_eq!(e.samples("x_total")[0].labels["b"], "q\"");
        assert_eq!(e.family_of("d_bucket").unwrap().kind, "histogram");
        assert_eq!(e.value("g", &[]), Some(1500.0));
        let om = "# TYPE r counter\n# HELP r R.\nr_total{x=\"y\"} 1\n# EOF\n";
        assert_eq!(
            parse(om).unwrap().family_of("r_total").unwrap().kind,
            "counter"
        );
    }

    #[test]
    fn refuses_broken_text() {
        for bad in [
            "x 1",                                                            // no final newline
            "x 1\n",                                                          // no TYPE
            "# TYPE x gauge\nx{a=1} 1\n",                                     // unquoted
            "# TYPE x gauge\nx one\n",                                        // value
            "# TYPE x gauge\nx 1\nx 2\n",                                     // duplicate series
            "# TYPE x foo\n",                                                 // type
            "# TYPE x gauge\nx 1\n# TYPE y gauge\ny 1\nx{a=\"b\"} 1\n",       // not contiguous
            "# TYPE d histogram\nd_bucket{le=\"1\"} 1\nd_sum 1\nd_count 1\n", // no +Inf
            "# TYPE c counter\nc -1\n",
            "# EOF\n# TYPE x gauge\n",
        ] {
            assert!(parse(bad).is_err(), "accepted {bad:?}");
        }
    }
}
