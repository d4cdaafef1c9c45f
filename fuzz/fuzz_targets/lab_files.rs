//! The lab's file parsers on arbitrary bytes: the raw export read by
//! `snow lab export`, the pushed rows the lab server validates, and the
//! weekly series `snow lab detect` reads (then run through EARS and
//! Farrington-flexible, with one past year so short inputs reach it). Each is
//! accepted or refused with a typed error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snow_lab::export::{export, Pseudonymiser};
use snow_lab::{LabSettings, Row};

fuzz_target!(|data: &[u8]| {
    let settings = LabSettings::default();
    let today = time::Date::from_calendar_date(2026, time::Month::November, 22).expect("date");
    let p = Pseudonymiser::new(b"fuzzing secret, 16+ bytes").expect("secret");
    let _ = export(data, std::io::sink(), &p, &settings, today, |_| {});
    if let Ok(series) = snow_lab::detect::series::read_csv(data) {
        for m in [snow_lab::detect::ears::Method::C1, snow_lab::detect::ears::Method::C3] {
            let params = snow_lab::detect::ears::Params::new(m);
            let _ = snow_lab::detect::series::write_ears_csv(&mut std::io::sink(), &series, &params);
        }
        use snow_lab::detect::farrington::{Params, ThresholdMethod};
        for method in [ThresholdMethod::Delta, ThresholdMethod::NbPlugin] {
            let params = Params { b: 1, w: 1, threshold_method: method, no_periods: 3, ..Params::default() };
            let _ = snow_lab::detect::series::write_farrington_csv(&mut std::io::sink(), &series, &params);
        }
    }
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(data);
    for (i, record) in reader.records().take(1000).enumerate() {
        let Ok(record) = record else { break };
        let fields: Vec<&str> = record.iter().collect();
        if let Err(e) = Row::parse(&fields, i as u64 + 1, &settings, today) {
            assert!(!e.to_string().is_empty());
        }
    }
});
