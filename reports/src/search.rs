//! A sweep's search in its report: each trial's setting and validation accuracy with the pick
//! marked, and which setting each row of the time-to-target table was timed with.

use kinds::OptimizerKind;

use crate::data::SearchTrial;
use crate::document::Block;
use crate::format;
use crate::series::row_label;

/// The setting `model`'s row (`optimizer`, s') was timed with: its picked trial's, or the
/// sweep file's own when the search picked none.
pub fn timed_setting(
    trials: &[SearchTrial],
    model: &str,
    optimizer: OptimizerKind,
    samples: Option<u32>,
) -> String {
    trials
        .iter()
        .find(|t| t.picked && t.model == model && t.optimizer == optimizer && t.samples == samples)
        .map_or_else(|| "the file's".into(), |t| t.setting.clone())
}

/// The trials of `model`'s rows, one line each, the picks marked; `None` without any.
pub fn search_table(trials: &[SearchTrial], model: &str) -> Option<Block> {
    let rows: Vec<Vec<String>> = trials
        .iter()
        .filter(|t| t.model == model)
        .map(|t| {
            vec![
                row_label(t.optimizer, t.samples),
                t.setting.clone(),
                t.status.clone(),
                t.validation_accuracy.map_or("—".into(), format::percent),
                if t.picked {
                    "✓".into()
                } else {
                    String::new()
                },
            ]
        })
        .collect();
    (!rows.is_empty()).then(|| Block::Table {
        header: [
            "optimizer",
            "setting",
            "trial",
            "validation accuracy",
            "picked",
        ]
        .map(String::from)
        .to_vec(),
        rows,
    })
}
