use super::*;

pub(crate) fn median(values: &[f64]) -> f64 {
    pct(values, 50.0)
}

/// `median (a, b, c)`: the median and every sample.
pub(crate) fn med_list(values: &[f64]) -> String {
    let all: Vec<String> = values.iter().map(|v| fmt_ms(*v)).collect();
    format!("{} ({})", fmt_ms(median(values)), all.join(", "))
}
