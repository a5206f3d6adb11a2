//! The other documents nofx reads: questionnaires and PRPs (JSON and YAML), each parsed and
//! checked. Property: an answer (the document, or problems naming where), never a panic or
//! a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nofx::plan::Format;
use nofx::prp::PrpSource;
use nofx::questions::QuestionnaireSource;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for format in [Format::Json, Format::Yaml] {
        let _ = QuestionnaireSource::parse(text, format, Some("fuzz"));
        if let Ok(src) = PrpSource::parse(text, format, Some("fuzz")) {
            let _ = src.prp.problems(&|_| Ok(()));
        }
    }
});
